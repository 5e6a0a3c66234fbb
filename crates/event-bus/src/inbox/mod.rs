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
//! With the [`Router`], register a handler that receives the
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

use std::{
    fmt,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::oneshot;
use tower::util::BoxCloneService;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    Attributes, Codec, Envelope, Event, EventContext, HandlerError, Router,
    outbox::{OutboxError, TableName, migrate::run_migration},
    router::{BoxFuture, EventRequest, RouteOptions},
};

/// Counter: deliveries skipped because the inbox had already processed them.
pub const METRIC_DUPLICATES: &str = "tessera_inbox_duplicates_total";
/// Counter: inbox rows pruned.
pub const METRIC_PRUNED: &str = "tessera_inbox_pruned_total";

/// The open transaction a handler writes its effects in.
pub type InboxTransaction = Transaction<'static, Postgres>;

/// What a transaction handler returns: a future that may borrow the transaction.
pub type TxFuture<'t> = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 't>>;

/// Records processed events per consumer group, in the handler's transaction.
///
/// Cheap to clone.
#[derive(Clone)]
pub struct Inbox {
    pool: PgPool,
    table: TableName,
    insert_sql: Arc<str>,
}

impl fmt::Debug for Inbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbox")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl Inbox {
    /// An inbox in the table `tessera.inbox`.
    pub fn new(pool: PgPool) -> Self {
        Self::with_table(
            pool,
            TableName::new("tessera", "inbox").expect("valid default name"),
        )
    }

    /// An inbox in `table`.
    pub fn with_table(pool: PgPool, table: TableName) -> Self {
        let insert_sql = format!(
            "INSERT INTO {} (consumer_group, source, event_id, event_type) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            table.qualified()
        );
        Self {
            pool,
            table,
            insert_sql: Arc::from(insert_sql),
        }
    }

    /// The inbox table.
    pub fn table(&self) -> &TableName {
        &self.table
    }

    /// The pool transactions are opened from.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The SQL that creates the inbox table; idempotent.
    pub fn migration_sql(&self) -> String {
        crate::outbox::schema::inbox_sql(&self.table)
    }

    /// Creates the inbox table if needed (idempotent).
    pub async fn migrate(&self) -> Result<(), OutboxError> {
        run_migration(&self.pool, &self.table, &self.migration_sql()).await
    }

    /// Opens a transaction that records the event as processed by `group`.
    ///
    /// `Ok(None)`: the group already processed this event (committed); do
    /// nothing and ack. `Ok(Some(tx))`: write the effects in `tx`, then
    /// commit; rolling back forgets the record too. If another transaction
    /// is processing the same event right now, this waits for it to finish.
    pub async fn begin(
        &self,
        group: &str,
        event: &Attributes,
    ) -> Result<Option<InboxTransaction>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(&self.insert_sql)
            .bind(group)
            .bind(&event.source)
            .bind(&event.id)
            .bind(&event.ty)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            metrics::counter!(
                METRIC_DUPLICATES,
                "group" => group.to_owned(),
                "type" => event.ty.clone()
            )
            .increment(1);
            tracing::debug!(group, event_id = %event.id, "event already processed; skipping");
            return Ok(None);
        }
        Ok(Some(tx))
    }

    /// Whether `group` has processed the event (committed).
    pub async fn contains(&self, group: &str, event: &Attributes) -> Result<bool, sqlx::Error> {
        let sql = format!(
            "SELECT EXISTS (SELECT 1 FROM {} WHERE consumer_group = $1 AND source = $2 AND event_id = $3)",
            self.table.qualified()
        );
        sqlx::query_scalar(&sql)
            .bind(group)
            .bind(&event.source)
            .bind(&event.id)
            .fetch_one(&self.pool)
            .await
    }

    /// Deletes records older than `older_than`; returns how many.
    pub async fn prune(&self, older_than: Duration) -> Result<u64, sqlx::Error> {
        let sql = format!(
            "DELETE FROM {t} WHERE ctid IN (SELECT ctid FROM {t} \
             WHERE processed_at < clock_timestamp() - make_interval(secs => $1) LIMIT 10000)",
            t = self.table.qualified()
        );
        let mut total = 0;
        loop {
            let done = sqlx::query(&sql)
                .bind(older_than.as_secs_f64())
                .execute(&self.pool)
                .await?;
            total += done.rows_affected();
            if done.rows_affected() < 10_000 {
                break;
            }
        }
        metrics::counter!(METRIC_PRUNED, "table" => self.table.label()).increment(total);
        Ok(total)
    }

    /// Prunes records older than `retention` every `interval`, in a
    /// background task, until the returned handle is shut down or dropped.
    pub fn spawn_pruner(&self, retention: Duration, interval: Duration) -> InboxPrunerHandle {
        let inbox = self.clone();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            loop {
                match inbox.prune(retention).await {
                    Ok(n) => tracing::debug!(pruned = n, table = %inbox.table, "pruned the inbox"),
                    Err(error) => {
                        tracing::warn!(%error, table = %inbox.table, "could not prune the inbox");
                    }
                }
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(interval) => {}
                }
            }
        });
        InboxPrunerHandle {
            stop: Some(stop),
            task,
        }
    }

    /// A typed handler service for the router from a function that gets the
    /// open transaction; see [`InboxRouterExt::handle_tx`].
    pub fn handler<E, F>(&self, f: F) -> InboxService<TxFn<F, E>>
    where
        E: Event,
        F: for<'t> Fn(&'t mut InboxTransaction, Envelope<E>, EventContext) -> TxFuture<'t>
            + Clone
            + Send
            + Sync
            + 'static,
    {
        InboxLayer::new(self.clone()).layer(TxFn {
            f,
            _event: PhantomData,
        })
    }
}

/// Stops an inbox pruner started with [`Inbox::spawn_pruner`].
#[derive(Debug)]
pub struct InboxPrunerHandle {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl InboxPrunerHandle {
    /// Stops the pruner and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// What an inbox-wrapped handler service gets: the open transaction (with
/// the inbox record already in it), the event and its context.
#[non_exhaustive]
pub struct InboxRequest<E> {
    /// The transaction to write the effects in; answer with it to commit.
    pub tx: InboxTransaction,
    /// The decoded event.
    pub envelope: Envelope<E>,
    /// The delivery's context.
    pub context: EventContext,
}

impl<E: fmt::Debug> fmt::Debug for InboxRequest<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboxRequest")
            .field("envelope", &self.envelope)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// Tower layer: wraps a service of [`InboxRequest<E>`] (answering with the
/// transaction to commit) into a router handler of [`EventRequest<E>`].
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
        InboxService {
            inner,
            inbox: self.inbox.clone(),
        }
    }
}

/// The service made by [`InboxLayer`]: begin (skip if processed), call the
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

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, consuming the wrapper.
    pub fn into_inner(self) -> S {
        self.inner
    }
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
    F: for<'t> Fn(&'t mut InboxTransaction, Envelope<E>, EventContext) -> TxFuture<'t>
        + Clone
        + Send
        + Sync
        + 'static,
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
        F: for<'t> Fn(&'t mut InboxTransaction, Envelope<E>, EventContext) -> TxFuture<'t>
            + Clone
            + Send
            + Sync
            + 'static;

    /// Like [`handle_tx`](InboxRouterExt::handle_tx), with route options.
    fn handle_tx_with<E, F>(self, inbox: &Inbox, f: F, options: RouteOptions) -> Self
    where
        E: Event,
        F: for<'t> Fn(&'t mut InboxTransaction, Envelope<E>, EventContext) -> TxFuture<'t>
            + Clone
            + Send
            + Sync
            + 'static;
}

impl<C: Codec> InboxRouterExt for Router<C> {
    fn handle_tx<E, F>(self, inbox: &Inbox, f: F) -> Self
    where
        E: Event,
        F: for<'t> Fn(&'t mut InboxTransaction, Envelope<E>, EventContext) -> TxFuture<'t>
            + Clone
            + Send
            + Sync
            + 'static,
    {
        self.handle_tx_with(inbox, f, RouteOptions::new())
    }

    fn handle_tx_with<E, F>(self, inbox: &Inbox, f: F, options: RouteOptions) -> Self
    where
        E: Event,
        F: for<'t> Fn(&'t mut InboxTransaction, Envelope<E>, EventContext) -> TxFuture<'t>
            + Clone
            + Send
            + Sync
            + 'static,
    {
        let service = BoxCloneService::new(inbox.handler::<E, F>(f));
        self.handle_service::<E, _>(service, options)
    }
}
