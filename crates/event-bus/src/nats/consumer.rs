//! A consumer group's durable pull consumers on the event stream: one per
//! event type it is bound to (JetStream before 2.10 filters a consumer on one
//! subject) and one for its replayed dead letters, all named after the group,
//! found again by their description, and created again when lost.

use async_nats::jetstream::{
    self, ErrorCode,
    consumer::Consumer,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, ReplayPolicy, pull},
    context::{ConsumerInfoErrorKind, GetStreamErrorKind},
};
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};

use super::{config::NatsConfig, stream::connection_error, wire};
use crate::error::BusError;

/// How a consumer of the group is known: its durable name and filter subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ConsumerId {
    pub(super) name: String,
    pub(super) filter: String,
}

/// The description that marks a consumer as one of the group's.
pub(super) fn group_marker(config: &NatsConfig, group: &str) -> String {
    format!("tessera group {}{group}", config.consumer_prefix)
}

/// A durable name for the group's consumer of `filter`: the group's name
/// made safe (letters, digits, `-`, `_`), then a hash of group and filter,
/// so that names never collide and stay short.
pub(super) fn consumer_name(config: &NatsConfig, group: &str, filter: &str) -> String {
    let readable: String = format!("{}{group}", config.consumer_prefix)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(48)
        .collect();
    let mut hash = Sha256::new();
    hash.update(config.consumer_prefix.as_bytes());
    hash.update([0]);
    hash.update(group.as_bytes());
    hash.update([0]);
    hash.update(filter.as_bytes());
    let digest = hash.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{readable}_{hex}")
}

/// The group's consumers a subscription to `event_types` needs: one per type, and the replay one.
pub(super) fn wanted(
    config: &NatsConfig,
    group: &str,
    event_types: &[String],
) -> Result<Vec<ConsumerId>, BusError> {
    wire::check_subject_tail(group, "the group name")
        .map_err(|e| BusError::InvalidSubscription(e.to_string()))?;
    let mut ids = Vec::with_capacity(event_types.len() + 1);
    for ty in event_types {
        let filter = wire::event_subject(&config.subject_prefix, ty)
            .map_err(|e| BusError::InvalidSubscription(e.to_string()))?;
        ids.push(ConsumerId {
            name: consumer_name(config, group, &filter),
            filter,
        });
    }
    let replay = wire::replay_subject(&config.subject_prefix, group);
    ids.push(ConsumerId {
        name: consumer_name(config, group, &replay),
        filter: replay,
    });
    Ok(ids)
}

/// The consumer's settings; `deliver` is `New` for a group bound now.
pub(super) fn consumer_config(
    config: &NatsConfig,
    group: &str,
    id: &ConsumerId,
    prefetch: u16,
    deliver: DeliverPolicy,
) -> pull::Config {
    pull::Config {
        durable_name: Some(id.name.clone()),
        description: Some(group_marker(config, group)),
        deliver_policy: deliver,
        ack_policy: AckPolicy::Explicit,
        ack_wait: config.ack_wait,
        // Unlimited on the server, which would stop delivering silently;
        // the subscriber parks what goes over `NatsConfig::max_deliver`.
        max_deliver: -1,
        filter_subject: id.filter.clone(),
        replay_policy: ReplayPolicy::Instant,
        max_ack_pending: if prefetch == 0 {
            -1
        } else {
            i64::from(prefetch)
        },
        ..pull::Config::default()
    }
}

/// The event stream, or `None` when it does not exist.
pub(super) async fn event_stream(
    js: &jetstream::Context,
    config: &NatsConfig,
) -> Result<Option<jetstream::stream::Stream>, BusError> {
    match js.get_stream(&config.stream).await {
        Ok(stream) => Ok(Some(stream)),
        Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(ref j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND) => {
            Ok(None)
        }
        Err(e) => Err(connection_error(e)),
    }
}

/// The consumer if it exists.
pub(super) async fn get(
    js: &jetstream::Context,
    stream: &jetstream::stream::Stream,
    name: &str,
) -> Result<Option<PullConsumer>, BusError> {
    match stream.consumer_info(name).await {
        Ok(info) => Ok(Some(Consumer::new(
            pull::Config {
                durable_name: info.config.durable_name.clone(),
                ..pull::Config::default()
            },
            info,
            js.clone(),
        ))),
        Err(e) if matches!(e.kind(), ConsumerInfoErrorKind::NotFound) => Ok(None),
        Err(e) if matches!(e.kind(), ConsumerInfoErrorKind::JetStream(ref j) if j.error_code() == ErrorCode::CONSUMER_NOT_FOUND) => {
            Ok(None)
        }
        Err(e) => Err(connection_error(e)),
    }
}

/// Creates the consumer (the same settings as an existing one are fine).
pub(super) async fn create(
    stream: &jetstream::stream::Stream,
    settings: pull::Config,
) -> Result<PullConsumer, BusError> {
    stream
        .create_consumer(settings)
        .await
        .map_err(|e| BusError::InvalidSubscription(format!("the server refused the consumer: {e}")))
}

/// The names and filters of every consumer the group has on the stream
/// (bound by any member, now or before).
pub(super) async fn of_group(
    stream: &jetstream::stream::Stream,
    config: &NatsConfig,
    group: &str,
) -> Result<Vec<ConsumerId>, BusError> {
    let marker = group_marker(config, group);
    let infos: Vec<_> = stream
        .consumers()
        .try_collect()
        .await
        .map_err(connection_error)?;
    Ok(infos
        .into_iter()
        .filter(|info| info.config.description.as_deref() == Some(marker.as_str()))
        .map(|info| ConsumerId {
            name: info.name,
            filter: info.config.filter_subject,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_distinct_and_stable() {
        let config = NatsConfig::new("nats://x");
        let a = consumer_name(&config, "comment service.v2", "tessera.events.a");
        let b = consumer_name(&config, "comment service.v2", "tessera.events.b");
        assert_ne!(a, b);
        assert!(a.starts_with("comment_service_v2_"), "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
        assert_eq!(
            a,
            consumer_name(&config, "comment service.v2", "tessera.events.a")
        );
        let prefixed = NatsConfig::new("nats://x").consumer_prefix("test-");
        assert_ne!(
            a,
            consumer_name(&prefixed, "comment service.v2", "tessera.events.a")
        );
        assert!(consumer_name(&config, &"g".repeat(500), "s").len() < 70);
    }

    #[test]
    fn a_group_gets_one_consumer_per_type_and_a_replay_consumer() {
        let config = NatsConfig::new("nats://x");
        let ids = wanted(&config, "billing", &["a.v1".to_owned(), "b.v1".to_owned()]).unwrap();
        let filters: Vec<_> = ids.iter().map(|i| i.filter.as_str()).collect();
        assert_eq!(
            filters,
            [
                "tessera.events.a.v1",
                "tessera.events.b.v1",
                "tessera.events.$replay.billing"
            ]
        );
        assert!(matches!(
            wanted(&config, "bad group", &["a".to_owned()]),
            Err(BusError::InvalidSubscription(_))
        ));
        assert!(matches!(
            wanted(&config, "g", &["a.*".to_owned()]),
            Err(BusError::InvalidSubscription(_))
        ));
    }
}
