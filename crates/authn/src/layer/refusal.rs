//! How a refused request is answered: the RFC 6750 challenge, and the
//! [`Http`] or [`Grpc`] rendering of the response ([`Refusal`]).

use crate::error::AuthnError;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Response};

/// How [`Authn`](super::Authn) answers a refused request with a
/// `Response<B>`: [`Http`] or [`Grpc`]. Sealed.
pub trait Refusal<B>: sealed::Sealed + Send + 'static {
    /// The answer to a request refused with `error`; `challenge` is the
    /// RFC 6750 `WWW-Authenticate` value, if the error has one.
    #[doc(hidden)]
    fn respond(error: &AuthnError, challenge: Option<HeaderValue>) -> Response<B>;
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
    fn respond(error: &AuthnError, challenge: Option<HeaderValue>) -> Response<B> {
        let (code, description) = match error {
            AuthnError::KeysUnavailable | AuthnError::IntrospectionUnavailable => {
                ("temporarily_unavailable", error.to_string())
            }
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
        if let Some(challenge) = challenge {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

impl<B: Default> Refusal<B> for Grpc {
    fn respond(error: &AuthnError, challenge: Option<HeaderValue>) -> Response<B> {
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
        if let Some(challenge) = challenge {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
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
    matches!(
        error,
        AuthnError::KeysUnavailable | AuthnError::IntrospectionUnavailable
    )
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

/// Logs the refusal and answers it, with a challenge for `realm` unless
/// the keys are unavailable.
pub(super) fn reject<M: Refusal<B>, B>(error: &AuthnError, realm: &HeaderValue) -> Response<B> {
    tracing::debug!(
        target: "tessera_authn",
        reason = error.reason(),
        status = error.status().as_u16(),
        "request rejected"
    );
    if unavailable(error) {
        return M::respond(error, None);
    }
    let realm = realm.to_str().unwrap_or("api");
    let challenge = match error.oauth_error() {
        None => format!(r#"Bearer realm="{realm}""#),
        Some(code) => {
            format!(r#"Bearer realm="{realm}", error="{code}", error_description="{error}""#)
        }
    };
    // The header takes the string's buffer as it is: no copy.
    M::respond(
        error,
        HeaderValue::from_maybe_shared(Bytes::from(challenge)).ok(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn realm() -> HeaderValue {
        HeaderValue::from_static("api")
    }

    #[test]
    fn grpc_message_percent_encodes_what_is_not_printable_ascii() {
        assert_eq!(grpc_message("token expired"), "token expired");
        assert_eq!(grpc_message("100% é\n"), "100%25 %C3%A9%0A");
    }

    #[test]
    fn unavailable_keys_are_grpc_unavailable_without_a_challenge() {
        let res: Response<()> = reject::<Grpc, ()>(&AuthnError::KeysUnavailable, &realm());
        assert_eq!(res.headers()["grpc-status"], "14");
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
        let res: Response<()> = reject::<Grpc, ()>(&AuthnError::MissingToken, &realm());
        assert_eq!(res.headers()["grpc-status"], "16");
        assert_eq!(res.headers()[WWW_AUTHENTICATE], r#"Bearer realm="api""#);
    }

    #[test]
    fn challenge_carries_no_error_code_when_credentials_are_missing() {
        let r: Response<Bytes> = reject::<Http, _>(&AuthnError::MissingToken, &realm());
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], r#"Bearer realm="api""#);
        let r: Response<Bytes> = reject::<Http, _>(&AuthnError::Expired, &realm());
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="api", error="invalid_token", error_description="token expired""#
        );
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["error"], "invalid_token");
        let r: Response<Bytes> = reject::<Http, _>(&AuthnError::KeysUnavailable, &realm());
        assert_eq!(r.status(), 503);
    }
}
