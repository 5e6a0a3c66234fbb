//! [`SoakConfig`]: the flags of a run, their defaults, and parsing them.

use std::time::Duration;

use crate::error::UsageError;

/// The cluster's endpoints, as `scripts/rabbitmq-cluster urls` prints them.
pub const CLUSTER_URLS: &str = "amqp://guest:guest@127.0.0.1:5681/%2f,\
amqp://guest:guest@127.0.0.1:5682/%2f,amqp://guest:guest@127.0.0.1:5683/%2f";

/// The local test database.
pub const LOCAL_DATABASE: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The usage text, printed for `--help` and after a usage error.
pub const USAGE: &str = "\
usage: soak [--rate N] [--duration D] [--relays N] [--urls URLS] [--kill-every D]
            [--database URL] [--subjects N] [--publishers N] [--drain-timeout D]

  --rate N           events committed per second, one per transaction (default 1000)
  --duration D       how long to publish: 90, 90s, 10m, 1h, 500ms (default 60s)
  --relays N         service replicas, each with its own RabbitMQ connections,
                     an outbox relay and a consumer (default 3)
  --urls URLS        RabbitMQ endpoint(s), comma-separated (default: $AMQP_URL,
                     else the cluster of scripts/rabbitmq-cluster)
  --kill-every D     kill a random cluster node (scripts/rabbitmq-cluster kill-node)
                     every D and start it again D/2 later (default: off)
  --database URL     PostgreSQL (default: $DATABASE_URL, else the local test database)
  --subjects N       subjects, each with its own sequence numbers (default 32)
  --publishers N     publishing tasks, each with at most one transaction open
                     (default 32; at most one per subject)
  --drain-timeout D  how long to wait for the backlog once publishing stopped (default 120s)
";

/// The settings of a soak run.
///
/// [`SoakConfig::from_env`] gives the defaults; [`SoakConfig::parse`] reads
/// the command line on top of them.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakConfig {
    /// Events committed per second (each in its own transaction).
    pub rate: u32,
    /// How long to publish.
    pub duration: Duration,
    /// Replicas: each has its own bus connections, an outbox relay and a consumer.
    pub relays: usize,
    /// The RabbitMQ URL (or comma-separated URLs) given to `RabbitConfig::new` as is.
    pub urls: String,
    /// Kill a random cluster node this often (and start it again half-way).
    pub kill_every: Option<Duration>,
    /// The PostgreSQL URL.
    pub database: String,
    /// How many subjects the events are spread over.
    pub subjects: usize,
    /// Publishing tasks (each commits one transaction at a time); at most `subjects`.
    pub publishers: usize,
    /// How long to wait for the backlog after publishing stopped.
    pub drain_timeout: Duration,
    /// How often a progress line is written.
    pub progress_every: Duration,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// A soak run.
    Run(SoakConfig),
    /// `--help`.
    Help,
}

impl SoakConfig {
    /// The defaults, with `AMQP_URL` and `DATABASE_URL` from `env` when set.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Self {
        let set = |key: &str| env(key).filter(|v| !v.trim().is_empty());
        Self {
            rate: 1000,
            duration: Duration::from_secs(60),
            relays: 3,
            urls: set("AMQP_URL").unwrap_or_else(|| CLUSTER_URLS.to_owned()),
            kill_every: None,
            database: set("DATABASE_URL").unwrap_or_else(|| LOCAL_DATABASE.to_owned()),
            subjects: 32,
            publishers: 32,
            drain_timeout: Duration::from_secs(120),
            progress_every: Duration::from_secs(5),
        }
    }

    /// Reads `args` (without the program name) over `self`'s values.
    pub fn parse(mut self, args: impl IntoIterator<Item = String>) -> Result<Command, UsageError> {
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "-h" || arg == "--help" {
                return Ok(Command::Help);
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg, None),
            };
            if !flag.starts_with("--") {
                return Err(UsageError(format!("unexpected argument '{flag}'")));
            }
            let value = match inline.or_else(|| args.next()) {
                Some(value) => value,
                None => return Err(UsageError(format!("{flag} needs a value"))),
            };
            match flag.as_str() {
                "--rate" => self.rate = positive(&flag, &value)?,
                "--duration" => self.duration = duration(&flag, &value)?,
                "--relays" => self.relays = positive(&flag, &value)?,
                "--urls" => self.urls = non_empty(&flag, value)?,
                "--kill-every" => self.kill_every = Some(duration(&flag, &value)?),
                "--database" => self.database = non_empty(&flag, value)?,
                "--subjects" => self.subjects = positive(&flag, &value)?,
                "--publishers" => self.publishers = positive(&flag, &value)?,
                "--drain-timeout" => self.drain_timeout = duration(&flag, &value)?,
                _ => return Err(UsageError(format!("unknown flag '{flag}'"))),
            }
        }
        Ok(Command::Run(self))
    }
}

fn positive<T: std::str::FromStr + PartialOrd + Default>(
    flag: &str,
    value: &str,
) -> Result<T, UsageError> {
    match value.trim().parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err(UsageError(format!(
            "{flag} wants a whole number above 0, not '{value}'"
        ))),
    }
}

fn non_empty(flag: &str, value: String) -> Result<String, UsageError> {
    if value.trim().is_empty() {
        return Err(UsageError(format!("{flag} is empty")));
    }
    Ok(value)
}

/// `90` (seconds), `90s`, `10m`, `1h`, `500ms`, `1.5s`; above zero.
pub(crate) fn duration(flag: &str, value: &str) -> Result<Duration, UsageError> {
    let bad = || {
        UsageError(format!(
            "{flag} wants a duration above zero such as 90, 90s, 10m, 1h or 500ms, not '{value}'"
        ))
    };
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, UsageError> {
        SoakConfig::from_env(|_| None).parse(args.iter().map(|a| (*a).to_owned()))
    }

    fn run(args: &[&str]) -> SoakConfig {
        match parse(args).unwrap() {
            Command::Run(config) => config,
            Command::Help => panic!("help"),
        }
    }

    #[test]
    fn defaults_follow_the_environment() {
        let config = SoakConfig::from_env(|k| match k {
            "AMQP_URL" => Some("amqp://a/%2f".to_owned()),
            _ => None,
        });
        assert_eq!(config.urls, "amqp://a/%2f");
        assert_eq!(config.database, LOCAL_DATABASE);
        assert_eq!(SoakConfig::from_env(|_| None).urls, CLUSTER_URLS);
        assert_eq!(config.kill_every, None);
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        let config = run(&[
            "--rate",
            "2000",
            "--duration=10m",
            "--relays",
            "2",
            "--kill-every",
            "1m",
            "--urls=amqp://x",
            "--publishers",
            "4",
        ]);
        assert_eq!(config.rate, 2000);
        assert_eq!(config.duration, Duration::from_secs(600));
        assert_eq!(config.relays, 2);
        assert_eq!(config.kill_every, Some(Duration::from_secs(60)));
        assert_eq!(config.urls, "amqp://x");
        assert_eq!(config.publishers, 4);
        assert_eq!(parse(&["--help"]).unwrap(), Command::Help);
    }

    #[test]
    fn durations_read_plain_seconds_and_units() {
        let d = |v| duration("--duration", v);
        assert_eq!(d("90").unwrap(), Duration::from_secs(90));
        assert_eq!(d("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(d("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(d("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(d("2h").unwrap(), Duration::from_secs(7200));
        for bad in ["", "0", "0s", "ten", "10x", "-5", "1e3"] {
            assert!(d(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_flags_are_usage_errors_naming_them() {
        for (args, says) in [
            (&["--rate", "fast"][..], "--rate"),
            (&["--rate", "0"], "--rate"),
            (&["--relays"], "--relays needs a value"),
            (&["--speed", "3"], "unknown flag '--speed'"),
            (&["now"], "unexpected argument 'now'"),
            (&["--duration", "soon"], "--duration"),
            (&["--urls", ""], "--urls is empty"),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(says), "{args:?}: {err}");
        }
    }
}
