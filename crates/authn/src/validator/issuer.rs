//! [`Issuer`]: what a user sets for one trusted issuer (`iss`, audiences,
//! key source, algorithms), and [`TokenTypes`], the accepted `typ` values.

use super::tenant::Tenants;
use crate::error::ConfigError;
use crate::keys::KeySet;
use jsonwebtoken::Algorithm;
use std::fmt;

#[cfg(feature = "remote")]
use crate::jwks::JwksCache;

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
    pub(super) fn accepts(&self, typ: Option<&str>) -> bool {
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
pub(super) enum KeySourceSpec {
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
    pub(super) iss: String,
    pub(super) tenants: Option<Tenants>,
    pub(super) audiences: Vec<String>,
    pub(super) keys: Option<KeySourceSpec>,
    pub(super) algorithms: Option<Vec<Algorithm>>,
    pub(super) secret: Option<KeySet>,
    #[cfg(feature = "introspection")]
    pub(super) introspection: Option<crate::introspection::Introspection>,
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
    /// with [`TENANT_PLACEHOLDER`](super::tenant::TENANT_PLACEHOLDER)
    /// replaced by one of them, and its `tid` claim must name the same tenant.
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

    /// Why this issuer's settings rule out tenants, if they do: a
    /// multi-tenant issuer has no discovery document, nor introspection.
    #[cfg_attr(not(feature = "remote"), allow(clippy::unused_self))]
    pub(super) fn unsupported_with_tenants(&self) -> Option<&'static str> {
        #[cfg(feature = "remote")]
        if matches!(self.keys, Some(KeySourceSpec::Discovery)) {
            return Some(
                "a multi-tenant issuer has no discovery document of its own; use .jwks_url(..) \
                 (Entra: https://login.microsoftonline.com/common/discovery/v2.0/keys)",
            );
        }
        #[cfg(feature = "introspection")]
        if self.introspection.is_some() {
            return Some("introspection is not supported for a multi-tenant issuer");
        }
        None
    }
}
