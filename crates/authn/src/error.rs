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
        }
    }

    /// The RFC 6750 error code for the challenge: `None` when no credentials
    /// were sent (RFC 6750 §3.1), `invalid_request` for malformed requests,
    /// `invalid_token` otherwise.
    #[must_use]
    pub fn oauth_error(&self) -> Option<&'static str> {
        match self {
            Self::MissingToken | Self::KeysUnavailable | Self::IntrospectionUnavailable => None,
            Self::MalformedRequest => Some("invalid_request"),
            _ => Some("invalid_token"),
        }
    }

    /// The HTTP status this error is answered with: 400 for a malformed
    /// request, 503 when keys are unavailable, 401 otherwise.
    #[must_use]
    pub fn status(&self) -> http::StatusCode {
        match self {
            Self::MalformedRequest => http::StatusCode::BAD_REQUEST,
            Self::KeysUnavailable | Self::IntrospectionUnavailable => {
                http::StatusCode::SERVICE_UNAVAILABLE
            }
            _ => http::StatusCode::UNAUTHORIZED,
        }
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
