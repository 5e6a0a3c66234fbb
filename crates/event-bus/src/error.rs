//! Error types.
//!
//! Every error is a `#[non_exhaustive]` enum with lowercase messages:
//! [`AttributeError`] for invalid CloudEvents attributes, [`CodecError`] for
//! payload encoding, [`DecodeError`] for turning a raw event into a typed
//! envelope, [`WireError`] for reading or writing the wire format, and
//! [`BusError`] for everything a backend reports.
//!
//! ```
//! use tessera_event_bus::{AttributeError, Attributes};
//!
//! let attrs = Attributes::new("", "/svc", "com.example.thing.v1");
//! let err = attrs.validate().unwrap_err();
//! assert_eq!(err, AttributeError::Missing("id"));
//! assert_eq!(err.to_string(), "required attribute `id` is missing or empty");
//! ```

/// A boxed error from a codec, a handler or a backend's client library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// CloudEvents attributes that break the specification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttributeError {
    /// A required attribute (`id`, `source`, `type`, `specversion`) is absent or empty.
    #[error("required attribute `{0}` is missing or empty")]
    Missing(&'static str),
    /// An optional attribute is present but empty.
    #[error("attribute `{0}` is present but empty")]
    Empty(&'static str),
    /// `specversion` is not `1.0`.
    #[error("unsupported cloudevents specversion `{0}` (only 1.0 is supported)")]
    UnsupportedSpecVersion(String),
    /// An extension name is not 1 to 20 lowercase ASCII letters or digits.
    #[error("invalid attribute name `{0}` (lowercase ascii letters and digits, at most 20)")]
    InvalidName(String),
    /// An extension uses the name of a core attribute.
    #[error("extension name `{0}` is reserved for a core attribute")]
    ReservedName(String),
    /// `time` is not an RFC 3339 timestamp.
    #[error("attribute `time` is not an rfc 3339 timestamp: `{0}`")]
    InvalidTime(String),
}

/// A codec could not encode or decode event data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The value could not be serialized.
    #[error("could not encode event data: {0}")]
    Encode(#[source] BoxError),
    /// The bytes are not a valid encoding of the expected type.
    #[error("could not decode event data: {0}")]
    Decode(#[source] BoxError),
}

/// A raw event could not become a typed [`Envelope`](crate::Envelope).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The raw event's `type` is not the one the target type declares.
    #[error("event type mismatch: expected `{expected}`, found `{found}`")]
    TypeMismatch {
        /// The type name the Rust type declares.
        expected: &'static str,
        /// The type name the event carries.
        found: String,
    },
    /// The codec cannot read data of this content type.
    #[error("unsupported data content type `{found}` (codec reads `{expected}`)")]
    UnsupportedContentType {
        /// The content type the codec reads.
        expected: String,
        /// The event's `datacontenttype`.
        found: String,
    },
    /// The data does not decode into the target type.
    #[error(transparent)]
    Payload(#[from] CodecError),
}

/// A message on the wire is not a valid CloudEvent, or an event cannot be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The attributes break the CloudEvents specification.
    #[error("invalid cloudevent: {0}")]
    Attribute(#[from] AttributeError),
    /// The same attribute arrived twice under different header prefixes with different values.
    #[error("attribute `{0}` given twice with different values")]
    DuplicateAttribute(String),
    /// A structured-mode body is not a JSON object.
    #[error("structured cloudevent is not a json object: {0}")]
    NotJsonObject(String),
    /// A structured-mode attribute has a JSON type that is not allowed for it.
    #[error("structured cloudevent attribute `{0}` has an unsupported json type")]
    UnsupportedValue(String),
    /// A structured-mode event carries both `data` and `data_base64`.
    #[error("structured cloudevent has both `data` and `data_base64`")]
    DataAndDataBase64,
    /// `data_base64` is not valid base64.
    #[error("structured cloudevent `data_base64` is not valid base64")]
    InvalidBase64,
    /// Non-JSON data in a structured event must be a JSON string or use `data_base64`.
    #[error("data of content type `{0}` cannot be embedded in a structured json event")]
    DataNotEmbeddable(String),
}

/// What a backend reports: publishing, subscribing, settling or closing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The publisher, subscriber or subscription was closed.
    #[error("the bus connection is closed")]
    Closed,
    /// The event was refused before reaching the backend.
    #[error("invalid event: {0}")]
    InvalidEvent(#[from] AttributeError),
    /// No queue or consumer group is bound to the event type; nothing would receive it.
    #[error("unroutable event of type `{0}`: no consumer group is bound to it")]
    Unroutable(String),
    /// The event cannot be carried by this backend (for example a routing key
    /// longer than AMQP's 255 bytes).
    #[error("the event cannot be sent on this backend: {0}")]
    Unsupported(String),
    /// The broker refused the message (for example a negative publisher confirm).
    #[error("the broker rejected the message: {0}")]
    Rejected(String),
    /// A subscription's options are invalid (for example an empty group name).
    #[error("invalid subscription: {0}")]
    InvalidSubscription(String),
    /// The connection to the broker failed.
    #[error("broker connection failed: {0}")]
    Connection(#[source] BoxError),
    /// The database that keeps events (the outbox's table) refused or could
    /// not be reached.
    #[error("event store failed: {0}")]
    Store(#[source] BoxError),
    /// A queue already exists on the broker with other arguments than the
    /// configuration declares (for example classic where quorum is
    /// configured), so the broker refused to declare it (RabbitMQ's
    /// `PRECONDITION_FAILED`). A queue's type and arguments cannot change in
    /// place: the queue has to be migrated (docs/operations.md, "Moving a
    /// group between classic and quorum queues").
    #[error(
        "queue `{queue}` exists on the broker with other arguments than configured: {mismatch}; \
         a queue's type and arguments cannot change in place, migrate the group's queues \
         (docs/operations.md, \"Moving a group between classic and quorum queues\")"
    )]
    QueueMismatch {
        /// The queue the broker refused to declare.
        queue: String,
        /// What differs, as the broker says it (for example
        /// `inequivalent arg 'x-queue-type' ... received 'quorum' but current is none`).
        mismatch: String,
    },
    /// A JetStream stream exists on the server with settings that break what
    /// the configuration asks for (it does not capture the event subjects, or
    /// its retention, replicas or duplicate window differ), or the server
    /// refused to create it. A stream's subjects and retention are changed by
    /// an operator (`nats stream edit`), not silently by a client.
    #[error("stream `{stream}` on the server does not fit the configuration: {mismatch}")]
    StreamMismatch {
        /// The stream.
        stream: String,
        /// What differs.
        mismatch: String,
    },
    /// The wire format could not be written or read.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The event data could not be encoded.
    #[error(transparent)]
    Encode(#[from] CodecError),
}
