//! How event data becomes bytes: the [`Codec`] trait and the default [`JsonCodec`].
//!
//! A codec names the media type it writes (the `datacontenttype` attribute)
//! and says which media types it reads. Plug in another codec (CBOR,
//! Protobuf, ...) by implementing the trait and handing it to
//! [`Envelope::encode`](crate::Envelope::encode), the
//! [`EventPublisher`](crate::EventPublisher) and the
//! [`Router`](crate::router::Router).
//!
//! ```
//! use tessera_event_bus::{Codec, JsonCodec};
//!
//! let bytes = JsonCodec.encode(&vec![1, 2, 3]).unwrap();
//! assert_eq!(&bytes[..], b"[1,2,3]");
//! let back: Vec<u32> = JsonCodec.decode(&bytes).unwrap();
//! assert_eq!(back, [1, 2, 3]);
//! assert!(JsonCodec.reads(Some("application/json; charset=utf-8")));
//! assert!(!JsonCodec.reads(Some("application/cbor")));
//! ```

use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};

use crate::error::CodecError;

/// Encodes and decodes event data.
pub trait Codec: Send + Sync + std::fmt::Debug + 'static {
    /// The media type this codec writes, used as `datacontenttype`.
    fn content_type(&self) -> &str;

    /// Whether this codec reads data of the given `datacontenttype`.
    /// `None` means the event did not say; CloudEvents then implies JSON.
    ///
    /// The default compares the media type without parameters, ignoring case.
    fn reads(&self, content_type: Option<&str>) -> bool {
        match content_type {
            None => true,
            Some(ct) => media_type(ct).eq_ignore_ascii_case(media_type(self.content_type())),
        }
    }

    /// Encodes a value.
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes, CodecError>;

    /// Decodes a value.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError>;
}

/// The media type of a content type, without parameters (`; charset=...`).
pub(crate) fn media_type(content_type: &str) -> &str {
    content_type
        .split(';')
        .next()
        .unwrap_or(content_type)
        .trim()
}

/// JSON with `serde_json`; writes `application/json`, reads any JSON media
/// type (`application/json`, `text/json`, `application/*+json`).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

impl Codec for JsonCodec {
    fn content_type(&self) -> &str {
        "application/json"
    }

    fn reads(&self, content_type: Option<&str>) -> bool {
        content_type.is_none_or(is_json_media_type)
    }

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes, CodecError> {
        let encode_error = |e| CodecError::Encode(Box::new(e));
        // Written into a reused buffer, then copied once into an exact-size
        // allocation: `Bytes::from(Vec)` would add a second allocation for
        // any vector with spare capacity, which serde_json's always has.
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                serde_json::to_writer(&mut *buf, value).map_err(encode_error)?;
                let bytes = Bytes::copy_from_slice(&buf);
                if buf.capacity() > SCRATCH_KEEP {
                    *buf = Vec::new();
                }
                Ok(bytes)
            }
            // Re-entered (a `Serialize` impl encoding with this codec).
            Err(_) => serde_json::to_vec(value)
                .map(Bytes::from)
                .map_err(encode_error),
        })
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        serde_json::from_slice(bytes).map_err(|e| CodecError::Decode(Box::new(e)))
    }
}

thread_local! {
    /// [`JsonCodec::encode`]'s buffer, one per thread.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The largest scratch buffer kept between encodes; a bigger one (after an
/// unusually large event) is freed.
const SCRATCH_KEEP: usize = 64 * 1024;

/// Whether a content type is JSON by the CloudEvents JSON format's rule.
pub(crate) fn is_json_media_type(content_type: &str) -> bool {
    if content_type == "application/json" {
        return true; // what this crate writes: no parsing needed
    }
    let mt = media_type(content_type);
    let ends_with = |suffix: &str| {
        mt.len() >= suffix.len()
            && mt.as_bytes()[mt.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
    };
    mt.eq_ignore_ascii_case("application/json")
        || mt.eq_ignore_ascii_case("text/json")
        || ends_with("+json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_codec_reads_json_media_types_only() {
        assert!(JsonCodec.reads(None));
        assert!(JsonCodec.reads(Some("application/json")));
        assert!(JsonCodec.reads(Some("Application/JSON; charset=utf-8")));
        assert!(JsonCodec.reads(Some("application/vnd.example+json")));
        assert!(JsonCodec.reads(Some("application/vnd.example+JSON ; v=2")));
        assert!(JsonCodec.reads(Some("text/json")));
        assert!(!JsonCodec.reads(Some("json")));
        assert!(!JsonCodec.reads(Some("application/jsonx")));
        assert!(!JsonCodec.reads(Some("text/plain")));
        assert!(!JsonCodec.reads(Some("application/cloudevents-batch")));
    }

    #[test]
    fn garbage_bytes_give_a_decode_error() {
        let err = JsonCodec.decode::<u32>(b"\xff not json").unwrap_err();
        assert!(matches!(err, CodecError::Decode(_)));
        assert!(err.to_string().starts_with("could not decode event data"));
    }

    #[derive(Debug)]
    struct Cbor;
    impl Codec for Cbor {
        fn content_type(&self) -> &str {
            "application/cbor"
        }
        fn encode<T: Serialize + ?Sized>(&self, _: &T) -> Result<Bytes, CodecError> {
            Ok(Bytes::new())
        }
        fn decode<T: DeserializeOwned>(&self, _: &[u8]) -> Result<T, CodecError> {
            Err(CodecError::Decode("unused".into()))
        }
    }

    #[test]
    fn default_reads_compares_media_type_without_parameters() {
        assert!(Cbor.reads(Some("application/CBOR; x=y")));
        assert!(!Cbor.reads(Some("application/json")));
    }
}
