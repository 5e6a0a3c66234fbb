//! [`DpopOptions`]: everything a service sets about DPoP, and the
//! [`DpopPolicy`] of each issuer.

use super::nonce::{DEFAULT_NONCE_ROTATION, NonceIssuer};
use super::replay::{InMemoryReplayStore, ReplayStore};
use crate::error::ConfigError;
use crate::validator::DEFAULT_ALGORITHMS;
use jsonwebtoken::Algorithm;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The default age beyond which a proof's `iat` is too old.
pub const DEFAULT_PROOF_MAX_AGE: Duration = Duration::from_secs(60);

/// The default allowance for a proof's `iat` ahead of our clock.
pub const DEFAULT_PROOF_MAX_SKEW: Duration = Duration::from_secs(5);

/// The largest `DPoP` header looked at.
pub const DEFAULT_MAX_PROOF_LEN: usize = 8 * 1024;

/// Which schemes an issuer's tokens may come with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DpopPolicy {
    /// Bearer tokens only; the `DPoP` scheme is not accepted, so a
    /// DPoP-bound token is refused whichever way it comes.
    Off,
    /// Bearer and DPoP both accepted; a DPoP-bound token only with its proof.
    #[default]
    Allow,
    /// DPoP only: every bearer token is refused.
    Require,
}

impl DpopPolicy {
    pub(crate) fn bearer(self) -> bool {
        self != Self::Require
    }
    pub(crate) fn dpop(self) -> bool {
        self != Self::Off
    }
}

/// DPoP settings for [`AuthnLayer::dpop`](crate::AuthnLayer::dpop).
///
/// ```
/// use std::time::Duration;
/// use tessera_authn::dpop::{DpopOptions, DpopPolicy};
///
/// let options = DpopOptions::new()
///     .policy(DpopPolicy::Allow)
///     .issuer_policy("https://strict-idp.example", DpopPolicy::Require)
///     .public_url("https://api.example.com")?
///     .proof_max_age(Duration::from_secs(30))
///     .nonces();
/// # let _ = options;
/// # Ok::<_, tessera_authn::ConfigError>(())
/// ```
#[must_use]
#[derive(Clone)]
pub struct DpopOptions {
    pub(super) policy: DpopPolicy,
    pub(super) issuer_policies: HashMap<String, DpopPolicy>,
    pub(super) algorithms: Vec<Algorithm>,
    /// The `algs` of the challenge, space-separated.
    pub(super) algs: String,
    pub(super) max_age: i64,
    pub(super) max_skew: i64,
    pub(super) max_proof_len: usize,
    pub(super) public_url: Option<Url>,
    pub(super) nonces: Option<NonceIssuer>,
    pub(super) replay: Arc<dyn ReplayStore>,
}

impl fmt::Debug for DpopOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopOptions")
            .field("policy", &self.policy)
            .field("issuer_policies", &self.issuer_policies)
            .field("algs", &self.algs)
            .field("max_age", &self.max_age)
            .field("max_skew", &self.max_skew)
            .field("public_url", &self.public_url.as_ref().map(Url::as_str))
            .field("nonces", &self.nonces.is_some())
            .field("replay", &self.replay)
            .finish()
    }
}

impl Default for DpopOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl DpopOptions {
    /// [`DpopPolicy::Allow`] for every issuer, the asymmetric algorithms of
    /// [`DEFAULT_ALGORITHMS`], proofs up to [`DEFAULT_PROOF_MAX_AGE`] old and
    /// [`DEFAULT_PROOF_MAX_SKEW`] ahead, the request's own URL, no nonces,
    /// an [`InMemoryReplayStore`].
    pub fn new() -> Self {
        Self {
            policy: DpopPolicy::Allow,
            issuer_policies: HashMap::new(),
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            algs: algs(&DEFAULT_ALGORITHMS),
            max_age: secs(DEFAULT_PROOF_MAX_AGE),
            max_skew: secs(DEFAULT_PROOF_MAX_SKEW),
            max_proof_len: DEFAULT_MAX_PROOF_LEN,
            public_url: None,
            nonces: None,
            replay: Arc::new(InMemoryReplayStore::default()),
        }
    }

    /// The policy of issuers without their own (default [`DpopPolicy::Allow`]).
    pub fn policy(mut self, policy: DpopPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The policy for tokens of the issuer `iss` (its configured URL).
    pub fn issuer_policy(mut self, iss: impl Into<String>, policy: DpopPolicy) -> Self {
        self.issuer_policies.insert(iss.into(), policy);
        self
    }

    /// The algorithms a proof may be signed with; asymmetric only.
    ///
    /// # Errors
    /// [`ConfigError::Algorithm`] for an HMAC algorithm or an empty list.
    pub fn algorithms(
        mut self,
        algorithms: impl IntoIterator<Item = Algorithm>,
    ) -> Result<Self, ConfigError> {
        let mut list: Vec<Algorithm> = algorithms.into_iter().collect();
        list.dedup();
        if list.is_empty() {
            return Err(ConfigError::Algorithm("no dpop algorithm".into()));
        }
        if let Some(alg) = list
            .iter()
            .find(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        {
            return Err(ConfigError::Algorithm(format!("{alg:?} for dpop proofs")));
        }
        self.algs = algs(&list);
        self.algorithms = list;
        Ok(self)
    }

    /// How old a proof's `iat` may be (default 60 s). Its `jti` is
    /// remembered that long.
    pub fn proof_max_age(mut self, age: Duration) -> Self {
        self.max_age = secs(age);
        self
    }

    /// How far ahead of our clock a proof's `iat` may be (default 5 s).
    pub fn proof_max_skew(mut self, skew: Duration) -> Self {
        self.max_skew = secs(skew);
        self
    }

    /// The external base URL clients call (scheme, host, port, optional
    /// path prefix), for services behind a proxy: `htu` must be this
    /// URL's origin and path followed by the request's path. Without it,
    /// the request's own scheme (`http` when the request line has none),
    /// `Host` and path.
    ///
    /// # Errors
    /// [`ConfigError::Dpop`] when it is not an absolute `http(s)` URL.
    pub fn public_url(mut self, url: &str) -> Result<Self, ConfigError> {
        let parsed = Url::parse(url).map_err(|e| ConfigError::Dpop(format!("public url: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(ConfigError::Dpop(format!(
                "public url {url} is not an http(s) url"
            )));
        }
        self.public_url = Some(parsed);
        Ok(self)
    }

    /// Demands server nonces (RFC 9449 §8) under a random secret, rotated
    /// every [`DEFAULT_NONCE_ROTATION`]. Several replicas behind one URL
    /// need [`nonces_with_secret`](Self::nonces_with_secret).
    pub fn nonces(mut self) -> Self {
        self.nonces = Some(NonceIssuer::random(DEFAULT_NONCE_ROTATION));
        self
    }

    /// Demands server nonces made with `secret` (shared by the replicas;
    /// at least 32 bytes), rotated every `period`.
    ///
    /// # Errors
    /// [`ConfigError::Dpop`] for a secret shorter than 32 bytes.
    pub fn nonces_with_secret(
        mut self,
        secret: impl AsRef<[u8]>,
        period: Duration,
    ) -> Result<Self, ConfigError> {
        if secret.as_ref().len() < 32 {
            return Err(ConfigError::Dpop(
                "nonce secret shorter than 32 bytes".into(),
            ));
        }
        self.nonces = Some(NonceIssuer::new(secret.as_ref(), period));
        Ok(self)
    }

    /// Where accepted proofs are remembered (default an
    /// [`InMemoryReplayStore`]); a shared store makes replicas refuse each
    /// other's replays.
    pub fn replay_store(mut self, store: impl ReplayStore) -> Self {
        self.replay = Arc::new(store);
        self
    }

    /// The policy for tokens of `iss`.
    pub(crate) fn policy_for(&self, iss: &str) -> DpopPolicy {
        self.issuer_policies
            .get(iss)
            .copied()
            .unwrap_or(self.policy)
    }

    /// The policy of the challenge, before any issuer is known.
    pub(crate) fn default_policy(&self) -> DpopPolicy {
        self.policy
    }

    /// Whether any issuer accepts the `DPoP` scheme.
    pub(crate) fn any_dpop(&self) -> bool {
        self.policy.dpop() || self.issuer_policies.values().any(|p| p.dpop())
    }

    /// The `algs` parameter of the challenge.
    pub(crate) fn algs(&self) -> &str {
        &self.algs
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn algs(list: &[Algorithm]) -> String {
    let mut out = String::new();
    for alg in list {
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "{alg:?}");
    }
    out
}
