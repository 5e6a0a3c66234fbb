//! The `cnf` claim (RFC 7800): what a sender-constrained token is bound to,
//! a DPoP key (`jkt`, RFC 9449) or a client certificate (`x5t#S256`, RFC 8705).
//!
//! ```
//! use tessera_authn::Confirmation;
//!
//! let cnf = Confirmation::from_claim(&serde_json::json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}))
//!     .unwrap();
//! assert_eq!(cnf.jkt(), Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"));
//! assert_eq!(cnf.x5t_s256(), None);
//! ```

use crate::error::AuthnError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The confirmation (`cnf`) of a sender-constrained token.
///
/// A token carrying one is never accepted as a plain bearer token: the
/// [`AuthnLayer`](crate::AuthnLayer) checks the binding on every request,
/// and [`JwtValidator::validate`](crate::JwtValidator::validate) refuses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confirmation {
    #[serde(skip_serializing_if = "Option::is_none")]
    jkt: Option<String>,
    #[serde(rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    x5t_s256: Option<String>,
    /// Confirmation methods we do not check (`jwk`, `kid`, ...), by name.
    #[serde(skip)]
    unsupported: Vec<String>,
}

impl Confirmation {
    /// Reads a `cnf` claim: a JSON object whose `jkt` and `x5t#S256`
    /// members, when present, are strings.
    ///
    /// # Errors
    /// [`AuthnError::InvalidClaims`] when it is not of that shape.
    pub fn from_claim(value: &Value) -> Result<Self, AuthnError> {
        let Value::Object(members) = value else {
            return Err(AuthnError::InvalidClaims);
        };
        let string = |name: &str| match members.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(AuthnError::InvalidClaims),
        };
        Ok(Self {
            jkt: string("jkt")?,
            x5t_s256: string("x5t#S256")?,
            unsupported: members
                .keys()
                .filter(|k| *k != "jkt" && *k != "x5t#S256")
                .cloned()
                .collect(),
        })
    }

    /// The `cnf` of a token's decoded payload, if it has one. Cheap when it
    /// has none: the payload is parsed again only when `cnf` may be in it.
    pub(crate) fn from_payload(payload: &[u8]) -> Result<Option<Self>, AuthnError> {
        // `cnf` spelled plainly, or a `\u` escape that could spell it.
        let maybe = payload
            .windows(3)
            .any(|w| w == b"cnf" || (w[0] == b'\\' && w[1] == b'u'));
        if !maybe {
            return Ok(None);
        }
        #[derive(Deserialize)]
        struct Peek {
            #[serde(default)]
            cnf: Option<Value>,
        }
        let peek: Peek = serde_json::from_slice(payload).map_err(|_| AuthnError::InvalidClaims)?;
        peek.cnf.as_ref().map(Self::from_claim).transpose()
    }

    /// The `cnf` member of introspected claims, if any.
    #[cfg_attr(not(feature = "introspection"), allow(dead_code))]
    pub(crate) fn from_claims(claims: &Map<String, Value>) -> Result<Option<Self>, AuthnError> {
        claims.get("cnf").map(Self::from_claim).transpose()
    }

    /// `jkt`: the RFC 7638 thumbprint (SHA-256, base64url) of the DPoP key.
    #[must_use]
    pub fn jkt(&self) -> Option<&str> {
        self.jkt.as_deref()
    }

    /// `x5t#S256`: the SHA-256 (base64url) of the client certificate's DER.
    #[must_use]
    pub fn x5t_s256(&self) -> Option<&str> {
        self.x5t_s256.as_deref()
    }

    /// Confirmation methods present that Tessera does not check; a token
    /// with any is refused.
    #[must_use]
    pub fn unsupported_methods(&self) -> &[String] {
        &self.unsupported
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payload_without_cnf_has_no_confirmation() {
        assert_eq!(
            Confirmation::from_payload(br#"{"iss":"i","exp":1}"#),
            Ok(None)
        );
    }

    #[test]
    fn escaped_cnf_is_still_found() {
        let payload = br#"{"iss":"i","\u0063nf":{"jkt":"abc"}}"#;
        let cnf = Confirmation::from_payload(payload).unwrap().unwrap();
        assert_eq!(cnf.jkt(), Some("abc"));
    }

    #[test]
    fn malformed_cnf_is_invalid_claims() {
        for cnf in [json!("abc"), json!({"jkt": 1}), json!({"x5t#S256": ""})] {
            assert_eq!(
                Confirmation::from_claim(&cnf),
                Err(AuthnError::InvalidClaims),
                "{cnf}"
            );
        }
    }

    #[test]
    fn unknown_methods_are_listed() {
        let cnf = Confirmation::from_claim(&json!({"jwk": {}, "jkt": "a"})).unwrap();
        assert_eq!(cnf.unsupported_methods(), ["jwk".to_owned()]);
    }
}
