//! [`AuthnLayer`]: the tower middleware that lets only requests with a valid
//! bearer token through.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tessera_authn::{AuthnLayer, Issuer, JwtValidator, KeySet};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! let validator = JwtValidator::builder()
//!     .issuer(Issuer::new("https://idp.example").audience("api").keys(KeySet::default()))
//!     .build()?;
//! let service = ServiceBuilder::new()
//!     .layer(AuthnLayer::new(validator).realm("orders"))
//!     .service_fn(|_req: Request<Full<Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::from("secret")))
//!     });
//!
//! let response = service.oneshot(Request::new(Full::<Bytes>::default())).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="orders""#);
//! # Ok(()) }
//! ```

use crate::claims::ExtraClaims;
use crate::error::AuthnError;
use crate::validator::JwtValidator;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use serde::de::DeserializeOwned;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tower_layer::Layer;
use tower_service::Service;

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

#[derive(Debug)]
struct Config {
    realm: HeaderValue,
    location: TokenLocation,
    optional: bool,
    max_header_len: usize,
}

/// Validates the bearer token of every request; see the [module docs](self).
///
/// On success the [`Principal`](crate::Principal) is inserted into the request's extensions.
/// On failure the inner service is not called: the layer answers 401 with an
/// RFC 6750 challenge (400 for a malformed request, 503 when the issuer's
/// keys cannot be fetched), with a small JSON body that never echoes the
/// token or its claims.
///
/// `M` is how refusals are answered: [`Http`] (RFC 6750 status codes, the
/// default) or [`Grpc`] ([`AuthnLayer::grpc`]).
#[must_use]
pub struct AuthnLayer<E = ExtraClaims, M = Http> {
    validator: JwtValidator<E>,
    config: Arc<Config>,
    mode: PhantomData<fn() -> M>,
}

impl<E, M> Clone for AuthnLayer<E, M> {
    fn clone(&self) -> Self {
        Self {
            validator: self.validator.clone(),
            config: Arc::clone(&self.config),
            mode: PhantomData,
        }
    }
}

impl<E, M> fmt::Debug for AuthnLayer<E, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthnLayer")
            .field("validator", &self.validator)
            .field("config", &self.config)
            .finish()
    }
}

impl<E> AuthnLayer<E> {
    /// Requires a valid bearer token on every request.
    pub fn new(validator: JwtValidator<E>) -> Self {
        Self {
            validator,
            config: Arc::new(Config {
                realm: HeaderValue::from_static("api"),
                location: TokenLocation::AuthorizationHeader,
                optional: false,
                max_header_len: DEFAULT_MAX_HEADER_LEN,
            }),
            mode: PhantomData,
        }
    }

    /// Lets requests without any token through without a principal, so
    /// handlers can decide. A token that is present but invalid is still
    /// rejected.
    pub fn optional(validator: JwtValidator<E>) -> Self {
        Self::new(validator).map_config(|c| c.optional = true)
    }

    /// Answers refusals the gRPC way, for tonic servers: HTTP 200 with
    /// `grpc-status` 16 (`UNAUTHENTICATED`; 14 `UNAVAILABLE` when the keys
    /// cannot be fetched), a `grpc-message`, the `www-authenticate`
    /// challenge, and an empty body. Works with any response body that has
    /// a `Default` (tonic's `Body` has no `From<Bytes>`, which the HTTP mode
    /// needs for its JSON body).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use http::{Request, Response, StatusCode};
    /// use tessera_authn::{AuthnLayer, Issuer, JwtValidator, KeySet};
    /// use tower::{ServiceBuilder, ServiceExt};
    ///
    /// # #[derive(Default)] struct GrpcBody; // tonic::body::Body in a tonic server
    /// let validator = JwtValidator::builder()
    ///     .issuer(Issuer::new("https://idp.example").audience("api").keys(KeySet::default()))
    ///     .build()?;
    /// let service = ServiceBuilder::new()
    ///     .layer(AuthnLayer::new(validator).grpc())
    ///     .service_fn(|_req: Request<()>| async {
    ///         Ok::<_, std::convert::Infallible>(Response::new(GrpcBody))
    ///     });
    /// let response = service.oneshot(Request::new(())).await?;
    /// assert_eq!(response.status(), StatusCode::OK);
    /// assert_eq!(response.headers()["grpc-status"], "16");
    /// # Ok(()) }
    /// ```
    pub fn grpc(self) -> AuthnLayer<E, Grpc> {
        AuthnLayer {
            validator: self.validator,
            config: self.config,
            mode: PhantomData,
        }
    }
}

impl<E, M> AuthnLayer<E, M> {
    /// The `realm` of the challenge (default `api`). Quotes, backslashes and
    /// control characters are dropped.
    pub fn realm(self, realm: &str) -> Self {
        let clean: String = realm
            .chars()
            .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
            .collect();
        let value =
            HeaderValue::from_str(&clean).unwrap_or_else(|_| HeaderValue::from_static("api"));
        self.map_config(|c| c.realm = value)
    }

    /// Reads the token from this cookie instead of the Authorization header.
    pub fn token_from_cookie(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.map_config(|c| c.location = TokenLocation::Cookie(name))
    }

    /// Reads the bare token from this header instead of Authorization.
    pub fn token_from_header(self, name: HeaderName) -> Self {
        self.map_config(|c| c.location = TokenLocation::Header(name))
    }

    /// The longest header value looked at (default a little over 8 KiB);
    /// longer ones are rejected before any parsing.
    pub fn max_header_len(self, len: usize) -> Self {
        self.map_config(|c| c.max_header_len = len)
    }

    fn map_config(mut self, f: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            realm: self.config.realm.clone(),
            location: self.config.location.clone(),
            optional: self.config.optional,
            max_header_len: self.config.max_header_len,
        };
        f(&mut config);
        self.config = Arc::new(config);
        self
    }
}

impl<S, E, M> Layer<S> for AuthnLayer<E, M> {
    type Service = Authn<S, E, M>;

    fn layer(&self, inner: S) -> Self::Service {
        Authn {
            inner,
            validator: self.validator.clone(),
            config: Arc::clone(&self.config),
            mode: PhantomData,
        }
    }
}

/// The service built by [`AuthnLayer`].
pub struct Authn<S, E = ExtraClaims, M = Http> {
    inner: S,
    validator: JwtValidator<E>,
    config: Arc<Config>,
    mode: PhantomData<fn() -> M>,
}

impl<S: Clone, E, M> Clone for Authn<S, E, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            validator: self.validator.clone(),
            config: Arc::clone(&self.config),
            mode: PhantomData,
        }
    }
}

impl<S: fmt::Debug, E, M> fmt::Debug for Authn<S, E, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authn")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, E, M> Authn<S, E, M> {
    /// Wraps `inner`.
    pub fn new(inner: S, layer: &AuthnLayer<E, M>) -> Self {
        layer.layer(inner)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, E, M, ReqBody, ResBody> Service<Request<ReqBody>> for Authn<S, E, M>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    E: DeserializeOwned + Send + Sync + 'static,
    M: Refusal<ResBody>,
    ReqBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let token = match extract(&req, &self.config) {
            Ok(token) => token,
            Err(AuthnError::MissingToken) if self.config.optional => {
                return ResponseFuture::inner(self.inner.call(req));
            }
            Err(error) => return ResponseFuture::reject(reject::<M, _>(&error, &self.config)),
        };
        match self.validator.validate_now(token) {
            Ok(Some(principal)) => {
                req.extensions_mut().insert(principal);
                ResponseFuture::inner(self.inner.call(req))
            }
            Err(error) => ResponseFuture::reject(reject::<M, _>(&error, &self.config)),
            Ok(None) => {
                // Keys must be fetched first. The ready inner service goes
                // with the request; a fresh clone stays behind (tower's
                // documented pattern for services that await before calling).
                let token = token.to_owned();
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let validator = self.validator.clone();
                let config = Arc::clone(&self.config);
                ResponseFuture::boxed(Box::pin(async move {
                    match validator.validate(&token).await {
                        Ok(principal) => {
                            req.extensions_mut().insert(principal);
                            Ok(Outcome::Call(inner.call(req)))
                        }
                        Err(error) => Ok(Outcome::Respond(reject::<M, _>(&error, &config))),
                    }
                }))
            }
        }
    }
}

fn extract<'r, B>(req: &'r Request<B>, config: &Config) -> Result<&'r str, AuthnError> {
    match &config.location {
        TokenLocation::AuthorizationHeader => {
            let mut values = req.headers().get_all(AUTHORIZATION).iter();
            let value = values.next().ok_or(AuthnError::MissingToken)?;
            if values.next().is_some() {
                return Err(AuthnError::MalformedRequest);
            }
            if value.len() > config.max_header_len {
                return Err(AuthnError::TokenTooLarge);
            }
            let value = value.to_str().map_err(|_| AuthnError::MalformedRequest)?;
            let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
            if !scheme.eq_ignore_ascii_case("bearer") {
                // Other schemes (Basic, DPoP...) are not bearer credentials.
                return Err(AuthnError::MissingToken);
            }
            token68(rest.trim_start_matches(' '))
        }
        TokenLocation::Header(name) => {
            let mut values = req.headers().get_all(name).iter();
            let value = values.next().ok_or(AuthnError::MissingToken)?;
            if values.next().is_some() {
                return Err(AuthnError::MalformedRequest);
            }
            if value.len() > config.max_header_len {
                return Err(AuthnError::TokenTooLarge);
            }
            token68(value.to_str().map_err(|_| AuthnError::MalformedRequest)?)
        }
        TokenLocation::Cookie(name) => {
            let mut found = None;
            for header in req.headers().get_all(http::header::COOKIE) {
                if header.len() > config.max_header_len {
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
            token68(found.ok_or(AuthnError::MissingToken)?)
        }
    }
}

/// RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn token68(token: &str) -> Result<&str, AuthnError> {
    let body = token.trim_end_matches('=');
    let valid = !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    if valid {
        Ok(token)
    } else {
        Err(AuthnError::MalformedRequest)
    }
}

/// How [`Authn`] answers a refused request with a `Response<B>`: [`Http`]
/// or [`Grpc`]. Sealed.
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

/// Refusals the gRPC way ([`AuthnLayer::grpc`]): HTTP 200, `grpc-status`,
/// `grpc-message`, the challenge, an empty body.
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
        let body = serde_json::json!({ "error": code, "error_description": description });
        let mut response = Response::new(B::from(Bytes::from(body.to_string())));
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

fn reject<M: Refusal<B>, B>(error: &AuthnError, config: &Config) -> Response<B> {
    tracing::debug!(
        target: "tessera_authn",
        reason = error.reason(),
        status = error.status().as_u16(),
        "request rejected"
    );
    if unavailable(error) {
        return M::respond(error, None);
    }
    let realm = config.realm.to_str().unwrap_or("api");
    let challenge = match error.oauth_error() {
        None => format!(r#"Bearer realm="{realm}""#),
        Some(code) => {
            format!(r#"Bearer realm="{realm}", error="{code}", error_description="{error}""#)
        }
    };
    M::respond(error, HeaderValue::from_str(&challenge).ok())
}

enum Outcome<F, B> {
    Call(F),
    Respond(Response<B>),
}

pin_project! {
    /// The response future of [`Authn`].
    pub struct ResponseFuture<F, B, Err> {
        #[pin]
        state: State<F, B, Err>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B, Err> {
        Inner { #[pin] future: F },
        Validating { future: BoxFuture<Result<Outcome<F, B>, Err>> },
        Rejected { response: Option<Response<B>> },
    }
}

impl<F, B, Err> ResponseFuture<F, B, Err> {
    fn inner(future: F) -> Self {
        Self {
            state: State::Inner { future },
        }
    }
    fn reject(response: Response<B>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }
    fn boxed(future: BoxFuture<Result<Outcome<F, B>, Err>>) -> Self {
        Self {
            state: State::Validating { future },
        }
    }
}

impl<F, B, Err> fmt::Debug for ResponseFuture<F, B, Err> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, Err> Future for ResponseFuture<F, B, Err>
where
    F: Future<Output = Result<Response<B>, Err>>,
{
    type Output = Result<Response<B>, Err>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { future } => return future.poll(cx),
                StateProj::Rejected { response } => {
                    return Poll::Ready(Ok(response.take().expect("polled after completion")));
                }
                StateProj::Validating { future } => match ready!(future.as_mut().poll(cx)) {
                    Ok(Outcome::Call(future)) => this.state.set(State::Inner { future }),
                    Ok(Outcome::Respond(response)) => return Poll::Ready(Ok(response)),
                    Err(e) => return Poll::Ready(Err(e)),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config {
            realm: HeaderValue::from_static("api"),
            location: TokenLocation::AuthorizationHeader,
            optional: false,
            max_header_len: 64,
        }
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

    #[test]
    fn challenge_carries_no_error_code_when_credentials_are_missing() {
        let r: Response<Bytes> = reject::<Http, _>(&AuthnError::MissingToken, &config());
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()[WWW_AUTHENTICATE], r#"Bearer realm="api""#);
        let r: Response<Bytes> = reject::<Http, _>(&AuthnError::Expired, &config());
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            r#"Bearer realm="api", error="invalid_token", error_description="token expired""#
        );
        let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(body["error"], "invalid_token");
        let r: Response<Bytes> = reject::<Http, _>(&AuthnError::KeysUnavailable, &config());
        assert_eq!(r.status(), 503);
    }
}

#[cfg(test)]
mod grpc_tests {
    use super::*;

    #[test]
    fn grpc_message_percent_encodes_what_is_not_printable_ascii() {
        assert_eq!(grpc_message("token expired"), "token expired");
        assert_eq!(grpc_message("100% é\n"), "100%25 %C3%A9%0A");
    }

    #[test]
    fn unavailable_keys_are_grpc_unavailable_without_a_challenge() {
        let config = Config {
            realm: HeaderValue::from_static("api"),
            location: TokenLocation::AuthorizationHeader,
            optional: false,
            max_header_len: DEFAULT_MAX_HEADER_LEN,
        };
        let res: Response<()> = reject::<Grpc, ()>(&AuthnError::KeysUnavailable, &config);
        assert_eq!(res.headers()["grpc-status"], "14");
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
        let res: Response<()> = reject::<Grpc, ()>(&AuthnError::MissingToken, &config);
        assert_eq!(res.headers()["grpc-status"], "16");
        assert_eq!(res.headers()[WWW_AUTHENTICATE], r#"Bearer realm="api""#);
    }
}
