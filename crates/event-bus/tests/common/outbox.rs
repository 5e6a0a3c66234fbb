//! Shared helpers of the outbox and inbox tests: a schema per test, test
//! events, publishers that fail on demand, and a collecting subscriber.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, postgres::PgPoolOptions};
use tessera_event_bus::{
    BusError, Envelope, EventContext, HandlerError, Health, Publisher, RawEvent, SubscribeOptions,
    Subscriber,
    inbox::{Inbox, InboxTransaction},
    memory::MemoryBus,
    outbox::{Outbox, TableName},
};
use tokio::sync::Notify;

pub const TYPE: &str = "com.example.user.changed.v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserChanged {
    pub user_id: String,
    pub n: u32,
}
tessera_event_bus::event!(UserChanged => "com.example.user.changed.v1", subject = user_id);

pub fn event(user: &str, n: u32) -> Envelope<UserChanged> {
    Envelope::new(
        "/user-service",
        UserChanged {
            user_id: user.to_owned(),
            n,
        },
    )
}

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A pool and a schema of its own, dropped by [`TestDb::cleanup`].
pub struct TestDb {
    pub pool: PgPool,
    pub schema: String,
}

impl TestDb {
    pub async fn new() -> Self {
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .acquire_timeout(Duration::from_secs(30))
            .connect(&database_url())
            .await
            .expect("PostgreSQL at DATABASE_URL");
        let schema = format!(
            "tessera_t_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        Self { pool, schema }
    }

    pub fn outbox(&self) -> Outbox {
        Outbox::new(TableName::new(&self.schema, "outbox").unwrap())
    }

    pub fn inbox(&self) -> Inbox {
        Inbox::with_table(
            self.pool.clone(),
            TableName::new(&self.schema, "inbox").unwrap(),
        )
    }

    /// The outbox table, migrated.
    pub async fn migrated_outbox(&self) -> Outbox {
        let outbox = self.outbox();
        outbox.migrate(&self.pool).await.unwrap();
        outbox
    }

    pub async fn cleanup(self) {
        sqlx::query(&format!(
            r#"DROP SCHEMA IF EXISTS "{}" CASCADE"#,
            self.schema
        ))
        .execute(&self.pool)
        .await
        .unwrap();
        self.pool.close().await;
    }

    /// Commits each event in its own transaction.
    pub async fn commit_each(&self, outbox: &Outbox, events: &[Envelope<UserChanged>]) {
        for env in events {
            let mut tx = self.pool.begin().await.unwrap();
            outbox.enqueue(&mut tx, env).await.unwrap();
            tx.commit().await.unwrap();
        }
    }

    pub async fn count(&self, sql_where: &str) -> i64 {
        sqlx::query_scalar(&format!(
            r#"SELECT count(*) FROM "{}"."outbox" WHERE {sql_where}"#,
            self.schema
        ))
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }
}

/// Failure modes of [`ControlledPublisher`].
#[derive(Debug, Default)]
pub struct Controls {
    /// Every publish fails with a connection error.
    pub down: AtomicBool,
    /// Publishes of events with this subject are rejected.
    pub reject_subject: Mutex<Option<String>>,
    /// The next publish goes through, then never returns (a relay that dies
    /// between publish and mark).
    pub hang_after_publish: AtomicBool,
    /// Signalled when a publish hung.
    pub hung: Notify,
    /// Publishes of events with this subject go through, then never
    /// return (their confirm never arrives).
    pub hold_subject: Mutex<Option<String>>,
    /// Publishes attempted.
    pub attempts: AtomicUsize,
}

/// Wraps a publisher with switchable failures.
#[derive(Debug, Clone)]
pub struct ControlledPublisher {
    pub inner: Arc<dyn Publisher>,
    pub controls: Arc<Controls>,
}

impl ControlledPublisher {
    pub fn new(inner: Arc<dyn Publisher>) -> Self {
        Self {
            inner,
            controls: Arc::new(Controls::default()),
        }
    }
}

#[async_trait]
impl Publisher for ControlledPublisher {
    async fn publish(&self, event: RawEvent) -> Result<(), BusError> {
        let c = &self.controls;
        c.attempts.fetch_add(1, Ordering::SeqCst);
        if c.down.load(Ordering::SeqCst) {
            return Err(BusError::Connection("broker unreachable (test)".into()));
        }
        let reject = c.reject_subject.lock().unwrap().clone();
        if reject.is_some() && event.subject() == reject.as_deref() {
            return Err(BusError::Rejected("rejected (test)".into()));
        }
        let held = {
            let hold = c.hold_subject.lock().unwrap();
            hold.is_some() && event.subject() == hold.as_deref()
        };
        self.inner.publish(event).await?;
        if held {
            std::future::pending::<()>().await;
        }
        if c.hang_after_publish.swap(false, Ordering::SeqCst) {
            c.hung.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(())
    }

    async fn publish_all(&self, events: Vec<RawEvent>) -> Result<(), BusError> {
        for event in events {
            self.publish(event).await?;
        }
        Ok(())
    }

    async fn close(&self) -> Result<(), BusError> {
        self.inner.close().await
    }

    fn health(&self) -> Health {
        self.inner.health()
    }
}

/// Collects what a consumer group receives, acking everything.
#[derive(Clone, Default)]
pub struct Collected {
    pub events: Arc<Mutex<Vec<RawEvent>>>,
    pub arrived: Arc<Notify>,
}

impl Collected {
    pub fn len(&self) -> usize {
        self.events.lock().unwrap().len()
    }

    /// Waits until at least `n` events arrived (panics after 30 s).
    pub async fn wait_for(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let notified = self.arrived.notified();
            if self.len() >= n {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("only {} of {n} events arrived", self.len());
            }
        }
    }

    /// The data of each event per subject, in arrival order.
    pub fn by_subject(&self) -> HashMap<String, Vec<u32>> {
        let mut map: HashMap<String, Vec<u32>> = HashMap::new();
        for event in self.events.lock().unwrap().iter() {
            let data: UserChanged = serde_json::from_slice(&event.data).unwrap();
            map.entry(data.user_id).or_default().push(data.n);
        }
        map
    }

    pub fn ids(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.id().to_owned())
            .collect()
    }
}

/// Subscribes `group` to `types` on `bus` and collects in a background task.
pub async fn collect(bus: &MemoryBus, group: &str, types: &[&str]) -> Collected {
    let mut sub = bus
        .subscriber()
        .subscribe(SubscribeOptions::new(group).event_types(types.iter().copied()))
        .await
        .unwrap();
    let collected = Collected::default();
    let c = collected.clone();
    tokio::spawn(async move {
        while let Ok(Some(delivery)) = sub.next().await {
            c.events.lock().unwrap().push(delivery.event().clone());
            delivery.ack().await.unwrap();
            c.arrived.notify_waiters();
        }
    });
    collected
}

/// Polls `check` every 20 ms until it holds (panics after 30 s).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A table `effects (user_id, n)` in the test's schema, for handlers
/// that record one row per event handled.
pub async fn effects_table(db: &TestDb) -> String {
    let table = format!(r#""{}"."effects""#, db.schema);
    // No arguments: the simple protocol runs both statements.
    sqlx::Executor::execute(
        &db.pool,
        format!(
            "CREATE SCHEMA IF NOT EXISTS \"{}\"; CREATE TABLE IF NOT EXISTS {table} (user_id text, n int)",
            db.schema
        )
        .as_str(),
    )
    .await
    .unwrap();
    table
}

pub async fn effects(db: &TestDb, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

pub fn record_effect(
    table: String,
    calls: Arc<AtomicUsize>,
) -> impl for<'t> Fn(
    &'t mut InboxTransaction,
    Envelope<UserChanged>,
    EventContext,
) -> tessera_event_bus::inbox::TxFuture<'t>
+ Clone
+ Send
+ Sync
+ 'static {
    move |tx, env, _ctx| {
        let table = table.clone();
        let calls = Arc::clone(&calls);
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            sqlx::query(&format!("INSERT INTO {table} (user_id, n) VALUES ($1, $2)"))
                .bind(&env.data().user_id)
                .bind(i32::try_from(env.data().n).unwrap())
                .execute(&mut **tx)
                .await
                .map_err(HandlerError::transient)?;
            Ok(())
        })
    }
}
