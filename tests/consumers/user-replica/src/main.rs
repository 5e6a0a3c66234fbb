//! The README's "user replica in a consumer service" snippet
//! (src/snippet.rs), built with exactly that case's features. Without a
//! database or broker the run applies events to an in-memory replica (same
//! crate, same features); with `TESSERA_CONSUMERS_LIVE=1` it runs the
//! snippet against `DATABASE_URL` and `AMQP_URL`.

mod snippet;

use tessera_event_bus::BoxError;
use tessera_event_bus::rabbitmq::{RabbitBus, RabbitConfig};
use tessera_user_sync::UserReplica;
use tessera_user_sync::events::{UserDeleted, UserRegistered};
use tessera_user_sync::store::{Fields, MemoryStore};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let replica = UserReplica::builder("comment-service", MemoryStore::new())
        .keep(Fields::DISPLAY_NAME)
        .build();
    replica
        .apply(UserRegistered::new("u1", 1, "Ada").email("ada@example.com"))
        .await?;
    replica.apply(UserRegistered::new("u2", 1, "Grace")).await?;
    replica.apply(UserDeleted::new("u2", 2)).await?;
    let users = replica.get_many(["u1", "u2"]).await?;
    assert_eq!(users.len(), 1);
    assert_eq!(users["u1"].display_name.as_deref(), Some("Ada"));
    assert_eq!(users["u1"].email, None);

    if std::env::var_os("TESSERA_CONSUMERS_LIVE").is_some() {
        let pool = sqlx::PgPool::connect(&std::env::var("DATABASE_URL")?).await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS comments (id text PRIMARY KEY, author_id text)")
            .execute(&pool)
            .await?;
        let bus = RabbitBus::connect(RabbitConfig::new(std::env::var("AMQP_URL")?)).await?;
        let (replica, handle) = snippet::start_replica(pool, &bus).await?;
        let names = snippet::author_names(&replica, &["nobody"]).await?;
        assert!(names.is_empty());
        handle.shutdown().await?;
        bus.close().await;
        println!("user-replica: ok (replica on PostgreSQL, consuming on RabbitMQ)");
    } else {
        println!("user-replica: ok (no database or broker: in-memory replica checked offline)");
    }
    Ok(())
}
