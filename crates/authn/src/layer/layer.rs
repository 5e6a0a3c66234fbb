//! [`AuthnLayer`]: the settings (realm, token location, optional, refusal
//! mode) and the tower `Layer` that wraps a service in [`Authn`].

use super::refusal::{Grpc, Http};
use super::service::Authn;
use super::token::{DEFAULT_MAX_HEADER_LEN, TokenLocation};
use crate::claims::ExtraClaims;
#[cfg(feature = "dpop")]
use crate::dpop::DpopOptions;
use crate::mtls::CertificateSource;
use crate::validator::JwtValidator;
use http::{HeaderName, HeaderValue};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use tower_layer::Layer;

/// What the layer's services share.
#[derive(Debug, Clone)]
pub(super) struct Config {
    pub(super) realm: HeaderValue,
    pub(super) location: TokenLocation,
    pub(super) optional: bool,
    pub(super) max_header_len: usize,
    pub(super) certificates: CertificateSource,
    #[cfg(feature = "dpop")]
    pub(super) dpop: Option<Arc<DpopOptions>>,
    /// Whether the request span gets `enduser.id` (feature `otel`).
    pub(super) record_enduser_id: bool,
}

impl Config {
    pub(super) fn new() -> Self {
        Self {
            realm: HeaderValue::from_static("api"),
            location: TokenLocation::AuthorizationHeader,
            optional: false,
            max_header_len: DEFAULT_MAX_HEADER_LEN,
            certificates: CertificateSource::Extension,
            #[cfg(feature = "dpop")]
            dpop: None,
            record_enduser_id: false,
        }
    }

    /// Whether the `DPoP` scheme is looked for.
    #[cfg_attr(not(feature = "dpop"), allow(clippy::unused_self))]
    pub(super) fn dpop_on(&self) -> bool {
        #[cfg(feature = "dpop")]
        return self.dpop.as_ref().is_some_and(|d| d.any_dpop());
        #[cfg(not(feature = "dpop"))]
        false
    }
}

/// Validates the bearer token of every request; see the [module docs](super).
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
            config: Arc::new(Config::new()),
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

    /// Accepts DPoP-bound tokens (RFC 9449) as `options` say: the `DPoP`
    /// scheme with a proof, each issuer's policy, replay protection,
    /// nonces. Without this, bearer tokens only, and a DPoP-bound token is
    /// refused. See [`crate::dpop`].
    #[cfg(feature = "dpop")]
    pub fn dpop(self, options: DpopOptions) -> Self {
        let options = Arc::new(options);
        self.map_config(|c| c.dpop = Some(options))
    }

    /// Where the client certificate of certificate-bound tokens (RFC 8705)
    /// comes from (default a [`ClientCertificate`](crate::ClientCertificate)
    /// request extension). See [`crate::mtls`].
    pub fn client_certificate_from(self, source: CertificateSource) -> Self {
        self.map_config(|c| c.certificates = source)
    }

    /// Records the token's `sub` as `enduser.id` on the request span
    /// (feature `otel`). Off by default: a user id in traces is personal
    /// data, so turning it on is the application's decision.
    #[cfg(feature = "otel")]
    pub fn record_enduser_id(self) -> Self {
        self.map_config(|c| c.record_enduser_id = true)
    }

    fn map_config(mut self, f: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::clone(&self.config);
        f(&mut config);
        self.config = Arc::new(config);
        self
    }
}

impl<S, E, M> Layer<S> for AuthnLayer<E, M> {
    type Service = Authn<S, E, M>;

    fn layer(&self, inner: S) -> Self::Service {
        Authn::from_parts(inner, self.validator.clone(), Arc::clone(&self.config))
    }
}
