//! A per-handler timeout as a tower layer: a handler running longer than its
//! limit fails with [`HandlerError::Timeout`](crate::HandlerError::Timeout), which is transient (retried).
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tessera_event_bus::HandlerError;
//! use tessera_event_bus::router::TimeoutLayer;
//!
//! let svc = ServiceBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_millis(10)))
//!     .service(service_fn(|()| async {
//!         std::future::pending::<()>().await;
//!         Ok::<(), HandlerError>(())
//!     }));
//! let err = svc.oneshot(()).await.unwrap_err();
//! assert!(matches!(err, HandlerError::Timeout(_)));
//! # });
//! ```

//!
//! As in tower-http, the middleware is a [`TimeoutLayer`], the [`Timeout`]
//! service it makes, and that service's [`ResponseFuture`].

mod future;
mod layer;
mod service;

pub use self::{future::ResponseFuture, layer::TimeoutLayer, service::Timeout};

/// The future of a [`Timeout`] call, by its former name.
#[deprecated(note = "renamed to `ResponseFuture`, as tower and tower-http call it")]
pub type TimeoutFuture<F> = ResponseFuture<F>;
