//! The broker endpoints of a [`RabbitConfig`]: checking the list once, when
//! the bus connects, and the order in which a connection attempt tries them.

use lapin::uri::AMQPScheme;

use super::{config::RabbitConfig, tls};
use crate::error::BusError;

/// One checked broker URL and the name it goes by in logs and health
/// (`host:port`, never the user or password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) url: String,
    pub(crate) label: String,
}

fn invalid(message: String) -> BusError {
    BusError::Connection(message.into())
}

/// `host:port`, with brackets around an IPv6 address.
pub(crate) fn label(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Checks every endpoint of `config` before anything connects: each must be
/// a broker URL, all of one scheme (a TLS list never falls back to plain
/// text) and one virtual host, and `amqps://` needs the feature
/// `rabbitmq-tls`. The error names the bad entry by its position (and its
/// host when that much parses), never by its text, which may hold a password.
pub(crate) fn check(config: &RabbitConfig) -> Result<Vec<Endpoint>, BusError> {
    let urls = &config.endpoints;
    let count = urls.len();
    if count == 0 {
        return Err(invalid("no broker endpoint configured".to_owned()));
    }
    // A single URL reports its problems as it always has.
    let which = |i: usize| {
        if count == 1 {
            String::new()
        } else {
            format!(" (endpoint {} of {count})", i + 1)
        }
    };
    let mut endpoints = Vec::with_capacity(count);
    let mut first: Option<(AMQPScheme, String)> = None;
    for (i, url) in urls.iter().enumerate() {
        if url.trim().is_empty() {
            return Err(invalid(format!(
                "invalid broker url{}: empty (a list has a stray `,`?)",
                which(i)
            )));
        }
        let uri = tls::parse_url(url).map_err(|error| {
            invalid(format!(
                "{error}{}; a `,` inside a url must be written %2C",
                which(i)
            ))
        })?;
        let label = label(&uri.authority.host, uri.authority.port);
        if uri.scheme == AMQPScheme::AMQPS && !cfg!(feature = "rabbitmq-tls") {
            return Err(invalid(format!("{}{}", tls::TLS_FEATURE_MISSING, which(i))));
        }
        #[cfg(feature = "rabbitmq-tls")]
        if uri.scheme == AMQPScheme::AMQP && config.tls.is_set() {
            return Err(invalid(format!(
                "{}{}",
                tls::TLS_SETTINGS_WITH_PLAIN_URL,
                which(i)
            )));
        }
        match &first {
            None => first = Some((uri.scheme.clone(), uri.vhost.clone())),
            Some((scheme, _)) if *scheme != uri.scheme => {
                return Err(invalid(format!(
                    "the broker endpoints mix amqp:// and amqps:// ({label}, endpoint {} of {count}): \
                     a list is all TLS or all plain text",
                    i + 1
                )));
            }
            Some((_, vhost)) if *vhost != uri.vhost => {
                return Err(invalid(format!(
                    "the broker endpoints name different virtual hosts ({label}, endpoint {} of {count}, \
                     names `{}`, the first `{vhost}`): the nodes of one cluster share one",
                    i + 1,
                    uri.vhost
                )));
            }
            Some(_) => {}
        }
        endpoints.push(Endpoint {
            url: url.clone(),
            label,
        });
    }
    Ok(endpoints)
}

/// The order in which one connection attempt tries `count` endpoints:
/// every one once, from `start` on, wrapping around.
pub(crate) fn rotation(start: usize, count: usize) -> impl Iterator<Item = usize> {
    (0..count).map(move |i| (start + i) % count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_urls(url: &str) -> Result<Vec<Endpoint>, String> {
        check(&RabbitConfig::new(url)).map_err(|e| e.to_string())
    }

    #[test]
    fn a_comma_separated_list_is_several_endpoints_named_by_host_and_port() {
        let endpoints = check_urls(
            "amqp://u:p@10.0.0.1:5672/%2f, amqp://u:p@rabbit-2:5673/%2f,amqp://[::1]/%2f",
        )
        .unwrap();
        let labels: Vec<_> = endpoints.iter().map(|e| e.label.as_str()).collect();
        assert_eq!(labels, ["10.0.0.1:5672", "rabbit-2:5673", "[::1]:5672"]);
        assert_eq!(endpoints[1].url, "amqp://u:p@rabbit-2:5673/%2f");
    }

    #[test]
    fn a_single_url_is_one_endpoint() {
        let endpoints = check_urls("amqp://u:p@broker:5672/%2f").unwrap();
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints[0].label, "broker:5672");
        let builder = RabbitConfig::new("amqp://ignored").endpoints(["amqp://a", "amqp://b:1"]);
        let labels: Vec<_> = check(&builder)
            .unwrap()
            .into_iter()
            .map(|e| e.label)
            .collect();
        assert_eq!(labels, ["a:5672", "b:1"]);
    }

    #[test]
    fn a_malformed_entry_is_an_error_naming_its_position_never_its_password() {
        let error = check_urls("amqp://u:p@a:5672/%2f,amqp://u:s3cret@b:notaport/%2f").unwrap_err();
        assert!(error.contains("invalid broker url"), "{error}");
        assert!(error.contains("(endpoint 2 of 2)"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
        // A `,` in a password splits the list: the pieces are refused, not tried.
        let error = check_urls("amqp://u:x9q,z7w@b:5672/%2f").unwrap_err();
        assert!(error.contains("(endpoint 1 of 2)"), "{error}");
        assert!(error.contains("%2C"), "{error}");
        assert!(!error.contains("x9q") && !error.contains("z7w"), "{error}");
        let debug = format!("{:?}", RabbitConfig::new("amqp://u:x9q,z7w@b:5672/%2f"));
        assert!(!debug.contains("x9q") && !debug.contains("z7w"), "{debug}");
        let error = check_urls("amqp://a,,amqp://b").unwrap_err();
        assert!(error.contains("(endpoint 2 of 3)"), "{error}");
        assert!(error.contains("empty"), "{error}");
        let error = check_urls("http://broker").unwrap_err();
        assert!(error.contains("invalid broker url"), "{error}");
        assert!(!error.contains("endpoint 1"), "{error}");
    }

    #[test]
    fn an_empty_list_is_an_error() {
        let error = check(&RabbitConfig::new("amqp://a").endpoints(Vec::<String>::new()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("no broker endpoint"), "{error}");
        assert!(check_urls("").unwrap_err().contains("empty"));
    }

    #[test]
    fn a_list_never_mixes_plain_text_and_tls_nor_virtual_hosts() {
        let error = check_urls("amqps://u:p@a:5671/%2f,amqp://u:p@b:5672/%2f").unwrap_err();
        #[cfg(feature = "rabbitmq-tls")]
        assert!(
            error.contains("mix amqp:// and amqps://") && error.contains("b:5672"),
            "{error}"
        );
        #[cfg(not(feature = "rabbitmq-tls"))]
        assert!(error.contains("`rabbitmq-tls` feature"), "{error}");
        let error = check_urls("amqp://a/%2f,amqp://b/staging").unwrap_err();
        assert!(error.contains("different virtual hosts"), "{error}");
        assert!(error.contains("`staging`"), "{error}");
    }

    #[cfg(not(feature = "rabbitmq-tls"))]
    #[test]
    fn amqps_without_the_tls_feature_is_refused_for_every_entry() {
        let error = check_urls("amqps://u:p@a:5671/%2f,amqps://u:p@b:5671/%2f").unwrap_err();
        assert!(error.contains("`rabbitmq-tls` feature"), "{error}");
        assert!(error.contains("(endpoint 1 of 2)"), "{error}");
    }

    #[cfg(feature = "rabbitmq-tls")]
    #[test]
    fn tls_settings_with_a_plain_endpoint_are_refused() {
        let config = RabbitConfig::new("amqps://a:5671/%2f")
            .endpoints(["amqp://a:5672/%2f"])
            .tls_ca_certificates("pem");
        let error = check(&config).unwrap_err().to_string();
        assert!(error.contains("use amqps://"), "{error}");
    }

    #[test]
    fn every_attempt_tries_each_endpoint_once_from_a_rotating_start() {
        assert_eq!(rotation(0, 3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(rotation(2, 3).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(rotation(7, 3).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(rotation(5, 1).collect::<Vec<_>>(), [0]);
    }
}
