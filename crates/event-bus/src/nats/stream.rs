//! The streams: the event stream (every event, under the subject prefix) and
//! the parking stream (dead letters, one subject per group), created when
//! missing and checked when present, so that an incompatible stream is a
//! clear error at start rather than surprises later.

use std::time::Duration;

use async_nats::jetstream::{
    self, ErrorCode,
    context::{CreateStreamErrorKind, GetStreamErrorKind},
    stream::{Config, DiscardPolicy, RetentionPolicy, StorageType},
};

use super::{
    config::{NatsConfig, Retention},
    wire,
};
use crate::error::BusError;

/// The event stream as configured.
pub(super) fn event_stream(config: &NatsConfig) -> Config {
    Config {
        name: config.stream.clone(),
        subjects: config.effective_stream_subjects(),
        retention: match config.retention {
            Retention::Limits => RetentionPolicy::Limits,
            Retention::Interest => RetentionPolicy::Interest,
        },
        num_replicas: config.replicas,
        duplicate_window: config.duplicate_window,
        max_age: config.max_age.unwrap_or(Duration::ZERO),
        storage: StorageType::File,
        discard: DiscardPolicy::Old,
        description: Some("tessera events".to_owned()),
        ..Config::default()
    }
}

/// The parking stream as configured: every group's parking subject, kept until removed.
pub(super) fn parking_stream(config: &NatsConfig) -> Config {
    Config {
        name: config.parking_stream_name(),
        subjects: vec![format!("{}.>", config.parking_prefix)],
        retention: RetentionPolicy::Limits,
        num_replicas: config.replicas,
        storage: StorageType::File,
        discard: DiscardPolicy::Old,
        description: Some("tessera dead letters".to_owned()),
        ..Config::default()
    }
}

/// Creates both streams, or checks the existing ones against the configuration.
pub(super) async fn ensure(js: &jetstream::Context, config: &NatsConfig) -> Result<(), BusError> {
    wire::check_subject_tail(&config.subject_prefix, "the subject prefix")?;
    wire::check_subject_tail(&config.parking_prefix, "the parking prefix")?;
    ensure_one(js, event_stream(config), &config.subject_prefix).await?;
    ensure_one(js, parking_stream(config), &config.parking_prefix).await
}

/// Creates the stream, or checks an existing one; a concurrent creator is fine.
pub(super) async fn ensure_one(
    js: &jetstream::Context,
    wanted: Config,
    prefix: &str,
) -> Result<(), BusError> {
    if !wanted
        .subjects
        .iter()
        .any(|s| s == &format!("{prefix}.>") || s == ">")
    {
        return Err(BusError::StreamMismatch {
            stream: wanted.name.clone(),
            mismatch: format!(
                "the configured subjects {:?} do not cover `{prefix}.>`",
                wanted.subjects
            ),
        });
    }
    for _ in 0..2 {
        match js.get_stream(&wanted.name).await {
            Ok(mut stream) => {
                let info = stream.info().await.map_err(connection_error)?;
                return check(&wanted, &info.config);
            }
            Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(ref j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
                {}
            Err(e) => return Err(connection_error(e)),
        }
        match js.create_stream(wanted.clone()).await {
            Ok(_) => {
                tracing::info!(stream = %wanted.name, subjects = ?wanted.subjects, "stream created");
                return Ok(());
            }
            // Someone else created it meanwhile: check theirs.
            Err(e) if matches!(e.kind(), CreateStreamErrorKind::JetStream(ref j) if j.error_code() == ErrorCode::STREAM_NAME_EXIST) =>
                {}
            Err(e) => {
                return Err(BusError::StreamMismatch {
                    stream: wanted.name.clone(),
                    mismatch: format!("the server refused to create it: {e}"),
                });
            }
        }
    }
    Err(BusError::Connection(
        format!("stream `{}` keeps appearing and disappearing", wanted.name).into(),
    ))
}

/// What differs between the configured stream and the one on the server
/// in ways that break Tessera's promises.
fn check(wanted: &Config, found: &Config) -> Result<(), BusError> {
    let mut problems = Vec::new();
    for subject in &wanted.subjects {
        if !found.subjects.iter().any(|s| covers(s, subject)) {
            problems.push(format!(
                "it does not capture `{subject}` (its subjects are {:?})",
                found.subjects
            ));
        }
    }
    if found.retention != wanted.retention {
        problems.push(format!(
            "its retention is {:?}, configured {:?}",
            found.retention, wanted.retention
        ));
    }
    if found.num_replicas != wanted.num_replicas {
        problems.push(format!(
            "it has {} replicas, configured {}",
            found.num_replicas, wanted.num_replicas
        ));
    }
    if !wanted.duplicate_window.is_zero() && found.duplicate_window < wanted.duplicate_window {
        problems.push(format!(
            "its duplicate window is {:?}, configured {:?}",
            found.duplicate_window, wanted.duplicate_window
        ));
    }
    if found.sealed || found.deny_delete {
        problems.push("it is sealed or denies deletes".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(BusError::StreamMismatch {
            stream: wanted.name.clone(),
            mismatch: problems.join("; "),
        })
    }
}

/// Whether the stream subject `pattern` captures every subject `wanted` does.
fn covers(pattern: &str, wanted: &str) -> bool {
    let (mut p, mut w) = (pattern.split('.'), wanted.split('.'));
    loop {
        match (p.next(), w.next()) {
            (Some(">"), Some(_)) => return true,
            (Some(a), Some(b)) if a == b || (a == "*" && b != ">") => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

pub(super) fn connection_error(e: impl std::error::Error + Send + Sync + 'static) -> BusError {
    BusError::Connection(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_patterns_cover_what_they_should() {
        assert!(covers("tessera.events.>", "tessera.events.>"));
        assert!(covers(">", "tessera.events.>"));
        assert!(covers("tessera.*.>", "tessera.events.>"));
        assert!(!covers("tessera.events.*", "tessera.events.>"));
        assert!(!covers("other.>", "tessera.events.>"));
        assert!(!covers("tessera.events", "tessera.events.>"));
    }

    #[test]
    fn an_incompatible_stream_is_described() {
        let config = NatsConfig::new("nats://x").stream("S");
        let wanted = event_stream(&config);
        assert!(check(&wanted, &wanted).is_ok());
        let mut found = wanted.clone();
        found.subjects = vec!["elsewhere.>".to_owned()];
        found.retention = RetentionPolicy::WorkQueue;
        found.duplicate_window = Duration::from_secs(1);
        let err = check(&wanted, &found).unwrap_err().to_string();
        assert!(err.contains("stream `S`"), "{err}");
        assert!(err.contains("does not capture `tessera.events.>`"), "{err}");
        assert!(err.contains("retention is WorkQueue"), "{err}");
        assert!(err.contains("duplicate window is 1s"), "{err}");
    }
}
