//! The credentials of outgoing requests: `Authorization` (`Bearer`, or
//! `DPoP` with a fresh proof), and what a downstream's answer says of them.

use super::{error::ClientError, token::AccessToken};
use http::{HeaderMap, HeaderValue, StatusCode};

/// Writes `token`'s credentials for a `method` request to `url` into
/// `headers`: `Authorization: Bearer <token>`, or for a DPoP-bound token
/// `Authorization: DPoP <token>` and a `DPoP` proof for this method and URL,
/// hashing the token and echoing the nonce that server gave last. Values
/// are marked sensitive so they are never logged.
pub(crate) fn authorize(
    headers: &mut HeaderMap,
    method: &str,
    url: &str,
    token: &AccessToken,
) -> Result<(), ClientError> {
    let _ = (method, url);
    let mut value = HeaderValue::from_str(&format!("{} {}", token.scheme(), token.secret()))
        .map_err(|_| ClientError::InvalidResponse("token is not a valid header value".into()))?;
    value.set_sensitive(true);
    headers.insert(http::header::AUTHORIZATION, value);
    #[cfg(feature = "dpop")]
    if let Some(signer) = token.dpop_signer() {
        let nonce = signer.nonces().get(url);
        let proof = signer.proof(method, url, Some(token.secret()), nonce.as_deref())?;
        let mut value = HeaderValue::try_from(proof)
            .map_err(|_| ClientError::Config("the DPoP proof is not a header value".into()))?;
        value.set_sensitive(true);
        headers.insert(crate::dpop::DPOP, value);
    }
    Ok(())
}

/// Why a downstream refused the credentials sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 401 `error="invalid_token"` (RFC 6750 §3.1): the token is no good;
    /// a fresh one may be.
    InvalidToken,
    /// 401 `error="use_dpop_nonce"` with a `DPoP-Nonce` (RFC 9449 §9): the
    /// same token, with a proof echoing that nonce.
    UseDpopNonce,
}

/// Reads the answer to a request sent to `url` with `token`: keeps the
/// `DPoP-Nonce` it carries for the next proofs of that token's key, and
/// says whether the credentials were refused in a way a retry can mend.
pub(crate) fn refusal(
    token: &AccessToken,
    url: &str,
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<Refusal> {
    #[cfg(feature = "dpop")]
    let dpop = token
        .dpop_signer()
        .inspect(|signer| signer.nonces().remember(url, headers));
    #[cfg(not(feature = "dpop"))]
    let dpop: Option<()> = {
        let _ = (token, url);
        None
    };
    if status != StatusCode::UNAUTHORIZED {
        return None;
    }
    let mut refusal = None;
    for (scheme, error) in challenge_errors(headers) {
        let bearer = scheme.eq_ignore_ascii_case("bearer");
        let dpop_scheme = scheme.eq_ignore_ascii_case("dpop");
        if (bearer || dpop_scheme) && error == "invalid_token" {
            refusal = Some(Refusal::InvalidToken);
        } else if dpop_scheme
            && error == "use_dpop_nonce"
            && dpop.is_some()
            && headers.contains_key("dpop-nonce")
        {
            return Some(Refusal::UseDpopNonce);
        }
    }
    refusal
}

/// The `error` of each challenge in the `WWW-Authenticate` headers, with
/// its scheme: `Bearer realm="api", error="invalid_token"` gives
/// `("Bearer", "invalid_token")`. Several challenges may share one header.
fn challenge_errors(headers: &HeaderMap) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    for value in headers.get_all(http::header::WWW_AUTHENTICATE) {
        let Ok(value) = value.to_str() else { continue };
        let mut scheme = "";
        for part in value.split(',') {
            let mut part = part.trim();
            // A part opening a challenge starts with its scheme: a token
            // followed by a space or nothing, before any `=`.
            let first = part.split_whitespace().next().unwrap_or_default();
            if !first.is_empty() && !first.contains('=') {
                scheme = first;
                part = part[first.len()..].trim();
            }
            if let Some((name, value)) = part.split_once('=')
                && name.trim().eq_ignore_ascii_case("error")
            {
                out.push((scheme, value.trim().trim_matches('"')));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
        h
    }

    fn bearer_refusal(status: StatusCode, headers: &HeaderMap) -> Option<Refusal> {
        refusal(
            &AccessToken::new("t"),
            "https://api.example/",
            status,
            headers,
        )
    }

    #[test]
    fn invalid_token_challenges_are_recognised() {
        let yes = [
            r#"Bearer error="invalid_token""#,
            r#"Bearer realm="api", error="invalid_token", error_description="token expired""#,
            r#"bearer error=invalid_token"#,
            r#"DPoP algs="ES256", error="invalid_token""#,
            r#"Basic realm="x", Bearer error="invalid_token""#,
        ];
        for v in yes {
            assert_eq!(
                bearer_refusal(StatusCode::UNAUTHORIZED, &challenge(v)),
                Some(Refusal::InvalidToken),
                "{v}"
            );
        }
        let no = [
            r#"Bearer realm="api""#,
            r#"Bearer error="insufficient_scope""#,
            r#"Basic realm="x", error="invalid_token""#,
            r#"DPoP error="use_dpop_nonce""#,
        ];
        for v in no {
            assert_eq!(
                bearer_refusal(StatusCode::UNAUTHORIZED, &challenge(v)),
                None,
                "{v}"
            );
        }
        assert_eq!(
            bearer_refusal(
                StatusCode::FORBIDDEN,
                &challenge(r#"Bearer error="invalid_token""#)
            ),
            None
        );
    }

    #[test]
    fn bearer_tokens_go_out_as_bearer() {
        let mut headers = HeaderMap::new();
        authorize(
            &mut headers,
            "GET",
            "https://api.example/",
            &AccessToken::new("abc"),
        )
        .unwrap();
        assert_eq!(headers["authorization"], "Bearer abc");
        assert!(headers["authorization"].is_sensitive());
        assert!(!headers.contains_key("dpop"));
        assert!(matches!(
            authorize(&mut headers, "GET", "/", &AccessToken::new("a\nb")),
            Err(ClientError::InvalidResponse(_))
        ));
    }

    #[cfg(feature = "dpop")]
    #[test]
    fn bound_tokens_go_out_with_a_proof_echoing_the_nonce() {
        use base64::Engine as _;
        let signer = crate::client::DpopSigner::generate(jsonwebtoken::Algorithm::ES256).unwrap();
        let token = AccessToken::dpop_bound("abc", signer);
        let url = "https://api.example/orders?page=2";
        let mut headers = HeaderMap::new();
        authorize(&mut headers, "PUT", url, &token).unwrap();
        assert_eq!(headers["authorization"], "DPoP abc");
        let claims = |headers: &HeaderMap| -> serde_json::Value {
            let proof = headers["dpop"].to_str().unwrap();
            let payload = proof.split('.').nth(1).unwrap();
            serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .unwrap(),
            )
            .unwrap()
        };
        assert_eq!(claims(&headers)["htm"], "PUT");
        assert_eq!(claims(&headers)["htu"], "https://api.example/orders");
        assert!(claims(&headers).get("nonce").is_none());

        let mut answer = challenge(r#"DPoP error="use_dpop_nonce""#);
        assert_eq!(
            refusal(&token, url, StatusCode::UNAUTHORIZED, &answer),
            None,
            "no nonce given: nothing to retry with"
        );
        answer.insert("dpop-nonce", HeaderValue::from_static("n-1"));
        assert_eq!(
            refusal(&token, url, StatusCode::UNAUTHORIZED, &answer),
            Some(Refusal::UseDpopNonce)
        );
        authorize(&mut headers, "PUT", url, &token).unwrap();
        assert_eq!(claims(&headers)["nonce"], "n-1");
        // A nonce rotated on a successful answer is used next.
        let mut ok = HeaderMap::new();
        ok.insert("dpop-nonce", HeaderValue::from_static("n-2"));
        assert_eq!(refusal(&token, url, StatusCode::OK, &ok), None);
        authorize(&mut headers, "GET", "https://api.example/x", &token).unwrap();
        assert_eq!(claims(&headers)["nonce"], "n-2");
    }
}
