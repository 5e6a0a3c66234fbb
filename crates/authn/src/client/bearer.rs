//! The bearer header of outgoing requests: writing one, and recognising a
//! downstream's RFC 6750 refusal of the token sent.

use super::{error::ClientError, token::AccessToken};
use http::HeaderValue;

/// `Bearer <token>`, marked sensitive so it is never logged.
pub(crate) fn bearer_value(token: &AccessToken) -> Result<HeaderValue, ClientError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.secret()))
        .map_err(|_| ClientError::InvalidResponse("token is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Whether a response's `WWW-Authenticate` says the token was refused
/// (RFC 6750 `error="invalid_token"`).
pub(crate) fn is_invalid_token(status: http::StatusCode, headers: &http::HeaderMap) -> bool {
    status == http::StatusCode::UNAUTHORIZED
        && headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                let v = v.trim_start();
                v.get(..6).is_some_and(|s| s.eq_ignore_ascii_case("bearer"))
                    && v.split(',').any(|param| {
                        let param = param.trim();
                        let param = param
                            .get(..6)
                            .filter(|p| p.eq_ignore_ascii_case("bearer"))
                            .map_or(param, |_| param[6..].trim());
                        param.split_once('=').is_some_and(|(k, v)| {
                            k.trim().eq_ignore_ascii_case("error")
                                && v.trim().trim_matches('"') == "invalid_token"
                        })
                    })
            })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, StatusCode};

    fn challenge(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn invalid_token_challenges_are_recognised() {
        let yes = [
            r#"Bearer error="invalid_token""#,
            r#"Bearer realm="api", error="invalid_token", error_description="token expired""#,
            r#"bearer error=invalid_token"#,
        ];
        for v in yes {
            assert!(
                is_invalid_token(StatusCode::UNAUTHORIZED, &challenge(v)),
                "{v}"
            );
        }
        let no = [
            r#"Bearer realm="api""#,
            r#"Bearer error="insufficient_scope""#,
            r#"Basic realm="x", error="invalid_token""#,
        ];
        for v in no {
            assert!(
                !is_invalid_token(StatusCode::UNAUTHORIZED, &challenge(v)),
                "{v}"
            );
        }
        assert!(!is_invalid_token(
            StatusCode::FORBIDDEN,
            &challenge(r#"Bearer error="invalid_token""#)
        ));
    }
}
