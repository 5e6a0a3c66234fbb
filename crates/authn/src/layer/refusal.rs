//! How a refused request is answered: the RFC 6750 challenge, and the
//! [`Http`] or [`Grpc`] rendering of the response ([`Refusal`]).

use super::layer::Config;
use super::token::Scheme;
use crate::error::AuthnError;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, Response};

/// How [`Authn`](super::Authn) answers a refused request with a
/// `Response<B>`: [`Http`] or [`Grpc`]. Sealed.
pub trait Refusal<B>: sealed::Sealed + Send + 'static {
    /// The answer to a request refused with `error`; `headers` are the
    /// `WWW-Authenticate` challenges (RFC 6750, RFC 9449), and `DPoP-Nonce`.
    #[doc(hidden)]
    fn respond(error: &AuthnError, headers: HeaderMap) -> Response<B>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Http {}
    impl Sealed for super::Grpc {}
}

/// Refusals as HTTP status codes (RFC 6750): 401 with a challenge, 400 for
/// a malformed request, 503 with `Retry-After` when keys are unavailable,
/// and a small JSON body. Needs a response body with `From<Bytes>`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Http;

/// Refusals the gRPC way ([`AuthnLayer::grpc`](super::AuthnLayer::grpc)):
/// HTTP 200, `grpc-status`, `grpc-message`, the challenge, an empty body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Grpc;

impl<B: From<Bytes>> Refusal<B> for Http {
    fn respond(error: &AuthnError, extra: HeaderMap) -> Response<B> {
        let (code, description) = match error {
            e if e.unavailable() => ("temporarily_unavailable", error.to_string()),
            AuthnError::MissingToken => ("unauthorized", error.to_string()),
            _ => (
                error.oauth_error().unwrap_or("invalid_token"),
                error.to_string(),
            ),
        };
        let body = serde_json::to_vec(&Body {
            error: code,
            error_description: &description,
        })
        .unwrap_or_default();
        let mut response = Response::new(B::from(Bytes::from(body)));
        *response.status_mut() = error.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if unavailable(error) {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
        }
        append(headers, extra);
        response
    }
}

impl<B: Default> Refusal<B> for Grpc {
    fn respond(error: &AuthnError, extra: HeaderMap) -> Response<B> {
        // gRPC status codes: 14 UNAVAILABLE, 16 UNAUTHENTICATED.
        let status = if unavailable(error) { "14" } else { "16" };
        let mut response = Response::new(B::default());
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(
            HeaderName::from_static("grpc-status"),
            HeaderValue::from_static(status),
        );
        if let Ok(message) = HeaderValue::from_str(&grpc_message(&error.to_string())) {
            headers.insert(HeaderName::from_static("grpc-message"), message);
        }
        append(headers, extra);
        response
    }
}

/// The JSON body of an HTTP refusal.
#[derive(serde::Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: &'a str,
}

fn unavailable(error: &AuthnError) -> bool {
    error.unavailable()
}

/// `grpc-message` is percent-encoded: everything outside printable ASCII, and `%`.
fn grpc_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn append(headers: &mut HeaderMap, extra: HeaderMap) {
    let mut last = None;
    for (name, value) in extra {
        if let Some(name) = name {
            last = Some(name);
        }
        if let Some(name) = &last {
            headers.append(name.clone(), value);
        }
    }
}

/// Logs the refusal and answers it with the challenges of `config` (none
/// when the server is at fault); the error goes on the challenge of the
/// scheme the request `used`, or of DPoP for a proof's error.
pub(super) fn reject<M: Refusal<B>, B>(
    error: &AuthnError,
    config: &Config,
    used: Option<Scheme>,
) -> Response<B> {
    tracing::debug!(
        target: "tessera_authn",
        reason = error.reason(),
        status = error.status().as_u16(),
        "request rejected"
    );
    let mut headers = HeaderMap::new();
    if unavailable(error) {
        return M::respond(error, headers);
    }
    let realm = config.realm.to_str().unwrap_or("api");
    let params = error
        .oauth_error()
        .map(|code| format!(r#", error="{code}", error_description="{error}""#));
    #[cfg(feature = "dpop")]
    if let Some(dpop) = config.dpop.as_ref().filter(|d| d.any_dpop()) {
        let dpop_error = matches!(
            error,
            AuthnError::InvalidDpopProof(_)
                | AuthnError::UseDpopNonce
                | AuthnError::DpopRequired
                | AuthnError::DpopNotAccepted
                | AuthnError::TokenNotBound
        ) || used == Some(Scheme::Dpop);
        let bearer = dpop.default_policy().bearer();
        let on_bearer = bearer && !dpop_error;
        if bearer {
            let p = if on_bearer { params.as_deref() } else { None };
            push(
                &mut headers,
                format!(r#"Bearer realm="{realm}"{}"#, p.unwrap_or("")),
            );
        }
        let p = if on_bearer { None } else { params.as_deref() };
        push(
            &mut headers,
            format!(
                r#"DPoP realm="{realm}", algs="{}"{}"#,
                dpop.algs(),
                p.unwrap_or("")
            ),
        );
        if *error == AuthnError::UseDpopNonce
            && let Some(nonce) = dpop.current_nonce()
        {
            headers.insert(crate::dpop::DPOP_NONCE, nonce);
        }
        return M::respond(error, headers);
    }
    let _ = used;
    push(
        &mut headers,
        format!(
            r#"Bearer realm="{realm}"{}"#,
            params.as_deref().unwrap_or("")
        ),
    );
    M::respond(error, headers)
}

/// Appends a challenge; the header takes the string's buffer as it is.
fn push(headers: &mut HeaderMap, challenge: String) {
    if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(challenge)) {
        headers.append(WWW_AUTHENTICATE, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn realm() -> Config {
        Config::new()
    }

    #[test]
    fn grpc_message_percent_encodes_what_is_not_printable_ascii() {
        assert_eq!(grpc_message("token expired"), "token expired");
        assert_eq!(grpc_message("100% é\n"), "100%25 %C3%A9%0A");
    }

    #[test]
    fn unavailable_keys_are_grpc_unavailable_without_a_challenge() {
        let res: Response<()> = reject::<Grpc, ()>(&AuthnError::KeysUnavailable, &realm(), None);
        assert_eq!(res.headers()["grpc-status"], "14");
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
        let res: Response<()> = reject::<Grpc, ()>(&AuthnError::MissingToken, &realm(), None);
        assert_eq!(res.headers()["grpc-status"], "16");
        assert_eq!(res.headers()[WWW_AUTHENTICATE], r#"Bearer realm="api""#);
    }

    #[test]
    fn challenge_carries_no_error_code_when_credentials_are_missing() {
        let r: Response<Bytes> = reject::<Http, _>(&AuthnError::MissingToken, &realm(), None);
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], r#"Bearer realm="api""#);
        let r: Response<Bytes> =
            reject::<Http, _>(&AuthnError::Expired, &realm(), Some(Scheme::Bearer));
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="api", error="invalid_token", error_description="token expired""#
        );
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["error"], "invalid_token");
        let r: Response<Bytes> = reject::<Http, _>(&AuthnError::KeysUnavailable, &realm(), None);
        assert_eq!(r.status(), 503);
    }
}
