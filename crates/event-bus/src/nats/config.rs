//! [`NatsConfig`]: everything a user sets for a [`NatsBus`](super::NatsBus)
//! (server URLs, subject prefix, the stream, consumer settings, timeouts,
//! reconnect backoff), and its `Debug`, which never shows a password or token.

use std::{fmt, time::Duration};

/// The default subject prefix: events go to `tessera.events.<type>`.
pub const DEFAULT_SUBJECT_PREFIX: &str = "tessera.events";

/// The default stream name.
pub const DEFAULT_STREAM: &str = "TESSERA_EVENTS";

/// The default server URL when `NATS_URL` is not set.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// How the event stream keeps messages (JetStream's retention policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retention {
    /// Kept until the stream's limits (age, size, count) remove them, whatever
    /// consumers acked: a group bound later, or a replay by sequence, can still
    /// read them. The default.
    Limits,
    /// Kept while a consumer (a group) has not acked them; removed once every
    /// consumer interested in the subject has. Events of a type no group is
    /// bound to are not kept.
    Interest,
}

/// Settings of a [`NatsBus`](super::NatsBus).
#[derive(Clone)]
#[must_use]
pub struct NatsConfig {
    pub(crate) urls: Vec<String>,
    pub(crate) subject_prefix: String,
    pub(crate) stream: String,
    pub(crate) stream_subjects: Option<Vec<String>>,
    pub(crate) retention: Retention,
    pub(crate) replicas: usize,
    pub(crate) duplicate_window: Duration,
    pub(crate) max_age: Option<Duration>,
    pub(crate) parking_stream: Option<String>,
    pub(crate) parking_prefix: String,
    pub(crate) consumer_prefix: String,
    pub(crate) ack_wait: Duration,
    pub(crate) max_deliver: u32,
    pub(crate) publish_window: usize,
    pub(crate) publish_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) reconnect_min_delay: Duration,
    pub(crate) reconnect_max_delay: Duration,
    pub(crate) connection_name: Option<String>,
    pub(crate) ignore_discovered_servers: bool,
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConfig")
            .field(
                "urls",
                &self.urls.iter().map(|u| redact(u)).collect::<Vec<_>>(),
            )
            .field("subject_prefix", &self.subject_prefix)
            .field("stream", &self.stream)
            .field("stream_subjects", &self.effective_stream_subjects())
            .field("retention", &self.retention)
            .field("replicas", &self.replicas)
            .field("duplicate_window", &self.duplicate_window)
            .field("max_age", &self.max_age)
            .field("parking_stream", &self.parking_stream_name())
            .field("parking_prefix", &self.parking_prefix)
            .field("consumer_prefix", &self.consumer_prefix)
            .field("ack_wait", &self.ack_wait)
            .field("max_deliver", &self.max_deliver)
            .field("publish_window", &self.publish_window)
            .field("publish_timeout", &self.publish_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reconnect_min_delay", &self.reconnect_min_delay)
            .field("reconnect_max_delay", &self.reconnect_max_delay)
            .field("connection_name", &self.connection_name)
            .finish_non_exhaustive()
    }
}

/// The URL without its password or token (`nats://user:***@host`, `nats://***@host`).
pub(crate) fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    let prefix = if scheme.is_empty() {
        String::new()
    } else {
        format!("{scheme}://")
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{prefix}{user}:***@{host}"),
        None => format!("{prefix}***@{host}"),
    }
}

impl NatsConfig {
    /// Settings for the server at `url` (`nats://host:4222`, with
    /// `user:password@` or `token@` when the server wants them), or for the
    /// servers of a cluster as a comma-separated list; the client moves
    /// between them on failure.
    pub fn new(url: impl Into<String>) -> Self {
        let url = url.into();
        Self {
            urls: url
                .split(',')
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty())
                .collect(),
            subject_prefix: DEFAULT_SUBJECT_PREFIX.to_owned(),
            stream: DEFAULT_STREAM.to_owned(),
            stream_subjects: None,
            retention: Retention::Limits,
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_age: None,
            parking_stream: None,
            parking_prefix: "tessera.parking".to_owned(),
            consumer_prefix: String::new(),
            ack_wait: Duration::from_secs(30),
            max_deliver: 20,
            publish_window: 1024,
            publish_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            reconnect_min_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(10),
            connection_name: None,
            ignore_discovered_servers: false,
        }
    }

    /// Settings for `NATS_URL`, or [`DEFAULT_URL`] when it is not set.
    pub fn from_env() -> Self {
        Self::new(std::env::var("NATS_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned()))
    }

    /// The subject prefix: an event of type `t` is published to `<prefix>.t`
    /// (default [`DEFAULT_SUBJECT_PREFIX`]).
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.subject_prefix = prefix.into();
        self
    }

    /// The event stream's name (default [`DEFAULT_STREAM`]).
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = name.into();
        self
    }

    /// The subjects the event stream captures (default `<prefix>.>`). They
    /// must cover `<prefix>.>`: every event type and the groups' replay
    /// subjects live under the prefix.
    pub fn stream_subjects<I, S>(mut self, subjects: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.stream_subjects = Some(subjects.into_iter().map(Into::into).collect());
        self
    }

    /// How the stream keeps messages (default [`Retention::Limits`]).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// How many servers of a cluster keep each stream (default 1).
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.replicas = replicas;
        self
    }

    /// How long the stream remembers event ids (`Nats-Msg-Id`) to drop a
    /// republished event (default 2 minutes).
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// How long the stream keeps events at most (default: no age limit).
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// The parking stream's name (default `<stream>_PARKING`).
    pub fn parking_stream(mut self, name: impl Into<String>) -> Self {
        self.parking_stream = Some(name.into());
        self
    }

    /// The parking subjects' prefix: a group's dead letters go to
    /// `<prefix>.<group>` (default `tessera.parking`).
    pub fn parking_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.parking_prefix = prefix.into();
        self
    }

    /// A prefix for every consumer name, so that two environments sharing a
    /// stream keep separate copies of the same group (default none).
    pub fn consumer_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.consumer_prefix = prefix.into();
        self
    }

    /// How long the server waits for a delivery's ack before delivering it
    /// again (default 30 s). Deliveries still being handled are kept alive
    /// with in-progress acks every half of it.
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    /// Deliveries of one event to a group before it is parked with the
    /// reason (default 20, at least 1).
    ///
    /// The router retries a handler in place ([`RetryPolicy`](crate::router::RetryPolicy)),
    /// so redeliveries come from nacks, delayed retries and consumers that
    /// died while handling: this limit ends a crash loop. Set it above the
    /// number of `retry_after`s a handler may ask for. The server's own
    /// `max_deliver` is left unlimited, because it stops delivering silently;
    /// Tessera parks the event instead.
    pub fn max_deliver(mut self, max_deliver: u32) -> Self {
        self.max_deliver = max_deliver.max(1);
        self
    }

    /// How many publishes may wait for their acks at once (default 1024);
    /// a publish beyond it waits for room.
    pub fn publish_window(mut self, window: usize) -> Self {
        self.publish_window = window.max(1);
        self
    }

    /// How long a publish keeps trying (across reconnects) before it fails
    /// (default 30 s).
    pub fn publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    /// How long one JetStream request (a publish's ack, a stream or consumer
    /// request) may take (default 5 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long connecting may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The reconnect backoff: from `min` doubling up to `max` (defaults 100 ms and 10 s).
    pub fn reconnect_delays(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min_delay = min;
        self.reconnect_max_delay = max.max(min);
        self
    }

    /// The connection's name, as the server's monitoring shows it.
    pub fn connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = Some(name.into());
        self
    }

    /// Connects only to the configured URLs, never to servers a cluster
    /// announces (for a server behind a proxy or a port forward).
    pub fn ignore_discovered_servers(mut self) -> Self {
        self.ignore_discovered_servers = true;
        self
    }

    /// The server URLs.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// The event stream's subjects: as configured, else `<prefix>.>`.
    pub fn effective_stream_subjects(&self) -> Vec<String> {
        self.stream_subjects
            .clone()
            .unwrap_or_else(|| vec![format!("{}.>", self.subject_prefix)])
    }

    /// The parking stream's name: as configured, else `<stream>_PARKING`.
    pub fn parking_stream_name(&self) -> String {
        self.parking_stream
            .clone()
            .unwrap_or_else(|| format!("{}_PARKING", self.stream))
    }

    /// The name of the event stream.
    pub fn stream_name(&self) -> &str {
        &self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_password_or_token() {
        let config = NatsConfig::new("nats://app:s3cret@nats-1:4222, nats://t0ken@nats-2:4222");
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("t0ken"),
            "{debug}"
        );
        assert!(debug.contains("nats://app:***@nats-1:4222"), "{debug}");
        assert!(debug.contains("nats://***@nats-2:4222"), "{debug}");
    }

    #[test]
    fn defaults_follow_the_prefix_and_stream_name() {
        let config = NatsConfig::new("nats://127.0.0.1:4222")
            .subject_prefix("acme.events")
            .stream("ACME");
        assert_eq!(config.urls(), ["nats://127.0.0.1:4222"]);
        assert_eq!(config.effective_stream_subjects(), ["acme.events.>"]);
        assert_eq!(config.parking_stream_name(), "ACME_PARKING");
        assert_eq!(NatsConfig::new("x").max_deliver(0).max_deliver, 1);
    }
}
