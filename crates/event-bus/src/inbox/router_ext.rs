//! [`InboxRouterExt`]: registers inbox handlers on a [`Router`].

use tower::util::BoxCloneService;

use super::{store::Inbox, tx::TxHandler};
use crate::{Codec, Event, Router, router::RouteOptions};

/// Registers inbox handlers on a [`Router`].
pub trait InboxRouterExt: Sized {
    /// Registers a handler for `E` that gets the open transaction; its
    /// effects and the inbox record commit together, and an event the group
    /// already processed is acked without calling it.
    ///
    /// The handler returns a boxed future borrowing the transaction:
    /// `|tx, env, ctx| Box::pin(async move { ... })`.
    fn handle_tx<E, F>(self, inbox: &Inbox, f: F) -> Self
    where
        E: Event,
        F: TxHandler<E>;

    /// Like [`handle_tx`](InboxRouterExt::handle_tx), with route options.
    fn handle_tx_with<E, F>(self, inbox: &Inbox, f: F, options: RouteOptions) -> Self
    where
        E: Event,
        F: TxHandler<E>;
}

impl<C: Codec> InboxRouterExt for Router<C> {
    fn handle_tx<E, F>(self, inbox: &Inbox, f: F) -> Self
    where
        E: Event,
        F: TxHandler<E>,
    {
        self.handle_tx_with(inbox, f, RouteOptions::new())
    }

    fn handle_tx_with<E, F>(self, inbox: &Inbox, f: F, options: RouteOptions) -> Self
    where
        E: Event,
        F: TxHandler<E>,
    {
        let service = BoxCloneService::new(inbox.handler::<E, F>(f));
        self.handle_service::<E, _>(service, options)
    }
}
