//! The binary's configuration and startup errors, as a process.

use std::process::{Command, Output};
use std::time::Duration;

fn run(vars: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_comment-service"));
    for name in [
        "AUTHN_ISSUER",
        "AUTHN_AUDIENCE",
        "AMQP_URL",
        "AMQP_EXCHANGE",
        "AMQP_QUEUE_PREFIX",
        "NATS_URL",
        "DATABASE_URL",
        "DATABASE_SCHEMA",
        "USER_SERVICE_URL",
        "COMMENT_SERVICE_CLIENT_ID",
        "COMMENT_SERVICE_CLIENT_SECRET",
        "BIND",
    ] {
        cmd.env_remove(name);
    }
    cmd.env("RUST_LOG", "info").envs(vars.iter().copied());
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Each case must end on its own, quickly; never hang the suite.
    for _ in 0..300 {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    panic!(
        "comment-service did not exit: {:?}",
        child.wait_with_output()
    );
}

#[test]
fn configuration_errors_exit_2_and_say_what_is_missing() {
    let issuer = ("AUTHN_ISSUER", "http://127.0.0.1:1");
    let audience = ("AUTHN_AUDIENCE", "comments");
    let amqp = ("AMQP_URL", "amqp://127.0.0.1:1");
    for (vars, needle) in [
        (vec![audience, amqp], "AUTHN_ISSUER"),
        (vec![issuer, amqp], "AUTHN_AUDIENCE"),
        (vec![issuer, audience], "AMQP_URL"),
        (vec![issuer, audience, amqp, ("BIND", "nowhere")], "BIND"),
        (
            vec![
                issuer,
                audience,
                amqp,
                ("USER_SERVICE_URL", "http://127.0.0.1:3001"),
            ],
            "COMMENT_SERVICE_CLIENT_ID",
        ),
    ] {
        let out = run(&vars);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{needle}: {stderr}");
        assert!(stderr.contains(needle), "{needle}: {stderr}");
        assert!(stderr.contains("configuration error"), "{stderr}");
        assert!(out.stdout.is_empty(), "logs go to stderr");
    }
}

#[test]
fn an_unreachable_broker_is_a_startup_error() {
    let out = run(&[
        ("AUTHN_ISSUER", "http://127.0.0.1:1"),
        ("AUTHN_AUDIENCE", "comments"),
        ("AMQP_URL", "amqp://127.0.0.1:1"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("AMQP_URL"), "{stderr}");
}
