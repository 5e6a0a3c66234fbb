//! The seed's scenario end to end (issue #7), with the services apart: the
//! user-service, the comment-service and the GraphQL gateway each run as
//! their own tokio task behind their own TCP port (real axum servers, real
//! HTTP between them), each service with its own RabbitMQ connection and
//! its own PostgreSQL schema; a [`TestIssuer`] plays the identity provider.
//!
//! Every behaviour of the issue is checked over HTTP, and, midway, the
//! services' broker connections are force-closed while users keep changing
//! their profiles (nothing is lost, nothing is applied twice), then the
//! comment-service is stopped, a user renames while it is down, and a new
//! comment-service on the same schema and queue finds its comments and
//! receives the rename.
//!
//! A second test runs the services on the 3-node cluster of
//! `scripts/rabbitmq-cluster` (`AMQP_CLUSTER_URLS`), every connection given
//! the three URLs and every group a quorum queue: the node leading the
//! comment-service's queue is killed while users rename themselves and one
//! deletes their account, and all of it arrives once.
//!
//! Needs `AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`),
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`) and
//! `rabbitmqctl` on the PATH, talking to that broker. Everything is named
//! after the run (`e2e-<random>`): the exchange, the queue prefix (so the
//! group `comment-service` gets its own queues), the connection names (so
//! only this run's connections are force-closed; other suites share the
//! broker) and the two schemas, which are dropped at the end. The broker
//! deletes the run's queues and exchange two minutes after the last consumer
//! left (a temporary topology).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use comment_service::{BackfillClient, GROUP, SNAPSHOT_SCOPE, Storage};
use serde_json::{Value, json};
use sqlx::PgPool;
use tessera_authn::test_util::{TestClient, TestIssuer};
use tessera_authn::{Issuer, JwtValidator};
use tessera_event_bus::DeadLetterQueue;
use tessera_event_bus::outbox::{Outbox, OutboxRelay, OutboxRelayHandle, TableName};
use tessera_event_bus::rabbitmq::{QueueType, RabbitBus, RabbitConfig};
use tessera_event_bus::router::RouterHandle;
use tessera_event_bus::testkit::{RabbitCluster, force_close_connections};
use tessera_user_sync::producer::postgres::PgUserDirectory;
use tokio::task::JoinHandle;

/// How long an eventually consistent condition may take to hold.
const PATIENCE: Duration = Duration::from_secs(30);
/// The audiences of the users' tokens: valid at the gateway and both services.
const EVERYWHERE: [&str; 3] = ["gateway", "user-service", "comment-service"];
const POST: &str = "p1";
const SNAPSHOT_CLIENT_SECRET: &str = "e2e-secret";

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

// ---------------------------------------------------------------------------
// Names, services and HTTP
// ---------------------------------------------------------------------------

/// Everything this run creates on the shared broker and database.
#[derive(Debug, Clone)]
struct Names {
    /// The broker's URLs (comma-separated: the nodes of a cluster).
    amqp_urls: String,
    /// Quorum groups (on a cluster) instead of classic ones.
    quorum: bool,
    /// `e2e-<hex>`: part of every connection name, so a force-close selects only ours.
    run: String,
    exchange: String,
    queue_prefix: String,
    users_schema: String,
    comments_schema: String,
}

impl Names {
    /// On the broker at `AMQP_URL`, with classic groups.
    fn new() -> Self {
        Self::on(
            env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            false,
        )
    }

    /// On the brokers at `amqp_urls`, with quorum groups or not.
    fn on(amqp_urls: String, quorum: bool) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let id = &id[..12];
        Self {
            amqp_urls,
            quorum,
            run: format!("e2e-{id}"),
            exchange: format!("e2e-{id}.events"),
            queue_prefix: format!("e2e-{id}."),
            users_schema: format!("e2e_{id}_users"),
            comments_schema: format!("e2e_{id}_comments"),
        }
    }

    /// The bus settings of one service instance, with its own connection name.
    fn rabbit(&self, instance: &str) -> RabbitConfig {
        let config = RabbitConfig::new(&self.amqp_urls);
        let config = if self.quorum {
            config.queue_type(QueueType::Quorum { delivery_limit: 20 })
        } else {
            config
        };
        config
            .exchange(&self.exchange)
            .queue_prefix(&self.queue_prefix)
            .connection_name(format!("{}-{instance}", self.run))
            .temporary_topology(Duration::from_secs(120))
            .reconnect_delays(Duration::from_millis(50), Duration::from_secs(1))
    }
}

fn validator(idp: &TestIssuer, audience: &str) -> JwtValidator {
    JwtValidator::builder()
        .issuer(Issuer::new(idp.issuer()).audience(audience).discovery())
        .build()
        .expect("a validator for the test issuer")
}

/// An axum server in its own task, stopped gracefully (it stops accepting,
/// finishes its requests and closes its keep-alive connections).
struct Server {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    /// Serves `router` on `addr` (port 0: any free port).
    async fn start(addr: SocketAddr, router: axum::Router) -> Self {
        // Rebinding a port just released can race its last connections: retry briefly.
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => break listener,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("expected to listen on {addr}: {e}"),
            }
        };
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("the server runs");
        });
        Self { addr, stop, task }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(10), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// The user-service: PostgreSQL with the transactional outbox, a relay to RabbitMQ.
struct UserService {
    server: Server,
    relay: OutboxRelayHandle,
    bus: RabbitBus,
    /// Requests to the batch endpoint `GET /users?ids=`, counted.
    batch_requests: Arc<AtomicUsize>,
}

impl UserService {
    async fn start(names: &Names, pool: &PgPool, idp: &TestIssuer) -> Self {
        let bus = RabbitBus::connect(names.rabbit("user-service"))
            .await
            .expect("RabbitMQ at AMQP_URL is reachable");
        let outbox = Outbox::new(TableName::new(&names.users_schema, "outbox").unwrap());
        outbox.migrate(pool).await.unwrap();
        let directory = PgUserDirectory::new(
            pool.clone(),
            TableName::new(&names.users_schema, "users").unwrap(),
            outbox.clone(),
            "/user-service",
        );
        directory.migrate().await.unwrap();
        let relay = OutboxRelay::new(&outbox, pool.clone(), Arc::new(bus.publisher()))
            .poll_interval(Duration::from_millis(100))
            .start()
            .await
            .unwrap();
        let batch_requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&batch_requests);
        let router = user_service::app(
            validator(idp, "user-service"),
            user_service::Users::new(directory),
        )
        .layer(axum::middleware::map_request(
            move |request: axum::extract::Request| {
                let counter = Arc::clone(&counter);
                async move {
                    let uri = request.uri();
                    if uri.path() == "/users"
                        && uri
                            .query()
                            .is_some_and(|q| q.split('&').any(|p| p.starts_with("ids=")))
                    {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    request
                }
            },
        ));
        let server = Server::start("127.0.0.1:0".parse().unwrap(), router).await;
        Self {
            server,
            relay,
            bus,
            batch_requests,
        }
    }

    async fn stop(self) {
        self.server.stop().await;
        self.relay.shutdown().await.unwrap();
        self.bus.close().await;
    }
}

/// One comment-service instance: PostgreSQL storage, its consumer on RabbitMQ, its server.
struct CommentService {
    server: Server,
    consumer: RouterHandle,
    bus: RabbitBus,
    storage: Storage,
}

impl CommentService {
    async fn start(
        names: &Names,
        instance: &str,
        pool: &PgPool,
        idp: &TestIssuer,
        addr: SocketAddr,
    ) -> Self {
        let bus = RabbitBus::connect(names.rabbit(instance))
            .await
            .expect("RabbitMQ at AMQP_URL is reachable");
        let storage = Storage::postgres(pool.clone(), &names.comments_schema)
            .await
            .unwrap();
        // The group's queue is bound before the user-service publishes.
        let consumer = storage
            .consumer(Arc::new(bus.subscriber()))
            .start()
            .await
            .unwrap();
        let router = comment_service::app(validator(idp, "comment-service"), storage.clone());
        let server = Server::start(addr, router).await;
        Self {
            server,
            consumer,
            bus,
            storage,
        }
    }

    async fn stop(self) {
        self.server.stop().await;
        self.consumer.shutdown().await.unwrap();
        self.bus.close().await;
    }
}

/// An HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    www_authenticate: String,
    body: Value,
}

#[derive(Debug, Clone)]
struct Http(reqwest::Client);

impl Http {
    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        token: Option<&str>,
        body: Option<(&str, String)>,
    ) -> Result<Reply, reqwest::Error> {
        let mut request = self.0.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some((content_type, body)) = body {
            request = request.header("content-type", content_type).body(body);
        }
        let response = request.send().await?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let (content_type, www_authenticate) = (header("content-type"), header("www-authenticate"));
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok(Reply {
            status,
            content_type,
            www_authenticate,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        token: Option<&str>,
        body: Option<(&str, String)>,
    ) -> Reply {
        self.send(method, url, token, body)
            .await
            .unwrap_or_else(|e| panic!("expected an answer from {url}: {e}"))
    }

    async fn get(&self, url: &str, token: &str) -> Reply {
        self.call(reqwest::Method::GET, url, Some(token), None)
            .await
    }

    async fn json(&self, method: reqwest::Method, url: &str, token: &str, body: Value) -> Reply {
        self.call(
            method,
            url,
            Some(token),
            Some(("application/json", body.to_string())),
        )
        .await
    }

    async fn delete(&self, url: &str, token: &str) -> Reply {
        self.call(reqwest::Method::DELETE, url, Some(token), None)
            .await
    }
}

/// Polls `probe` until it returns `Ok`, for at most [`PATIENCE`]; panics
/// with `expected` and the last value seen otherwise.
async fn eventually<T, F, Fut>(expected: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(last) if Instant::now() > deadline => {
                panic!("expected {expected} within {PATIENCE:?}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

// ---------------------------------------------------------------------------
// The system
// ---------------------------------------------------------------------------

struct System {
    names: Names,
    pool: PgPool,
    idp: TestIssuer,
    http: Http,
    users: UserService,
    comments: Option<CommentService>,
    comments_addr: SocketAddr,
    gateway: Server,
}

impl System {
    async fn start(names: Names, pool: PgPool) -> Self {
        let idp = TestIssuer::start_on("127.0.0.1:0".parse().unwrap(), None, "gateway")
            .await
            .unwrap();
        // The comment-service's client for the snapshot (backfill).
        idp.add_client(
            TestClient::new("comment-service", SNAPSHOT_CLIENT_SECRET)
                .scopes([SNAPSHOT_SCOPE])
                .audiences(["user-service"]),
        );
        // The consumer first: publishing is mandatory, an event nobody is bound to is an error.
        let comments = CommentService::start(
            &names,
            "comment-service",
            &pool,
            &idp,
            "127.0.0.1:0".parse().unwrap(),
        )
        .await;
        let comments_addr = comments.server.addr;
        let users = UserService::start(&names, &pool, &idp).await;
        let gateway = Server::start(
            "127.0.0.1:0".parse().unwrap(),
            gateway::app(
                validator(&idp, "gateway"),
                gateway::Downstream::new(
                    users.server.url().parse().unwrap(),
                    comments.server.url().parse().unwrap(),
                ),
            ),
        )
        .await;
        Self {
            names,
            pool,
            idp,
            http: Http(reqwest::Client::new()),
            users,
            comments: Some(comments),
            comments_addr,
            gateway,
        }
    }

    /// A user's token, valid at the gateway and both services.
    fn token(&self, sub: &str, claims: &[(&str, &str)]) -> String {
        let mut token = self.idp.token().subject(sub).audience(json!(EVERYWHERE));
        for (name, value) in claims {
            token = token.claim(name, *value);
        }
        token.sign()
    }

    fn users_url(&self, path: &str) -> String {
        format!("{}{path}", self.users.server.url())
    }

    fn comments_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.comments_addr)
    }

    fn comment_service(&self) -> &CommentService {
        self.comments
            .as_ref()
            .expect("the comment-service is running")
    }

    async fn me(&self, token: &str) -> Reply {
        self.http.get(&self.users_url("/users/me"), token).await
    }

    async fn rename(&self, token: &str, name: &str) -> Reply {
        self.http
            .json(
                reqwest::Method::PATCH,
                &self.users_url("/users/me"),
                token,
                json!({ "display_name": name }),
            )
            .await
    }

    async fn post_comment(&self, token: &str, text: &str) -> Reply {
        self.http
            .json(
                reqwest::Method::POST,
                &self.comments_url(&format!("/posts/{POST}/comments")),
                token,
                json!({ "text": text }),
            )
            .await
    }

    async fn list(&self, token: &str) -> Value {
        let reply = self
            .http
            .get(
                &self.comments_url(&format!("/posts/{POST}/comments")),
                token,
            )
            .await;
        assert_eq!(
            reply.status, 200,
            "expected 200 for GET /posts/{POST}/comments: {reply:?}"
        );
        reply.body
    }

    /// Polls the comments until `holds`; panics with `expected` otherwise.
    async fn comments_until(
        &self,
        token: &str,
        expected: &str,
        holds: impl Fn(&Value) -> bool,
    ) -> Value {
        eventually(expected, || async {
            let list = self.list(token).await;
            if holds(&list) {
                Ok(list)
            } else {
                Err(format!("{list:#}"))
            }
        })
        .await
    }

    async fn graphql(&self, token: &str) -> Reply {
        let query =
            format!("{{ comments(postId: \"{POST}\") {{ id text author {{ id displayName }} }} }}");
        self.http
            .json(
                reqwest::Method::POST,
                &format!("{}/graphql", self.gateway.url()),
                token,
                json!({ "query": query }),
            )
            .await
    }

    /// The gateway's answer, checked to be free of errors, and how many
    /// batch requests it made to the user-service.
    async fn gateway_comments(&self, token: &str) -> (Value, usize) {
        let before = self.users.batch_requests.load(Ordering::SeqCst);
        let reply = self.graphql(token).await;
        let batches = self.users.batch_requests.load(Ordering::SeqCst) - before;
        assert_eq!(
            reply.status, 200,
            "expected 200 from the gateway: {reply:?}"
        );
        assert!(
            reply.body["errors"].is_null(),
            "expected no GraphQL errors: {:#}",
            reply.body
        );
        (reply.body["data"]["comments"].clone(), batches)
    }

    /// `(user_id, version, deleted)` of every user at the user-service, and in the comment-service's replica.
    async fn versions(&self) -> (Vec<(String, i64, bool)>, Vec<(String, i64, bool)>) {
        let users = sqlx::query_as(&format!(
            "SELECT user_id, version, deleted_at IS NOT NULL FROM \"{}\".users ORDER BY user_id",
            self.names.users_schema
        ))
        .fetch_all(&self.pool)
        .await
        .unwrap();
        let replica = sqlx::query_as(&format!(
            "SELECT user_id, version, deleted FROM \"{}\".user_replica ORDER BY user_id",
            self.names.comments_schema
        ))
        .fetch_all(&self.pool)
        .await
        .unwrap();
        (users, replica)
    }

    /// Waits until every event of the outbox was published (confirmed by the broker).
    async fn outbox_drained(&self) {
        let sql = format!(
            "SELECT count(*) FILTER (WHERE sent_at IS NULL AND parked_at IS NULL), \
                    count(*) FILTER (WHERE parked_at IS NOT NULL) FROM \"{}\".outbox",
            self.names.users_schema
        );
        eventually("every outbox row published, none parked", || async {
            let (pending, parked): (i64, i64) =
                sqlx::query_as(&sql).fetch_one(&self.pool).await.unwrap();
            assert_eq!(parked, 0, "expected no parked outbox row");
            if pending == 0 {
                Ok(())
            } else {
                Err(format!("{pending} rows pending"))
            }
        })
        .await;
    }

    /// Nothing lost, nothing applied twice: every event the user-service
    /// emitted was published, processed by the comment-service exactly once
    /// (its inbox holds each event id once, and no other), its replica holds
    /// every user at the user-service's version, and nothing was dead-lettered.
    async fn assert_everything_arrived_once(&self) {
        self.outbox_drained().await;
        let emitted_sql = format!(
            "SELECT event_id FROM \"{}\".outbox ORDER BY event_id",
            self.names.users_schema
        );
        let processed_sql = format!(
            "SELECT event_id FROM \"{}\".inbox WHERE consumer_group = $1 ORDER BY event_id",
            self.names.comments_schema
        );
        let (emitted, processed) = eventually(
            "the comment-service's inbox to hold exactly the events the user-service emitted",
            || async {
                let emitted: Vec<String> = sqlx::query_scalar(&emitted_sql)
                    .fetch_all(&self.pool)
                    .await
                    .unwrap();
                let processed: Vec<String> = sqlx::query_scalar(&processed_sql)
                    .bind(GROUP)
                    .fetch_all(&self.pool)
                    .await
                    .unwrap();
                let unique: BTreeSet<&String> = emitted.iter().collect();
                assert_eq!(
                    unique.len(),
                    emitted.len(),
                    "expected unique event ids in the outbox"
                );
                if emitted == processed {
                    Ok((emitted, processed))
                } else {
                    Err(format!(
                        "{} emitted, {} processed; missing {:?}; unexpected {:?}",
                        emitted.len(),
                        processed.len(),
                        emitted
                            .iter()
                            .filter(|e| !processed.contains(e))
                            .collect::<Vec<_>>(),
                        processed
                            .iter()
                            .filter(|p| !emitted.contains(p))
                            .collect::<Vec<_>>()
                    ))
                }
            },
        )
        .await;
        assert_eq!(emitted.len(), processed.len());
        let (users, replica) = eventually(
            "the replica to hold every user at the user-service's version",
            || async {
                let (users, replica) = self.versions().await;
                if users == replica {
                    Ok((users, replica))
                } else {
                    Err(format!("users {users:?}, replica {replica:?}"))
                }
            },
        )
        .await;
        assert_eq!(users, replica);
        let parked = self
            .comment_service()
            .bus
            .dead_letter_queue(GROUP)
            .list(usize::MAX)
            .await
            .expect("the parking lot is readable");
        assert!(
            parked.is_empty(),
            "expected nothing in the comment-service's parking lot: {parked:?}"
        );
    }
}

/// This run's queues on the broker, with their consumer counts (`rabbitmqctl list_queues`).
async fn run_queues(names: &Names) -> Vec<(String, u32)> {
    let prefix = names.queue_prefix.clone();
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("rabbitmqctl")
            .args([
                "list_queues",
                "--quiet",
                "--no-table-headers",
                "name",
                "consumers",
            ])
            .output()
            .expect("rabbitmqctl runs");
        assert!(
            out.status.success(),
            "expected rabbitmqctl list_queues to succeed: {out:?}"
        );
        let mut queues: Vec<(String, u32)> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| line.starts_with(&prefix))
            .filter_map(|line| {
                let (name, consumers) = line.split_once('\t')?;
                Some((name.to_owned(), consumers.trim().parse().ok()?))
            })
            .collect();
        queues.sort();
        queues
    })
    .await
    .expect("rabbitmqctl task")
}

// ---------------------------------------------------------------------------
// Checks on JSON
// ---------------------------------------------------------------------------

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn id_of(reply: &Reply) -> String {
    reply.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("expected a comment id in {reply:?}"))
        .to_owned()
}

/// The author of comment `id` in a list of comments.
fn author<'a>(list: &'a Value, id: &str) -> &'a Value {
    &list
        .as_array()
        .unwrap_or_else(|| panic!("expected a JSON array, got {list:#}"))
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("expected comment {id} in {list:#}"))["author"]
}

fn name_in(list: &Value, id: &str) -> Value {
    author(list, id)["display_name"].clone()
}

/// `comment id -> author (id, display name)` from a list of comments, `None`
/// for anonymised; the gateway names the field `displayName`, the
/// comment-service `display_name`.
fn authors(comments: &Value, name_field: &str) -> BTreeMap<String, Option<(String, Value)>> {
    comments
        .as_array()
        .unwrap_or_else(|| panic!("expected a list of comments, got {comments:#}"))
        .iter()
        .map(|c| {
            let author = &c["author"];
            (
                c["id"].as_str().unwrap().to_owned(),
                (!author.is_null()).then(|| {
                    (
                        author["id"].as_str().unwrap().to_owned(),
                        author[name_field].clone(),
                    )
                }),
            )
        })
        .collect()
}

/// As the gateway shows them.
fn gateway_authors(comments: &Value) -> BTreeMap<String, Option<(String, Value)>> {
    authors(comments, "displayName")
}

/// As the comment-service lists them.
fn service_authors(list: &Value) -> BTreeMap<String, Option<(String, Value)>> {
    authors(list, "display_name")
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs RabbitMQ and PostgreSQL"]
async fn the_services_apart_on_rabbitmq_and_postgresql_behave_as_issue_7_says() {
    run(Names::new(), scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the RabbitMQ cluster (scripts/rabbitmq-cluster start) and PostgreSQL"]
async fn the_services_on_a_rabbitmq_cluster_lose_nothing_when_a_node_dies() {
    run(
        Names::on(RabbitCluster::new().urls(), true),
        scenario_on_a_cluster,
    )
    .await;
}

/// Runs `scenario` in its own task, then drops the run's schemas, even when it failed.
async fn run<F, Fut>(names: Names, scenario: F)
where
    F: FnOnce(Names, PgPool) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .connect(&env(
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/test",
        ))
        .await
        .expect("PostgreSQL at DATABASE_URL is reachable");
    let outcome = tokio::spawn(scenario(names.clone(), pool.clone())).await;
    for schema in [&names.users_schema, &names.comments_schema] {
        sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .execute(&pool)
            .await
            .unwrap();
    }
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// The services with every connection given the three nodes' URLs and
/// quorum groups; the node that leads the comment-service's queue is
/// killed while users rename themselves and one deletes their account; all
/// of it arrives, once, and the replica ends at the user-service's versions.
async fn scenario_on_a_cluster(names: Names, pool: PgPool) {
    let cluster = RabbitCluster::new();
    let nodes = cluster.take_nodes().await;
    let mut system = System::start(names, pool).await;
    let s = &system;
    let write = ("scope", "comments:write");
    let ada = s.token("ada", &[("name", "Ada Lovelace"), write]);
    let bob = s.token("bob", &[("preferred_username", "bobby"), write]);
    let carol = s.token("carol", &[("name", "Carol")]);
    for (token, id) in [(&ada, "ada"), (&bob, "bob"), (&carol, "carol")] {
        let reply = s.me(token).await;
        assert_eq!(reply.status, 200, "expected {id} registered: {reply:?}");
    }
    let c_ada = id_of(&s.post_comment(&ada, "Before the outage.").await);
    let c_bob = id_of(&s.post_comment(&bob, "Me too.").await);
    s.comments_until(&carol, "both comments with their authors' names", |l| {
        name_in(l, &c_ada) == "Ada Lovelace" && name_in(l, &c_bob) == "bobby"
    })
    .await;

    // The node leading the comment-service's queue dies.
    let queue = format!("{}{GROUP}", s.names.queue_prefix);
    let leader = cluster.leader_of(&queue).await;
    let killed_at = Instant::now();
    nodes.kill_node(leader).await;
    // During the outage: renames, and an account deleted.
    for n in 1..=5 {
        let reply = s.rename(&ada, &format!("Ada, Countess {n}")).await;
        assert_eq!(
            reply.status, 200,
            "expected a rename during the outage: {reply:?}"
        );
    }
    assert_eq!(s.rename(&bob, "Robert").await.status, 200);
    let reply = s.http.delete(&s.users_url("/users/me"), &carol).await;
    assert_eq!(
        reply.status, 204,
        "expected Carol's account deleted: {reply:?}"
    );
    let list = s
        .comments_until(&bob, "the renames made during the outage", |l| {
            name_in(l, &c_ada) == "Ada, Countess 5" && name_in(l, &c_bob) == "Robert"
        })
        .await;
    let recovered = killed_at.elapsed();
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    let new_leader = cluster.leader_of(&queue).await;
    assert_ne!(new_leader, leader, "expected a new leader for {queue}");

    // The node comes back; traffic goes on.
    nodes.start_node(leader).await;
    assert_eq!(s.rename(&bob, "Robert Stone").await.status, 200);
    s.comments_until(&ada, "a rename after the node came back", |l| {
        name_in(l, &c_bob) == "Robert Stone"
    })
    .await;
    let (comments, _) = s.gateway_comments(&ada).await;
    assert_eq!(
        gateway_authors(&comments),
        service_authors(&s.list(&ada).await),
        "expected the gateway to show the current names"
    );
    s.assert_everything_arrived_once().await;
    let (users, replica) = s.versions().await;
    assert!(
        replica.contains(&("carol".to_owned(), 2, true)),
        "expected Carol's deletion in the replica: {replica:?}"
    );
    assert_eq!(users, replica);
    #[allow(
        clippy::print_stdout,
        reason = "the recovery time is the test's output"
    )]
    {
        println!(
            "scenario on the cluster: node {leader} (leader of {queue}) killed; the outage's renames \
         reached the comment-service {recovered:?} after the kill; node {new_leader} led next"
        );
    }

    let comments = system.comments.take().expect("running");
    comments.stop().await;
    system.gateway.stop().await;
    system.users.stop().await;
}

async fn scenario(names: Names, pool: PgPool) {
    let mut system = System::start(names, pool).await;
    let s = &system;
    let http = &system.http.clone();
    let write = ("scope", "comments:write");

    // Tokens. Ada's carries a name; Bob's only a preferred_username; Carol's
    // neither (and no comments:write); Dave has not been to the user-service yet.
    let ada = s.token(
        "ada",
        &[
            ("name", "Ada Lovelace"),
            ("preferred_username", "ada.l"),
            write,
        ],
    );
    let ada_reader = s.token("ada", &[("name", "Ada Lovelace")]);
    let bob = s.token("bob", &[("preferred_username", "bobby"), write]);
    let carol = s.token("carol", &[]);
    let dave = s.token("dave", &[("name", "Dave Bowman"), write]);

    // The group's queues carry the run's prefix; the comment-service consumes its queue.
    let prefix = &s.names.queue_prefix;
    assert_eq!(
        run_queues(&s.names).await,
        vec![
            (format!("{prefix}{GROUP}"), 1),
            (format!("{prefix}{GROUP}.parking-lot"), 0),
        ],
        "expected the group {GROUP}'s queue and parking lot under the run's prefix"
    );

    // --- Anonymous callers are refused everywhere.
    for url in [
        s.users_url("/users/me"),
        s.comments_url(&format!("/posts/{POST}/comments")),
    ] {
        let reply = http.call(reqwest::Method::GET, &url, None, None).await;
        assert_eq!(reply.status, 401, "expected 401 without a token at {url}");
    }

    // --- Just-in-time registration on GET /users/me.
    for (token, id, name) in [
        (&ada, "ada", "Ada Lovelace"),
        (&bob, "bob", "bobby"),
        (&carol, "carol", "carol"),
    ] {
        let reply = s.me(token).await;
        assert_eq!(
            reply.status, 200,
            "expected 200 for {id}'s GET /users/me: {reply:?}"
        );
        assert_eq!(
            (
                &reply.body["id"],
                &reply.body["display_name"],
                &reply.body["version"]
            ),
            (&json!(id), &json!(name), &json!(1)),
            "expected {id} registered as {name:?} at version 1 (name, else preferred_username, else sub): {:#}",
            reply.body
        );
    }
    let again = s.me(&ada).await;
    assert_eq!(
        again.body["version"], 1,
        "expected a second GET /users/me not to register Ada again"
    );

    // --- PATCH /users/me validation.
    for bad in [
        json!({ "display_name": "" }),
        json!({ "display_name": "   " }),
        json!({ "display_name": "bell\u{7}" }),
        json!({ "display_name": "x".repeat(65) }),
        json!({ "display_name": 42 }),
        json!({ "name": "no display_name" }),
    ] {
        let reply = http
            .json(
                reqwest::Method::PATCH,
                &s.users_url("/users/me"),
                &bob,
                bad.clone(),
            )
            .await;
        assert_eq!(reply.status, 422, "expected 422 for PATCH {bad}: {reply:?}");
        assert_eq!(
            reply.content_type, "application/problem+json",
            "expected a problem+json body for PATCH {bad}"
        );
        assert_eq!(
            reply.body["status"], 422,
            "expected the problem's status 422: {reply:?}"
        );
    }
    let not_json = http
        .call(
            reqwest::Method::PATCH,
            &s.users_url("/users/me"),
            Some(&bob),
            Some(("application/json", "not json".to_owned())),
        )
        .await;
    assert_eq!(
        not_json.status, 400,
        "expected 400 for a body that is not JSON"
    );
    let text_plain = http
        .call(
            reqwest::Method::PATCH,
            &s.users_url("/users/me"),
            Some(&bob),
            Some(("text/plain", r#"{"display_name":"x"}"#.to_owned())),
        )
        .await;
    assert_eq!(
        text_plain.status, 415,
        "expected 415 without a JSON content type"
    );
    assert_eq!(
        s.me(&bob).await.body["version"],
        1,
        "expected refused PATCHes to change nothing"
    );
    let longest = "é".repeat(64);
    let reply = s.rename(&carol, &longest).await;
    assert_eq!(
        (
            reply.status,
            &reply.body["display_name"],
            &reply.body["version"]
        ),
        (200, &json!(longest), &json!(2)),
        "expected a 64-character name accepted at version 2: {reply:?}"
    );
    assert_eq!(
        keys(&reply.body),
        keys(&s.me(&carol).await.body),
        "expected PATCH to answer the profile in GET's shape"
    );
    s.rename(&carol, "carol").await;

    // --- Public profiles, batch, snapshot.
    let reply = http.get(&s.users_url("/users/ada"), &bob).await;
    assert_eq!(
        (reply.status, &reply.body),
        (200, &json!({ "id": "ada", "display_name": "Ada Lovelace" })),
        "expected Ada's public profile for any valid token"
    );
    let reply = http.get(&s.users_url("/users/nobody"), &bob).await;
    assert_eq!(reply.status, 404, "expected 404 for an unknown user");
    let reply = http
        .get(&s.users_url("/users?ids=bob,nobody,ada"), &carol)
        .await;
    assert_eq!(
        (reply.status, &reply.body),
        (
            200,
            &json!([
                { "id": "ada", "display_name": "Ada Lovelace" },
                { "id": "bob", "display_name": "bobby" }
            ])
        ),
        "expected the batch to list the known users only"
    );
    let reply = http.get(&s.users_url("/users?limit=10"), &ada).await;
    assert_eq!(
        reply.status, 403,
        "expected a user's token refused at the snapshot: {reply:?}"
    );
    let service = s
        .idp
        .token()
        .subject("comment-service")
        .audience("user-service")
        .claim("scope", SNAPSHOT_SCOPE)
        .sign();
    let reply = http.get(&s.users_url("/users?limit=10"), &service).await;
    assert_eq!(
        reply.status, 200,
        "expected the snapshot for scope users:snapshot: {reply:?}"
    );
    let listed: BTreeSet<&str> = reply.body["users"]
        .as_array()
        .unwrap_or_else(|| panic!("expected a users array in the snapshot: {:#}", reply.body))
        .iter()
        .filter_map(|u| u["user_id"].as_str())
        .collect();
    assert_eq!(
        listed,
        BTreeSet::from(["ada", "bob", "carol"]),
        "expected the snapshot to list every user: {:#}",
        reply.body
    );

    // --- Comments: scope, validation, the 201 shape.
    for (token, who) in [
        (&ada_reader, "Ada without comments:write"),
        (&carol, "Carol"),
    ] {
        let reply = s.post_comment(token, "may I?").await;
        assert_eq!(reply.status, 403, "expected 403 for {who}: {reply:?}");
        assert!(
            reply.www_authenticate.contains("insufficient_scope"),
            "expected an insufficient_scope challenge for {who}: {reply:?}"
        );
    }
    let comments_path = s.comments_url(&format!("/posts/{POST}/comments"));
    for (content_type, body, status) in [
        ("application/json", json!({ "text": "  " }).to_string(), 422),
        ("application/json", "not json".to_owned(), 400),
        ("text/plain", json!({ "text": "hi" }).to_string(), 415),
    ] {
        let reply = http
            .call(
                reqwest::Method::POST,
                &comments_path,
                Some(&ada),
                Some((content_type, body.clone())),
            )
            .await;
        assert_eq!(
            reply.status, status,
            "expected {status} for POST {content_type} {body}: {reply:?}"
        );
    }

    // Dave was never at the user-service: the replica does not know him.
    let reply = s.post_comment(&dave, "Open the pod bay doors.").await;
    let c_dave = id_of(&reply);
    assert_eq!(
        (reply.status, &reply.body),
        (
            201,
            &json!({
                "id": c_dave,
                "post_id": POST,
                "text": "Open the pod bay doors.",
                "author": { "id": "dave", "display_name": null }
            })
        ),
        "expected 201 with a null display_name for a user the replica does not know"
    );
    let reply = s
        .post_comment(&ada, "Analytical engines will compose music.")
        .await;
    assert_eq!(
        reply.status, 201,
        "expected 201 for Ada's comment: {reply:?}"
    );
    let c_ada = id_of(&reply);
    assert_eq!(
        keys(&reply.body),
        BTreeSet::from(["id", "post_id", "text", "author"])
    );
    assert_eq!(
        keys(&reply.body["author"]),
        BTreeSet::from(["id", "display_name"])
    );
    assert_eq!(reply.body["author"]["id"], "ada");
    assert!(
        [json!(null), json!("Ada Lovelace")].contains(&reply.body["author"]["display_name"]),
        "expected Ada's name or null (not replicated yet): {reply:?}"
    );
    let reply = s
        .post_comment(&bob, "Only if someone writes the program.")
        .await;
    assert_eq!(
        reply.status, 201,
        "expected 201 for Bob's comment: {reply:?}"
    );
    let c_bob = id_of(&reply);

    // The replica catches up with the registrations.
    let list = s
        .comments_until(
            &carol,
            "Ada's and Bob's names from the replica, Dave's still null",
            |l| name_in(l, &c_ada) == "Ada Lovelace" && name_in(l, &c_bob) == "bobby",
        )
        .await;
    assert_eq!(
        name_in(&list, &c_dave),
        Value::Null,
        "expected Dave still unknown to the replica"
    );
    let reply = s.post_comment(&bob, "To be deleted.").await;
    let c_bob_gone = id_of(&reply);
    assert_eq!(
        (reply.status, &reply.body),
        (
            201,
            &json!({
                "id": c_bob_gone,
                "post_id": POST,
                "text": "To be deleted.",
                "author": { "id": "bob", "display_name": "bobby" }
            })
        ),
        "expected 201 with the exact shape and Bob's name from the replica"
    );
    let list = s.list(&carol).await;
    assert_eq!(
        list,
        json!([
            { "id": c_dave, "text": "Open the pod bay doors.", "author": { "id": "dave", "display_name": null } },
            { "id": c_ada, "text": "Analytical engines will compose music.", "author": { "id": "ada", "display_name": "Ada Lovelace" } },
            { "id": c_bob, "text": "Only if someone writes the program.", "author": { "id": "bob", "display_name": "bobby" } },
            { "id": c_bob_gone, "text": "To be deleted.", "author": { "id": "bob", "display_name": "bobby" } },
        ]),
        "expected the comments oldest first, in the list shape, for any valid token"
    );

    // Dave registers just in time; the replica learns his name.
    let reply = s.me(&dave).await;
    assert_eq!(
        reply.body["display_name"], "Dave Bowman",
        "expected Dave registered: {reply:?}"
    );
    s.comments_until(&carol, "Dave's name once he registered", |l| {
        name_in(l, &c_dave) == "Dave Bowman"
    })
    .await;

    // --- The gateway: comments with usernames, one batched user-service call.
    let (comments, batches) = s.gateway_comments(&carol).await;
    assert_eq!(
        gateway_authors(&comments),
        service_authors(&s.list(&carol).await),
        "expected the gateway to show the same authors and names as the comment-service"
    );
    assert_eq!(comments.as_array().map(Vec::len), Some(4));
    assert_eq!(
        batches, 1,
        "expected one user-service batch request for four comments by three authors"
    );

    // --- DELETE /comments/{id}: only its author.
    let gone_url = s.comments_url(&format!("/comments/{c_bob_gone}"));
    assert_eq!(
        http.delete(&gone_url, &ada).await.status,
        403,
        "expected 403 for another user"
    );
    assert_eq!(
        http.delete(&gone_url, &bob).await.status,
        204,
        "expected 204 for the author"
    );
    assert_eq!(
        http.delete(&gone_url, &bob).await.status,
        404,
        "expected 404 once deleted"
    );

    // --- A rename reaches the replica and the gateway.
    let reply = s.rename(&ada, "Ada King").await;
    assert_eq!(
        (
            reply.status,
            &reply.body["display_name"],
            &reply.body["version"]
        ),
        (200, &json!("Ada King"), &json!(2)),
        "expected the rename answered with the profile at version 2: {reply:?}"
    );
    s.comments_until(&carol, "Ada's new name in the replica", |l| {
        name_in(l, &c_ada) == "Ada King"
    })
    .await;
    let (comments, _) = s.gateway_comments(&bob).await;
    assert_eq!(
        gateway_authors(&comments)[&c_ada],
        Some(("ada".to_owned(), json!("Ada King"))),
        "expected the gateway to show Ada's new name"
    );
    s.assert_everything_arrived_once().await;

    // --- Midway, the broker drops the services' connections while users keep renaming.
    let renames = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (token, who) in [(&ada, "Ada"), (&bob, "Bob"), (&dave, "Dave")] {
        let (token, who) = (token.clone(), who.to_owned());
        let (renames, stop, http, url) = (
            Arc::clone(&renames),
            Arc::clone(&stop),
            http.clone(),
            s.users_url("/users/me"),
        );
        writers.push(tokio::spawn(async move {
            let mut last = None;
            for n in 1.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let name = format!("{who} #{n}");
                let reply = http
                    .json(
                        reqwest::Method::PATCH,
                        &url,
                        &token,
                        json!({ "display_name": name }),
                    )
                    .await;
                assert_eq!(
                    reply.status, 200,
                    "expected renames to succeed while the broker is away: {reply:?}"
                );
                last = Some((name, reply.body["version"].as_i64().unwrap()));
                renames.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            last.expect("at least one rename")
        }));
    }
    eventually("a few renames before the connections drop", || async {
        let n = renames.load(Ordering::SeqCst);
        if n >= 6 {
            Ok(())
        } else {
            Err(format!("{n} renames"))
        }
    })
    .await;
    let closed = force_close_connections(&s.names.run).await;
    assert_eq!(
        closed, 4,
        "expected this run's four connections closed (publish and consume of both services)"
    );
    // Comments are written while the events are in flight.
    let reply = s
        .post_comment(&ada, "Written while the broker was away.")
        .await;
    assert_eq!(
        reply.status, 201,
        "expected the comment-service to keep serving: {reply:?}"
    );
    let c_ada_outage = id_of(&reply);
    let at_close = renames.load(Ordering::SeqCst);
    eventually("renames to go on after the connections dropped", || async {
        let n = renames.load(Ordering::SeqCst);
        if n >= at_close + 9 {
            Ok(())
        } else {
            Err(format!("{n} renames, {at_close} at the close"))
        }
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut finals = BTreeMap::new();
    for (writer, id) in writers.into_iter().zip(["ada", "bob", "dave"]) {
        finals.insert(id, writer.await.expect("the renames succeeded"));
    }
    let list = s
        .comments_until(
            &carol,
            "every user's last name after the connections dropped",
            |l| {
                name_in(l, &c_ada) == finals["ada"].0.as_str()
                    && name_in(l, &c_bob) == finals["bob"].0.as_str()
                    && name_in(l, &c_dave) == finals["dave"].0.as_str()
            },
        )
        .await;
    assert_eq!(name_in(&list, &c_ada_outage), finals["ada"].0.as_str());
    for (id, (_, version)) in &finals {
        assert_eq!(
            s.me(match *id {
                "ada" => &ada,
                "bob" => &bob,
                _ => &dave,
            })
            .await
            .body["version"],
            *version,
            "expected {id}'s last rename to be the user-service's current version"
        );
    }
    s.assert_everything_arrived_once().await;
    eventually("both buses healthy again", || async {
        let (u, c) = (s.users.bus.health(), s.comment_service().bus.health());
        if u.is_up() && c.is_up() {
            Ok(())
        } else {
            Err(format!("{u:?} {c:?}"))
        }
    })
    .await;

    // --- The comment-service stops; Bob renames while it is down.
    let before_stop = s.list(&carol).await;
    let comments = system.comments.take().expect("running");
    comments.stop().await;
    let s = &system;
    let down = http
        .send(
            reqwest::Method::GET,
            &s.comments_url(&format!("/posts/{POST}/comments")),
            Some(&carol),
            None,
        )
        .await;
    assert!(
        down.is_err(),
        "expected the stopped comment-service not to answer: {down:?}"
    );
    let reply = s.graphql(&carol).await;
    assert!(
        !reply.body["errors"].is_null(),
        "expected the gateway to report the comment-service unreachable: {reply:?}"
    );
    let reply = s.rename(&bob, "Robert Stone").await;
    assert_eq!(
        reply.status, 200,
        "expected Bob's rename while the comment-service is down: {reply:?}"
    );
    // Published and confirmed: the event waits in the group's queue.
    s.outbox_drained().await;

    // --- A new comment-service on the same schema and queue.
    let restarted = CommentService::start(
        &s.names,
        "comment-service-restarted",
        &s.pool,
        &s.idp,
        s.comments_addr,
    )
    .await;
    system.comments = Some(restarted);
    let s = &system;
    let list = s
        .comments_until(
            &carol,
            "the rename made while the comment-service was down",
            |l| name_in(l, &c_bob) == "Robert Stone",
        )
        .await;
    let mut expected = before_stop.clone();
    for comment in expected.as_array_mut().unwrap() {
        if comment["author"]["id"] == "bob" {
            comment["author"]["display_name"] = json!("Robert Stone");
        }
    }
    assert_eq!(
        list, expected,
        "expected every comment kept across the restart, with Bob's new name"
    );
    s.assert_everything_arrived_once().await;

    // The backfill the binary runs with USER_SERVICE_URL: a client-credentials
    // token for the snapshot; the replica is current, so it changes nothing.
    let backfill = BackfillClient {
        user_service: s.users.server.url().parse().unwrap(),
        client_id: "comment-service".to_owned(),
        client_secret: SNAPSHOT_CLIENT_SECRET.to_owned(),
        audience: Some("user-service".to_owned()),
    }
    .backfill(s.idp.issuer())
    .expect("a backfill client");
    let report = s
        .comment_service()
        .storage
        .backfill(&backfill)
        .await
        .expect("the backfill runs with a client-credentials token");
    assert_eq!(
        report.users, 4,
        "expected four users in the snapshot: {report:?}"
    );
    assert_eq!(
        (
            report.applied.inserted,
            report.applied.updated,
            report.applied.ignored
        ),
        (0, 0, 4),
        "expected the version gate to ignore what the events already brought: {report:?}"
    );
    let (comments, _) = eventually(
        "the gateway to reach the restarted comment-service",
        || async {
            let reply = s.graphql(&carol).await;
            if reply.status == 200 && reply.body["errors"].is_null() {
                Ok((reply.body["data"]["comments"].clone(), ()))
            } else {
                Err(format!("{reply:?}"))
            }
        },
    )
    .await;
    assert_eq!(
        gateway_authors(&comments),
        service_authors(&list),
        "expected the gateway to show the restarted service's comments with current names"
    );

    // --- Ada deletes her account: her comments are anonymised.
    let reply = http.delete(&s.users_url("/users/me"), &ada).await;
    assert_eq!(
        reply.status, 204,
        "expected 204 for DELETE /users/me: {reply:?}"
    );
    assert_eq!(
        s.me(&ada).await.status,
        404,
        "expected a deleted account not recreated"
    );
    assert_eq!(http.get(&s.users_url("/users/ada"), &bob).await.status, 404);
    let reply = http.get(&s.users_url("/users?ids=ada,bob"), &bob).await;
    assert_eq!(
        reply.body,
        json!([{ "id": "bob", "display_name": "Robert Stone" }]),
        "expected the batch to leave the deleted user out"
    );
    let list = s
        .comments_until(&carol, "Ada's comments anonymised (author null)", |l| {
            author(l, &c_ada).is_null() && author(l, &c_ada_outage).is_null()
        })
        .await;
    assert_eq!(list.as_array().map(Vec::len), Some(4));
    assert_eq!(
        list[1]["text"], "Analytical engines will compose music.",
        "expected the text kept"
    );
    assert_eq!(
        author(&list, &c_bob),
        &json!({ "id": "bob", "display_name": "Robert Stone" }),
        "expected other authors untouched"
    );
    let (comments, _) = s.gateway_comments(&bob).await;
    assert_eq!(
        gateway_authors(&comments)[&c_ada],
        None,
        "expected the gateway to show Ada's comment without an author"
    );
    let reply = s.post_comment(&ada, "Still here?").await;
    assert_eq!(
        reply.status, 403,
        "expected a deleted account's token refused: {reply:?}"
    );
    let reply = http
        .delete(&s.comments_url(&format!("/comments/{c_ada}")), &ada)
        .await;
    assert_eq!(
        reply.status, 403,
        "expected an anonymised comment undeletable: {reply:?}"
    );
    s.assert_everything_arrived_once().await;

    // --- Shut down.
    let comments = system.comments.take().expect("running");
    comments.stop().await;
    system.gateway.stop().await;
    system.users.stop().await;
}
