//! DPoP (RFC 9449): sender-constrained tokens bound to a key the client
//! proves it holds with every request (feature `dpop`).
//!
//! [`AuthnLayer::dpop`](crate::AuthnLayer::dpop) turns it on. A request
//! then may carry `Authorization: DPoP <token>` and a `DPoP` proof header;
//! the layer checks everything RFC 9449 §4.3 lists (one proof, `typ`,
//! asymmetric `alg`, the signature by the embedded public `jwk`, `htm`,
//! `htu`, `iat`, `ath`, the token's `cnf.jkt`), refuses a replayed `jti`,
//! demands server nonces if asked, and applies each issuer's
//! [`DpopPolicy`]. A DPoP-bound token presented as `Bearer` is refused
//! whatever the policy. The validated-token cache never skips the proof:
//! the cache holds the token's claims, the proof is checked on every request.

mod htu;
mod jwk;
mod nonce;
mod options;
mod proof;
mod replay;
mod request;

pub use nonce::DEFAULT_NONCE_ROTATION;
pub use options::{
    DEFAULT_MAX_PROOF_LEN, DEFAULT_PROOF_MAX_AGE, DEFAULT_PROOF_MAX_SKEW, DpopOptions, DpopPolicy,
};
#[cfg(feature = "test-util")]
pub(crate) use proof::{current_nonce, token_request_jkt};
pub use replay::{
    DEFAULT_REPLAY_ENTRIES, FirstUse, InMemoryReplayStore, ReplayFuture, ReplayStore,
    ReplayStoreError,
};
pub(crate) use request::PendingReplay;
pub use request::{DPOP, DPOP_NONCE};
