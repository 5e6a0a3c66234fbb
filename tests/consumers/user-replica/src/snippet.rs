use std::collections::HashMap;
use std::sync::Arc;

use sqlx::PgPool;
use tessera_event_bus::rabbitmq::RabbitBus;
use tessera_event_bus::router::RouterHandle;
use tessera_event_bus::{BoxError, Router};
use tessera_user_sync::UserReplica;
use tessera_user_sync::store::postgres::{PgReplicaStore, PgTransaction};
use tessera_user_sync::store::{DeletedUser, Fields};

pub type Replica = UserReplica<PgReplicaStore>;

/// Once per process, at start: the replica table, and the consumer of user events.
pub async fn start_replica(
    pool: PgPool,
    bus: &RabbitBus,
) -> Result<(Replica, RouterHandle), BoxError> {
    let store = PgReplicaStore::new(pool, PgReplicaStore::default_table());
    store.migrate().await?; // the table tessera.user_replica
    let replica = UserReplica::builder("comment-service", store)
        .keep(Fields::DISPLAY_NAME) // data minimisation: nothing else is stored
        .on_deleted(|tx: &mut PgTransaction, user: &DeletedUser| {
            Box::pin(async move {
                // Runs in the replica's transaction: the tombstone and this commit together.
                sqlx::query("UPDATE comments SET author_id = NULL WHERE author_id = $1")
                    .bind(&user.user_id)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            })
        })
        .build();
    // The group "comment-service" gets the user events; add your own handlers to this router.
    let router = replica.route(Router::new(Arc::new(bus.subscriber()), "comment-service"));
    let handle = router.start().await?; // at shutdown: handle.shutdown().await
    Ok((replica, handle))
}

/// On a read: the authors' names from the local replica, no call to the user service.
pub async fn author_names(
    replica: &Replica,
    ids: &[&str],
) -> Result<HashMap<String, String>, BoxError> {
    let users = replica.get_many(ids.iter().copied()).await?;
    Ok(users
        .into_iter()
        .filter_map(|(id, user)| Some((id, user.display_name?)))
        .collect())
}
