//! Where the token is found ([`TokenLocation`]) and how it is read from
//! the request: one credential, size-limited, RFC 6750 `b64token` syntax.

use crate::error::AuthnError;
use http::header::AUTHORIZATION;
use http::{HeaderName, HeaderValue, Request};

/// The largest Authorization header (or token cookie/header) we look at.
pub const DEFAULT_MAX_HEADER_LEN: usize = 8 * 1024 + 16;

/// Where the layer finds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenLocation {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1), scheme case-insensitive.
    AuthorizationHeader,
    /// A cookie with this name.
    Cookie(String),
    /// A custom header carrying the bare token.
    Header(HeaderName),
}

/// The scheme the token came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `Bearer`, or a cookie or custom header.
    Bearer,
    /// `DPoP` (RFC 9449 §7.1), looked for only when DPoP is on.
    #[cfg_attr(not(feature = "dpop"), allow(dead_code))]
    Dpop,
}

/// The token of `req` at `location` and its scheme; header values longer
/// than `max_header_len` are refused before any parsing. The `DPoP` scheme
/// counts only when `dpop` is set.
pub(crate) fn extract<'r, B>(
    req: &'r Request<B>,
    location: &TokenLocation,
    max_header_len: usize,
    dpop: bool,
) -> Result<(Scheme, &'r str), AuthnError> {
    match location {
        TokenLocation::AuthorizationHeader => {
            let value = single_header(req, &AUTHORIZATION, max_header_len)?.as_bytes();
            let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
                Some(space) => (&value[..space], &value[space + 1..]),
                None => (value, &b""[..]),
            };
            let scheme = if scheme.eq_ignore_ascii_case(b"bearer") {
                Some(Scheme::Bearer)
            } else if dpop && scheme.eq_ignore_ascii_case(b"dpop") {
                Some(Scheme::Dpop)
            } else {
                None
            };
            let Some(scheme) = scheme else {
                // Other schemes (Basic, DPoP...) are not bearer credentials,
                // provided the header is text at all.
                let text = value
                    .iter()
                    .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
                return Err(if text {
                    AuthnError::MissingToken
                } else {
                    AuthnError::MalformedRequest
                });
            };
            let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
            token68(&rest[start..]).map(|t| (scheme, t))
        }
        TokenLocation::Header(name) => {
            token68(single_header(req, name, max_header_len)?.as_bytes())
                .map(|t| (Scheme::Bearer, t))
        }
        TokenLocation::Cookie(name) => {
            let mut found = None;
            for header in req.headers().get_all(http::header::COOKIE) {
                if header.len() > max_header_len {
                    return Err(AuthnError::TokenTooLarge);
                }
                let Ok(header) = header.to_str() else {
                    continue;
                };
                for pair in header.split(';') {
                    if let Some((k, v)) = pair.trim().split_once('=')
                        && k == name
                    {
                        if found.is_some() {
                            return Err(AuthnError::MalformedRequest);
                        }
                        found = Some(v.trim_matches('"'));
                    }
                }
            }
            token68(found.ok_or(AuthnError::MissingToken)?.as_bytes()).map(|t| (Scheme::Bearer, t))
        }
    }
}

/// The one value of the header `name`: none is no token, two are a
/// malformed request, and an oversized one is refused before it is read.
fn single_header<'r, B>(
    req: &'r Request<B>,
    name: &HeaderName,
    max_header_len: usize,
) -> Result<&'r HeaderValue, AuthnError> {
    let mut values = req.headers().get_all(name).iter();
    let value = values.next().ok_or(AuthnError::MissingToken)?;
    if values.next().is_some() {
        return Err(AuthnError::MalformedRequest);
    }
    if value.len() > max_header_len {
        return Err(AuthnError::TokenTooLarge);
    }
    Ok(value)
}

/// The bytes of RFC 6750 §2.1 `b64token` (before its trailing `=`s).
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] =
            c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    table
};

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
/// One pass over the bytes; what passes is ASCII, hence text.
fn token68(token: &[u8]) -> Result<&str, AuthnError> {
    let end = token.len() - token.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &token[..end];
    // Every byte looked up, without a branch per byte (a token is most of a
    // kilobyte and nearly always valid): eight lookups folded per step.
    let mut chunks = body.chunks_exact(8);
    let mut valid = true;
    for chunk in &mut chunks {
        valid &= chunk
            .iter()
            .fold(true, |ok, &b| ok & B64TOKEN[usize::from(b)]);
    }
    valid &= chunks
        .remainder()
        .iter()
        .fold(true, |ok, &b| ok & B64TOKEN[usize::from(b)]);
    if body.is_empty() || !valid {
        return Err(AuthnError::MalformedRequest);
    }
    std::str::from_utf8(token).map_err(|_| AuthnError::MalformedRequest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the layer looks, with a 64-byte header limit.
    struct Config {
        location: TokenLocation,
        max_header_len: usize,
    }

    fn config() -> Config {
        Config {
            location: TokenLocation::AuthorizationHeader,
            max_header_len: 64,
        }
    }

    fn extract<'r>(req: &'r Request<()>, config: &Config) -> Result<&'r str, AuthnError> {
        super::extract(req, &config.location, config.max_header_len, false).map(|(_, t)| t)
    }

    #[test]
    fn dpop_scheme_counts_only_when_on() {
        let req = with_auth(&["DPoP abc.def.ghi"]);
        let c = config();
        assert_eq!(
            super::extract(&req, &c.location, 64, true),
            Ok((Scheme::Dpop, "abc.def.ghi"))
        );
        assert_eq!(
            super::extract(&req, &c.location, 64, false),
            Err(AuthnError::MissingToken)
        );
        let req = with_auth(&["dpop abc"]);
        assert_eq!(
            super::extract(&req, &c.location, 64, true),
            Ok((Scheme::Dpop, "abc"))
        );
    }

    fn with_auth(values: &[&str]) -> Request<()> {
        let mut req = Request::new(());
        for v in values {
            req.headers_mut()
                .append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        req
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let req = with_auth(&[&format!("{scheme} abc.def.ghi")]);
            assert_eq!(extract(&req, &config()), Ok("abc.def.ghi"));
        }
    }

    #[test]
    fn malformed_credentials_are_bad_requests() {
        for value in [
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "Bearer a,b",
            "Bearer ===",
            "Bearer a=b",
        ] {
            assert_eq!(
                extract(&with_auth(&[value]), &config()),
                Err(AuthnError::MalformedRequest),
                "{value}"
            );
        }
        assert_eq!(
            extract(&with_auth(&["Bearer a", "Bearer b"]), &config()),
            Err(AuthnError::MalformedRequest)
        );
    }

    #[test]
    fn every_byte_of_a_token_is_checked_wherever_it_sits() {
        // Eight bytes are checked per step, then the rest: a bad byte is
        // found at each position of both, and the good token passes.
        let good = "abcdefgh.ijklmnop-qrs_tu~v+w/x==";
        let value = format!("Bearer {good}");
        assert_eq!(extract(&with_auth(&[&value]), &config()), Ok(good));
        let body = good.trim_end_matches('=');
        for at in 0..body.len() {
            for bad in ['!', '=', ',', '"', '\\'] {
                if bad == '=' && at == body.len() - 1 {
                    continue; // one more trailing `=`: still a b64token
                }
                let mut token = body.to_owned();
                token.replace_range(at..=at, &bad.to_string());
                let value = format!("Bearer {token}==");
                assert_eq!(
                    extract(&with_auth(&[&value]), &config()),
                    Err(AuthnError::MalformedRequest),
                    "{value}"
                );
            }
        }
    }

    #[test]
    fn headers_that_are_not_text_are_bad_requests() {
        for value in [&b"Bearer abc\xff"[..], b"Basic \xffabc", b"\xff"] {
            let mut req = Request::new(());
            req.headers_mut()
                .insert(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
            assert_eq!(
                extract(&req, &config()),
                Err(AuthnError::MalformedRequest),
                "{value:?}"
            );
        }
        let mut req = Request::new(());
        req.headers_mut()
            .insert(AUTHORIZATION, HeaderValue::from_static("Bearer\tabc"));
        assert_eq!(extract(&req, &config()), Err(AuthnError::MissingToken));
    }

    #[test]
    fn other_schemes_count_as_no_credentials() {
        assert_eq!(
            extract(&with_auth(&["Basic dXNlcjpwYXNz"]), &config()),
            Err(AuthnError::MissingToken)
        );
        assert_eq!(
            extract(&Request::new(()), &config()),
            Err(AuthnError::MissingToken)
        );
    }

    #[test]
    fn oversized_headers_are_rejected_before_parsing() {
        let long = format!("Bearer {}", "a".repeat(100));
        assert_eq!(
            extract(&with_auth(&[&long]), &config()),
            Err(AuthnError::TokenTooLarge)
        );
    }

    #[test]
    fn cookie_and_custom_header_locations() {
        let mut c = config();
        c.location = TokenLocation::Cookie("at".into());
        let mut req = Request::new(());
        req.headers_mut().insert(
            http::header::COOKIE,
            HeaderValue::from_static("x=1; at=tok.en.x; y=2"),
        );
        assert_eq!(extract(&req, &c), Ok("tok.en.x"));
        c.location = TokenLocation::Header(HeaderName::from_static("x-token"));
        req.headers_mut()
            .insert("x-token", HeaderValue::from_static("abc"));
        assert_eq!(extract(&req, &c), Ok("abc"));
    }
}
