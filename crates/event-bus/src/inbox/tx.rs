//! Handlers that write into the open transaction: [`TxHandler`], the
//! functions [`InboxRouterExt::handle_tx`](super::InboxRouterExt::handle_tx)
//! takes, and [`TxFn`], the service made of one.

use std::{
    fmt,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    task::{Context, Poll},
};

use sqlx::{Postgres, Transaction};
use tower_layer::Layer;
use tower_service::Service;

use super::{layer::InboxLayer, request::InboxRequest, service::InboxService, store::Inbox};
use crate::{Envelope, Event, EventContext, HandlerError, router::BoxFuture};

/// The open transaction a handler writes its effects in.
pub type InboxTransaction = Transaction<'static, Postgres>;

/// What a transaction handler returns: a future that may borrow the transaction.
pub type TxFuture<'t> = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 't>>;

/// A function that writes an event's effects into the open transaction:
/// `|tx, env: Envelope<E>, ctx| Box::pin(async move { ... })`.
///
/// Implemented for every such function (`Clone + Send + Sync + 'static`);
/// it names the bound [`InboxRouterExt::handle_tx`](super::InboxRouterExt::handle_tx)
/// and [`Inbox::handler`] take.
pub trait TxHandler<E>:
    for<'t> Fn(&'t mut InboxTransaction, Envelope<E>, EventContext) -> TxFuture<'t>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<E, F> TxHandler<E> for F where
    F: for<'t> Fn(&'t mut InboxTransaction, Envelope<E>, EventContext) -> TxFuture<'t>
        + Clone
        + Send
        + Sync
        + 'static
{
}

impl Inbox {
    /// A typed handler service for the router from a function that gets the
    /// open transaction; see [`InboxRouterExt::handle_tx`](super::InboxRouterExt::handle_tx).
    pub fn handler<E, F>(&self, f: F) -> InboxService<TxFn<F, E>>
    where
        E: Event,
        F: TxHandler<E>,
    {
        InboxLayer::new(self.clone()).layer(TxFn {
            f,
            _event: PhantomData,
        })
    }
}

/// A service from a function that writes into the open transaction; made by
/// [`Inbox::handler`].
pub struct TxFn<F, E> {
    f: F,
    _event: PhantomData<fn() -> E>,
}

impl<F: Clone, E> Clone for TxFn<F, E> {
    fn clone(&self) -> Self {
        Self {
            f: self.f.clone(),
            _event: PhantomData,
        }
    }
}

impl<F, E> fmt::Debug for TxFn<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxFn").finish_non_exhaustive()
    }
}

impl<F, E> Service<InboxRequest<E>> for TxFn<F, E>
where
    E: Send + 'static,
    F: TxHandler<E>,
{
    type Response = InboxTransaction;
    type Error = HandlerError;
    type Future = BoxFuture<Result<InboxTransaction, HandlerError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: InboxRequest<E>) -> Self::Future {
        let f = self.f.clone();
        Box::pin(async move {
            let InboxRequest {
                mut tx,
                envelope,
                context,
            } = req;
            f(&mut tx, envelope, context).await?;
            Ok(tx)
        })
    }
}
