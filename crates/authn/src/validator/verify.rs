//! The verification runtime of [`JwtValidator`]: decode the header and
//! payload, route to the issuer, look up the key (fetching it when needed),
//! check the signature and the claims.

use super::issuer::TokenTypes;
use super::tenant::TenantTemplate;
use crate::cache::TokenCache;
use crate::claims::{Claims, ExtraClaims};
use crate::confirmation::Confirmation;
use crate::error::AuthnError;
use crate::keys::{Found, FoundKey, KeySet};
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
    pub(super) issuers: Vec<TrustedIssuer>,
    /// Index in `issuers` by configured `iss`.
    pub(super) by_iss: HashMap<Box<str>, usize>,
    /// The indexes in `issuers` of the multi-tenant issuers.
    pub(super) templates: Vec<usize>,
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
            .field(
                "issuers",
                &self
                    .inner
                    .issuers
                    .iter()
                    .map(|i| &*i.iss)
                    .collect::<Vec<_>>(),
            )
            .field("leeway", &self.inner.leeway)
            .field("token_types", &self.inner.token_types)
            .field("cache", &self.cache.is_some())
            .finish()
    }
}

/// A token parsed once, before the key lookup: the checked header, the
/// decoded payload and the issuer it names. Owned (it names the token's
/// parts by position), so it is carried through a key fetch and into
/// verification without parsing the token again.
pub(crate) struct Parsed {
    /// Index of the issuer in [`Inner::issuers`].
    issuer: usize,
    /// The tenant's issuer, for a multi-tenant issuer (else the issuer's own).
    tenant_iss: Option<Arc<str>>,
    alg: Algorithm,
    kid: Option<Box<str>>,
    /// `token[..message_len]` is `header.payload`, the signed message.
    message_len: usize,
    payload: Vec<u8>,
}

/// A validation that must wait before it can finish: see
/// [`JwtValidator::validate_or_defer`].
pub(crate) enum Deferred {
    /// The issuer's key set must be fetched (first, or for an unknown `kid`).
    #[cfg(feature = "remote")]
    Fetch { parsed: Parsed, seen: u64 },
    /// The token is introspected by this issuer (`None`: the opaque-token one).
    #[cfg(feature = "introspection")]
    Introspect { issuer: Option<usize> },
}

/// The first step of a validation.
pub(crate) enum Step<E> {
    Done(Principal<E>),
    /// Without the `remote` feature nothing waits: `Deferred` is empty.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    Later(Deferred),
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(default, borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    kid: Option<Cow<'a, str>>,
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

/// A principal whose token is not sender-constrained, else the refusal.
fn unbound<E>(principal: Principal<E>) -> Result<Principal<E>, AuthnError> {
    match principal.confirmation() {
        None => Ok(principal),
        Some(_) => Err(AuthnError::BoundToken),
    }
}

/// The header of a token is small; decoding it on the stack saves an allocation.
const HEADER_ON_STACK: usize = 512;

impl<E> JwtValidator<E>
where
    E: DeserializeOwned + Send + Sync + 'static,
{
    /// Validates a bearer token, fetching keys if the issuer's key set is
    /// not loaded yet or does not know the token's `kid`.
    ///
    /// A sender-constrained token (one with `cnf`) is refused with
    /// [`AuthnError::BoundToken`]: its binding can only be checked with the
    /// request it came with, which [`AuthnLayer`](crate::AuthnLayer) does.
    pub async fn validate(&self, token: &str) -> Result<Principal<E>, AuthnError> {
        unbound(self.validate_bound(token).await?)
    }

    /// Validates a token without refusing a sender-constrained one: the
    /// caller checks the binding ([`Principal::confirmation`]).
    pub(crate) async fn validate_bound(&self, token: &str) -> Result<Principal<E>, AuthnError> {
        match self.validate_or_defer(token)? {
            Step::Done(principal) => Ok(principal),
            Step::Later(deferred) => self.finish_deferred(token, deferred).await,
        }
    }

    /// Validates without waiting: `Ok(None)` when the key set must be
    /// fetched first (then call [`validate`](Self::validate)). Refuses
    /// sender-constrained tokens as [`validate`](Self::validate) does.
    pub fn validate_now(&self, token: &str) -> Result<Option<Principal<E>>, AuthnError> {
        self.validate_now_bound(token)?.map(unbound).transpose()
    }

    fn validate_now_bound(&self, token: &str) -> Result<Option<Principal<E>>, AuthnError> {
        match self.validate_or_defer(token)? {
            Step::Done(principal) => Ok(Some(principal)),
            #[cfg(feature = "introspection")]
            Step::Later(Deferred::Introspect { issuer }) => {
                match self
                    .introspector(issuer)
                    .and_then(|i| i.cached(token, now()))
                {
                    Some(decision) => decision.map(Some),
                    None => Ok(None),
                }
            }
            #[allow(unreachable_patterns)] // without the remote feature nothing waits
            Step::Later(_) => Ok(None),
        }
    }

    /// Everything that can be done without waiting: a cached token, or the
    /// whole validation when the keys are at hand; otherwise the parsed
    /// token and what it waits for, to hand to
    /// [`finish_deferred`](Self::finish_deferred).
    pub(crate) fn validate_or_defer(&self, token: &str) -> Result<Step<E>, AuthnError> {
        let now = now();
        let cache_key = match &self.cache {
            Some(cache) => match cache.get(token, now) {
                Ok(principal) => return Ok(Step::Done(principal)),
                Err(key) => Some(key),
            },
            None => None,
        };
        let parsed = match self.parse(token) {
            Ok(parsed) => parsed,
            #[cfg(feature = "introspection")]
            Err(AuthnError::Malformed) if self.inner.opaque.is_some() => {
                return Ok(Step::Later(Deferred::Introspect { issuer: None }));
            }
            Err(e) => return Err(e),
        };
        #[cfg(feature = "introspection")]
        if self.issuer(&parsed).introspect_jwts {
            return Ok(Step::Later(Deferred::Introspect {
                issuer: Some(parsed.issuer),
            }));
        }
        match self.lookup(&parsed) {
            Lookup::Key(key) => self.finish(token, &parsed, key, cache_key).map(Step::Done),
            Lookup::Reject(e) => Err(e),
            #[cfg(feature = "remote")]
            Lookup::Fetch { seen, .. } => Ok(Step::Later(Deferred::Fetch { parsed, seen })),
        }
    }

    /// Finishes a validation [`validate_or_defer`](Self::validate_or_defer)
    /// deferred: fetches the keys (once at most) or introspects.
    #[cfg_attr(not(feature = "remote"), allow(unused_variables))]
    pub(crate) async fn finish_deferred(
        &self,
        token: &str,
        deferred: Deferred,
    ) -> Result<Principal<E>, AuthnError> {
        match deferred {
            #[cfg(feature = "remote")]
            Deferred::Fetch { parsed, seen } => {
                if let KeySource::Remote(cache) = &self.issuer(&parsed).keys {
                    cache.refresh_after(seen).await;
                }
                // One fetch per validation at most: whatever it brought decides.
                match self.lookup(&parsed) {
                    Lookup::Key(key) => {
                        let cache_key = self.cache.as_ref().map(|c| c.key(token));
                        self.finish(token, &parsed, key, cache_key)
                    }
                    Lookup::Reject(e) => Err(e),
                    Lookup::Fetch { empty: true, .. } => Err(AuthnError::KeysUnavailable),
                    Lookup::Fetch { empty: false, .. } => Err(AuthnError::UnknownKey),
                }
            }
            // Introspection keeps its own cache, bounded by its `cache_ttl`
            // so that a revocation is noticed: never the validated-token cache.
            #[cfg(feature = "introspection")]
            Deferred::Introspect { issuer } => match self.introspector(issuer) {
                Some(introspector) => introspector.validate(token, now()).await,
                None => Err(AuthnError::UnknownKey),
            },
        }
    }

    /// The introspector of issuer `index`, or the one for opaque tokens.
    #[cfg(feature = "introspection")]
    fn introspector(&self, index: Option<usize>) -> Option<&crate::introspection::Introspector> {
        match index {
            Some(i) => self.inner.issuers.get(i)?.introspector.as_deref(),
            None => self.inner.opaque.as_deref(),
        }
    }

    /// Fetches the keys of every remote issuer now, so the first request
    /// does not wait. Returns the first error, if any; the validator keeps
    /// working and retries later either way.
    pub async fn warm_up(&self) -> Result<(), crate::KeyError> {
        #[cfg(feature = "remote")]
        for issuer in &self.inner.issuers {
            if let KeySource::Remote(cache) = &issuer.keys {
                cache.refresh_now().await?;
            }
        }
        Ok(())
    }

    fn issuer(&self, parsed: &Parsed) -> &TrustedIssuer {
        &self.inner.issuers[parsed.issuer]
    }

    /// Steps 1 to 5 of the security model: size, shape, header policy,
    /// issuer routing, algorithm allow-list. Decodes the header and the
    /// payload, once.
    fn parse(&self, token: &str) -> Result<Parsed, AuthnError> {
        #[cfg(test)]
        tests::PARSES.with(|n| n.set(n.get() + 1));
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
        let mut stack = [0u8; HEADER_ON_STACK];
        let heap;
        let header_bytes: &[u8] = match URL_SAFE_NO_PAD.decode_slice(h, &mut stack) {
            Ok(len) => &stack[..len],
            Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
                heap = URL_SAFE_NO_PAD
                    .decode(h)
                    .map_err(|_| AuthnError::Malformed)?;
                &heap
            }
            Err(_) => return Err(AuthnError::Malformed),
        };
        let header: RawHeader<'_> =
            serde_json::from_slice(header_bytes).map_err(|_| AuthnError::Malformed)?;
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
        let (issuer, tenant_iss) = match self.inner.by_iss.get(iss.as_ref()) {
            // The template itself is no tenant's issuer.
            Some(&i) if self.inner.issuers[i].tenants.is_some() => {
                return Err(AuthnError::UntrustedIssuer);
            }
            Some(&i) => (i, None),
            None => {
                let i = self.tenant_issuer(&iss, peek.tid.as_deref())?;
                (i, Some(Arc::from(iss.as_ref())))
            }
        };
        if !self.inner.issuers[issuer].algorithms.contains(&alg) {
            return Err(AuthnError::AlgorithmNotAllowed);
        }
        Ok(Parsed {
            issuer,
            tenant_iss,
            alg,
            kid: header.kid.map(|k| k.into()),
            message_len: h.len() + 1 + p.len(),
            payload,
        })
    }

    /// The multi-tenant issuer `iss` belongs to: it fits the template with
    /// an accepted tenant, and the token's `tid` names that tenant.
    fn tenant_issuer(&self, iss: &str, tid: Option<&str>) -> Result<usize, AuthnError> {
        self.inner
            .templates
            .iter()
            .copied()
            .find(|&i| {
                self.inner.issuers[i]
                    .tenants
                    .as_ref()
                    .and_then(|t| t.tenant_of(iss))
                    .is_some_and(|tenant| tid == Some(tenant))
            })
            .ok_or(AuthnError::UntrustedIssuer)
    }

    fn lookup(&self, parsed: &Parsed) -> Lookup<'_> {
        let kid = parsed.kid.as_deref();
        let issuer = self.issuer(parsed);
        if matches!(
            parsed.alg,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) {
            return match issuer.secret.as_ref().map(|s| s.find(None, parsed.alg)) {
                Some(Found::Key(key)) => Lookup::Key(KeyRef::Borrowed(key)),
                _ => Lookup::Reject(AuthnError::AlgorithmNotAllowed),
            };
        }
        match &issuer.keys {
            KeySource::Static(set) => match set.find(kid, parsed.alg) {
                Found::Key(key) => Lookup::Key(KeyRef::Borrowed(key)),
                Found::Mismatch => Lookup::Reject(AuthnError::KeyMismatch),
                Found::Unknown => Lookup::Reject(AuthnError::UnknownKey),
            },
            #[cfg(feature = "remote")]
            KeySource::Remote(cache) => {
                let snapshot = cache.snapshot();
                if snapshot.keys.is_empty() && !snapshot.loaded {
                    return Lookup::Fetch {
                        seen: snapshot.generation,
                        empty: true,
                    };
                }
                let found = match snapshot.keys.find(kid, parsed.alg) {
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
                        seen: snapshot.generation,
                        empty: false,
                    },
                }
            }
        }
    }

    /// Steps 8 and 9: the signature, then the claims; caches the principal
    /// under `cache_key`.
    fn finish(
        &self,
        token: &str,
        parsed: &Parsed,
        key: KeyRef<'_>,
        cache_key: Option<u64>,
    ) -> Result<Principal<E>, AuthnError> {
        let verified = match &key {
            KeyRef::Borrowed(dk) => verify(token, parsed, *dk),
            #[cfg(feature = "remote")]
            KeyRef::Shared { keys: set, .. } => match set.find(parsed.kid.as_deref(), parsed.alg) {
                Found::Key(dk) => verify(token, parsed, dk),
                _ => Err(AuthnError::UnknownKey),
            },
        };
        verified?;
        let claims: Claims<E> =
            serde_json::from_slice(&parsed.payload).map_err(|_| AuthnError::InvalidClaims)?;
        let now = now();
        let issuer = self.issuer(parsed);
        let iss = parsed.tenant_iss.as_ref().unwrap_or(&issuer.iss);
        self.check_claims(issuer, iss, &claims, now)?;
        let confirmation = Confirmation::from_payload(&parsed.payload)?;
        let principal = Principal::bound(Arc::clone(iss), claims, token, confirmation);
        if let (Some(cache), Some(cache_key)) = (&self.cache, cache_key) {
            let epoch = match key {
                KeyRef::Borrowed(_) => None,
                #[cfg(feature = "remote")]
                KeyRef::Shared { cache, epoch, .. } => Some(cache.key_epoch(epoch)),
            };
            cache.insert(cache_key, &principal, epoch, now);
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

fn verify(token: &str, parsed: &Parsed, key: FoundKey<'_>) -> Result<(), AuthnError> {
    // `parsed` came from this token; were it not, the check fails closed.
    let message = token.get(..parsed.message_len);
    let signature = token.get(parsed.message_len + 1..);
    let (Some(message), Some(signature)) = (message, signature) else {
        return Err(AuthnError::InvalidSignature);
    };
    if key.verify(message.as_bytes(), signature) {
        Ok(())
    } else {
        Err(AuthnError::InvalidSignature)
    }
}

enum KeyRef<'a> {
    /// A key that never changes: static, or the issuer's HMAC secret.
    Borrowed(FoundKey<'a>),
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
        seen: u64,
        empty: bool,
    },
    Reject(AuthnError),
}

#[cfg(all(test, feature = "test-util"))]
mod tests {
    use crate::test_util::TestIssuer;
    use crate::{Algorithm, Issuer, JwksOptions, JwtValidator};
    use std::cell::Cell;
    use std::time::Duration;

    thread_local! {
        /// Tokens parsed on this thread.
        pub(super) static PARSES: Cell<usize> = const { Cell::new(0) };
    }

    fn parses_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
        PARSES.with(|n| n.set(0));
        let out = f();
        (out, PARSES.with(Cell::get))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_key_fetch_does_not_parse_the_token_again() {
        let idp = TestIssuer::start().await.unwrap();
        let v = JwtValidator::builder()
            .issuer(
                Issuer::new(idp.issuer())
                    .audience(idp.audience())
                    .discovery(),
            )
            .jwks_options(JwksOptions::default().refresh_cooldown(Duration::ZERO))
            .without_token_cache()
            .build()
            .unwrap();
        // The key set is not loaded yet: a first fetch.
        let token = idp.token().sign();
        PARSES.with(|n| n.set(0));
        assert!(v.validate(&token).await.is_ok());
        assert_eq!(PARSES.with(Cell::get), 1);
        // An unknown kid: a refetch.
        idp.rotate(Algorithm::RS256).unwrap();
        let rotated = idp.token().sign();
        PARSES.with(|n| n.set(0));
        assert!(v.validate(&rotated).await.is_ok());
        assert_eq!(PARSES.with(Cell::get), 1);
        // A kid that the refetch does not bring either.
        let unknown = idp.token().kid("nowhere").sign();
        PARSES.with(|n| n.set(0));
        assert!(v.validate(&unknown).await.is_err());
        assert_eq!(PARSES.with(Cell::get), 1);
        // Keys at hand: one parse, no wait.
        let (result, parses) = parses_during(|| v.validate_now(&token));
        assert!(result.unwrap().is_some());
        assert_eq!(parses, 1);
    }
}
