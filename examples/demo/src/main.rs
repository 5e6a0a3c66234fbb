//! Run with `cargo run -p demo` (add `-- --amqp URL` or `-- --nats URL`,
//! `-- --database URL`, `-- --serve`, `-- --trace` as needed).
//!
//! The seed's scenario in one process: an embedded OIDC issuer, the
//! user-service, the comment-service and the GraphQL gateway, on an
//! in-memory bus and in-memory stores by default (no broker, no database).
//! It narrates: two users register just in time and comment; one renames
//! (the comment-service's replica catches up, the gateway shows the new
//! name); one deletes the account (comments anonymised); a service calls
//! another with a client-credentials token; forged and expired tokens are
//! refused. `--amqp URL` (or `--nats URL`, NATS JetStream) and `--database
//! URL` switch to a real broker and PostgreSQL; `--serve` keeps everything
//! running and prints how to explore; `--trace` records every span in memory
//! and prints the trace of the rename as an indented tree (service, span,
//! duration).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod trace;

use serde_json::{Value, json};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_authn::client::ClientCredentials;
use tessera_authn::test_util::{TestClient, TestIssuer};
use tessera_authn::{Algorithm, Issuer, JwtValidator};
use tessera_event_bus::memory::MemoryBus;
use tessera_event_bus::nats::{NatsBus, NatsConfig};
use tessera_event_bus::outbox::{Outbox, OutboxRelay, OutboxRelayHandle, TableName};
use tessera_event_bus::rabbitmq::{RabbitBus, RabbitConfig};
use tessera_event_bus::router::RouterHandle;
use tessera_event_bus::{EventPublisher, Publisher, Subscriber};
use tessera_user_sync::producer::MemoryUserDirectory;
use tessera_user_sync::producer::postgres::PgUserDirectory;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Default)]
struct Options {
    amqp: Option<String>,
    nats: Option<String>,
    database: Option<String>,
    serve: bool,
    trace: bool,
}

const USAGE: &str = "usage: demo [--amqp amqp://... | --nats nats://...] [--database postgres://...] [--serve] [--trace]";

fn options() -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--amqp" => options.amqp = Some(args.next().ok_or("--amqp needs a URL")?),
            "--nats" => options.nats = Some(args.next().ok_or("--nats needs a URL")?),
            "--database" => options.database = Some(args.next().ok_or("--database needs a URL")?),
            "--serve" => options.serve = true,
            "--trace" => options.trace = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    if options.amqp.is_some() && options.nats.is_some() {
        return Err(format!("--amqp and --nats: one broker at a time\n{USAGE}"));
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match options() {
        Ok(o) => o,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// A real broker, closed (and for NATS its streams deleted) at the end.
enum Broker {
    Rabbit(RabbitBus),
    Nats(NatsBus),
}

impl Broker {
    async fn close(self) {
        match self {
            Self::Rabbit(bus) => bus.close().await,
            Self::Nats(bus) => {
                // The demo's streams are its own: remove them with what they hold.
                let js = async_nats::jetstream::new(bus.client().clone());
                let streams = [
                    bus.config().stream_name().to_owned(),
                    bus.config().parking_stream_name(),
                ];
                for stream in streams {
                    let _ = js.delete_stream(&stream).await;
                }
                bus.close().await;
            }
        }
    }
}

/// The running system.
struct System {
    idp: TestIssuer,
    users_url: String,
    comments_url: String,
    gateway_url: String,
    relay: Option<OutboxRelayHandle>,
    consumer: RouterHandle,
    /// With `--database`: the pool and the schemas to drop at the end.
    database: Option<(sqlx::PgPool, [String; 2])>,
    broker: Option<Broker>,
    http: reqwest::Client,
}

async fn serve(router: axum::Router) -> Result<String, Error> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(url)
}

fn validator(idp: &TestIssuer, audience: &str) -> Result<JwtValidator, Error> {
    Ok(JwtValidator::builder()
        .issuer(Issuer::new(idp.issuer()).audience(audience).discovery())
        .build()?)
}

async fn start(options: &Options) -> Result<System, Error> {
    let idp = TestIssuer::start_on("127.0.0.1:0".parse()?, None, "gateway").await?;
    idp.add_client(
        TestClient::new("comment-service", "demo-secret")
            .scopes([comment_service::SNAPSHOT_SCOPE])
            .audiences(["user-service"]),
    );

    let (publisher, subscriber, broker): (Arc<dyn Publisher>, Arc<dyn Subscriber>, Option<Broker>) =
        match (&options.amqp, &options.nats) {
            (_, Some(url)) => {
                let id = std::process::id();
                let bus = NatsBus::connect(
                    NatsConfig::new(url)
                        // Our own streams and subjects: a service or another demo
                        // on this server keeps its own.
                        .stream(format!("TESSERA_DEMO_{id}"))
                        .subject_prefix(format!("tessera.demo.{id}"))
                        .parking_stream(format!("TESSERA_DEMO_{id}_PARKING"))
                        .parking_prefix(format!("tessera.demo-parking.{id}"))
                        .consumer_prefix(format!("tessera-demo-{id}-"))
                        .connection_name("tessera-demo")
                        .max_age(Duration::from_secs(3600)),
                )
                .await?;
                (
                    Arc::new(bus.publisher()),
                    Arc::new(bus.subscriber()),
                    Some(Broker::Nats(bus)),
                )
            }
            (Some(url), None) => {
                let bus = RabbitBus::connect(
                    RabbitConfig::new(url)
                        .exchange(format!("tessera.demo.{}", std::process::id()))
                        // Our own copy of the comment-service group's queue: a
                        // service or another demo on this vhost keeps its own.
                        .queue_prefix(format!("tessera-demo-{}.", std::process::id()))
                        .connection_name("tessera-demo")
                        .temporary_topology(Duration::from_secs(60)),
                )
                .await?;
                (
                    Arc::new(bus.publisher()),
                    Arc::new(bus.subscriber()),
                    Some(Broker::Rabbit(bus)),
                )
            }
            (None, None) => {
                let bus = MemoryBus::new();
                (Arc::new(bus.publisher()), Arc::new(bus.subscriber()), None)
            }
        };
    let pool = match &options.database {
        Some(url) => Some(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(10)
                .connect(url)
                .await?,
        ),
        None => None,
    };
    let schema = format!("tessera_demo_{}", std::process::id());

    // The comment-service binds its queue first: publishing is mandatory.
    let storage = match &pool {
        Some(pool) => {
            comment_service::Storage::postgres(pool.clone(), &format!("{schema}_comments")).await?
        }
        None => comment_service::Storage::in_memory(),
    };
    let consumer = storage.consumer(subscriber).start().await?;

    let (users, relay) = match &pool {
        Some(pool) => {
            let outbox = Outbox::new(TableName::new(format!("{schema}_users"), "outbox")?);
            outbox.migrate(pool).await?;
            let directory = PgUserDirectory::new(
                pool.clone(),
                TableName::new(format!("{schema}_users"), "users")?,
                outbox.clone(),
                "/user-service",
            );
            directory.migrate().await?;
            let relay = OutboxRelay::new(&outbox, pool.clone(), Arc::clone(&publisher))
                .start()
                .await?;
            (user_service::Users::new(directory), Some(relay))
        }
        None => (
            user_service::Users::new(MemoryUserDirectory::new(EventPublisher::new(
                publisher,
                "/user-service",
            ))),
            None,
        ),
    };

    let users_url = serve(user_service::app(validator(&idp, "user-service")?, users)).await?;
    let comments_url = serve(comment_service::app(
        validator(&idp, "comment-service")?,
        storage,
    ))
    .await?;
    let gateway_url = serve(gateway::app(
        validator(&idp, "gateway")?,
        gateway::Downstream::new(users_url.parse()?, comments_url.parse()?),
    ))
    .await?;
    Ok(System {
        idp,
        users_url,
        comments_url,
        gateway_url,
        relay,
        consumer,
        database: pool.map(|pool| {
            (
                pool,
                [format!("{schema}_comments"), format!("{schema}_users")],
            )
        }),
        broker,
        http: reqwest::Client::new(),
    })
}

impl System {
    /// A user's access token: valid at the gateway and both services.
    fn user_token(&self, sub: &str, name: &str) -> String {
        self.idp
            .token()
            .subject(sub)
            .claim("name", name)
            .claim("preferred_username", sub)
            .audience(json!(["gateway", "user-service", "comment-service"]))
            .claim("scope", "comments:write")
            .sign()
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value), Error> {
        let mut req = self.http.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let text = res.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    async fn comments(&self, token: &str) -> Result<Value, Error> {
        Ok(self
            .call(
                reqwest::Method::GET,
                &format!("{}/posts/p1/comments", self.comments_url),
                Some(token),
                None,
            )
            .await?
            .1)
    }

    async fn gateway(&self, token: &str) -> Result<Value, Error> {
        let query =
            json!({"query": "{ comments(postId: \"p1\") { text author { id displayName } } }"});
        Ok(self
            .call(
                reqwest::Method::POST,
                &format!("{}/graphql", self.gateway_url),
                Some(token),
                Some(query),
            )
            .await?
            .1)
    }

    /// Polls the comment-service until `done` holds for its comments (the
    /// replica is eventually consistent), or gives up after 10 s.
    async fn until(
        &self,
        token: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Result<(Value, Duration), Error> {
        let started = Instant::now();
        loop {
            let comments = self.comments(token).await?;
            if done(&comments) || started.elapsed() > Duration::from_secs(10) {
                return Ok((comments, started.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn authors(comments: &Value) -> Vec<String> {
    comments
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| match &c["author"] {
                    Value::Null => {
                        format!("{:?} by (deleted user)", c["text"].as_str().unwrap_or(""))
                    }
                    a => format!(
                        "{:?} by {}",
                        c["text"].as_str().unwrap_or(""),
                        a["display_name"]
                            .as_str()
                            .or(a["displayName"].as_str())
                            .unwrap_or("(name not known yet)")
                    ),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn gateway_authors(response: &Value) -> Vec<String> {
    authors(&response["data"]["comments"])
}

struct Narrator {
    ok: bool,
}

impl Narrator {
    fn act(title: &str) {
        println!("\n== {title}");
    }
    fn say(line: &str) {
        println!("   {line}");
    }
    fn list(lines: &[String]) {
        for l in lines {
            println!("     - {l}");
        }
    }
    fn check(&mut self, what: &str, ok: bool) {
        println!("   {} {what}", if ok { "ok:" } else { "UNEXPECTED:" });
        self.ok &= ok;
    }
}

async fn run(options: Options) -> Result<bool, Error> {
    let recorder = options.trace.then(trace::Recorder::install);
    println!("Tessera demo: users, comments and a gateway, kept consistent by events\n");
    let system = start(&options).await?;
    let mut n = Narrator { ok: true };
    println!("   identity provider  {}", system.idp.issuer());
    println!("   user-service       {}", system.users_url);
    println!("   comment-service    {}", system.comments_url);
    println!("   gateway (GraphQL)  {}/graphql", system.gateway_url);
    println!(
        "   bus: {}; stores: {}",
        match (&options.amqp, &options.nats) {
            (_, Some(_)) => "NATS JetStream",
            (Some(_), None) => "RabbitMQ",
            (None, None) => "in memory",
        },
        options
            .database
            .as_deref()
            .map_or("in memory".to_owned(), |_| {
                "PostgreSQL (users through the outbox)".to_owned()
            }),
    );

    let ada = system.user_token("ada", "Ada Lovelace");
    let bob = system.user_token("bob", "Bob Stone");

    Narrator::act("1. Ada and Bob sign in: the user-service creates their profiles just in time");
    for (token, who) in [(&ada, "ada"), (&bob, "bob")] {
        let (status, me) = system
            .call(
                reqwest::Method::GET,
                &format!("{}/users/me", system.users_url),
                Some(token),
                None,
            )
            .await?;
        Narrator::say(&format!("GET /users/me as {who} -> {status} {me}"));
        n.check(
            "profile created at version 1, tessera.user.registered.v1 emitted",
            status == 200 && me["version"] == 1,
        );
    }

    Narrator::act("2. Both comment on post p1 at the comment-service");
    for (token, text) in [
        (&ada, "Analytical engines will compose music."),
        (&bob, "Only if someone writes the program."),
        (&ada, "Then I will."),
    ] {
        let (status, comment) = system
            .call(
                reqwest::Method::POST,
                &format!("{}/posts/p1/comments", system.comments_url),
                Some(token),
                Some(json!({"text": text})),
            )
            .await?;
        n.check(
            &format!(
                "POST /posts/p1/comments -> {status}, author {}",
                comment["author"]
            ),
            status == 201,
        );
    }
    let (comments, waited) = system
        .until(&ada, |c| {
            authors(c).iter().all(|a| !a.contains("not known"))
        })
        .await?;
    Narrator::say(&format!(
        "GET /posts/p1/comments (names from the local replica, caught up in {waited:.0?}):"
    ));
    Narrator::list(&authors(&comments));

    Narrator::act("3. The gateway answers \"comments with usernames\" in one GraphQL query");
    let response = system.gateway(&bob).await?;
    Narrator::list(&gateway_authors(&response));
    n.check(
        "names resolved through one batched user-service call",
        response["errors"].is_null(),
    );

    Narrator::act("4. Bob renames himself");
    let (status, me) = system
        .call(
            reqwest::Method::PATCH,
            &format!("{}/users/me", system.users_url),
            Some(&bob),
            Some(json!({"display_name": "Robert Stone"})),
        )
        .await?;
    Narrator::say(&format!("PATCH /users/me -> {status} {me}"));
    let (comments, waited) = system
        .until(&ada, |c| {
            authors(c).iter().any(|a| a.contains("Robert Stone"))
        })
        .await?;
    Narrator::say(&format!(
        "the comment-service's replica caught up after {waited:.0?}:"
    ));
    Narrator::list(&authors(&comments));
    n.check(
        "replica shows the new name",
        authors(&comments)
            .iter()
            .any(|a| a.contains("Robert Stone")),
    );
    let response = system.gateway(&ada).await?;
    n.check(
        "gateway shows the new name",
        gateway_authors(&response)
            .iter()
            .any(|a| a.contains("Robert Stone")),
    );
    let (status, _) = system
        .call(
            reqwest::Method::PATCH,
            &format!("{}/users/me", system.users_url),
            Some(&bob),
            Some(json!({"display_name": "\u{7}"})),
        )
        .await?;
    n.check(
        &format!("an invalid display name is refused ({status})"),
        status == 422,
    );

    Narrator::act("5. Ada deletes her account");
    let (status, _) = system
        .call(
            reqwest::Method::DELETE,
            &format!("{}/users/me", system.users_url),
            Some(&ada),
            None,
        )
        .await?;
    Narrator::say(&format!(
        "DELETE /users/me -> {status}; tessera.user.deleted.v1 emitted"
    ));
    let (comments, waited) = system
        .until(&bob, |c| {
            c.as_array()
                .is_some_and(|l| l.iter().filter(|c| c["author"].is_null()).count() == 2)
        })
        .await?;
    Narrator::say(&format!(
        "the comment-service anonymised her comments after {waited:.0?}:"
    ));
    Narrator::list(&authors(&comments));
    n.check(
        "Ada's comments have no author any more",
        comments
            .as_array()
            .is_some_and(|l| l.iter().filter(|c| c["author"].is_null()).count() == 2),
    );
    let response = system.gateway(&bob).await?;
    n.check(
        "the gateway shows them anonymised too",
        response["data"]["comments"]
            .as_array()
            .is_some_and(|l| l.iter().filter(|c| c["author"].is_null()).count() == 2),
    );

    Narrator::act("6. A service calls another with a client-credentials token");
    let credentials = ClientCredentials::builder("comment-service", "demo-secret")
        .discovery(system.idp.issuer())
        .audience("user-service")
        .scope(comment_service::SNAPSHOT_SCOPE)
        .build()?;
    let token = credentials.token().await?;
    let (status, page) = system
        .call(
            reqwest::Method::GET,
            &format!("{}/users?limit=10", system.users_url),
            Some(token.secret()),
            None,
        )
        .await?;
    Narrator::say(&format!(
        "comment-service -> GET /users?limit=10 (scope users:snapshot) -> {status}: {} users",
        page["users"].as_array().map_or(0, Vec::len)
    ));
    n.check(
        "the snapshot for replica backfill is served to the service",
        status == 200,
    );
    let (status, _) = system
        .call(
            reqwest::Method::GET,
            &format!("{}/users?limit=10", system.users_url),
            Some(&bob),
            None,
        )
        .await?;
    n.check(
        &format!("a user's token may not read the snapshot ({status})"),
        status == 403,
    );

    Narrator::act("7. Forged and expired tokens are refused everywhere");
    let other_idp = TestIssuer::start().await?;
    let forged = other_idp
        .token()
        .claim("iss", system.idp.issuer())
        .subject("bob")
        .audience(json!(["gateway", "user-service", "comment-service"]))
        .sign();
    let expired = system
        .idp
        .token()
        .subject("bob")
        .audience("user-service")
        .expires_in_secs(-3600)
        .sign();
    let none_alg = {
        let mut parts: Vec<String> = system
            .user_token("bob", "Bob")
            .split('.')
            .map(str::to_owned)
            .collect();
        parts[0] = "eyJhbGciOiJub25lIn0".to_owned(); // {"alg":"none"}
        parts[2] = "c2ln".to_owned();
        parts.join(".")
    };
    let wrong_audience = system
        .idp
        .token()
        .subject("bob")
        .audience("billing-api")
        .sign();
    let wrong_alg = system
        .idp
        .token()
        .alg(Algorithm::ES256)
        .subject("bob")
        .audience("user-service")
        .sign();
    for (what, token) in [
        ("signed by another issuer's key", &forged),
        ("expired an hour ago", &expired),
        ("alg none", &none_alg),
        (
            "minted for another API (audience billing-api)",
            &wrong_audience,
        ),
        ("signed with an unpublished key", &wrong_alg),
    ] {
        let (status, body) = system
            .call(
                reqwest::Method::GET,
                &format!("{}/users/me", system.users_url),
                Some(token),
                None,
            )
            .await?;
        n.check(
            &format!(
                "{what}: {status} {}",
                body["error_description"].as_str().unwrap_or("")
            ),
            status == 401,
        );
    }

    if options.serve {
        // A token for exploring by hand: valid for eight hours.
        let token = system
            .idp
            .token()
            .subject("bob")
            .claim("name", "Robert Stone")
            .audience(json!(["gateway", "user-service", "comment-service"]))
            .claim("scope", "comments:write")
            .expires_in_secs(8 * 3600)
            .sign();
        println!("\nEverything keeps running. Try (Ctrl-C to stop):\n");
        println!("  TOKEN={token}");
        println!(
            "  curl -H \"Authorization: Bearer $TOKEN\" {}/users/me",
            system.users_url
        );
        println!(
            "  curl -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' -d '{{\"text\":\"hello\"}}' {}/posts/p1/comments",
            system.comments_url
        );
        println!(
            "  curl -H \"Authorization: Bearer $TOKEN\" {}/posts/p1/comments",
            system.comments_url
        );
        println!(
            "  curl -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' -d '{{\"query\":\"{{ comments(postId: \\\"p1\\\") {{ text author {{ displayName }} }} }}\"}}' {}/graphql",
            system.gateway_url
        );
        let _ = tokio::signal::ctrl_c().await;
    }

    if let Some(relay) = system.relay {
        relay.shutdown().await?;
    }
    system.consumer.shutdown().await?;
    if let Some((pool, schemas)) = system.database {
        for schema in schemas {
            sqlx::query(&format!(r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#))
                .execute(&pool)
                .await?;
        }
    }
    if let Some(broker) = system.broker {
        broker.close().await;
    }
    if let Some(recorder) = recorder {
        Narrator::act("The trace of Bob's rename: request, event, handler");
        Narrator::list(&recorder.tree_of("PATCH /users/me")?);
    }
    println!(
        "\n{}",
        if n.ok {
            "Every step behaved as expected."
        } else {
            "Some steps did not behave as expected."
        }
    );
    Ok(n.ok)
}
