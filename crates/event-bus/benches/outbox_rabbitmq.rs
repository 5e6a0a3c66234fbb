//! The outbox relay from PostgreSQL to RabbitMQ with publisher confirms,
//! against raw confirmed publishing in the same run, commit → delivery
//! latency through the broker, and the application's side (`enqueue_all`).
//!
//! Run with:
//! `cargo bench -p tessera-event-bus --all-features --bench outbox_rabbitmq`
//! (needs PostgreSQL at `DATABASE_URL` and RabbitMQ at `AMQP_URL`; without
//! either the bench says so and exits 0). A filter picks groups or ids, e.g.
//! `-- outbox_throughput`.
//!
//! - `outbox_rabbitmq/raw_publish_all_100`, `outbox_rabbitmq/relay_round_100`:
//!   one batch of 100 by hand (`publish_all`; `publish_pending`).
//! - `outbox_throughput/raw_lapin_confirms_window`: lapin alone, 10,000
//!   persistent 512-byte messages, a sliding window of 1,000 unconfirmed
//!   publishes, no database.
//! - `outbox_throughput/relay_sustained`: 10,000 rows committed beforehand
//!   (not timed), one started `OutboxRelay` draining them until the consumer
//!   received all and the relay marked all (shutdown included); the same
//!   512-byte data. `relay_sustained_3`: three relays on the table, each
//!   with its own connection (as three replicas of a service). After the
//!   group, a line per id says how busy the machine was and how many cores
//!   the broker used during the timed windows (`/proc`; the broker's VM
//!   found with `rabbitmqctl eval 'os:getpid().'`).
//!   `relay_sustained_pruning`: one relay as `relay_sustained`, with 10,000
//!   sent rows an hour old in the table beforehand and pruning every 50 ms
//!   with a retention of 30 minutes, so it deletes those rows in chunks
//!   while it relays as many (a relay's steady state: a row pruned for each
//!   row sent; checked after each sample: no old row left).
//! - `outbox_enqueue/enqueue_all_100`: `enqueue_all` of 100 events in a
//!   transaction (encode, subject locks, insert, commit);
//!   `outbox_enqueue/plain_insert_100`: the same 100 rows, already encoded,
//!   in one `INSERT ... SELECT FROM unnest` into a twin table without the
//!   trigger, in a transaction. `outbox_enqueue/plain_insert_encoding_100`:
//!   the same insert by a hand-rolled outbox, which serialises each event's
//!   data and attributes (a derived `Serialize`) in the timed loop, as
//!   `enqueue_all` does.
//! - Latency (printed after the groups, not a criterion id): 2,000 events
//!   committed one per transaction at 500 events/s, commit → the consumer
//!   has it, p50 and p99, the first 100 left out.
#![allow(clippy::print_stdout, missing_docs)]

#[path = "support/amqp.rs"]
mod amqp;
#[path = "support/cpu.rs"]
mod cpu;
#[path = "support/outbox.rs"]
#[allow(dead_code)] // commit_to_delivery serves the in-memory bench
mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use amqp::raw_properties;
use criterion::{Criterion, Throughput};
use futures_util::{StreamExt as _, stream::FuturesUnordered};
use lapin::{
    Connection, ConnectionProperties,
    options::{BasicPublishOptions, ConfirmSelectOptions},
};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tessera_event_bus::{
    Envelope, JsonCodec, Publisher, RawEvent, SubscribeOptions, Subscriber,
    outbox::{Outbox, OutboxRelay, TableName},
    rabbitmq::{RabbitBus, RabbitConfig},
    wire,
};
use tokio::{runtime::Runtime, sync::mpsc::UnboundedReceiver};

use self::support::{BATCH, bench_relay_round, print_latency};

/// The plain side of `outbox_enqueue`: one transaction inserting the rows
/// whose columns are bound as arrays, committed.
macro_rules! insert_rows {
    ($rt:expr, $pool:expr, $insert:expr, $($column:expr),+) => {
        $rt.block_on(async {
            let mut tx = $pool.begin().await.expect("begin");
            sqlx::query($insert)
                $(.bind($column))+
                .execute(&mut *tx)
                .await
                .expect("insert");
            tx.commit().await.expect("commit");
        })
    };
}

const TYPE: &str = "com.example.outbox_bench.v1";
/// Events per `outbox_throughput` iteration.
const SUSTAINED: usize = 10_000;
/// Sent rows past their retention that `relay_sustained_pruning` deletes
/// while it relays.
const PRUNED: usize = 10_000;
/// Unconfirmed publishes of the raw side.
const WINDOW: usize = 1_000;
/// Data bytes of every event.
const DATA_LEN: usize = 512;

#[derive(Debug, Serialize, Deserialize)]
struct Bench {
    user_id: String,
    n: usize,
    padding: String,
}
tessera_event_bus::event!(Bench => "com.example.outbox_bench.v1", subject = user_id);

/// Event `n` (subject one of ten users); its JSON data is exactly 512 bytes.
fn envelope(n: usize) -> Envelope<Bench> {
    let mut bench = Bench {
        user_id: format!("u{}", n % 10),
        n,
        padding: String::new(),
    };
    let len = serde_json::to_vec(&bench).expect("json").len();
    bench.padding = "x".repeat(DATA_LEN.saturating_sub(len));
    Envelope::new("/bench", bench)
}

/// Arrival time and `n` of each delivery.
type Arrivals = UnboundedReceiver<(Instant, usize)>;

/// A consumer group that acks everything, so mandatory publishes route and
/// the queue never grows; sends each delivery's arrival time and `n`.
async fn drain(bus: &RabbitBus) -> Arrivals {
    let mut sub = bus
        .subscriber()
        .subscribe(
            SubscribeOptions::new("outbox-bench")
                .event_type(TYPE)
                .prefetch(500),
        )
        .await
        .expect("subscribe");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(d)) = sub.next().await {
            let arrived = Instant::now();
            let n = serde_json::from_slice::<Bench>(&d.event().data).map_or(usize::MAX, |b| b.n);
            let _ = tx.send((arrived, n));
            let _ = d.ack().await;
        }
    });
    rx
}

/// Waits for `n` deliveries (panics after 120 s).
async fn receive(arrivals: &mut Arrivals, n: usize) {
    for _ in 0..n {
        tokio::time::timeout(Duration::from_secs(120), arrivals.recv())
            .await
            .expect("deliveries in time")
            .expect("consumer running");
    }
}

/// Empties the table, commits `sent` rows already sent an hour ago (what a
/// pruning relay has to delete), then events `0..n` in transactions of 500.
async fn fill(pool: &PgPool, outbox: &Outbox, sent: usize, n: usize) {
    let table = outbox.table().qualified();
    sqlx::query(&format!("TRUNCATE {table}"))
        .execute(pool)
        .await
        .expect("truncate");
    let commit = |envs: Vec<Envelope<Bench>>| async move {
        for chunk in envs.chunks(500) {
            let mut tx = pool.begin().await.expect("begin");
            outbox.enqueue_all(&mut tx, chunk).await.expect("enqueue");
            tx.commit().await.expect("commit");
        }
    };
    if sent > 0 {
        commit((0..sent).map(envelope).collect()).await;
        sqlx::query(&format!(
            "UPDATE {table} SET sent_at = clock_timestamp() - interval '1 hour'"
        ))
        .execute(pool)
        .await
        .expect("mark the old rows sent");
        sqlx::query(&format!("VACUUM ANALYZE {table}"))
            .execute(pool)
            .await
            .expect("vacuum");
    }
    commit((0..n).map(envelope).collect()).await;
}

/// How the relays of an `outbox_throughput` id run.
#[derive(Clone, Copy)]
struct Relays {
    /// Relays on the table, each with its own connection.
    count: usize,
    /// Sent rows an hour old in the table before the relays start; when
    /// non-zero the relays prune every 50 ms with a retention of 30 minutes,
    /// so they delete those rows (and not their own) while they run: as many
    /// deletes as publishes, a relay's steady state.
    pruning: usize,
}

/// A started relay per publisher (each its own connection, as replicas of
/// a service have) drains `SUSTAINED` committed rows; the time from start
/// until every row arrived and every relay stopped (all marked), whose CPU
/// use goes into `usage`.
async fn drain_with_relays(
    pool: &PgPool,
    outbox: &Outbox,
    publishers: &[Arc<dyn Publisher>],
    relays: Relays,
    arrivals: &mut Arrivals,
    usage: &mut cpu::Usage,
    broker: Option<u32>,
) -> Duration {
    fill(pool, outbox, relays.pruning, SUSTAINED).await;
    while arrivals.try_recv().is_ok() {}
    let sample = cpu::Sample::now(broker);
    let started = Instant::now();
    let mut handles = Vec::new();
    for publisher in &publishers[..relays.count] {
        let mut relay = OutboxRelay::new(outbox, pool.clone(), Arc::clone(publisher));
        if relays.pruning > 0 {
            relay = relay
                .retention(Duration::from_secs(1800))
                .prune_interval(Duration::from_millis(50));
        }
        handles.push(relay.start().await.expect("relay"));
    }
    receive(arrivals, SUSTAINED).await;
    for relay in handles {
        relay.shutdown().await.expect("shutdown");
    }
    let elapsed = started.elapsed();
    usage.add(sample, broker);
    if relays.pruning > 0 {
        let table = outbox.table().qualified();
        let old: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} WHERE sent_at < clock_timestamp() - interval '30 minutes'"
        ))
        .fetch_one(pool)
        .await
        .expect("count");
        assert_eq!(old, 0, "the relay pruned every old row while it ran");
    }
    elapsed
}

/// lapin alone: `SUSTAINED` confirmed publishes, a sliding window of `WINDOW`.
async fn raw_window(channel: &lapin::Channel, exchange: &str, events: &[RawEvent]) {
    let mut window = FuturesUnordered::new();
    for event in events {
        if window.len() >= WINDOW {
            let confirm: lapin::Result<lapin::Confirmation> = window.next().await.expect("confirm");
            assert!(confirm.expect("confirm").is_ack());
        }
        let confirm = channel
            .basic_publish(
                exchange.into(),
                TYPE.into(),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                &event.data,
                raw_properties(event),
            )
            .await
            .expect("publish");
        window.push(confirm);
    }
    while let Some(confirm) = window.next().await {
        assert!(confirm.expect("confirm").is_ack());
    }
}

/// Commits 2,000 events one per transaction at 500 events/s with a relay
/// woken by `NOTIFY` only; commit → delivery of each, the first 100 left out.
async fn light_load(
    pool: &PgPool,
    outbox: &Outbox,
    publisher: Arc<dyn Publisher>,
    arrivals: &mut Arrivals,
) -> Vec<Duration> {
    const EVENTS: usize = 2_000;
    let relay = OutboxRelay::new(outbox, pool.clone(), publisher)
        .poll_interval(Duration::from_secs(3600))
        .start()
        .await
        .expect("relay");
    tokio::time::sleep(Duration::from_millis(300)).await;
    while arrivals.try_recv().is_ok() {}
    let (pool2, outbox2) = (pool.clone(), outbox.clone());
    let producer = tokio::spawn(async move {
        let mut committed = Vec::with_capacity(EVENTS);
        let mut tick = tokio::time::interval(Duration::from_millis(2));
        for n in 0..EVENTS {
            tick.tick().await;
            let env = envelope(1_000_000 + n);
            let mut tx = pool2.begin().await.expect("begin");
            outbox2.enqueue(&mut tx, &env).await.expect("enqueue");
            tx.commit().await.expect("commit");
            committed.push(Instant::now());
        }
        committed
    });
    let mut arrived = vec![None; EVENTS];
    for _ in 0..EVENTS {
        let (at, n) = tokio::time::timeout(Duration::from_secs(60), arrivals.recv())
            .await
            .expect("delivery in time")
            .expect("consumer running");
        if let Some(slot) = n.checked_sub(1_000_000).and_then(|i| arrived.get_mut(i)) {
            *slot = Some(at);
        }
    }
    let committed = producer.await.expect("producer");
    relay.shutdown().await.expect("shutdown");
    committed
        .iter()
        .zip(&arrived)
        .skip(100)
        .filter_map(|(c, a)| a.map(|a| a.saturating_duration_since(*c)))
        .collect()
}

fn main() {
    let rt = Runtime::new().expect("runtime");
    let db_url = support::database_url();
    let amqp_url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let pool = rt.block_on(support::connect(&db_url));
    let Ok(pool) = pool else {
        println!("outbox_rabbitmq bench skipped: no PostgreSQL at {db_url}");
        return;
    };
    let exchange = format!("tessera.bench.outbox.{}", std::process::id());
    let bus = rt.block_on(RabbitBus::connect(
        RabbitConfig::new(&amqp_url)
            .exchange(&exchange)
            .temporary_topology(Duration::from_secs(60)),
    ));
    let Ok(bus) = bus else {
        println!("outbox_rabbitmq bench skipped: no RabbitMQ at {amqp_url}");
        return;
    };
    let mut arrivals = rt.block_on(drain(&bus));
    let schema = format!("tessera_bench_amqp_{}", std::process::id());
    let outbox = Outbox::new(TableName::new(&schema, "outbox").expect("table name"));
    rt.block_on(outbox.migrate(&pool)).expect("migrate");
    let publisher: Arc<dyn Publisher> = Arc::new(bus.publisher());
    // Two more replicas' connections, for three relays as three services run them.
    let replicas: Vec<RabbitBus> = (0..2)
        .map(|_| {
            rt.block_on(RabbitBus::connect(
                RabbitConfig::new(&amqp_url)
                    .exchange(&exchange)
                    .temporary_topology(Duration::from_secs(60)),
            ))
            .expect("a replica's connection")
        })
        .collect();
    let mut publishers = vec![Arc::clone(&publisher)];
    publishers.extend(
        replicas
            .iter()
            .map(|bus| Arc::new(bus.publisher()) as Arc<dyn Publisher>),
    );
    let broker = cpu::broker_pid();

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("outbox_rabbitmq");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.measurement_time(Duration::from_secs(8));

    // Raw: the batch of 100 ready events, published with confirms, no database.
    group.bench_function("raw_publish_all_100", |b| {
        let events: Vec<RawEvent> = (0..BATCH)
            .map(|n| envelope(n).encode(&JsonCodec).expect("encode"))
            .collect();
        b.iter(|| {
            rt.block_on(publisher.publish_all(events.clone()))
                .expect("publish");
        });
    });

    // Relay: one round over 100 committed rows: claim, publish with confirms, mark sent.
    bench_relay_round(
        &mut group,
        &rt,
        &pool,
        &outbox,
        Arc::clone(&publisher),
        envelope,
    );
    group.finish();

    let mut group = c.benchmark_group("outbox_throughput");
    // CPU use over the timed windows: raw, then each relay id.
    let mut usages: [cpu::Usage; 4] = Default::default();
    group.throughput(Throughput::Elements(SUSTAINED as u64));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.bench_function("raw_lapin_confirms_window", |b| {
        let (conn, channel) = rt.block_on(async {
            let conn = Connection::connect(&amqp_url, ConnectionProperties::default())
                .await
                .expect("broker");
            let channel = conn.create_channel().await.expect("channel");
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .expect("confirms");
            (conn, channel)
        });
        let events: Vec<RawEvent> = (0..SUSTAINED)
            .map(|n| envelope(n).encode(&JsonCodec).expect("encode"))
            .collect();
        assert_eq!(events[0].data.len(), DATA_LEN);
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    while arrivals.try_recv().is_ok() {}
                    let sample = cpu::Sample::now(broker);
                    let started = Instant::now();
                    raw_window(&channel, bus.exchange(), &events).await;
                    total += started.elapsed();
                    usages[0].add(sample, broker);
                    receive(&mut arrivals, SUSTAINED).await;
                }
                total
            })
        });
        drop(conn);
    });
    let one = Relays {
        count: 1,
        pruning: 0,
    };
    for (index, (id, relays)) in [
        ("relay_sustained", one),
        ("relay_sustained_3", Relays { count: 3, ..one }),
        (
            "relay_sustained_pruning",
            Relays {
                pruning: PRUNED,
                ..one
            },
        ),
    ]
    .into_iter()
    .enumerate()
    {
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += drain_with_relays(
                            &pool,
                            &outbox,
                            &publishers,
                            relays,
                            &mut arrivals,
                            &mut usages[index + 1],
                            broker,
                        )
                        .await;
                    }
                    total
                })
            });
        });
    }
    group.finish();
    for (id, usage) in [
        "raw_lapin_confirms_window",
        "relay_sustained",
        "relay_sustained_3",
        "relay_sustained_pruning",
    ]
    .iter()
    .zip(&usages)
    {
        println!("outbox_throughput/{}", usage.report(id));
    }

    let plain = format!(r#""{schema}"."plain""#);
    rt.block_on(
        sqlx::query(&format!(
            "CREATE TABLE {plain} (LIKE {} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES)",
            outbox.table().qualified()
        ))
        .execute(&pool),
    )
    .expect("twin table");
    let mut group = c.benchmark_group("outbox_enqueue");
    group.throughput(Throughput::Elements(BATCH as u64));
    let envs: Vec<_> = (0..BATCH).map(envelope).collect();
    group.bench_function("enqueue_all_100", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut tx = pool.begin().await.expect("begin");
                outbox.enqueue_all(&mut tx, &envs).await.expect("enqueue");
                tx.commit().await.expect("commit");
            });
        });
    });
    // The plain side's statement: the same columns, bound as arrays.
    let insert = format!(
        "INSERT INTO {plain} (event_id, event_type, subject, attributes, data) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::bytea[])"
    );
    group.bench_function("plain_insert_100", |b| {
        let raws: Vec<RawEvent> = envs
            .iter()
            .map(|e| e.encode(&JsonCodec).expect("encode"))
            .collect();
        let ids: Vec<String> = raws.iter().map(|r| r.id().to_owned()).collect();
        let types: Vec<String> = raws.iter().map(|r| r.event_type().to_owned()).collect();
        let subjects: Vec<Option<String>> = raws
            .iter()
            .map(|r| r.subject().map(str::to_owned))
            .collect();
        let attributes: Vec<String> = raws
            .iter()
            .map(|r| {
                let header = RawEvent::new(r.attributes.clone(), bytes::Bytes::new());
                String::from_utf8(wire::to_structured(&header).expect("json")).expect("utf-8")
            })
            .collect();
        let data: Vec<Vec<u8>> = raws.iter().map(|r| r.data.to_vec()).collect();
        b.iter(|| {
            insert_rows!(
                rt,
                pool,
                &insert,
                &ids,
                &types,
                &subjects,
                &attributes,
                &data
            );
        });
    });
    group.bench_function("plain_insert_encoding_100", |b| {
        // A hand-rolled outbox: the same statement as `plain_insert_100`,
        // each event's data and attributes serialised in the timed loop.
        #[derive(Serialize)]
        struct HandRolled<'a> {
            specversion: &'a str,
            id: &'a str,
            source: &'a str,
            #[serde(rename = "type")]
            ty: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            time: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            subject: Option<&'a str>,
            datacontenttype: &'a str,
            #[serde(flatten)]
            extensions: &'a std::collections::BTreeMap<String, String>,
        }
        b.iter(|| {
            let mut ids = Vec::with_capacity(envs.len());
            let mut types = Vec::with_capacity(envs.len());
            let mut subjects = Vec::with_capacity(envs.len());
            let mut attributes = Vec::with_capacity(envs.len());
            let mut data = Vec::with_capacity(envs.len());
            for env in &envs {
                let a = env.attributes();
                ids.push(a.id.as_str());
                types.push(a.ty.as_str());
                subjects.push(a.subject.as_deref());
                attributes.push(
                    serde_json::to_string(&HandRolled {
                        specversion: &a.specversion,
                        id: &a.id,
                        source: &a.source,
                        ty: &a.ty,
                        time: a.time.map(wire::format_time),
                        subject: a.subject.as_deref(),
                        datacontenttype: "application/json",
                        extensions: &a.extensions,
                    })
                    .expect("json"),
                );
                data.push(serde_json::to_vec(env.data()).expect("json"));
            }
            insert_rows!(
                rt,
                pool,
                &insert,
                &ids,
                &types,
                &subjects,
                &attributes,
                &data
            );
        });
    });
    group.finish();

    // Latency at light load: commit → the consumer has it from RabbitMQ.
    let latencies = rt.block_on(async {
        // The enqueue group's rows are not the relay's to publish here.
        sqlx::query(&format!("TRUNCATE {}, {plain}", outbox.table().qualified()))
            .execute(&pool)
            .await
            .expect("truncate");
        tokio::time::sleep(Duration::from_millis(500)).await;
        light_load(&pool, &outbox, Arc::clone(&publisher), &mut arrivals).await
    });
    print_latency(
        "500 events/s one per transaction, LISTEN/NOTIFY, RabbitMQ with confirms",
        latencies,
    );

    rt.block_on(async {
        let _ = sqlx::query(&format!(r#"DROP SCHEMA "{schema}" CASCADE"#))
            .execute(&pool)
            .await;
        bus.close().await;
        for replica in replicas {
            replica.close().await;
        }
    });
    c.final_summary();
}
