//! Talking to an authorization server's endpoints (token, introspection):
//! client authentication, endpoint discovery, bounded form posts. Shared by
//! the `client` and `introspection` features.

use crate::error::Redacted;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::fmt;
use std::time::Duration;
use url::Url;

/// Largest response body read from a token or introspection endpoint.
pub(crate) const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// How the client authenticates to the authorization server (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AuthMethod {
    /// HTTP Basic with the form-urlencoded client id and secret (the default).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// A client id and secret. `Debug` never shows the secret.
#[derive(Clone)]
pub(crate) struct ClientAuth {
    pub(crate) id: String,
    pub(crate) secret: String,
    pub(crate) method: AuthMethod,
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth")
            .field("id", &self.id)
            .field("secret", &Redacted)
            .field("method", &self.method)
            .finish()
    }
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl ClientAuth {
    /// Applies the credentials to a form post.
    pub(crate) fn apply(
        &self,
        request: reqwest::RequestBuilder,
        params: &mut Vec<(&'static str, String)>,
    ) -> reqwest::RequestBuilder {
        match self.method {
            AuthMethod::ClientSecretBasic => {
                let credentials =
                    format!("{}:{}", form_encode(&self.id), form_encode(&self.secret));
                let mut value =
                    http::HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(credentials)))
                        .unwrap_or_else(|_| http::HeaderValue::from_static("Basic"));
                value.set_sensitive(true);
                request.header(http::header::AUTHORIZATION, value)
            }
            AuthMethod::ClientSecretPost => {
                params.push(("client_id", self.id.clone()));
                params.push(("client_secret", self.secret.clone()));
                request
            }
        }
    }
}

/// Where an endpoint is: configured, or found by OIDC discovery.
#[derive(Debug)]
pub(crate) enum EndpointSource {
    Url(Url),
    Discovery {
        issuer: String,
        url: Url,
        found: tokio::sync::OnceCell<Url>,
    },
}

/// Which endpoint of the discovery document.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(
    not(all(feature = "client", feature = "introspection")),
    allow(dead_code)
)]
pub(crate) enum Which {
    Token,
    Introspection,
}

#[derive(serde::Deserialize)]
struct Discovery {
    issuer: String,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    introspection_endpoint: Option<String>,
}

pub(crate) fn parse_url(url: &str) -> Result<Url, String> {
    let parsed = Url::parse(url).map_err(|e| format!("invalid url {url:?}: {e}"))?;
    match parsed.scheme() {
        "https" | "http" => Ok(parsed),
        other => Err(format!("invalid url {url:?}: scheme {other} not allowed")),
    }
}

impl EndpointSource {
    pub(crate) fn url(url: &str) -> Result<Self, String> {
        parse_url(url).map(Self::Url)
    }

    pub(crate) fn discovery(issuer: &str) -> Result<Self, String> {
        let url = parse_url(&format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        ))?;
        Ok(Self::Discovery {
            issuer: issuer.to_owned(),
            url,
            found: tokio::sync::OnceCell::new(),
        })
    }

    /// The endpoint URL, discovering it on first use (a failed discovery is
    /// retried on the next call).
    pub(crate) async fn resolve(
        &self,
        client: &reqwest::Client,
        which: Which,
        timeout: Duration,
    ) -> Result<Url, String> {
        match self {
            Self::Url(url) => Ok(url.clone()),
            Self::Discovery { issuer, url, found } => found
                .get_or_try_init(|| discover(client, issuer, url, which, timeout))
                .await
                .cloned(),
        }
    }
}

async fn discover(
    client: &reqwest::Client,
    issuer: &str,
    url: &Url,
    which: Which,
    timeout: Duration,
) -> Result<Url, String> {
    let response = client
        .get(url.clone())
        .header(http::header::ACCEPT, "application/json")
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("discovery: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("discovery: status {status}"));
    }
    let body = read_limited(response).await?;
    endpoint_from_discovery(&body, issuer, which)
}

/// The endpoint `which` named by the discovery document `body`, provided it
/// names `issuer` exactly.
pub(crate) fn endpoint_from_discovery(
    body: &[u8],
    issuer: &str,
    which: Which,
) -> Result<Url, String> {
    let doc: Discovery =
        serde_json::from_slice(body).map_err(|e| format!("discovery document: {e}"))?;
    if doc.issuer != issuer {
        return Err(format!(
            "discovery document names issuer {:?}, expected {issuer:?}",
            doc.issuer
        ));
    }
    let (name, endpoint) = match which {
        Which::Token => ("token_endpoint", doc.token_endpoint),
        Which::Introspection => ("introspection_endpoint", doc.introspection_endpoint),
    };
    parse_url(&endpoint.ok_or_else(|| format!("discovery document has no {name}"))?)
}

/// Reads a body of at most [`MAX_RESPONSE_BYTES`].
pub(crate) async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_RESPONSE_BYTES as u64)
    {
        return Err(format!("response larger than {MAX_RESPONSE_BYTES} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(format!("response larger than {MAX_RESPONSE_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A form post's outcome.
#[derive(Debug)]
#[cfg_attr(not(feature = "client"), allow(dead_code))]
pub(crate) enum PostError {
    /// Not sent or no answer (connect, timeout, TLS): worth retrying.
    Unreachable(String),
    /// Answered with a server error or 429: worth retrying.
    Status(u16),
    /// An RFC 6749 §5.2 error.
    OAuth {
        status: u16,
        code: String,
        description: Option<String>,
    },
    /// Another non-success answer.
    Unexpected(u16),
    /// The body could not be read.
    Body(String),
}

/// What a form post carries beyond the form, and learns from the answer:
/// a DPoP proof and the server's next nonce (RFC 9449 §5, §8), when a token
/// is requested for a key.
pub(crate) trait PostProof: Sync {
    /// The header that proves the key, for a POST to `url`.
    fn header(&self, url: &Url) -> Result<(http::HeaderName, http::HeaderValue), PostError>;
    /// The answer's headers (an error answer's too), for the next proof.
    fn answered(&self, url: &Url, headers: &http::HeaderMap);
}

/// Posts a client-authenticated form (with `proof`'s header if given) and
/// returns the success body.
pub(crate) async fn post_form(
    client: &reqwest::Client,
    url: &Url,
    auth: &ClientAuth,
    mut params: Vec<(&'static str, String)>,
    timeout: Duration,
    proof: Option<&dyn PostProof>,
) -> Result<Vec<u8>, PostError> {
    let span = crate::client_span::ClientSpan::start("POST", url);
    let mut request = client
        .post(url.clone())
        .headers(span.trace_headers())
        .header(http::header::ACCEPT, "application/json")
        .timeout(timeout);
    if let Some(proof) = proof {
        let (name, value) = proof.header(url)?;
        request = request.header(name, value);
    }
    let request = auth.apply(request, &mut params);
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let send = request
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send();
    let response = span.run(send).await.map_err(|e| {
        span.unreachable();
        PostError::Unreachable(e.without_url().to_string())
    })?;
    let status = response.status().as_u16();
    span.status(status);
    if let Some(proof) = proof {
        proof.answered(url, response.headers());
    }
    if status >= 500 || status == 429 {
        return Err(PostError::Status(status));
    }
    let body = read_limited(response).await.map_err(PostError::Body)?;
    if (200..300).contains(&status) {
        return Ok(body);
    }
    match oauth_error(&body) {
        Some((code, description)) => Err(PostError::OAuth {
            status,
            code,
            description,
        }),
        None => Err(PostError::Unexpected(status)),
    }
}

/// The `error` and `error_description` of an RFC 6749 §5.2 body, limited in
/// length and to printable ASCII (RFC 6749 restricts both to it).
pub(crate) fn oauth_error(body: &[u8]) -> Option<(String, Option<String>)> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .take(200)
            .collect()
    };
    Some((
        clean(&parsed.error),
        parsed.error_description.as_deref().map(clean),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_errors_are_parsed_and_cleaned() {
        let (code, description) =
            oauth_error(br#"{"error":"invalid_scope","error_description":"bad\u0007 scope"}"#)
                .unwrap();
        assert_eq!(code, "invalid_scope");
        assert_eq!(description.as_deref(), Some("bad scope"));
        assert!(oauth_error(b"<html>").is_none());
        assert!(oauth_error(br#"{"error":5}"#).is_none());
    }

    #[test]
    fn only_http_endpoints() {
        assert!(EndpointSource::url("ftp://idp.example/token").is_err());
        assert!(EndpointSource::url("not a url").is_err());
        assert!(EndpointSource::discovery("https://idp.example").is_ok());
    }

    #[test]
    fn debug_redacts_the_secret() {
        let auth = ClientAuth {
            id: "id".into(),
            secret: "hunter2".into(),
            method: AuthMethod::ClientSecretPost,
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
