//! [`JwtValidator`]: validates compact JWS access tokens against trusted issuers.
//!
//! ```
//! # tokio_test_shim::run(async {
//! use tessera_authn::{Issuer, JwtValidator, KeySet};
//!
//! let keys = KeySet::from_jwks(br#"{"keys":[]}"#)?;
//! let validator = JwtValidator::builder()
//!     .issuer(Issuer::new("https://idp.example").audience("my-api").keys(keys))
//!     .build()?;
//! // An unknown issuer, a bad signature, an expired token... all end in an error.
//! assert!(validator.validate("not.a.token").await.is_err());
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! # });
//! # mod tokio_test_shim { pub fn run<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f) } }
//! ```

use crate::cache::TokenCache;
use crate::claims::{Claims, ExtraClaims};
use crate::error::{AuthnError, ConfigError};
use crate::keys::{Found, KeySet};
use crate::principal::Principal;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[cfg(feature = "remote")]
use crate::jwks::{JwksCache, JwksOptions};

/// The default clock leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// The default limit on a token's length in bytes.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// The asymmetric algorithms accepted by default.
pub const DEFAULT_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Which `typ` header values are accepted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenTypes {
    /// Absent, `JWT`, `at+jwt` or `application/at+jwt` (case-insensitive).
    #[default]
    Default,
    /// RFC 9068 strict: only `at+jwt` / `application/at+jwt`.
    Rfc9068,
    /// Exactly these values (compared case-insensitively, an `application/`
    /// prefix ignored); `allow_absent` admits tokens without `typ`.
    Custom {
        /// Accepted values.
        values: Vec<String>,
        /// Whether a token without `typ` is accepted.
        allow_absent: bool,
    },
}

impl TokenTypes {
    fn accepts(&self, typ: Option<&str>) -> bool {
        let Some(typ) = typ else {
            return match self {
                Self::Default => true,
                Self::Rfc9068 => false,
                Self::Custom { allow_absent, .. } => *allow_absent,
            };
        };
        let bare = strip_application(typ);
        match self {
            Self::Default => {
                bare.eq_ignore_ascii_case("jwt") || bare.eq_ignore_ascii_case("at+jwt")
            }
            Self::Rfc9068 => bare.eq_ignore_ascii_case("at+jwt"),
            Self::Custom { values, .. } => values
                .iter()
                .any(|v| strip_application(v).eq_ignore_ascii_case(bare)),
        }
    }
}

fn strip_application(typ: &str) -> &str {
    match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    }
}

/// Where an issuer's keys come from.
#[derive(Clone)]
enum KeySourceSpec {
    Static(KeySet),
    #[cfg(feature = "remote")]
    JwksUrl(String),
    #[cfg(feature = "remote")]
    Discovery,
    #[cfg(feature = "remote")]
    Cache(JwksCache),
}

/// A trusted issuer: its `iss` value, accepted audiences, keys and algorithms.
///
/// ```
/// use tessera_authn::Issuer;
///
/// let issuer = Issuer::new("https://login.example.com/realms/main")
///     .audience("orders-api")
///     .discovery(); // keys from /.well-known/openid-configuration
/// # let _ = issuer;
/// ```
#[derive(Clone)]
#[must_use]
pub struct Issuer {
    iss: String,
    tenants: Option<Tenants>,
    audiences: Vec<String>,
    keys: Option<KeySourceSpec>,
    algorithms: Option<Vec<Algorithm>>,
    secret: Option<KeySet>,
    #[cfg(feature = "introspection")]
    introspection: Option<crate::introspection::Introspection>,
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("iss", &self.iss)
            .field("tenants", &self.tenants)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field(
                "hmac_secret",
                &self.secret.as_ref().map(|_| crate::error::Redacted),
            )
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer whose tokens carry exactly this `iss` value.
    pub fn new(iss: impl Into<String>) -> Self {
        Self {
            iss: iss.into(),
            tenants: None,
            audiences: Vec::new(),
            keys: None,
            algorithms: None,
            secret: None,
            #[cfg(feature = "introspection")]
            introspection: None,
        }
    }

    /// Validates this issuer's opaque tokens by RFC 7662 introspection;
    /// without a key source, its JWTs too. See [`crate::introspection`].
    #[cfg(feature = "introspection")]
    pub fn introspection(mut self, introspection: crate::introspection::Introspection) -> Self {
        self.introspection = Some(introspection);
        self
    }

    /// For a multi-tenant issuer whose `iss` names the tenant, such as
    /// Microsoft Entra ID's `https://login.microsoftonline.com/{tenantid}/v2.0`
    /// (the issuer of its `common` and `organizations` discovery documents):
    /// accepts the tenants listed. A token's `iss` must then be this issuer
    /// with [`TENANT_PLACEHOLDER`] replaced by one of them, and its `tid`
    /// claim must name the same tenant.
    ///
    /// ```
    /// use tessera_authn::{Issuer, JwtValidator};
    ///
    /// let validator = JwtValidator::builder()
    ///     .issuer(
    ///         Issuer::new("https://login.microsoftonline.com/{tenantid}/v2.0")
    ///             .tenants(["72f988bf-86f1-41af-91ab-2d7cd011db47"])
    ///             .audience("api://orders")
    ///             .jwks_url("https://login.microsoftonline.com/common/discovery/v2.0/keys"),
    ///     )
    ///     .build()
    ///     .unwrap();
    /// # let _ = validator;
    /// ```
    pub fn tenants<I, S>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let listed = tenants.into_iter().map(Into::into);
        match &mut self.tenants {
            Some(Tenants::Only(list)) => list.extend(listed),
            _ => self.tenants = Some(Tenants::Only(listed.collect())),
        }
        self
    }

    /// Like [`tenants`](Self::tenants), but accepts every tenant: any
    /// organisation's users can call (a multi-tenant SaaS). Authorise by
    /// the `tid` claim yourself where tenants must be told apart.
    pub fn any_tenant(mut self) -> Self {
        self.tenants = Some(Tenants::Any);
        self
    }

    /// Accepts tokens whose `aud` names this audience. Call again for more.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts tokens whose `aud` names any of these audiences.
    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audiences.extend(audiences.into_iter().map(Into::into));
        self
    }

    /// Verifies with a fixed key set (PEM, JWK or JWKS parsed with [`KeySet`]).
    pub fn keys(mut self, keys: KeySet) -> Self {
        self.keys = Some(KeySourceSpec::Static(keys));
        self
    }

    /// Fetches keys from this JWKS URL, cached.
    #[cfg(feature = "remote")]
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.keys = Some(KeySourceSpec::JwksUrl(url.into()));
        self
    }

    /// Finds the JWKS URL by OIDC discovery from the issuer URL; the
    /// discovery document's `issuer` must equal this issuer exactly.
    #[cfg(feature = "remote")]
    pub fn discovery(mut self) -> Self {
        self.keys = Some(KeySourceSpec::Discovery);
        self
    }

    /// Uses a [`JwksCache`] built and tuned by the caller.
    #[cfg(feature = "remote")]
    pub fn jwks_cache(mut self, cache: JwksCache) -> Self {
        self.keys = Some(KeySourceSpec::Cache(cache));
        self
    }

    /// Restricts the accepted algorithms for this issuer (default: the
    /// asymmetric ones, [`DEFAULT_ALGORITHMS`]).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Accepts HS256/HS384/HS512 tokens signed with this shared secret (at
    /// least 32 bytes). Symmetric algorithms are never accepted otherwise.
    pub fn hmac_secret(mut self, secret: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        self.secret = Some(KeySet::from_secret(secret.as_ref())?);
        Ok(self)
    }
}

/// What stands for the tenant in a multi-tenant issuer (see [`Issuer::tenants`]).
pub const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// The tenants a multi-tenant issuer accepts.
#[derive(Debug, Clone)]
enum Tenants {
    Any,
    Only(Vec<String>),
}

/// A multi-tenant issuer's `iss` around the tenant, and the tenants accepted.
struct TenantTemplate {
    prefix: Box<str>,
    suffix: Box<str>,
    /// `None`: any tenant.
    allowed: Option<std::collections::HashSet<Box<str>>>,
}

impl TenantTemplate {
    /// The tenant of `iss` when it fits the template and is accepted.
    fn tenant_of<'i>(&self, iss: &'i str) -> Option<&'i str> {
        let tenant = iss
            .strip_prefix(&*self.prefix)?
            .strip_suffix(&*self.suffix)?;
        let well_formed = !tenant.is_empty()
            && tenant.len() <= 64
            && tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let accepted = self.allowed.as_ref().is_none_or(|a| a.contains(tenant));
        (well_formed && accepted).then_some(tenant)
    }
}

enum KeySource {
    Static(KeySet),
    #[cfg(feature = "remote")]
    Remote(JwksCache),
}

struct TrustedIssuer {
    iss: Arc<str>,
    /// Set for a multi-tenant issuer: `iss` is then the template.
    tenants: Option<TenantTemplate>,
    audiences: Box<[String]>,
    algorithms: Box<[Algorithm]>,
    keys: KeySource,
    secret: Option<KeySet>,
    /// Set when the issuer's tokens are introspected; `introspect_jwts`
    /// when it has no key source, so its JWTs are introspected too.
    #[cfg(feature = "introspection")]
    introspector: Option<Arc<crate::introspection::Introspector>>,
    #[cfg(feature = "introspection")]
    introspect_jwts: bool,
}

struct Inner {
    issuers: HashMap<Box<str>, TrustedIssuer>,
    /// The keys in `issuers` of the multi-tenant issuers.
    templates: Vec<Box<str>>,
    leeway: i64,
    max_token_len: usize,
    token_types: TokenTypes,
    /// Where tokens that are not JWTs are introspected.
    #[cfg(feature = "introspection")]
    opaque: Option<Arc<crate::introspection::Introspector>>,
}

/// Validates JWT access tokens: issuer, signature, algorithm, type, times and
/// audience. Built once with [`JwtValidator::builder`], cheap to clone.
///
/// `E` is the type the non-registered claims deserialize into; see [`Claims`].
pub struct JwtValidator<E = ExtraClaims> {
    inner: Arc<Inner>,
    cache: Option<TokenCache<E>>,
    _claims: PhantomData<fn() -> E>,
}

impl<E> Clone for JwtValidator<E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            cache: self.cache.clone(),
            _claims: PhantomData,
        }
    }
}

impl<E> fmt::Debug for JwtValidator<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtValidator")
            .field("issuers", &self.inner.issuers.keys().collect::<Vec<_>>())
            .field("leeway", &self.inner.leeway)
            .field("token_types", &self.inner.token_types)
            .field("cache", &self.cache.is_some())
            .finish()
    }
}

/// Builds a [`JwtValidator`].
#[must_use]
pub struct JwtValidatorBuilder<E = ExtraClaims> {
    issuers: Vec<Issuer>,
    leeway: Duration,
    max_token_len: usize,
    token_types: TokenTypes,
    cache_capacity: Option<u64>,
    #[cfg(feature = "remote")]
    jwks_options: JwksOptions,
    #[cfg(feature = "remote")]
    http_client: Option<reqwest::Client>,
    #[cfg(feature = "introspection")]
    opaque_issuer: Option<String>,
    _claims: PhantomData<fn() -> E>,
}

impl<E> fmt::Debug for JwtValidatorBuilder<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtValidatorBuilder")
            .field("issuers", &self.issuers)
            .field("leeway", &self.leeway)
            .field("token_types", &self.token_types)
            .finish_non_exhaustive()
    }
}

impl<E> JwtValidatorBuilder<E>
where
    E: DeserializeOwned + Send + Sync + 'static,
{
    /// Deserializes the non-registered claims into `E2` instead.
    ///
    /// ```
    /// use tessera_authn::{Issuer, JwtValidator, KeySet};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Extra { tenant: String }
    ///
    /// let validator = JwtValidator::builder()
    ///     .claims::<Extra>()
    ///     .issuer(Issuer::new("https://idp.example").audience("api").keys(KeySet::default()))
    ///     .build()
    ///     .unwrap();
    /// # let _ = validator;
    /// ```
    pub fn claims<E2>(self) -> JwtValidatorBuilder<E2> {
        JwtValidatorBuilder {
            issuers: self.issuers,
            leeway: self.leeway,
            max_token_len: self.max_token_len,
            token_types: self.token_types,
            cache_capacity: self.cache_capacity,
            #[cfg(feature = "remote")]
            jwks_options: self.jwks_options,
            #[cfg(feature = "remote")]
            http_client: self.http_client,
            #[cfg(feature = "introspection")]
            opaque_issuer: self.opaque_issuer,
            _claims: PhantomData,
        }
    }

    /// Sends tokens that are not JWTs to this issuer's introspection
    /// endpoint. Needed only when several issuers have
    /// [`Issuer::introspection`]; with one, it is the default.
    #[cfg(feature = "introspection")]
    pub fn opaque_tokens(mut self, iss: impl Into<String>) -> Self {
        self.opaque_issuer = Some(iss.into());
        self
    }

    /// Trusts an issuer. Call once per issuer; tokens are routed to their
    /// issuer by the (unverified) `iss` claim before any key lookup.
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// Clock leeway for `exp`, `nbf` and `iat` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Accepted `typ` header values (default [`TokenTypes::Default`]).
    pub fn token_types(mut self, types: TokenTypes) -> Self {
        self.token_types = types;
        self
    }

    /// Longest token accepted, in bytes (default 8 KiB). Longer tokens are
    /// rejected before any decoding.
    pub fn max_token_len(mut self, len: usize) -> Self {
        self.max_token_len = len;
        self
    }

    /// Caches validated tokens: up to `capacity` entries, keyed by a keyed
    /// hash of the token, each living no longer than the token's `exp`.
    /// A repeat of a cached token skips parsing and the signature check.
    pub fn cache_validated_tokens(mut self, capacity: u64) -> Self {
        self.cache_capacity = Some(capacity);
        self
    }

    /// Options for the JWKS caches this builder creates (timeouts, TTL
    /// bounds, refresh cooldown, size limits).
    #[cfg(feature = "remote")]
    pub fn jwks_options(mut self, options: JwksOptions) -> Self {
        self.jwks_options = options;
        self
    }

    /// The HTTP client used for discovery and JWKS fetches (for a custom
    /// CA or a proxy). Timeouts from [`JwksOptions`] still apply per request.
    #[cfg(feature = "remote")]
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Builds the validator. Performs no I/O: remote keys are fetched on
    /// first use (or by [`JwtValidator::warm_up`]).
    pub fn build(self) -> Result<JwtValidator<E>, ConfigError> {
        if self.issuers.is_empty() {
            return Err(ConfigError::NoIssuer);
        }
        #[cfg(feature = "remote")]
        let client = match self.http_client {
            Some(c) => c,
            None => crate::jwks::default_client()?,
        };
        let leeway = i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX);
        let mut issuers = HashMap::new();
        let mut templates = Vec::new();
        for issuer in self.issuers {
            if issuer.audiences.is_empty() {
                return Err(ConfigError::NoAudience(issuer.iss));
            }
            let tenants = tenant_template(&issuer)?;
            #[cfg(feature = "introspection")]
            let introspect_jwts = issuer.keys.is_none() && issuer.secret.is_none();
            let keys = match (issuer.keys, &issuer.secret) {
                (Some(KeySourceSpec::Static(set)), _) => KeySource::Static(set),
                #[cfg(feature = "remote")]
                (Some(KeySourceSpec::JwksUrl(url)), _) => {
                    KeySource::Remote(JwksCache::with_client(
                        crate::jwks::Location::jwks(&url)?,
                        client.clone(),
                        self.jwks_options.clone(),
                    ))
                }
                #[cfg(feature = "remote")]
                (Some(KeySourceSpec::Discovery), _) => KeySource::Remote(JwksCache::with_client(
                    crate::jwks::Location::discovery(&issuer.iss)?,
                    client.clone(),
                    self.jwks_options.clone(),
                )),
                #[cfg(feature = "remote")]
                (Some(KeySourceSpec::Cache(cache)), _) => KeySource::Remote(cache),
                (None, Some(_)) => KeySource::Static(KeySet::default()),
                #[cfg(feature = "introspection")]
                (None, None) if issuer.introspection.is_some() => {
                    KeySource::Static(KeySet::default())
                }
                (None, None) => return Err(ConfigError::NoKeySource(issuer.iss)),
            };
            let mut algorithms = match issuer.algorithms {
                Some(list) => list,
                None if issuer.secret.is_some() => {
                    let mut list = DEFAULT_ALGORITHMS.to_vec();
                    list.extend([Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]);
                    list
                }
                None => DEFAULT_ALGORITHMS.to_vec(),
            };
            algorithms.dedup();
            for alg in &algorithms {
                let hmac = matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
                if hmac && issuer.secret.is_none() {
                    return Err(ConfigError::Algorithm(format!(
                        "{alg:?} without an hmac secret"
                    )));
                }
            }
            let iss: Arc<str> = Arc::from(issuer.iss.as_str());
            let audiences: Box<[String]> = issuer.audiences.into();
            #[cfg(feature = "introspection")]
            let introspector = match issuer.introspection {
                Some(config) => Some(Arc::new(crate::introspection::Introspector::new(
                    config,
                    Arc::clone(&iss),
                    audiences.clone(),
                    leeway,
                    client.clone(),
                )?)),
                None => None,
            };
            if tenants.is_some() {
                templates.push(issuer.iss.clone().into_boxed_str());
            }
            let trusted = TrustedIssuer {
                iss,
                tenants,
                audiences,
                algorithms: algorithms.into(),
                keys,
                secret: issuer.secret,
                #[cfg(feature = "introspection")]
                introspector,
                #[cfg(feature = "introspection")]
                introspect_jwts,
            };
            if issuers
                .insert(issuer.iss.clone().into_boxed_str(), trusted)
                .is_some()
            {
                return Err(ConfigError::DuplicateIssuer(issuer.iss));
            }
        }
        #[cfg(feature = "introspection")]
        let opaque = {
            let mut with = issuers
                .values()
                .filter_map(|i| i.introspector.as_ref().map(|x| (&i.iss, x)));
            match &self.opaque_issuer {
                Some(iss) => Some(Arc::clone(
                    with.find(|(i, _)| ***i == **iss)
                        .ok_or_else(|| {
                            ConfigError::Introspection(format!(
                                "opaque tokens go to {iss}, which has no introspection"
                            ))
                        })?
                        .1,
                )),
                None => match (with.next(), with.next()) {
                    (Some((_, one)), None) => Some(Arc::clone(one)),
                    (None, _) => None,
                    (Some(_), Some(_)) => {
                        return Err(ConfigError::Introspection(
                            "several issuers introspect; name the one for opaque tokens".into(),
                        ));
                    }
                },
            }
        };
        Ok(JwtValidator {
            inner: Arc::new(Inner {
                issuers,
                templates,
                leeway,
                max_token_len: self.max_token_len,
                token_types: self.token_types,
                #[cfg(feature = "introspection")]
                opaque,
            }),
            cache: self.cache_capacity.map(TokenCache::new),
            _claims: PhantomData,
        })
    }
}

/// Checks a multi-tenant issuer's settings and builds its template.
fn tenant_template(issuer: &Issuer) -> Result<Option<TenantTemplate>, ConfigError> {
    let placeholder = issuer.iss.matches(TENANT_PLACEHOLDER).count();
    let invalid = |why: &str| Err(ConfigError::Tenants(format!("{}: {why}", issuer.iss)));
    let tenants = match (&issuer.tenants, placeholder) {
        (None, 0) => return Ok(None),
        (None, _) => {
            return invalid(
                "the issuer names {tenantid}; say which tenants with .tenants(..) or .any_tenant()",
            );
        }
        (Some(_), 0) => return invalid(".tenants(..) needs {tenantid} in the issuer"),
        (Some(_), 1) => issuer.tenants.clone(),
        (Some(_), _) => return invalid("{tenantid} appears more than once"),
    };
    #[cfg(feature = "remote")]
    if matches!(issuer.keys, Some(KeySourceSpec::Discovery)) {
        return invalid(
            "a multi-tenant issuer has no discovery document of its own; use .jwks_url(..) \
             (Entra: https://login.microsoftonline.com/common/discovery/v2.0/keys)",
        );
    }
    #[cfg(feature = "introspection")]
    if issuer.introspection.is_some() {
        return invalid("introspection is not supported for a multi-tenant issuer");
    }
    let (prefix, suffix) = issuer
        .iss
        .split_once(TENANT_PLACEHOLDER)
        .unwrap_or((issuer.iss.as_str(), ""));
    let allowed = match tenants {
        Some(Tenants::Only(list)) => {
            if list.is_empty() {
                return invalid(".tenants(..) lists no tenant");
            }
            Some(list.into_iter().map(String::into_boxed_str).collect())
        }
        _ => None,
    };
    Ok(Some(TenantTemplate {
        prefix: prefix.into(),
        suffix: suffix.into(),
        allowed,
    }))
}

/// The parts of a token parsed before the key lookup.
struct Prepared<'t, 'v> {
    token: &'t str,
    issuer: &'v TrustedIssuer,
    /// The token's `iss`: the issuer's, or its tenant's for a multi-tenant one.
    iss: Arc<str>,
    alg: Algorithm,
    kid: Option<String>,
    /// `header.payload`, the signed message.
    message: &'t str,
    signature: &'t str,
    payload: Vec<u8>,
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    jku: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    x5u: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    jwk: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct IssPeek<'a> {
    #[serde(default, borrow)]
    iss: Option<Cow<'a, str>>,
    /// The tenant, for multi-tenant issuers.
    #[serde(default, borrow)]
    tid: Option<Cow<'a, str>>,
}

impl JwtValidator<ExtraClaims> {
    /// Starts building a validator whose extra claims are a JSON object
    /// ([`ExtraClaims`]); call [`JwtValidatorBuilder::claims`] to use your
    /// own type instead.
    pub fn builder() -> JwtValidatorBuilder<ExtraClaims> {
        JwtValidatorBuilder {
            issuers: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            token_types: TokenTypes::Default,
            cache_capacity: None,
            #[cfg(feature = "remote")]
            jwks_options: JwksOptions::default(),
            #[cfg(feature = "remote")]
            http_client: None,
            #[cfg(feature = "introspection")]
            opaque_issuer: None,
            _claims: PhantomData,
        }
    }
}

impl<E> JwtValidator<E>
where
    E: DeserializeOwned + Send + Sync + 'static,
{
    /// Validates a token, fetching keys if the issuer's key set is not
    /// loaded yet or does not know the token's `kid`.
    pub async fn validate(&self, token: &str) -> Result<Principal<E>, AuthnError> {
        match self.validate_now(token) {
            Ok(Some(principal)) => Ok(principal),
            #[cfg(feature = "introspection")]
            Ok(None) if self.introspector_for(token).is_some() => {
                let introspector = self.introspector_for(token).ok_or(AuthnError::Malformed)?;
                let now = now();
                let principal = introspector.validate(token, now).await?;
                if let Some(cache) = &self.cache {
                    cache.insert(token, &principal, now);
                }
                Ok(principal)
            }
            Ok(None) => self.validate_after_fetch(token).await,
            Err(e) => Err(e),
        }
    }

    /// The introspector for a token that is not a JWT, or a JWT of an
    /// issuer validated by introspection.
    #[cfg(feature = "introspection")]
    fn introspector_for(&self, token: &str) -> Option<&crate::introspection::Introspector> {
        match self.prepare(token) {
            Err(AuthnError::Malformed) => self.inner.opaque.as_deref(),
            Ok(prepared) if prepared.issuer.introspect_jwts => {
                prepared.issuer.introspector.as_deref()
            }
            _ => None,
        }
    }

    /// Validates without waiting: `Ok(None)` when the key set must be
    /// fetched first (then call [`validate`](Self::validate)).
    pub fn validate_now(&self, token: &str) -> Result<Option<Principal<E>>, AuthnError> {
        if let Some(cache) = &self.cache
            && let Some(principal) = cache.get(token, now())
        {
            return Ok(Some(principal));
        }
        let prepared = match self.prepare(token) {
            Ok(prepared) => prepared,
            #[cfg(feature = "introspection")]
            Err(AuthnError::Malformed) if self.inner.opaque.is_some() => {
                return Self::introspected_now(self.inner.opaque.as_deref(), token);
            }
            Err(e) => return Err(e),
        };
        #[cfg(feature = "introspection")]
        if prepared.issuer.introspect_jwts {
            return Self::introspected_now(prepared.issuer.introspector.as_deref(), token);
        }
        match Self::lookup(&prepared) {
            Lookup::Key(key) => self.finish(&prepared, key).map(Some),
            #[cfg(feature = "remote")]
            Lookup::Fetch { .. } => Ok(None),
            Lookup::Reject(e) => Err(e),
        }
    }

    /// A cached introspection decision, or `Ok(None)` to ask the endpoint.
    #[cfg(feature = "introspection")]
    fn introspected_now(
        introspector: Option<&crate::introspection::Introspector>,
        token: &str,
    ) -> Result<Option<Principal<E>>, AuthnError> {
        match introspector.and_then(|i| i.cached(token, now())) {
            Some(decision) => decision.map(Some),
            None => Ok(None),
        }
    }

    #[cfg(feature = "remote")]
    async fn validate_after_fetch(&self, token: &str) -> Result<Principal<E>, AuthnError> {
        let prepared = self.prepare(token)?;
        match Self::lookup(&prepared) {
            Lookup::Key(key) => self.finish(&prepared, key),
            Lookup::Reject(e) => Err(e),
            Lookup::Fetch { cache, seen, .. } => {
                cache.refresh_after(seen).await;
                // One fetch per validation at most: whatever it brought decides.
                match Self::lookup(&prepared) {
                    Lookup::Key(key) => self.finish(&prepared, key),
                    Lookup::Reject(e) => Err(e),
                    Lookup::Fetch { empty: true, .. } => Err(AuthnError::KeysUnavailable),
                    Lookup::Fetch { empty: false, .. } => Err(AuthnError::UnknownKey),
                }
            }
        }
    }

    #[cfg(not(feature = "remote"))]
    async fn validate_after_fetch(&self, token: &str) -> Result<Principal<E>, AuthnError> {
        match self.validate_now(token)? {
            Some(p) => Ok(p),
            None => Err(AuthnError::UnknownKey),
        }
    }

    /// Fetches the keys of every remote issuer now, so the first request
    /// does not wait. Returns the first error, if any; the validator keeps
    /// working and retries later either way.
    pub async fn warm_up(&self) -> Result<(), crate::KeyError> {
        #[cfg(feature = "remote")]
        for issuer in self.inner.issuers.values() {
            if let KeySource::Remote(cache) = &issuer.keys {
                cache.refresh_now().await?;
            }
        }
        Ok(())
    }

    fn prepare<'t>(&self, token: &'t str) -> Result<Prepared<'t, '_>, AuthnError> {
        if token.len() > self.inner.max_token_len {
            return Err(AuthnError::TokenTooLarge);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AuthnError::Malformed);
        };
        if h.is_empty() || p.is_empty() || s.is_empty() {
            return Err(AuthnError::Malformed);
        }
        let header_bytes = URL_SAFE_NO_PAD
            .decode(h)
            .map_err(|_| AuthnError::Malformed)?;
        let header: RawHeader<'_> =
            serde_json::from_slice(&header_bytes).map_err(|_| AuthnError::Malformed)?;
        if header.alg.eq_ignore_ascii_case("none") {
            return Err(AuthnError::AlgorithmNotAllowed);
        }
        if header.jku.is_some() || header.x5u.is_some() || header.jwk.is_some() {
            return Err(AuthnError::ForbiddenHeader);
        }
        // We implement no JWS extension, so any `crit` names one we do not understand.
        if header.crit.is_some() {
            return Err(AuthnError::UnsupportedCrit);
        }
        if !self.inner.token_types.accepts(header.typ.as_deref()) {
            return Err(AuthnError::InvalidType);
        }
        let alg = header
            .alg
            .parse::<Algorithm>()
            .map_err(|_| AuthnError::AlgorithmNotAllowed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| AuthnError::Malformed)?;
        let peek: IssPeek<'_> =
            serde_json::from_slice(&payload).map_err(|_| AuthnError::Malformed)?;
        let iss = peek.iss.ok_or(AuthnError::UntrustedIssuer)?;
        let (issuer, iss) = match self.inner.issuers.get(iss.as_ref()) {
            // The template itself is no tenant's issuer.
            Some(issuer) if issuer.tenants.is_some() => return Err(AuthnError::UntrustedIssuer),
            Some(issuer) => (issuer, Arc::clone(&issuer.iss)),
            None => {
                let issuer = self.tenant_issuer(&iss, peek.tid.as_deref())?;
                (issuer, Arc::from(iss.as_ref()))
            }
        };
        if !issuer.algorithms.contains(&alg) {
            return Err(AuthnError::AlgorithmNotAllowed);
        }
        Ok(Prepared {
            token,
            issuer,
            iss,
            alg,
            kid: header.kid,
            message: &token[..h.len() + 1 + p.len()],
            signature: s,
            payload,
        })
    }

    /// The multi-tenant issuer `iss` belongs to: it fits the template with
    /// an accepted tenant, and the token's `tid` names that tenant.
    fn tenant_issuer(&self, iss: &str, tid: Option<&str>) -> Result<&TrustedIssuer, AuthnError> {
        self.inner
            .templates
            .iter()
            .filter_map(|key| self.inner.issuers.get(key))
            .find(|issuer| {
                issuer
                    .tenants
                    .as_ref()
                    .and_then(|t| t.tenant_of(iss))
                    .is_some_and(|tenant| tid == Some(tenant))
            })
            .ok_or(AuthnError::UntrustedIssuer)
    }

    fn lookup<'p>(prepared: &'p Prepared<'_, '_>) -> Lookup<'p> {
        let kid = prepared.kid.as_deref();
        let issuer = prepared.issuer;
        if matches!(
            prepared.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return match issuer.secret.as_ref().map(|s| s.find(None, prepared.alg)) {
                Some(Found::Key(key)) => Lookup::Key(KeyRef::Borrowed(key)),
                _ => Lookup::Reject(AuthnError::AlgorithmNotAllowed),
            };
        }
        match &issuer.keys {
            KeySource::Static(set) => match set.find(kid, prepared.alg) {
                Found::Key(key) => Lookup::Key(KeyRef::Borrowed(key)),
                Found::Mismatch => Lookup::Reject(AuthnError::KeyMismatch),
                Found::Unknown => Lookup::Reject(AuthnError::UnknownKey),
            },
            #[cfg(feature = "remote")]
            KeySource::Remote(cache) => {
                let snapshot = cache.snapshot();
                if snapshot.keys.is_empty() && !snapshot.loaded {
                    return Lookup::Fetch {
                        cache,
                        seen: snapshot.generation,
                        empty: true,
                    };
                }
                let found = match snapshot.keys.find(kid, prepared.alg) {
                    Found::Key(_) => None,
                    Found::Mismatch => Some(Err(AuthnError::KeyMismatch)),
                    Found::Unknown => Some(Ok(())),
                };
                match found {
                    None => {
                        cache.refresh_in_background_if_due();
                        Lookup::Key(KeyRef::Shared(snapshot.keys))
                    }
                    Some(Err(e)) => Lookup::Reject(e),
                    Some(Ok(())) => Lookup::Fetch {
                        cache,
                        seen: snapshot.generation,
                        empty: false,
                    },
                }
            }
        }
    }

    fn finish(
        &self,
        prepared: &Prepared<'_, '_>,
        key: KeyRef<'_>,
    ) -> Result<Principal<E>, AuthnError> {
        let verified = match &key {
            KeyRef::Borrowed(dk) => verify(prepared, dk),
            #[cfg(feature = "remote")]
            KeyRef::Shared(set) => match set.find(prepared.kid.as_deref(), prepared.alg) {
                Found::Key(dk) => verify(prepared, dk),
                _ => Err(AuthnError::UnknownKey),
            },
        };
        verified?;
        let claims: Claims<E> =
            serde_json::from_slice(&prepared.payload).map_err(|_| AuthnError::InvalidClaims)?;
        let now = now();
        self.check_claims(prepared.issuer, &prepared.iss, &claims, now)?;
        let principal = Principal::new(Arc::clone(&prepared.iss), claims, prepared.token);
        if let Some(cache) = &self.cache {
            cache.insert(prepared.token, &principal, now);
        }
        Ok(principal)
    }

    fn check_claims(
        &self,
        issuer: &TrustedIssuer,
        iss: &str,
        claims: &Claims<E>,
        now: i64,
    ) -> Result<(), AuthnError> {
        let leeway = self.inner.leeway;
        if claims.iss != iss {
            return Err(AuthnError::UntrustedIssuer);
        }
        if claims.exp.saturating_add(leeway) < now {
            return Err(AuthnError::Expired);
        }
        if let Some(nbf) = claims.nbf
            && nbf > now.saturating_add(leeway)
        {
            return Err(AuthnError::NotYetValid);
        }
        if let Some(iat) = claims.iat
            && iat > now.saturating_add(leeway)
        {
            return Err(AuthnError::IssuedInFuture);
        }
        if !issuer.audiences.iter().any(|a| claims.aud.contains(a)) {
            return Err(AuthnError::InvalidAudience);
        }
        Ok(())
    }
}

fn verify(prepared: &Prepared<'_, '_>, key: &jsonwebtoken::DecodingKey) -> Result<(), AuthnError> {
    match jsonwebtoken::crypto::verify(
        prepared.signature,
        prepared.message.as_bytes(),
        key,
        prepared.alg,
    ) {
        Ok(true) => Ok(()),
        _ => Err(AuthnError::InvalidSignature),
    }
}

enum KeyRef<'a> {
    Borrowed(&'a jsonwebtoken::DecodingKey),
    #[cfg(feature = "remote")]
    Shared(KeySet),
}

enum Lookup<'a> {
    Key(KeyRef<'a>),
    #[cfg(feature = "remote")]
    Fetch {
        cache: &'a JwksCache,
        seen: u64,
        empty: bool,
    },
    Reject(AuthnError),
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
