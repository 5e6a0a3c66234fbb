//! A replica of the service under soak: its own RabbitMQ connections, an
//! outbox relay publishing through them, and a consumer (router + inbox)
//! that records each handled event in the inbox's transaction.

use std::{sync::Arc, time::Duration};

use tessera_event_bus::{
    Envelope, EventContext, HandlerError, Health, Router,
    inbox::{Inbox, InboxRouterExt, InboxTransaction, TxFuture},
    outbox::{Outbox, OutboxRelay, OutboxRelayHandle},
    rabbitmq::{QueueType, RabbitBus, RabbitConfig},
    router::RouterHandle,
};

use crate::{
    db::{RunDb, redact},
    error::SoakError,
    event::{Tick, now_us},
};

/// How many deliveries each replica's consumer handles at once (each holds
/// a database connection while it does).
pub(crate) const CONSUMER_CONCURRENCY: usize = 8;

/// Returns a message may make before a quorum queue dead-letters it: far
/// above what node losses cause, so a parked event means a real problem
/// (and shows as lost).
const DELIVERY_LIMIT: u32 = 20;

/// The names a run gives its broker objects.
#[derive(Debug, Clone)]
pub(crate) struct Topology {
    pub(crate) urls: String,
    pub(crate) exchange: String,
    pub(crate) queue_prefix: String,
    pub(crate) group: String,
}

/// One running replica.
#[derive(Debug)]
pub(crate) struct Replica {
    pub(crate) name: String,
    bus: RabbitBus,
    relay: OutboxRelayHandle,
    router: RouterHandle,
}

impl Replica {
    pub(crate) async fn start(
        n: usize,
        topology: &Topology,
        db: &RunDb,
        outbox: &Outbox,
        inbox: &Inbox,
    ) -> Result<Self, SoakError> {
        let name = format!("r{n}");
        let config = RabbitConfig::new(topology.urls.clone())
            .exchange(&topology.exchange)
            .queue_prefix(&topology.queue_prefix)
            .queue_type(QueueType::Quorum {
                delivery_limit: DELIVERY_LIMIT,
            })
            .connection_name(format!("{}{name}", topology.queue_prefix))
            // The broker removes the run's queues and exchange once it is gone.
            .temporary_topology(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(5))
            .reconnect_delays(Duration::from_millis(100), Duration::from_secs(2));
        let bus = RabbitBus::connect(config)
            .await
            .map_err(|source| SoakError::Broker {
                what: format!(
                    "replica {name} cannot connect to {}",
                    redact(&topology.urls)
                ),
                source,
            })?;
        let router = Router::new(Arc::new(bus.subscriber()), &topology.group)
            .concurrency(CONSUMER_CONCURRENCY)
            .handle_tx(inbox, record(db.handled_table()))
            .start()
            .await
            .map_err(|source| SoakError::Router {
                what: format!("replica {name} cannot start its consumer"),
                source,
            })?;
        let relay = OutboxRelay::new(outbox, db.pool.clone(), Arc::new(bus.publisher()))
            .owner(format!("soak-{name}"))
            .poll_interval(Duration::from_millis(250))
            .backoff(Duration::from_millis(100), Duration::from_secs(2))
            .start()
            .await
            .map_err(|source| SoakError::Outbox {
                what: format!("replica {name} cannot start its relay"),
                source,
            })?;
        Ok(Self {
            name,
            bus,
            relay,
            router,
        })
    }

    pub(crate) fn health(&self) -> Health {
        self.bus.health()
    }

    /// Stops the relay, then the consumer, then closes the connections.
    pub(crate) async fn shutdown(self) {
        if let Err(e) = self.relay.shutdown().await {
            tracing::warn!(replica = %self.name, "relay shutdown: {e}");
        }
        if let Err(e) = self.router.shutdown().await {
            tracing::warn!(replica = %self.name, "consumer shutdown: {e}");
        }
        self.bus.close().await;
    }
}

/// The handler: one row in `handled` per handling, in the inbox's transaction.
fn record(
    table: String,
) -> impl for<'t> Fn(&'t mut InboxTransaction, Envelope<Tick>, EventContext) -> TxFuture<'t>
+ Clone
+ Send
+ Sync
+ 'static {
    let insert: Arc<str> = Arc::from(format!(
        "INSERT INTO {table} (event_id, subject, seq, handled_us) VALUES ($1, $2, $3, $4)"
    ));
    move |tx, env, _ctx| {
        let insert = Arc::clone(&insert);
        Box::pin(async move {
            let tick = env.data();
            sqlx::query(&insert)
                .bind(env.id())
                .bind(&tick.subject)
                .bind(tick.seq)
                .bind(now_us())
                .execute(&mut **tx)
                .await
                .map_err(HandlerError::transient)?;
            Ok(())
        })
    }
}
