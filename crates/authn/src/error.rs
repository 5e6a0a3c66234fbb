//! Why a token or a request was rejected.

use std::fmt;

/// Why validation failed.
///
/// The messages are fixed strings chosen by us: they never contain the token
/// or any of its (unverified) claims, so they are safe to log and to return
/// in an `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthnError {
    /// No bearer token in the request.
    #[error("missing bearer token")]
    MissingToken,
    /// The request carries credentials in a form we do not accept
    /// (several Authorization headers, a `Bearer` scheme without a token,
    /// characters outside the RFC 6750 token syntax).
    #[error("malformed authorization header")]
    MalformedRequest,
    /// The token (or the header carrying it) is larger than the configured limit.
    #[error("token too large")]
    TokenTooLarge,
    /// The token is not a compact JWS (three base64url parts of valid JSON).
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is `none`, unknown, or not allowed for this issuer.
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The header carries `jku`, `x5u` or an embedded `jwk`; we never follow them.
    #[error("token header references keys we do not follow")]
    ForbiddenHeader,
    /// The header lists a `crit` extension we do not understand.
    #[error("unsupported critical header")]
    UnsupportedCrit,
    /// The header's `typ` is not one of the accepted values.
    #[error("token type not accepted")]
    InvalidType,
    /// The `iss` claim is missing or not a trusted issuer.
    #[error("untrusted issuer")]
    UntrustedIssuer,
    /// No key of the issuer's key set has the token's `kid`.
    #[error("unknown signing key")]
    UnknownKey,
    /// The key named by `kid` may not verify this token: its declared `alg`
    /// differs, it is an encryption key (`use: enc`), or its type does not fit.
    #[error("key not usable for this token")]
    KeyMismatch,
    /// The signature does not verify.
    #[error("invalid signature")]
    InvalidSignature,
    /// The token has expired (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// The token is not valid yet (`nbf` in the future beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` lies in the future beyond the leeway.
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `aud` is missing or names none of the accepted audiences.
    #[error("audience not accepted")]
    InvalidAudience,
    /// A claim is missing or has the wrong JSON type.
    #[error("invalid claims")]
    InvalidClaims,
    /// The issuer's keys could not be obtained (discovery or JWKS endpoint
    /// failing and no cached key set). The token may be fine: this is a
    /// server-side condition, answered with 503.
    #[error("signing keys unavailable")]
    KeysUnavailable,
    /// The introspection endpoint says the token is not active (RFC 7662).
    #[error("token not active")]
    Inactive,
    /// The token could not be introspected (endpoint failing or refusing
    /// our credentials). A server-side condition, answered with 503.
    #[error("token introspection unavailable")]
    IntrospectionUnavailable,
    /// The token is sender-constrained (it carries `cnf`) but was presented
    /// as a bearer token, or validated without the request it came with.
    #[error("sender-constrained token presented as a bearer token")]
    BoundToken,
    /// The token's `cnf` names a confirmation method we do not check.
    #[error("unsupported confirmation method")]
    UnsupportedConfirmation,
    /// The token came with the `DPoP` scheme but is not bound to a key (no `cnf.jkt`).
    #[error("token not bound to a dpop key")]
    TokenNotBound,
    /// The issuer's policy requires DPoP and the token came as a bearer token.
    #[error("dpop-bound token required")]
    DpopRequired,
    /// The token came with the `DPoP` scheme and its issuer's policy accepts
    /// bearer tokens only.
    #[error("dpop not accepted for this issuer")]
    DpopNotAccepted,
    /// The DPoP proof is missing or invalid (RFC 9449 §4.3).
    #[error("invalid dpop proof: {0}")]
    InvalidDpopProof(DpopProofError),
    /// The server demands a nonce in the proof and it is missing or stale
    /// (RFC 9449 §8); the answer carries a fresh one in `DPoP-Nonce`.
    #[error("dpop nonce required")]
    UseDpopNonce,
    /// The proof's `jti` could not be checked against the replay store.
    /// A server-side condition, answered with 503.
    #[error("dpop replay store unavailable")]
    ReplayStoreUnavailable,
    /// The token is bound to a client certificate (`cnf["x5t#S256"]`, RFC
    /// 8705) and the request came without one.
    #[error("client certificate required")]
    MissingCertificate,
    /// The client certificate is not the one the token is bound to.
    #[error("client certificate does not match the token")]
    CertificateMismatch,
}

/// Why a DPoP proof was refused: each check of RFC 9449 §4.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopProofError {
    /// No `DPoP` header.
    #[error("missing")]
    Missing,
    /// More than one `DPoP` header.
    #[error("more than one proof")]
    Multiple,
    /// Not a compact JWS of valid JSON with the required claims, or too large.
    #[error("malformed")]
    Malformed,
    /// The header's `typ` is not `dpop+jwt`.
    #[error("wrong type")]
    InvalidType,
    /// `alg` is `none`, symmetric, unknown or not allowed.
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The `jwk` header is missing, malformed, or does not fit `alg`.
    #[error("invalid key")]
    InvalidKey,
    /// The `jwk` header carries a private key.
    #[error("private key in proof")]
    PrivateKey,
    /// The signature does not verify with the embedded key.
    #[error("invalid signature")]
    InvalidSignature,
    /// `htm` is not the request's method.
    #[error("method mismatch")]
    MethodMismatch,
    /// `htu` is not the request's URI.
    #[error("uri mismatch")]
    UriMismatch,
    /// `iat` is older than the acceptance window.
    #[error("expired")]
    Expired,
    /// `iat` lies in the future beyond the allowed skew.
    #[error("issued in the future")]
    IssuedInFuture,
    /// A proof with this `jti` was already accepted.
    #[error("replayed")]
    Replayed,
    /// `ath` is missing or not the hash of the access token.
    #[error("access token hash mismatch")]
    AccessTokenHashMismatch,
    /// The proof's key is not the one the token is bound to (`cnf.jkt`).
    #[error("key does not match the token")]
    KeyMismatch,
}

impl DpopProofError {
    /// A short, stable, machine-readable code for metrics and logs.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing => "dpop_missing",
            Self::Multiple => "dpop_multiple",
            Self::Malformed => "dpop_malformed",
            Self::InvalidType => "dpop_invalid_type",
            Self::AlgorithmNotAllowed => "dpop_algorithm_not_allowed",
            Self::InvalidKey => "dpop_invalid_key",
            Self::PrivateKey => "dpop_private_key",
            Self::InvalidSignature => "dpop_invalid_signature",
            Self::MethodMismatch => "dpop_method_mismatch",
            Self::UriMismatch => "dpop_uri_mismatch",
            Self::Expired => "dpop_expired",
            Self::IssuedInFuture => "dpop_issued_in_future",
            Self::Replayed => "dpop_replayed",
            Self::AccessTokenHashMismatch => "dpop_ath_mismatch",
            Self::KeyMismatch => "dpop_key_mismatch",
        }
    }
}

impl AuthnError {
    /// A short, stable, machine-readable code for metrics and logs.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::MalformedRequest => "malformed_request",
            Self::TokenTooLarge => "token_too_large",
            Self::Malformed => "malformed",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::ForbiddenHeader => "forbidden_header",
            Self::UnsupportedCrit => "unsupported_crit",
            Self::InvalidType => "invalid_type",
            Self::UntrustedIssuer => "untrusted_issuer",
            Self::UnknownKey => "unknown_key",
            Self::KeyMismatch => "key_mismatch",
            Self::InvalidSignature => "invalid_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::InvalidAudience => "invalid_audience",
            Self::InvalidClaims => "invalid_claims",
            Self::KeysUnavailable => "keys_unavailable",
            Self::Inactive => "inactive",
            Self::IntrospectionUnavailable => "introspection_unavailable",
            Self::BoundToken => "bound_token",
            Self::UnsupportedConfirmation => "unsupported_confirmation",
            Self::TokenNotBound => "token_not_bound",
            Self::DpopRequired => "dpop_required",
            Self::DpopNotAccepted => "dpop_not_accepted",
            Self::InvalidDpopProof(e) => e.reason(),
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::ReplayStoreUnavailable => "replay_store_unavailable",
            Self::MissingCertificate => "missing_certificate",
            Self::CertificateMismatch => "certificate_mismatch",
        }
    }

    /// The RFC 6750 error code for the challenge: `None` when no credentials
    /// were sent (RFC 6750 §3.1), `invalid_request` for malformed requests,
    /// `invalid_dpop_proof` and `use_dpop_nonce` for DPoP proofs (RFC 9449
    /// §7.1, §8), `invalid_token` otherwise.
    #[must_use]
    pub fn oauth_error(&self) -> Option<&'static str> {
        match self {
            Self::MissingToken
            | Self::KeysUnavailable
            | Self::IntrospectionUnavailable
            | Self::ReplayStoreUnavailable => None,
            Self::MalformedRequest => Some("invalid_request"),
            Self::InvalidDpopProof(_) => Some("invalid_dpop_proof"),
            Self::UseDpopNonce => Some("use_dpop_nonce"),
            _ => Some("invalid_token"),
        }
    }

    /// The HTTP status this error is answered with: 400 for a malformed
    /// request, 503 when keys are unavailable, 401 otherwise.
    #[must_use]
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::MalformedRequest => http::StatusCode::BAD_REQUEST,
            Self::KeysUnavailable
            | Self::IntrospectionUnavailable
            | Self::ReplayStoreUnavailable => http::StatusCode::SERVICE_UNAVAILABLE,
            _ => http::StatusCode::UNAUTHORIZED,
        }
    }

    /// Whether this is a server-side condition (503), not the caller's fault.
    #[must_use]
    pub fn unavailable(&self) -> bool {
        self.status() == http::StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Why a key source could not be built or refreshed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key (PEM, JWK) could not be parsed.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The JWKS document is not valid JSON of the expected shape.
    #[error("invalid jwks document: {0}")]
    InvalidJwks(String),
    /// The JWKS document has more keys than allowed.
    #[error("jwks document has {count} keys, more than the limit of {limit}")]
    TooManyKeys {
        /// Keys in the document.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A fetched document is larger than allowed.
    #[error("document larger than {limit} bytes")]
    TooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The discovery document is invalid or names another issuer.
    #[error("invalid discovery document: {0}")]
    InvalidDiscovery(String),
    /// An HTTP request failed or answered with a non-success status.
    #[error("http: {0}")]
    Http(String),
    /// An invalid URL.
    #[error("invalid url: {0}")]
    InvalidUrl(String),
}

/// Why a validator could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No trusted issuer was configured.
    #[error("no trusted issuer configured")]
    NoIssuer,
    /// The same issuer was configured twice.
    #[error("issuer configured twice: {0}")]
    DuplicateIssuer(String),
    /// An issuer has no audience; audiences are always checked.
    #[error("issuer {0} has no audience")]
    NoAudience(String),
    /// An issuer has no key source.
    #[error("issuer {0} has no key source")]
    NoKeySource(String),
    /// An algorithm in the allow-list does not fit the configured keys
    /// (HS* without a shared secret, or `none`).
    #[error("algorithm {0} not allowed in this configuration")]
    Algorithm(String),
    /// A key could not be loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The introspection settings are invalid.
    #[error("introspection: {0}")]
    Introspection(String),
    /// The DPoP settings are invalid.
    #[error("dpop: {0}")]
    Dpop(String),
    /// A multi-tenant issuer's settings are invalid.
    #[error("multi-tenant issuer {0}")]
    Tenants(String),
}

pub(crate) struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
