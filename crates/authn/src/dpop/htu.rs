//! `htu`: the request's URI as the client saw it, without query and
//! fragment, normalised (RFC 9449 §4.3 check 9; RFC 3986 §6.2.2 and
//! §6.2.3), and where it comes from behind a proxy.

use http::Request;
use http::header::HOST;
use url::Url;

/// The normal form of an `http(s)` URI without query and fragment:
/// lowercase scheme and host, no default port, no dot segments, `/` for
/// an empty path, percent-encodings uppercase and unreserved characters
/// decoded. `None` for anything else (another scheme, user info, no host).
pub(super) fn normalize(uri: &str) -> Option<String> {
    let mut url = Url::parse(uri).ok()?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    let path = normalize_percent(url.path());
    url.set_path(&path);
    Some(url.into())
}

/// `%7e` and `%7E` are `~`; `%2f` is `%2F` (RFC 3986 §6.2.2.1, §6.2.2.2).
fn normalize_percent(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            let c = h << 4 | l;
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(c));
            } else {
                out.push_str(&format!("%{c:02X}"));
            }
            i += 3;
            continue;
        }
        // A `%` not followed by two hex digits, or any other byte: as is.
        let len = path[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&path[i..i + len]);
        i += len;
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The URI the client called, normalised: the configured public base URL
/// (its path prefixed) with the request's path, or else the request's
/// own scheme (`http` when the request line has none), host and path.
pub(super) fn request_uri<B>(req: &Request<B>, public: Option<&Url>) -> Option<String> {
    let path = req.uri().path();
    let uri = match public {
        Some(base) => {
            let prefix = base.path().trim_end_matches('/');
            let origin = base.origin().ascii_serialization();
            format!("{origin}{prefix}{path}")
        }
        None => {
            let scheme = req.uri().scheme_str().unwrap_or("http");
            let authority = match req.uri().authority() {
                Some(authority) => authority.as_str(),
                None => {
                    let mut hosts = req.headers().get_all(HOST).iter();
                    let (Some(host), None) = (hosts.next(), hosts.next()) else {
                        return None;
                    };
                    host.to_str().ok()?
                }
            };
            format!("{scheme}://{authority}{path}")
        }
    };
    normalize(&uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_uris_normalise_alike() {
        let want = normalize("https://api.example.com/a/b~c").unwrap();
        for uri in [
            "HTTPS://API.Example.COM:443/a/b~c",
            "https://api.example.com/a/./x/../b%7ec?q=1#frag",
            "https://api.example.com/a/b%7Ec",
        ] {
            assert_eq!(normalize(uri).as_deref(), Some(want.as_str()), "{uri}");
        }
        assert_eq!(
            normalize("https://api.example.com").as_deref(),
            Some("https://api.example.com/")
        );
        assert_eq!(
            normalize("http://h/a%2fb").as_deref(),
            Some("http://h/a%2Fb")
        );
    }

    #[test]
    fn different_uris_stay_different() {
        let base = normalize("https://api.example.com/a").unwrap();
        for uri in [
            "http://api.example.com/a",
            "https://api.example.com:8443/a",
            "https://api.example.com/a/",
            "https://api.example.com/A",
            "https://other.example.com/a",
        ] {
            assert_ne!(normalize(uri).unwrap(), base, "{uri}");
        }
    }

    #[test]
    fn other_schemes_and_user_info_are_refused() {
        for uri in ["ftp://h/a", "https://u:p@h/a", "/relative", "urn:x:y"] {
            assert_eq!(normalize(uri), None, "{uri}");
        }
    }

    #[test]
    fn request_uri_uses_the_public_url_or_the_host() {
        let req = Request::get("/orders/1?x=2")
            .header(HOST, "localhost:8080")
            .body(())
            .unwrap();
        assert_eq!(
            request_uri(&req, None).as_deref(),
            Some("http://localhost:8080/orders/1")
        );
        let public = Url::parse("https://api.example.com/shop/").unwrap();
        assert_eq!(
            request_uri(&req, Some(&public)).as_deref(),
            Some("https://api.example.com/shop/orders/1")
        );
        let no_host = Request::get("/a").body(()).unwrap();
        assert_eq!(request_uri(&no_host, None), None);
    }
}
