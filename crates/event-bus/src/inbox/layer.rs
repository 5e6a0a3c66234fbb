//! [`InboxLayer`]: applies [`InboxService`] to a service.

use tower_layer::Layer;

use super::{service::InboxService, store::Inbox};

/// Tower layer: wraps a service of [`InboxRequest<E>`](super::InboxRequest) (answering with the
/// transaction to commit) into a router handler of [`EventRequest<E>`](crate::router::EventRequest).
#[derive(Debug, Clone)]
pub struct InboxLayer {
    inbox: Inbox,
}

impl InboxLayer {
    /// A layer recording into `inbox`.
    pub fn new(inbox: Inbox) -> Self {
        Self { inbox }
    }
}

impl<S> Layer<S> for InboxLayer {
    type Service = InboxService<S>;

    fn layer(&self, inner: S) -> InboxService<S> {
        InboxService::new(inner, self.inbox.clone())
    }
}
