//! The consumer router: handlers by event type, tower middleware, graceful shutdown.
//!
//! A [`Router`] joins a consumer group, subscribes to the event types it has
//! handlers for, and for each delivery:
//!
//! 1. opens a tracing span (`tessera.event`) with the event's type, id,
//!    group, attempt and the W3C trace ids from its `traceparent`;
//! 2. finds the handler for the event type; a type without a handler is
//!    acked and counted in `tessera_events_unhandled_total`;
//! 3. runs the handler's middleware, outermost first: optional concurrency
//!    limit ([`RouteOptions::concurrency`]), retry with exponential backoff
//!    and jitter ([`RetryPolicy`]), per-attempt timeout ([`TimeoutLayer`]),
//!    decoding into the handler's event type, the handler;
//! 4. acks on success; dead-letters with the reason on a permanent error, an
//!    undecodable payload, or transient errors that outlived the retries.
//!
//! At most [`Router::concurrency`] deliveries are processed at once; the
//! router fetches a delivery only when it has room for it. Handlers run
//! concurrently on the router's own task (no task spawn per delivery, which
//! doubles throughput for short handlers); with [`Router::spawn_handlers`]
//! each delivery gets its own task instead, so handlers that compute for
//! long spread over every core. A handler that panics dead-letters its
//! event with the panic message; the router keeps running. Shutdown stops
//! fetching, lets in-flight handlers finish (and ack) within
//! [`Router::shutdown_timeout`], then closes the subscription; handlers
//! still running at the deadline are abandoned and their events redelivered.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::{sync::Arc, time::Duration};
//! use serde::{Deserialize, Serialize};
//! use tokio::sync::mpsc;
//! use tessera_event_bus::{Envelope, EventContext, EventPublisher, HandlerError, Router};
//! use tessera_event_bus::memory::MemoryBus;
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct UserDeleted { user_id: String }
//! tessera_event_bus::event!(UserDeleted => "com.example.user.deleted.v1", subject = user_id);
//!
//! let bus = MemoryBus::new();
//! let (tx, mut rx) = mpsc::unbounded_channel();
//! let router = Router::new(Arc::new(bus.subscriber()), "comment-service")
//!     .timeout(Duration::from_secs(5))
//!     .handle(move |env: Envelope<UserDeleted>, _ctx: EventContext| {
//!         let tx = tx.clone();
//!         async move {
//!             tx.send(env.into_data().user_id).map_err(HandlerError::permanent)
//!         }
//!     })
//!     .start()
//!     .await
//!     .unwrap();
//!
//! let events = EventPublisher::new(Arc::new(bus.publisher()), "/user-service");
//! events.publish(UserDeleted { user_id: "u1".into() }).await.unwrap();
//! assert_eq!(rx.recv().await.as_deref(), Some("u1"));
//! router.shutdown().await.unwrap();
//! # });
//! ```

mod builder;
mod dispatch;
mod error;
mod handle;
mod handler;
mod options;
mod retry;
mod route;
mod run;
mod spans;
pub mod timeout;

pub use self::{
    builder::Router,
    error::RouterError,
    handle::RouterHandle,
    handler::{
        BoxFuture, DeliveryRequest, EventContext, EventRequest, HandlerError, HandlerFn, handler_fn,
    },
    options::RouteOptions,
    retry::RetryPolicy,
    route::RouteService,
    timeout::{Timeout, TimeoutLayer},
};
