//! [`JwtValidatorBuilder`]: checks the issuers' settings and compiles them
//! into a [`JwtValidator`].

use super::issuer::{DEFAULT_ALGORITHMS, Issuer, KeySourceSpec, TokenTypes};
use super::tenant::tenant_template;
use super::verify::{Inner, JwtValidator, KeySource, TrustedIssuer};
use crate::cache::{TokenCache, TokenCacheBounds};
use crate::claims::ExtraClaims;
use crate::error::ConfigError;
use crate::keys::KeySet;
use jsonwebtoken::Algorithm;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "remote")]
use crate::jwks::{JwksCache, JwksOptions};

/// The default clock leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// The default limit on a token's length in bytes.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// Builds a [`JwtValidator`].
#[must_use]
pub struct JwtValidatorBuilder<E = ExtraClaims> {
    issuers: Vec<Issuer>,
    leeway: Duration,
    max_token_len: usize,
    token_types: TokenTypes,
    token_cache: TokenCacheBounds,
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
            token_cache: self.token_cache,
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

    /// Bounds the validated-token cache to `entries` tokens (default
    /// [`DEFAULT_TOKEN_CACHE_ENTRIES`](super::DEFAULT_TOKEN_CACHE_ENTRIES));
    /// 0 turns it off.
    ///
    /// The cache is on by default: a repeat of a validated token skips
    /// parsing and the signature check. It is keyed by a keyed hash of the
    /// whole token, never serves a token past its `exp` or before its
    /// `nbf`, and forgets the tokens verified with a key as soon as a JWKS
    /// refresh no longer lists that key. See the security model for the
    /// trade-off.
    pub fn cache_validated_tokens(mut self, entries: u64) -> Self {
        self.token_cache.entries = entries;
        self
    }

    /// Bounds the validated-token cache's memory to about `bytes` (default
    /// [`DEFAULT_TOKEN_CACHE_BYTES`](super::DEFAULT_TOKEN_CACHE_BYTES), an
    /// estimate per entry of its token and claims); 0 turns it off.
    pub fn token_cache_max_bytes(mut self, bytes: u64) -> Self {
        self.token_cache.bytes = bytes;
        self
    }

    /// Validates every token in full, every time: no validated-token cache.
    ///
    /// ```
    /// use tessera_authn::{Issuer, JwtValidator, KeySet};
    ///
    /// let validator = JwtValidator::builder()
    ///     .issuer(Issuer::new("https://idp.example").audience("api").keys(KeySet::default()))
    ///     .without_token_cache()
    ///     .build()
    ///     .unwrap();
    /// assert!(format!("{validator:?}").contains("cache: false"));
    /// ```
    pub fn without_token_cache(mut self) -> Self {
        self.token_cache.entries = 0;
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
        let mut issuers: Vec<TrustedIssuer> = Vec::new();
        let mut by_iss: HashMap<Box<str>, usize> = HashMap::new();
        let mut templates = Vec::new();
        for issuer in self.issuers {
            if issuer.audiences.is_empty() {
                return Err(ConfigError::NoAudience(issuer.iss));
            }
            let tenants = tenant_template(
                &issuer.iss,
                issuer.tenants.as_ref(),
                issuer.unsupported_with_tenants(),
            )?;
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
            if by_iss
                .insert(issuer.iss.clone().into_boxed_str(), issuers.len())
                .is_some()
            {
                return Err(ConfigError::DuplicateIssuer(issuer.iss));
            }
            if trusted.tenants.is_some() {
                templates.push(issuers.len());
            }
            issuers.push(trusted);
        }
        #[cfg(feature = "introspection")]
        let opaque = {
            let mut with = issuers
                .iter()
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
        Ok(JwtValidator::new(
            Inner {
                issuers,
                by_iss,
                templates,
                leeway,
                max_token_len: self.max_token_len,
                token_types: self.token_types,
                #[cfg(feature = "introspection")]
                opaque,
            },
            TokenCache::new(self.token_cache),
        ))
    }
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
            token_cache: TokenCacheBounds::default(),
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
