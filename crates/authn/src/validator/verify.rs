//! The verification runtime of [`JwtValidator`]: decode the header and
//! payload, route to the issuer, look up the key (fetching it when needed),
//! check the signature and the claims.

use super::issuer::TokenTypes;
use super::tenant::TenantTemplate;
use crate::cache::TokenCache;
use crate::claims::{Claims, ExtraClaims};
use crate::error::AuthnError;
use crate::keys::{Found, KeySet};
use crate::principal::Principal;
use crate::time::now;
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

#[cfg(feature = "remote")]
use crate::jwks::JwksCache;

/// Where a trusted issuer's keys are found at run time.
pub(super) enum KeySource {
    Static(KeySet),
    #[cfg(feature = "remote")]
    Remote(JwksCache),
}

/// An issuer as the runtime sees it: settings checked and compiled.
pub(super) struct TrustedIssuer {
    pub(super) iss: Arc<str>,
    /// Set for a multi-tenant issuer: `iss` is then the template.
    pub(super) tenants: Option<TenantTemplate>,
    pub(super) audiences: Box<[String]>,
    pub(super) algorithms: Box<[Algorithm]>,
    pub(super) keys: KeySource,
    pub(super) secret: Option<KeySet>,
    /// Set when the issuer's tokens are introspected; `introspect_jwts`
    /// when it has no key source, so its JWTs are introspected too.
    #[cfg(feature = "introspection")]
    pub(super) introspector: Option<Arc<crate::introspection::Introspector>>,
    #[cfg(feature = "introspection")]
    pub(super) introspect_jwts: bool,
}

/// What every clone of a [`JwtValidator`] shares.
pub(super) struct Inner {
    pub(super) issuers: HashMap<Box<str>, TrustedIssuer>,
    /// The keys in `issuers` of the multi-tenant issuers.
    pub(super) templates: Vec<Box<str>>,
    pub(super) leeway: i64,
    pub(super) max_token_len: usize,
    pub(super) token_types: TokenTypes,
    /// Where tokens that are not JWTs are introspected.
    #[cfg(feature = "introspection")]
    pub(super) opaque: Option<Arc<crate::introspection::Introspector>>,
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

impl<E> JwtValidator<E> {
    /// A validator over checked settings; see
    /// [`JwtValidatorBuilder`](super::builder::JwtValidatorBuilder).
    pub(super) fn new(inner: Inner, cache: Option<TokenCache<E>>) -> Self {
        Self {
            inner: Arc::new(inner),
            cache,
            _claims: PhantomData,
        }
    }
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
                // Introspection keeps its own cache, bounded by its `cache_ttl`
                // so that a revocation is noticed: never this one.
                let introspector = self.introspector_for(token).ok_or(AuthnError::Malformed)?;
                introspector.validate(token, now()).await
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
                        Lookup::Key(KeyRef::Shared {
                            keys: snapshot.keys,
                            cache,
                            epoch: snapshot.key_epoch,
                        })
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
            KeyRef::Shared { keys: set, .. } => {
                match set.find(prepared.kid.as_deref(), prepared.alg) {
                    Found::Key(dk) => verify(prepared, dk),
                    _ => Err(AuthnError::UnknownKey),
                }
            }
        };
        verified?;
        let claims: Claims<E> =
            serde_json::from_slice(&prepared.payload).map_err(|_| AuthnError::InvalidClaims)?;
        let now = now();
        self.check_claims(prepared.issuer, &prepared.iss, &claims, now)?;
        let principal = Principal::new(Arc::clone(&prepared.iss), claims, prepared.token);
        if let Some(cache) = &self.cache {
            let epoch = match key {
                KeyRef::Borrowed(_) => None,
                #[cfg(feature = "remote")]
                KeyRef::Shared { cache, epoch, .. } => Some(cache.key_epoch(epoch)),
            };
            cache.insert(&principal, epoch, now);
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
    /// A key that never changes: static, or the issuer's HMAC secret.
    Borrowed(&'a jsonwebtoken::DecodingKey),
    /// A key of a remote key set, whose key epoch the validated-token
    /// cache remembers.
    #[cfg(feature = "remote")]
    Shared {
        keys: KeySet,
        cache: &'a JwksCache,
        epoch: u64,
    },
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
