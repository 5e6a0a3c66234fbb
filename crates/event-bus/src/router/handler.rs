//! Handlers: what the router calls for each delivery, and what they get.
//!
//! A typed handler is a [`tower::Service`] of [`EventRequest<E>`] (an
//! [`Envelope<E>`] plus its [`EventContext`]) answering `()` or a
//! [`HandlerError`]. [`handler_fn`] turns an async fn taking
//! `(Envelope<E>, EventContext)` into one. The router decodes each delivery
//! into the handler's event type; the untyped request it passes through its
//! middleware is a [`DeliveryRequest`].
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use serde::{Deserialize, Serialize};
//! use tower::ServiceExt;
//! use tessera_event_bus::{Envelope, EventContext, HandlerError};
//! use tessera_event_bus::router::{EventRequest, handler_fn};
//!
//! #[derive(Serialize, Deserialize)]
//! struct UserDeleted { user_id: String }
//! tessera_event_bus::event!(UserDeleted => "com.example.user.deleted.v1", subject = user_id);
//!
//! let handler = handler_fn(|env: Envelope<UserDeleted>, _ctx: EventContext| async move {
//!     if env.data().user_id.is_empty() {
//!         return Err(HandlerError::permanent("user id is empty"));
//!     }
//!     Ok(())
//! });
//! let env = Envelope::new("/users", UserDeleted { user_id: String::new() });
//! let request = EventRequest::new(env, EventContext::detached("comments"));
//! let err = handler.oneshot(request).await.unwrap_err();
//! assert!(!err.is_transient());
//! # });
//! ```

use std::{
    fmt,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::future::{Either, Ready, ready};
use tower_service::Service;

use crate::{
    Codec, Envelope, Event, RawEvent,
    error::{BoxError, DecodeError},
    trace_context::TraceContext,
};

/// Why a handler did not process an event, and so what happens to it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandlerError {
    /// Might work later (a database is down): retried, then dead-lettered.
    #[error("transient handler error: {0}")]
    Transient(#[source] BoxError),
    /// Will never work (the event violates a business rule): dead-lettered at once.
    #[error("permanent handler error: {0}")]
    Permanent(#[source] BoxError),
    /// The event's data does not decode into the handler's type: dead-lettered at once.
    #[error("undecodable event: {0}")]
    Undecodable(#[source] DecodeError),
    /// The handler ran longer than its timeout; transient.
    #[error("handler timed out after {0:?}")]
    Timeout(Duration),
    /// Transient errors until the retry policy gave up.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// How many times the handler ran.
        attempts: u32,
        /// The last error.
        #[source]
        last: Box<HandlerError>,
    },
}

impl HandlerError {
    /// A transient error: retry, then dead-letter.
    pub fn transient(error: impl Into<BoxError>) -> Self {
        Self::Transient(error.into())
    }

    /// A permanent error: dead-letter at once.
    pub fn permanent(error: impl Into<BoxError>) -> Self {
        Self::Permanent(error.into())
    }

    /// Whether retrying may help (transient errors and timeouts).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_) | Self::Timeout(_))
    }

    /// A short label for metrics: `transient`, `permanent`, `undecodable`, `timeout`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Transient(_) => "transient",
            Self::Permanent(_) => "permanent",
            Self::Undecodable(_) => "undecodable",
            Self::Timeout(_) => "timeout",
            Self::RetriesExhausted { last, .. } => last.kind(),
        }
    }
}

/// What a handler knows about the delivery it is processing.
///
/// Use [`follow_up`](EventContext::follow_up) to build events caused by this
/// one: they carry the same correlation id, this event's id as causation id,
/// and a `traceparent` in the same trace.
#[derive(Debug, Clone)]
pub struct EventContext {
    group: Arc<str>,
    source: Arc<str>,
    /// The event being handled (shared, not copied): its id and correlation id.
    event: Arc<RawEvent>,
    attempt: u32,
    trace: TraceContext,
}

impl EventContext {
    /// The context of a delivery of `event` to `group`; the router builds it.
    ///
    /// `source` is the `source` of follow-up events. The trace context is a
    /// child of the event's `traceparent`, or a new trace when it has none.
    pub fn for_delivery(
        group: Arc<str>,
        source: Arc<str>,
        event: Arc<RawEvent>,
        attempt: u32,
    ) -> Self {
        let parent = TraceContext::from_attributes(&event.attributes);
        Self::for_delivery_under(group, source, event, attempt, parent.as_ref())
    }

    /// [`for_delivery`](Self::for_delivery) with the event's trace context
    /// already read (`None`: the event has none, a new trace starts).
    pub(crate) fn for_delivery_under(
        group: Arc<str>,
        source: Arc<str>,
        event: Arc<RawEvent>,
        attempt: u32,
        parent: Option<&TraceContext>,
    ) -> Self {
        let trace = parent.map_or_else(TraceContext::new_root, TraceContext::child);
        Self {
            group,
            source,
            event,
            attempt,
            trace,
        }
    }

    /// A context outside any delivery, for tests and for calling handlers directly.
    pub fn detached(group: &str) -> Self {
        let source = format!("/{group}");
        let attrs = crate::Attributes::new(crate::Attributes::new_id(), &source, "");
        Self {
            group: Arc::from(group),
            source: Arc::from(source),
            event: Arc::new(RawEvent::new(attrs, bytes::Bytes::new())),
            attempt: 1,
            trace: TraceContext::new_root(),
        }
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The id of the event being handled.
    pub fn event_id(&self) -> &str {
        &self.event.attributes.id
    }

    /// The correlation id: the event's `correlationid`, or its id when it has none.
    pub fn correlation_id(&self) -> &str {
        let attrs = &self.event.attributes;
        attrs.correlation_id().unwrap_or(&attrs.id)
    }

    /// Which delivery of the event this is (1 = first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The trace context of this delivery's processing.
    pub fn trace_context(&self) -> &TraceContext {
        &self.trace
    }

    /// An envelope for an event caused by the one being handled: `source`
    /// from the router, `correlationid` carried over, `causationid` = this
    /// event's id, `traceparent` / `tracestate` in the same trace.
    pub fn follow_up<E: Event>(&self, event: E) -> Envelope<E> {
        let mut envelope = Envelope::new(&*self.source, event)
            .with_correlation_id(self.correlation_id())
            .with_causation_id(self.event_id());
        self.trace.write_to(envelope.attributes_mut());
        envelope
    }
}

/// A typed handler's request: the decoded envelope and its context.
#[derive(Debug)]
#[non_exhaustive]
pub struct EventRequest<E> {
    /// The decoded event.
    pub envelope: Envelope<E>,
    /// The delivery's context.
    pub context: EventContext,
}

impl<E> EventRequest<E> {
    /// A request from its parts.
    pub fn new(envelope: Envelope<E>, context: EventContext) -> Self {
        Self { envelope, context }
    }
}

/// The untyped request that flows through the router's middleware: the raw
/// event and its context. Cheap to clone, so retries can resend it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeliveryRequest {
    /// The raw event.
    pub event: Arc<RawEvent>,
    /// The delivery's context.
    pub context: EventContext,
}

impl DeliveryRequest {
    /// A request from its parts.
    pub fn new(event: Arc<RawEvent>, context: EventContext) -> Self {
        Self { event, context }
    }
}

/// A boxed future, as the router's services return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Wraps an async fn `(Envelope<E>, EventContext) -> Result<(), HandlerError>` as a service.
pub fn handler_fn<F>(f: F) -> HandlerFn<F> {
    HandlerFn { f }
}

/// A service made by [`handler_fn`].
#[derive(Clone)]
pub struct HandlerFn<F> {
    f: F,
}

impl<F> fmt::Debug for HandlerFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerFn").finish_non_exhaustive()
    }
}

impl<F, Fut, E> Service<EventRequest<E>> for HandlerFn<F>
where
    F: Fn(Envelope<E>, EventContext) -> Fut,
    Fut: Future<Output = Result<(), HandlerError>>,
{
    type Response = ();
    type Error = HandlerError;
    type Future = Fut;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: EventRequest<E>) -> Fut {
        (self.f)(req.envelope, req.context)
    }
}

/// Decodes a [`DeliveryRequest`] into an [`EventRequest<E>`] and calls the typed handler.
pub(crate) struct Decoding<S, E, C> {
    inner: S,
    codec: Arc<C>,
    _event: PhantomData<fn() -> E>,
}

impl<S, E, C> Decoding<S, E, C> {
    pub(crate) fn new(inner: S, codec: Arc<C>) -> Self {
        Self {
            inner,
            codec,
            _event: PhantomData,
        }
    }
}

impl<S: Clone, E, C> Clone for Decoding<S, E, C> {
    fn clone(&self) -> Self {
        Self::new(self.inner.clone(), Arc::clone(&self.codec))
    }
}

impl<S, E, C> Service<DeliveryRequest> for Decoding<S, E, C>
where
    S: Service<EventRequest<E>, Response = (), Error = HandlerError>,
    E: Event,
    C: Codec,
{
    type Response = ();
    type Error = HandlerError;
    type Future = Either<Ready<Result<(), HandlerError>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: DeliveryRequest) -> Self::Future {
        match Envelope::<E>::decode_shared(&req.event, &*self.codec) {
            // The handler is not called, so the readiness it gave stays with it.
            Err(error) => Either::Left(ready(Err(HandlerError::Undecodable(error)))),
            Ok(envelope) => {
                Either::Right(self.inner.call(EventRequest::new(envelope, req.context)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::Attributes;

    #[derive(Debug, Serialize, Deserialize)]
    struct Ping;
    crate::event!(Ping => "com.example.ping.v1");

    #[test]
    fn context_without_correlation_id_correlates_on_the_event_id() {
        let raw = RawEvent::new(Attributes::new("e1", "/s", "t"), bytes::Bytes::new());
        let ctx = EventContext::for_delivery(Arc::from("g"), Arc::from("/me"), Arc::new(raw), 2);
        assert_eq!(ctx.correlation_id(), "e1");
        assert_eq!(ctx.attempt(), 2);
        let follow = ctx.follow_up(Ping);
        let a = follow.attributes();
        assert_eq!(a.source, "/me");
        assert_eq!(a.correlation_id(), Some("e1"));
        assert_eq!(a.causation_id(), Some("e1"));
        assert!(TraceContext::from_attributes(a).is_some());
    }

    #[test]
    fn follow_up_keeps_correlation_and_trace_of_the_incoming_event() {
        let mut attrs = Attributes::new("e2", "/s", "t");
        attrs.set_correlation_id("req-1");
        attrs.set_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        attrs.set_tracestate("v=1");
        let raw = RawEvent::new(attrs, bytes::Bytes::new());
        let ctx = EventContext::for_delivery(Arc::from("g"), Arc::from("/me"), Arc::new(raw), 1);
        let follow = ctx.follow_up(Ping);
        let a = follow.attributes();
        assert_eq!(a.correlation_id(), Some("req-1"));
        assert_eq!(a.causation_id(), Some("e2"));
        let tc = TraceContext::from_attributes(a).unwrap();
        assert_eq!(tc.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(
            tc.span_id(),
            "00f067aa0ba902b7",
            "a new span, child of the incoming one"
        );
        assert_eq!(tc.tracestate(), Some("v=1"));
    }

    #[test]
    fn error_kinds_classify_retries() {
        assert!(HandlerError::transient("x").is_transient());
        assert!(HandlerError::Timeout(Duration::from_secs(1)).is_transient());
        assert!(!HandlerError::permanent("x").is_transient());
        let exhausted = HandlerError::RetriesExhausted {
            attempts: 3,
            last: Box::new(HandlerError::transient("db down")),
        };
        assert!(!exhausted.is_transient());
        assert_eq!(exhausted.kind(), "transient");
        assert_eq!(
            exhausted.to_string(),
            "gave up after 3 attempts: transient handler error: db down"
        );
    }
}
