//! The idempotent inbox on PostgreSQL (feature `postgres`).
//!
//! Delivery is at least once, so a consumer sees some events twice. The
//! [`Inbox`] makes a handler's effects happen once: it records (consumer
//! group, source, event id) in the same transaction as the handler's
//! effects. A redelivered event finds its record, the handler is skipped and
//! the delivery is acked. Two deliveries of one event processed at the same
//! time cannot both pass: the second waits on the first's uncommitted record
//! and is skipped once the first commits (or proceeds if it rolled back).
//!
//! With the [`Router`](crate::Router), register a handler that receives the
//! open transaction through [`InboxRouterExt::handle_tx`]: it returns `Ok` →
//! the transaction commits → the router acks. An error rolls everything back
//! (the inbox record included) and the router retries or dead-letters as
//! usual. The same thing as tower middleware is [`InboxLayer`], around a
//! service of [`InboxRequest`]s that answers with the transaction to commit.
//!
//! Inbox rows are kept for a retention period ([`Inbox::prune`],
//! [`Inbox::spawn_pruner`]); it must be longer than the longest time a
//! broker may redeliver an event.
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `tessera_inbox_duplicates_total` | counter: deliveries skipped as already processed | `group`, `type` |
//! | `tessera_inbox_pruned_total` | counter | `table` |
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use serde::{Deserialize, Serialize};
//! use sqlx::PgPool;
//! use tessera_event_bus::{Envelope, EventContext, HandlerError, Router};
//! use tessera_event_bus::inbox::{Inbox, InboxRouterExt};
//! use tessera_event_bus::memory::MemoryBus;
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct UserDeleted { user_id: String }
//! tessera_event_bus::event!(UserDeleted => "com.example.user.deleted.v1", subject = user_id);
//!
//! let pool = PgPool::connect("postgres://postgres@127.0.0.1:5432/test").await?;
//! let inbox = Inbox::new(pool); // the table tessera.inbox
//! inbox.migrate().await?;
//!
//! let bus = MemoryBus::new();
//! let router = Router::new(Arc::new(bus.subscriber()), "comment-service")
//!     .handle_tx(&inbox, |tx, env: Envelope<UserDeleted>, _ctx: EventContext| {
//!         Box::pin(async move {
//!             sqlx::query("UPDATE comments SET author = NULL WHERE author = $1")
//!                 .bind(&env.data().user_id)
//!                 .execute(&mut **tx)
//!                 .await
//!                 .map_err(HandlerError::transient)?;
//!             Ok(())
//!         })
//!     })
//!     .start()
//!     .await?;
//! # router.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The tower middleware follows tower-http's shape, [`InboxLayer`] making
//! an [`InboxService`]; the service keeps the `Service` suffix because the
//! name [`Inbox`] is the store.

mod layer;
mod pruner;
mod request;
mod router_ext;
mod service;
mod store;
mod tx;

pub use self::{
    layer::InboxLayer,
    pruner::InboxPrunerHandle,
    request::InboxRequest,
    router_ext::InboxRouterExt,
    service::InboxService,
    store::{Inbox, METRIC_DUPLICATES, METRIC_PRUNED},
    tx::{InboxTransaction, TxFn, TxFuture, TxHandler},
};
