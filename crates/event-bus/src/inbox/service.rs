//! [`InboxService`]: begin the inbox transaction (skip if processed), call
//! the inner service, commit what it hands back.

use std::task::{Context, Poll};

use tower_service::Service;

use super::{request::InboxRequest, store::Inbox, tx::InboxTransaction};
use crate::{
    HandlerError,
    router::{BoxFuture, EventRequest},
};

/// The service made by [`InboxLayer`](super::InboxLayer): begin (skip if processed), call the
/// inner service, commit what it hands back.
#[derive(Debug, Clone)]
pub struct InboxService<S> {
    inner: S,
    inbox: Inbox,
}

impl<S> InboxService<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, inbox: Inbox) -> Self {
        Self { inner, inbox }
    }

    define_inner_service_accessors!();
}

impl<S, E> Service<EventRequest<E>> for InboxService<S>
where
    S: Service<InboxRequest<E>, Response = InboxTransaction, Error = HandlerError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    E: Send + 'static,
{
    type Response = ();
    type Error = HandlerError;
    type Future = BoxFuture<Result<(), HandlerError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: EventRequest<E>) -> Self::Future {
        // Call the instance that was driven to readiness; keep a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let inbox = self.inbox.clone();
        Box::pin(async move {
            let EventRequest {
                envelope, context, ..
            } = req;
            let tx = inbox
                .begin(context.group(), envelope.attributes())
                .await
                .map_err(HandlerError::transient)?;
            let Some(tx) = tx else {
                return Ok(());
            };
            let tx = inner
                .call(InboxRequest {
                    tx,
                    envelope,
                    context,
                })
                .await?;
            // Only a committed transaction lets the router ack.
            tx.commit().await.map_err(HandlerError::transient)
        })
    }
}
