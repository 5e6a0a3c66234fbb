//! [`ClientError`]: why no token could be obtained.

/// Why no token could be obtained.
///
/// Messages never contain secrets or tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration is invalid (bad URL, empty client id...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The authorization server refused the request with an RFC 6749 §5.2
    /// error (`invalid_client`, `invalid_scope`, `invalid_grant`...).
    #[error("token endpoint refused the request: {code}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    OAuth {
        /// The HTTP status.
        status: u16,
        /// The OAuth `error` code.
        code: String,
        /// The `error_description`, if any.
        description: Option<String>,
    },
    /// The endpoint could not be reached or answered with a server error
    /// (after the retries).
    #[error("token endpoint unavailable: {0}")]
    Unavailable(String),
    /// The endpoint answered with something that is not a usable token
    /// response.
    #[error("invalid token endpoint response: {0}")]
    InvalidResponse(String),
    /// OIDC discovery of the endpoint failed.
    #[error("discovery failed: {0}")]
    Discovery(String),
    /// The token to relay or exchange has expired.
    #[error("subject token expired")]
    SubjectExpired,
}

impl ClientError {
    /// The OAuth `error` code, when the authorization server sent one.
    #[must_use]
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            Self::OAuth { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether retrying later may succeed (network errors, 5xx, 429,
    /// `temporarily_unavailable`, discovery failures).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Discovery(_) => true,
            Self::OAuth { code, .. } => code == "temporarily_unavailable" || code == "server_error",
            _ => false,
        }
    }

    pub(crate) fn from_post(error: crate::endpoint::PostError) -> Self {
        use crate::endpoint::PostError;
        match error {
            PostError::Unreachable(e) => Self::Unavailable(e),
            PostError::Status(s) => Self::Unavailable(format!("status {s}")),
            PostError::OAuth {
                status,
                code,
                description,
            } => Self::OAuth {
                status,
                code,
                description,
            },
            PostError::Unexpected(s) => Self::InvalidResponse(format!("status {s}")),
            PostError::Body(e) => Self::InvalidResponse(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_expose_codes_and_transience() {
        let e = ClientError::OAuth {
            status: 400,
            code: "invalid_scope".into(),
            description: Some("nope".into()),
        };
        assert_eq!(e.oauth_error(), Some("invalid_scope"));
        assert!(!e.is_transient());
        assert_eq!(
            e.to_string(),
            "token endpoint refused the request: invalid_scope (nope)"
        );
        assert!(ClientError::Unavailable("x".into()).is_transient());
    }
}
