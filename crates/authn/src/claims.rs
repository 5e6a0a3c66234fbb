//! Token claims: the registered claims typed, the rest in the caller's type.
//!
//! ```
//! use tessera_authn::Claims;
//!
//! #[derive(serde::Deserialize, Clone, Debug)]
//! struct MyClaims {
//!     scope: Option<String>,
//! }
//!
//! let json = r#"{"iss":"https://idp.example","sub":"u1","aud":["api"],"exp":1900000000,"scope":"read"}"#;
//! let claims: Claims<MyClaims> = serde_json::from_str(json).unwrap();
//! assert_eq!(claims.sub.as_deref(), Some("u1"));
//! assert!(claims.aud.contains("api"));
//! assert_eq!(claims.extra.scope.as_deref(), Some("read"));
//! ```

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The default type for claims beyond the registered ones: a JSON object.
pub type ExtraClaims = serde_json::Map<String, serde_json::Value>;

/// The claims of a validated token.
///
/// The registered claims of RFC 7519 are typed fields; everything else is
/// deserialized into `E` (by default a JSON object, [`ExtraClaims`]).
/// A claim of the wrong JSON type (say `exp` as a string) fails
/// deserialization, and the token is rejected.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims<E = ExtraClaims> {
    /// `iss`: the issuer, always present in a validated token.
    pub iss: String,
    /// `sub`: the subject (user id or client id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// `aud`: the audiences, a string or an array of strings on the wire.
    #[serde(default, skip_serializing_if = "Audience::is_empty")]
    pub aud: Audience,
    /// `exp`: expiry, seconds since the Unix epoch. Always present in a validated token.
    #[serde(deserialize_with = "numeric_date")]
    pub exp: i64,
    /// `nbf`: not before, seconds since the Unix epoch.
    #[serde(
        default,
        deserialize_with = "opt_numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<i64>,
    /// `iat`: issued at, seconds since the Unix epoch.
    #[serde(
        default,
        deserialize_with = "opt_numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub iat: Option<i64>,
    /// `jti`: the token's unique id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Every other claim.
    #[serde(flatten)]
    pub extra: E,
}

/// The `aud` claim: one audience or several.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience(Vec<String>);

impl Audience {
    /// Whether `aud` names this audience (exact, case-sensitive match).
    #[must_use]
    pub fn contains(&self, audience: &str) -> bool {
        self.0.iter().any(|a| a == audience)
    }

    /// The audiences, in token order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Whether the token named no audience.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<S: Into<String>> FromIterator<S> for Audience {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Self(iter.into_iter().map(Into::into).collect())
    }
}

impl Serialize for Audience {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AudVisitor;
        impl<'de> Visitor<'de> for AudVisitor {
            type Value = Audience;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Audience, E> {
                Ok(Audience(vec![v.to_owned()]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(Audience(out))
            }
        }
        deserializer.deserialize_any(AudVisitor)
    }
}

/// NumericDate (RFC 7519 §2): a JSON number of seconds, possibly fractional.
/// Fractions are truncated toward negative infinity; non-finite or absurd
/// values are errors.
fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    struct DateVisitor;
    impl Visitor<'_> for DateVisitor {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a NumericDate (JSON number of seconds)")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom("NumericDate out of range"))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
            // 1e15 s is ~31 million years: far beyond any real date, well inside i64.
            if v.is_finite() && v.abs() < 1e15 {
                #[allow(clippy::cast_possible_truncation)]
                Ok(v.floor() as i64)
            } else {
                Err(E::custom("NumericDate out of range"))
            }
        }
    }
    deserializer.deserialize_any(DateVisitor)
}

fn opt_numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    numeric_date(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aud_accepts_string_or_array() {
        let one: Claims = serde_json::from_str(r#"{"iss":"i","aud":"a","exp":1}"#).unwrap();
        assert!(one.aud.contains("a"));
        let many: Claims = serde_json::from_str(r#"{"iss":"i","aud":["a","b"],"exp":1}"#).unwrap();
        assert!(many.aud.contains("b"));
        assert!(!many.aud.contains("B"));
    }

    #[test]
    fn wrong_json_types_are_errors() {
        for bad in [
            r#"{"iss":"i","aud":"a","exp":"1"}"#,
            r#"{"iss":1,"aud":"a","exp":1}"#,
            r#"{"iss":"i","aud":[1],"exp":1}"#,
            r#"{"iss":"i","aud":{"x":1},"exp":1}"#,
            r#"{"iss":"i","aud":"a","exp":1,"nbf":true}"#,
            r#"{"iss":"i","aud":"a","exp":1e300}"#,
            r#"{"iss":"i","aud":"a","exp":1,"sub":5}"#,
            r#"{"iss":"i","aud":"a"}"#,
        ] {
            assert!(serde_json::from_str::<Claims>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fractional_dates_truncate_down() {
        let c: Claims = serde_json::from_str(r#"{"iss":"i","exp":10.9,"nbf":-0.5}"#).unwrap();
        assert_eq!(c.exp, 10);
        assert_eq!(c.nbf, Some(-1));
    }

    #[test]
    fn extra_claims_keep_the_rest() {
        let c: Claims = serde_json::from_str(r#"{"iss":"i","exp":1,"scope":"a b"}"#).unwrap();
        assert_eq!(c.extra.get("scope").and_then(|v| v.as_str()), Some("a b"));
        assert!(!c.extra.contains_key("iss"));
    }
}
