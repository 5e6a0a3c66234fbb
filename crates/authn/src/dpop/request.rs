//! A request's DPoP proof: the one `DPoP` header, checked against the
//! request and its token, then recorded against replay.

use super::htu::request_uri;
use super::options::DpopOptions;
use super::proof::{self, Expected};
use super::replay::{FirstUse, ReplayStore};
use crate::error::{AuthnError, DpopProofError};
use http::{HeaderName, HeaderValue, Request};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The `DPoP` request header carrying the proof.
pub const DPOP: HeaderName = HeaderName::from_static("dpop");

/// The `DPoP-Nonce` response header carrying a server nonce.
pub const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// A proof that passed every check; what is left is recording its `jti`.
#[must_use]
pub(crate) struct PendingReplay {
    store: Arc<dyn ReplayStore>,
    key: [u8; 32],
    until: i64,
}

impl PendingReplay {
    /// Records the proof: `Ok` the first time, refused as a replay after.
    pub(crate) async fn record(self) -> Result<(), AuthnError> {
        match self.store.first_use(self.key, self.until).await {
            Ok(FirstUse::Yes) => Ok(()),
            Ok(FirstUse::No) => Err(AuthnError::InvalidDpopProof(DpopProofError::Replayed)),
            Err(error) => {
                tracing::warn!(target: "tessera_authn", %error, "dpop replay store failed");
                Err(AuthnError::ReplayStoreUnavailable)
            }
        }
    }
}

impl DpopOptions {
    /// Checks the proof of `req` for `token`, bound to `jkt`.
    pub(crate) fn check_request<B>(
        &self,
        req: &Request<B>,
        token: &str,
        jkt: &str,
    ) -> Result<PendingReplay, AuthnError> {
        let mut proofs = req.headers().get_all(DPOP).iter();
        let proof = proofs
            .next()
            .ok_or(AuthnError::InvalidDpopProof(DpopProofError::Missing))?;
        if proofs.next().is_some() {
            return Err(AuthnError::InvalidDpopProof(DpopProofError::Multiple));
        }
        if proof.len() > self.max_proof_len {
            return Err(AuthnError::InvalidDpopProof(DpopProofError::Malformed));
        }
        let proof = proof
            .to_str()
            .map_err(|_| AuthnError::InvalidDpopProof(DpopProofError::Malformed))?;
        let uri = request_uri(req, self.public_url.as_ref());
        let now = crate::time::now();
        let accepted = proof::check(
            proof,
            &Expected {
                method: req.method().as_str(),
                uri: uri.as_deref(),
                access_token: token,
                jkt,
                now,
            },
            self,
        )?;
        let mut hash = Sha256::new();
        hash.update(accepted.thumbprint.as_bytes());
        hash.update([0]);
        hash.update(accepted.jti.as_bytes());
        Ok(PendingReplay {
            store: Arc::clone(&self.replay),
            key: hash.finalize().into(),
            // Past this the proof is refused as expired anyway.
            until: accepted.iat.saturating_add(self.max_age).saturating_add(1),
        })
    }

    /// The nonce to hand out now, when nonces are on.
    pub(crate) fn current_nonce(&self) -> Option<HeaderValue> {
        self.nonces.as_ref().map(|n| n.current(crate::time::now()))
    }
}
