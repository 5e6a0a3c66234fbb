//! Configuration read from the environment.

use std::fmt;
use std::net::SocketAddr;

use tessera_authn::client::ClientCredentials;
use tessera_authn::{ConfigError, Issuer, JwtValidator};
use tessera_user_sync::snapshot::{Backfill, http::HttpSnapshotSource};
use url::Url;

/// The scope the snapshot endpoint of the user service requires.
pub const SNAPSHOT_SCOPE: &str = "users:snapshot";

/// The client credentials used to fetch the backfill snapshot from the user service.
#[derive(Clone, PartialEq, Eq)]
pub struct BackfillClient {
    /// `USER_SERVICE_URL`: the user service's base URL (the snapshot is `GET {url}/users`).
    pub user_service: Url,
    /// `COMMENT_SERVICE_CLIENT_ID`.
    pub client_id: String,
    /// `COMMENT_SERVICE_CLIENT_SECRET`; never printed.
    pub client_secret: String,
    /// `USER_SERVICE_AUDIENCE`: the audience to ask the token for (optional).
    pub audience: Option<String>,
}

impl BackfillClient {
    /// The backfill from `GET {user_service}/users`, each page requested with
    /// a client-credentials token (scope `users:snapshot`) from `issuer`'s
    /// token endpoint (found by OIDC discovery), cached and refreshed ahead
    /// of expiry by [`ClientCredentials`].
    ///
    /// # Errors
    ///
    /// The token provider cannot be built, or the URL cannot take a path.
    pub fn backfill(&self, issuer: &str) -> Result<Backfill<HttpSnapshotSource>, ConfigProblem> {
        let mut builder = ClientCredentials::builder(&self.client_id, &self.client_secret)
            .discovery(issuer)
            .scope(SNAPSHOT_SCOPE);
        if let Some(audience) = &self.audience {
            builder = builder.audience(audience);
        }
        let credentials = builder.build().map_err(|e| ConfigProblem::Invalid {
            name: "COMMENT_SERVICE_CLIENT_ID",
            reason: format!("cannot build the client-credentials provider: {e}"),
        })?;
        let mut url = self.user_service.clone();
        url.path_segments_mut()
            .map_err(|()| ConfigProblem::Invalid {
                name: "USER_SERVICE_URL",
                reason: "cannot be a base URL".to_owned(),
            })?
            .pop_if_empty()
            .push("users");
        let source = HttpSnapshotSource::new(url).bearer_token(move || {
            let credentials = credentials.clone();
            async move {
                let token = credentials.token().await?;
                Ok(token.secret().to_owned())
            }
        });
        Ok(Backfill::new(source))
    }
}

impl fmt::Debug for BackfillClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackfillClient")
            .field("user_service", &self.user_service.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("audience", &self.audience)
            .finish()
    }
}

/// The broker user events arrive on, from `AMQP_URL` or `NATS_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broker {
    /// `AMQP_URL`: one URL, or a comma-separated list of a cluster's nodes.
    Rabbitmq(String),
    /// `NATS_URL`: one URL, or a comma-separated list of a cluster's servers.
    Nats(String),
}

/// Configuration of the comment-service process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `AUTHN_ISSUER`: the issuer URL; keys are found by OIDC discovery.
    pub issuer: String,
    /// `AUTHN_AUDIENCE`: the audience tokens must name.
    pub audience: String,
    /// `AMQP_URL` (RabbitMQ) or `NATS_URL` (NATS JetStream): the broker
    /// the user events arrive on. One is required for the process: without
    /// a broker no user event would ever arrive.
    pub broker: Broker,
    /// `AMQP_EXCHANGE`: the topic exchange user events are published to
    /// (optional; the bus default `tessera.events` when absent).
    pub amqp_exchange: Option<String>,
    /// `AMQP_QUEUE_PREFIX`: put before the names of the group's queues
    /// (optional; none when absent), so that two environments or test runs
    /// sharing a virtual host do not share the `comment-service` queue.
    pub amqp_queue_prefix: Option<String>,
    /// `DATABASE_URL`: PostgreSQL; in-memory stores when absent.
    pub database_url: Option<String>,
    /// `DATABASE_SCHEMA`: the schema of the service's tables (default `comment_service`).
    pub database_schema: String,
    /// `USER_SERVICE_URL` with the client credentials: backfill at start when set.
    pub backfill: Option<BackfillClient>,
    /// `BIND`: the listen address (default `127.0.0.1:3002`).
    pub bind: SocketAddr,
}

/// A configuration problem, reported before the server starts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// A required variable is missing or empty.
    #[error(
        "{0} is not set; it is required (see the crate docs: cargo doc -p comment-service --open)"
    )]
    Missing(&'static str),
    /// A variable has an invalid value.
    #[error("{name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// The validator could not be built.
    #[error(transparent)]
    Validator(#[from] ConfigError),
}

impl Config {
    /// Reads the variables named on the fields through `var` (normally `std::env::var`).
    ///
    /// # Errors
    ///
    /// A missing required variable, or an invalid value.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigProblem> {
        let optional = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let required = |name: &'static str| optional(name).ok_or(ConfigProblem::Missing(name));
        let issuer = required("AUTHN_ISSUER")?.trim().to_owned();
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err(ConfigProblem::Invalid {
                name: "AUTHN_ISSUER",
                reason: format!("{issuer:?} is not an http(s) URL"),
            });
        }
        let audience = required("AUTHN_AUDIENCE")?;
        let broker = match (optional("AMQP_URL"), optional("NATS_URL")) {
            (Some(url), None) => Broker::Rabbitmq(url),
            (None, Some(url)) => Broker::Nats(url),
            (Some(_), Some(_)) => {
                return Err(ConfigProblem::Invalid {
                    name: "NATS_URL",
                    reason: "AMQP_URL is set too; set one broker, AMQP_URL or NATS_URL".to_owned(),
                });
            }
            (None, None) => {
                return Err(ConfigProblem::Invalid {
                    name: "AMQP_URL",
                    reason: "not set (nor NATS_URL); the comment service needs a broker to \
                             receive user events (to run it without one, embed it in process \
                             on an in-memory bus as `cargo run -p demo` does)"
                        .to_owned(),
                });
            }
        };
        let backfill = match optional("USER_SERVICE_URL") {
            None => None,
            Some(url) => Some(BackfillClient {
                user_service: url.trim().parse().map_err(|e| ConfigProblem::Invalid {
                    name: "USER_SERVICE_URL",
                    reason: format!("{url:?}: {e}"),
                })?,
                client_id: required("COMMENT_SERVICE_CLIENT_ID")?,
                client_secret: required("COMMENT_SERVICE_CLIENT_SECRET")?,
                audience: optional("USER_SERVICE_AUDIENCE"),
            }),
        };
        let bind = optional("BIND").unwrap_or_else(|| "127.0.0.1:3002".to_owned());
        let bind = bind.parse().map_err(|e| ConfigProblem::Invalid {
            name: "BIND",
            reason: format!("{bind:?}: {e}"),
        })?;
        Ok(Self {
            issuer,
            audience,
            broker,
            amqp_exchange: optional("AMQP_EXCHANGE"),
            amqp_queue_prefix: optional("AMQP_QUEUE_PREFIX").map(|p| p.trim().to_owned()),
            database_url: optional("DATABASE_URL"),
            database_schema: optional("DATABASE_SCHEMA")
                .unwrap_or_else(|| "comment_service".to_owned()),
            backfill,
            bind,
        })
    }

    /// The validator for incoming tokens (keys by OIDC discovery).
    ///
    /// # Errors
    ///
    /// The validator's configuration error.
    pub fn validator(&self) -> Result<JwtValidator, ConfigProblem> {
        Ok(JwtValidator::builder()
            .issuer(
                Issuer::new(&self.issuer)
                    .audience(&self.audience)
                    .discovery(),
            )
            .build()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 3] = [
        ("AUTHN_ISSUER", "https://idp"),
        ("AUTHN_AUDIENCE", "comments"),
        ("AMQP_URL", "amqp://127.0.0.1:5672"),
    ];

    #[test]
    fn defaults_and_required_variables() {
        let c = Config::from_lookup(lookup(&BASE)).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:3002");
        assert_eq!(c.database_url, None);
        assert_eq!(c.amqp_exchange, None);
        assert_eq!(c.amqp_queue_prefix, None);
        assert_eq!(c.database_schema, "comment_service");
        assert_eq!(c.backfill, None);
        assert!(matches!(
            Config::from_lookup(lookup(&BASE[1..])),
            Err(ConfigProblem::Missing("AUTHN_ISSUER"))
        ));
        let err = Config::from_lookup(lookup(&BASE[..2])).unwrap_err();
        assert!(matches!(
            err,
            ConfigProblem::Invalid {
                name: "AMQP_URL",
                ..
            }
        ));
        assert!(err.to_string().contains("AMQP_URL"));
        let mut bad_bind = BASE.to_vec();
        bad_bind.push(("BIND", "nowhere"));
        assert!(matches!(
            Config::from_lookup(lookup(&bad_bind)),
            Err(ConfigProblem::Invalid { name: "BIND", .. })
        ));
        let nats = [BASE[0], BASE[1], ("NATS_URL", "nats://127.0.0.1:4222")];
        assert_eq!(
            Config::from_lookup(lookup(&nats)).unwrap().broker,
            Broker::Nats("nats://127.0.0.1:4222".to_owned())
        );
        let mut both = BASE.to_vec();
        both.push(("NATS_URL", "nats://127.0.0.1:4222"));
        assert!(matches!(
            Config::from_lookup(lookup(&both)),
            Err(ConfigProblem::Invalid {
                name: "NATS_URL",
                ..
            })
        ));
        let mut prefixed = BASE.to_vec();
        prefixed.push(("AMQP_QUEUE_PREFIX", "staging."));
        assert_eq!(
            Config::from_lookup(lookup(&prefixed))
                .unwrap()
                .amqp_queue_prefix
                .as_deref(),
            Some("staging.")
        );
    }

    #[test]
    fn backfill_needs_client_credentials_and_hides_the_secret() {
        let mut vars = BASE.to_vec();
        vars.push(("USER_SERVICE_URL", "http://127.0.0.1:3001"));
        assert!(matches!(
            Config::from_lookup(lookup(&vars)),
            Err(ConfigProblem::Missing("COMMENT_SERVICE_CLIENT_ID"))
        ));
        vars.push(("COMMENT_SERVICE_CLIENT_ID", "comment-service"));
        vars.push(("COMMENT_SERVICE_CLIENT_SECRET", "s3cret"));
        let c = Config::from_lookup(lookup(&vars)).unwrap();
        let b = c.backfill.unwrap();
        assert_eq!(b.user_service.as_str(), "http://127.0.0.1:3001/");
        assert!(!format!("{b:?}").contains("s3cret"));
    }
}
