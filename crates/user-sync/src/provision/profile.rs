//! How a new user's profile is made from the token's claims:
//! [`profile_from_claims`], the default, and the type of a custom one.

use std::sync::Arc;

use tessera_authn::{Claims, claims::ExtraClaims};

use crate::events::Profile;

/// Builds a new user's profile from the token's claims.
pub(super) type ProfileFn<E> = Arc<dyn Fn(&Claims<E>) -> Profile + Send + Sync>;

/// The profile for a new user from its token's claims.
///
/// ```
/// use tessera_authn::Claims;
/// use tessera_user_sync::provision::profile_from_claims;
///
/// let claims: Claims = serde_json::from_value(serde_json::json!({
///     "iss": "https://idp.example", "sub": "u1", "exp": 4102444800_i64,
///     "preferred_username": "ada", "email": "ada@example.com"
/// })).unwrap();
/// let profile = profile_from_claims(&claims);
/// assert_eq!(profile.display_name, "ada");
/// assert_eq!(profile.username.as_deref(), Some("ada"));
/// assert_eq!(profile.email.as_deref(), Some("ada@example.com"));
/// ```
pub fn profile_from_claims(claims: &Claims<ExtraClaims>) -> Profile {
    let text = |name: &str| {
        claims
            .extra
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let username = text("preferred_username");
    let display_name = text("name")
        .or_else(|| username.clone())
        .or_else(|| claims.sub.clone())
        .unwrap_or_default();
    Profile {
        display_name,
        username,
        email: text("email"),
        avatar_url: text("picture"),
    }
}
