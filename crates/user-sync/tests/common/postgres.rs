//! PostgreSQL for the tests: the URL, fresh schemas, and the replica store
//! under the conformance kit.

use async_trait::async_trait;
use sqlx::PgPool;
use tessera_event_bus::outbox::{Outbox, TableName};
use tessera_user_sync::{
    producer::postgres::PgUserDirectory,
    store::postgres::PgReplicaStore,
    testkit::{Capabilities, TestStore},
};

/// DATABASE_URL, by default the local test database.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A pool on DATABASE_URL.
pub async fn connect() -> PgPool {
    PgPool::connect(&database_url())
        .await
        .expect("PostgreSQL at DATABASE_URL")
}

/// Drops `schema` and everything in it, if it exists.
pub async fn drop_schema(pool: &PgPool, schema: &str) {
    sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(pool)
        .await
        .unwrap();
}

/// A pool on DATABASE_URL and `schema`, dropped if a previous run left it.
pub async fn fresh_schema(schema: &str) -> PgPool {
    let pool = connect().await;
    drop_schema(&pool, schema).await;
    pool
}

/// A user service in `schema`: a migrated outbox and users table, the
/// directory publishing from `/user-service`.
pub async fn user_directory(pool: &PgPool, schema: &str) -> (PgUserDirectory, Outbox) {
    let outbox = Outbox::new(TableName::new(schema, "outbox").unwrap());
    outbox.migrate(pool).await.unwrap();
    let users = PgUserDirectory::new(
        pool.clone(),
        TableName::new(schema, "users").unwrap(),
        outbox.clone(),
        "/user-service",
    );
    users.migrate().await.unwrap();
    (users, outbox)
}

/// A migrated replica table `users` in a fresh `schema` (migrating twice: it is idempotent).
pub async fn fresh_store(schema: &str) -> (PgPool, PgReplicaStore) {
    let pool = connect().await;
    let store = migrated_store(&pool, schema).await;
    (pool, store)
}

/// Drops `schema` if it exists, then migrates a replica table `users` in it
/// (twice: migrating is idempotent).
async fn migrated_store(pool: &PgPool, schema: &str) -> PgReplicaStore {
    drop_schema(pool, schema).await;
    let store = PgReplicaStore::new(pool.clone(), TableName::new(schema, "users").unwrap());
    store.migrate().await.unwrap();
    store.migrate().await.expect("migrate is idempotent");
    store
}

/// [`PgReplicaStore`] under the conformance kit: each store in its own schema
/// `us_kit_<name>`, dropped when the case passed.
#[derive(Debug)]
pub struct PgTestStore {
    pool: PgPool,
}

impl PgTestStore {
    pub async fn connect() -> Self {
        Self {
            pool: connect().await,
        }
    }

    fn schema(name: &str) -> String {
        format!("us_kit_{name}")
    }
}

#[async_trait]
impl TestStore for PgTestStore {
    type Store = PgReplicaStore;

    fn capabilities(&self) -> Capabilities {
        Capabilities::none()
            .with_transactions()
            .with_coalesced_batches()
    }

    async fn store(&self, name: &str) -> PgReplicaStore {
        migrated_store(&self.pool, &Self::schema(name)).await
    }

    async fn clean_up(&self, name: &str) {
        drop_schema(&self.pool, &Self::schema(name)).await;
    }
}
