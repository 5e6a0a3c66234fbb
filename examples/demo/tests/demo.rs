//! The demo is the newcomer's first run: it must narrate every step and exit 0.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_demo"))
        .args(args)
        .output()
        .expect("demo runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    (
        output.status.success(),
        format!("{stdout}\n--- stderr ---\n{stderr}"),
    )
}

#[test]
fn demo_on_embedded_defaults_behaves_as_narrated() {
    let (ok, out) = run(&[]);
    assert!(ok, "{out}");
    assert!(out.contains("Every step behaved as expected."), "{out}");
    assert!(!out.contains("UNEXPECTED"), "{out}");
    assert!(
        out.contains("by Robert Stone") && out.contains("by (deleted user)"),
        "{out}"
    );
}

#[test]
#[ignore = "needs RabbitMQ and PostgreSQL"]
fn demo_on_rabbitmq_and_postgresql_behaves_as_narrated() {
    let amqp = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let db = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let (ok, out) = run(&["--amqp", &amqp, "--database", &db]);
    assert!(ok, "{out}");
    assert!(out.contains("bus: RabbitMQ; stores: PostgreSQL"), "{out}");
    assert!(out.contains("Every step behaved as expected."), "{out}");
}

#[test]
#[ignore = "needs NATS and PostgreSQL"]
fn demo_on_nats_and_postgresql_behaves_as_narrated() {
    let nats = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let db = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let (ok, out) = run(&["--nats", &nats, "--database", &db]);
    assert!(ok, "{out}");
    assert!(
        out.contains("bus: NATS JetStream; stores: PostgreSQL"),
        "{out}"
    );
    assert!(out.contains("Every step behaved as expected."), "{out}");
}

#[test]
#[ignore = "needs NATS"]
fn demo_on_nats_with_in_memory_stores_behaves_as_narrated() {
    let nats = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let (ok, out) = run(&["--nats", &nats]);
    assert!(ok, "{out}");
    assert!(
        out.contains("bus: NATS JetStream; stores: in memory"),
        "{out}"
    );
    assert!(out.contains("Every step behaved as expected."), "{out}");
}

#[test]
fn one_broker_at_a_time() {
    let (ok, out) = run(&["--amqp", "amqp://x", "--nats", "nats://x"]);
    assert!(!ok);
    assert!(out.contains("one broker at a time"), "{out}");
}

#[test]
fn unknown_arguments_are_refused() {
    let (ok, out) = run(&["--nope"]);
    assert!(!ok);
    assert!(out.contains("unknown argument"), "{out}");
}

/// The lines of the printed trace tree.
fn trace_tree(out: &str) -> Vec<&str> {
    let tree: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.contains("The trace of Bob's rename"))
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("- "))
        .collect();
    assert!(tree.first().is_some_and(|l| l.contains("trace ")), "{out}");
    tree
}

/// The position of the span named `name` (its start) of `service`,
/// asserting the name is indented `depth` levels below the request's.
fn at_depth(tree: &[&str], service: &str, name: &str, depth: usize) -> usize {
    // "- <service padded> <two spaces per level><span name> <duration>"
    let column = |l: &str, text: &str| l.find(text).map(|c| c - l.find("- ").unwrap_or(0));
    let position = tree
        .iter()
        .position(|l| l.contains(&format!("- {service} ")) && l.contains(name))
        .unwrap_or_else(|| panic!("{service} {name:?} not in the trace:\n{}", tree.join("\n")));
    let base = column(tree[1], "PATCH /users/me").expect("the request first");
    assert_eq!(
        column(tree[position], name),
        Some(base + 2 * depth),
        "{name:?} at depth {depth}:\n{}",
        tree.join("\n")
    );
    position
}

#[test]
#[ignore = "needs RabbitMQ and PostgreSQL"]
fn trace_through_the_outbox_and_rabbitmq_is_one_tree() {
    let amqp = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    let db = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let (ok, out) = run(&["--trace", "--database", &db, "--amqp", &amqp]);
    assert!(ok, "{out}");
    let tree = trace_tree(&out);
    // The request, the outbox row written in its transaction, the relay's
    // publish continuing the row's context, the handler in the other service.
    let request = at_depth(&tree, "user-service", "PATCH /users/me", 0);
    let create = at_depth(&tree, "user-service", "create tessera_demo_", 1);
    let publish = at_depth(&tree, "user-service", "publish tessera.demo.", 2);
    let process = at_depth(&tree, "comment-service", "process tessera.demo.", 3);
    assert!(
        request < create && create < publish && publish < process,
        "{}",
        tree.join("\n")
    );
    assert!(tree[create].contains("_users.outbox"), "{}", tree[create]);
}

#[test]
fn trace_prints_the_rename_from_request_to_handler_as_one_tree() {
    let (ok, out) = run(&["--trace"]);
    assert!(ok, "{out}");
    let tree = trace_tree(&out);
    let request = tree
        .iter()
        .position(|l| l.contains("user-service     PATCH /users/me"));
    let publish = tree
        .iter()
        .position(|l| l.contains("user-service       publish tessera.user.profile_updated.v1"));
    let process = tree
        .iter()
        .position(|l| l.contains("comment-service      process tessera.user.profile_updated.v1"));
    assert!(
        matches!((request, publish, process), (Some(a), Some(b), Some(c)) if a < b && b < c),
        "request, its publish, the comment-service's process, nested in that order:\n{out}"
    );
}
