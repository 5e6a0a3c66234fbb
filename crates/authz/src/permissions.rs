//! Where permissions live in a token: the [`PermissionSource`] trait and the
//! ready mappings for the claims real identity providers issue.
//!
//! ```
//! use tessera_authn::Claims;
//! use tessera_authz::permissions::{KeycloakClientRoles, KeycloakRealmRoles, OAuthScopes, PermissionSource};
//!
//! let claims: Claims = serde_json::from_str(r#"{
//!     "iss": "https://sso.example/realms/shop", "exp": 1900000000,
//!     "scope": "openid orders:read",
//!     "realm_access": { "roles": ["staff"] },
//!     "resource_access": { "orders-api": { "roles": ["refunder"] } }
//! }"#).unwrap();
//!
//! assert!(OAuthScopes.grants(&claims, "orders:read"));
//! assert!(!OAuthScopes.grants(&claims, "orders")); // exact match only
//! assert!(KeycloakRealmRoles.grants(&claims, "staff"));
//! assert!(KeycloakClientRoles::new("orders-api").grants(&claims, "refunder"));
//! assert!(!KeycloakClientRoles::new("billing").grants(&claims, "refunder"));
//! ```
//!
//! # Matching rules
//!
//! Every mapping matches exactly and case-sensitively: the scope
//! `administrator` does not grant `admin`, `Admin` does not grant `admin`.
//! Space-delimited strings (`scope`, a string `scp`, a string `roles`) are split
//! on the space character (RFC 6749 §3.3); runs of spaces and leading or
//! trailing spaces are ignored. The empty permission is never granted.
//!
//! A claim of the wrong JSON type grants nothing (fail closed): a `scope` that
//! is a number, a `permissions` that is a string, an array with one element
//! that is not a string, a `realm_access` that is not an object. Nothing here
//! panics on any input.
//!
//! # Your own claims type
//!
//! The ready mappings read the default claims type, a JSON object
//! ([`ExtraClaims`]). If you deserialize claims into your own type, implement
//! [`PermissionSource`] for a type of yours, or pass a closure:
//!
//! ```
//! use tessera_authn::Claims;
//! use tessera_authz::permissions::{PermissionSource, contains_space_delimited};
//!
//! #[derive(serde::Deserialize, Clone, Debug)]
//! struct MyClaims {
//!     scope: Option<String>,
//!     #[serde(default)]
//!     groups: Vec<String>,
//! }
//!
//! /// Permissions are the token's scopes plus its groups.
//! #[derive(Clone, Copy, Debug)]
//! struct MyPermissions;
//!
//! impl PermissionSource<MyClaims> for MyPermissions {
//!     fn grants(&self, claims: &Claims<MyClaims>, permission: &str) -> bool {
//!         let extra = &claims.extra;
//!         extra.scope.as_deref().is_some_and(|s| contains_space_delimited(s, permission))
//!             || (!permission.is_empty() && extra.groups.iter().any(|g| g == permission))
//!     }
//! }
//!
//! let claims: Claims<MyClaims> = serde_json::from_str(
//!     r#"{"iss":"i","exp":1900000000,"scope":"read","groups":["ops"]}"#,
//! ).unwrap();
//! assert!(MyPermissions.grants(&claims, "read"));
//! assert!(MyPermissions.grants(&claims, "ops"));
//!
//! // The same as a closure.
//! let groups = |claims: &Claims<MyClaims>, permission: &str| {
//!     claims.extra.groups.iter().any(|g| g == permission)
//! };
//! assert!(groups.grants(&claims, "ops"));
//! ```
//!
//! Guards take the mapping with `.from(..)`, e.g.
//! `RequireScopes::all(["read"]).from(MyPermissions)`.

use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use tessera_authn::{Claims, ExtraClaims};

/// Reads the permissions (scopes, roles, ...) a token grants.
///
/// `E` is the claims type the token was deserialized into; the ready
/// mappings of this module implement it for the default, [`ExtraClaims`].
/// Closures `Fn(&Claims<E>, &str) -> bool` implement it too.
///
/// Implementations must match exactly (no prefix, substring or
/// case-insensitive matching), must never grant the empty permission, and
/// must grant nothing when a claim has an unexpected shape.
pub trait PermissionSource<E = ExtraClaims> {
    /// Whether `claims` grant `permission`.
    fn grants(&self, claims: &Claims<E>, permission: &str) -> bool;
}

impl<E, F> PermissionSource<E> for F
where
    F: Fn(&Claims<E>, &str) -> bool,
{
    fn grants(&self, claims: &Claims<E>, permission: &str) -> bool {
        !permission.is_empty() && self(claims, permission)
    }
}

/// Two sources together: a permission is granted when either grants it.
///
/// ```
/// use tessera_authz::permissions::{Auth0Permissions, PermissionSource, ScopeClaim};
/// # let claims: tessera_authn::Claims = serde_json::from_str(
/// #     r#"{"iss":"i","exp":1,"scope":"a","permissions":["b"]}"#).unwrap();
/// let source = (ScopeClaim, Auth0Permissions);
/// assert!(source.grants(&claims, "a") && source.grants(&claims, "b"));
/// ```
impl<E, A, B> PermissionSource<E> for (A, B)
where
    A: PermissionSource<E>,
    B: PermissionSource<E>,
{
    fn grants(&self, claims: &Claims<E>, permission: &str) -> bool {
        self.0.grants(claims, permission) || self.1.grants(claims, permission)
    }
}

impl<E, S> PermissionSource<E> for Arc<S>
where
    S: PermissionSource<E> + ?Sized,
{
    fn grants(&self, claims: &Claims<E>, permission: &str) -> bool {
        (**self).grants(claims, permission)
    }
}

/// Whether the space-delimited list `list` (an RFC 6749 `scope` value)
/// contains `permission`, matched exactly. Extra spaces are ignored; the empty
/// permission is never contained.
///
/// ```
/// use tessera_authz::permissions::contains_space_delimited;
///
/// assert!(contains_space_delimited("  read  admin ", "admin"));
/// assert!(!contains_space_delimited("administrator", "admin"));
/// assert!(!contains_space_delimited("read", ""));
/// ```
#[must_use]
pub fn contains_space_delimited(list: &str, permission: &str) -> bool {
    !permission.is_empty() && list.split(' ').any(|p| p == permission)
}

/// An array in which every element is a string, containing `permission`.
fn array_contains(values: &[Value], permission: &str) -> bool {
    if permission.is_empty() {
        return false;
    }
    let mut found = false;
    for value in values {
        match value {
            Value::String(s) => found |= s == permission,
            // One malformed element makes the whole claim untrustworthy.
            _ => return false,
        }
    }
    found
}

/// A claim that is a space-delimited string or an array of strings.
fn string_or_array_contains(value: &Value, permission: &str) -> bool {
    match value {
        Value::String(s) => contains_space_delimited(s, permission),
        Value::Array(values) => array_contains(values, permission),
        _ => false,
    }
}

/// A claim that must be an array of strings.
fn only_array_contains(value: &Value, permission: &str) -> bool {
    match value {
        Value::Array(values) => array_contains(values, permission),
        _ => false,
    }
}

/// The OAuth 2.0 `scope` claim: a space-delimited string (RFC 8693 §4.2,
/// RFC 9068), as Keycloak, Auth0 and Cognito issue it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScopeClaim;

impl PermissionSource for ScopeClaim {
    fn grants(&self, claims: &Claims<ExtraClaims>, permission: &str) -> bool {
        match claims.extra.get("scope") {
            Some(Value::String(s)) => contains_space_delimited(s, permission),
            _ => false,
        }
    }
}

/// The `scp` claim: a space-delimited string (Entra ID) or an array of
/// strings (Okta).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScpClaim;

impl PermissionSource for ScpClaim {
    fn grants(&self, claims: &Claims<ExtraClaims>, permission: &str) -> bool {
        claims
            .extra
            .get("scp")
            .is_some_and(|v| string_or_array_contains(v, permission))
    }
}

/// Scopes from `scope` or `scp`, whichever the issuer uses: the default
/// mapping of scope guards.
///
/// A scope is granted when either claim grants it; a malformed `scope` does
/// not spoil a well-formed `scp`, and the other way round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OAuthScopes;

impl PermissionSource for OAuthScopes {
    fn grants(&self, claims: &Claims<ExtraClaims>, permission: &str) -> bool {
        ScopeClaim.grants(claims, permission) || ScpClaim.grants(claims, permission)
    }
}

/// Auth0's `permissions` claim (RBAC for APIs): an array of strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Auth0Permissions;

impl PermissionSource for Auth0Permissions {
    fn grants(&self, claims: &Claims<ExtraClaims>, permission: &str) -> bool {
        claims
            .extra
            .get("permissions")
            .is_some_and(|v| only_array_contains(v, permission))
    }
}

/// Keycloak realm roles: `realm_access.roles`, an array of strings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeycloakRealmRoles;

impl PermissionSource for KeycloakRealmRoles {
    fn grants(&self, claims: &Claims<ExtraClaims>, permission: &str) -> bool {
        claims
            .extra
            .get("realm_access")
            .and_then(|v| v.get("roles"))
            .is_some_and(|v| only_array_contains(v, permission))
    }
}

/// Keycloak client roles: `resource_access.<client>.roles`, an array of
/// strings, for one client id.
///
/// ```
/// use tessera_authz::permissions::KeycloakClientRoles;
///
/// let roles = KeycloakClientRoles::new("orders-api");
/// assert_eq!(roles.client(), "orders-api");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeycloakClientRoles {
    client: Arc<str>,
}

impl KeycloakClientRoles {
    /// Roles of the client (Keycloak client id) `client`.
    pub fn new(client: impl Into<Arc<str>>) -> Self {
        Self {
            client: client.into(),
        }
    }

    /// The client id whose roles are read.
    #[must_use]
    pub fn client(&self) -> &str {
        &self.client
    }
}

impl fmt::Debug for KeycloakClientRoles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeycloakClientRoles")
            .field(&self.client)
            .finish()
    }
}

impl PermissionSource for KeycloakClientRoles {
    fn grants(&self, claims: &Claims<ExtraClaims>, permission: &str) -> bool {
        // `Value::get` on a non-object is `None`: wrong shapes grant nothing.
        claims
            .extra
            .get("resource_access")
            .and_then(|v| v.get(&*self.client))
            .and_then(|v| v.get("roles"))
            .is_some_and(|v| only_array_contains(v, permission))
    }
}

/// The plain `roles` claim (Entra ID app roles, many custom setups): an array
/// of strings, or a space-delimited string. The default mapping of role
/// guards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RolesClaim;

impl PermissionSource for RolesClaim {
    fn grants(&self, claims: &Claims<ExtraClaims>, permission: &str) -> bool {
        claims
            .extra
            .get("roles")
            .is_some_and(|v| string_or_array_contains(v, permission))
    }
}

/// Any claim, found by its path of object keys: an array of strings or a
/// space-delimited string. For claims without a ready mapping, such as
/// Cognito's `cognito:groups`, Okta's `groups` or an Auth0 namespaced claim.
///
/// ```
/// use tessera_authz::permissions::{ClaimPath, PermissionSource};
/// # let claims: tessera_authn::Claims = serde_json::from_str(
/// #     r#"{"iss":"i","exp":1,"cognito:groups":["admins"],"https://shop.example/app":{"tier":"gold"}}"#).unwrap();
/// assert!(ClaimPath::new(["cognito:groups"]).grants(&claims, "admins"));
/// assert!(ClaimPath::new(["https://shop.example/app", "tier"]).grants(&claims, "gold"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimPath {
    path: Arc<[Box<str>]>,
}

impl ClaimPath {
    /// The claim at `path`: the first key names a top-level claim, each next
    /// key a member of the object before. An empty path grants nothing.
    pub fn new<I>(path: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Self {
            path: path.into_iter().map(|k| k.as_ref().into()).collect(),
        }
    }

    /// The path of keys.
    pub fn path(&self) -> impl Iterator<Item = &str> {
        self.path.iter().map(|k| &**k)
    }
}

impl fmt::Debug for ClaimPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ClaimPath").field(&self.path).finish()
    }
}

impl PermissionSource for ClaimPath {
    fn grants(&self, claims: &Claims<ExtraClaims>, permission: &str) -> bool {
        let Some((first, rest)) = self.path.split_first() else {
            return false;
        };
        let mut value = claims.extra.get(&**first);
        for key in rest {
            value = value.and_then(|v| v.get(&**key));
        }
        value.is_some_and(|v| string_or_array_contains(v, permission))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(extra: Value) -> Claims {
        let mut claims = serde_json::json!({ "iss": "https://idp.example", "exp": 1_900_000_000 });
        if let (Value::Object(c), Value::Object(extra)) = (&mut claims, extra) {
            c.extend(extra);
        }
        serde_json::from_value(claims).expect("valid test claims")
    }

    #[test]
    fn space_delimited_matching_is_exact_and_ignores_stray_spaces() {
        assert!(contains_space_delimited("admin ", "admin"));
        assert!(contains_space_delimited("  a   b ", "b"));
        assert!(!contains_space_delimited("administrator", "admin"));
        assert!(!contains_space_delimited("Admin", "admin"));
        assert!(!contains_space_delimited("a b", "a b"));
        assert!(!contains_space_delimited("   ", ""));
        assert!(!contains_space_delimited("", ""));
        // Only the space separates (RFC 6749 §3.3); a tab is part of a token.
        assert!(!contains_space_delimited("read\tadmin", "admin"));
    }

    #[test]
    fn arrays_with_a_non_string_element_grant_nothing() {
        let c = claims(serde_json::json!({ "roles": ["admin", 1] }));
        assert!(!RolesClaim.grants(&c, "admin"));
        let c = claims(serde_json::json!({ "roles": ["admin", null] }));
        assert!(!RolesClaim.grants(&c, "admin"));
        let c = claims(serde_json::json!({ "roles": ["admin", ["nested"]] }));
        assert!(!RolesClaim.grants(&c, "admin"));
    }

    #[test]
    fn empty_strings_in_arrays_never_grant_the_empty_permission() {
        let c = claims(serde_json::json!({ "permissions": [""], "scp": [""] }));
        assert!(!Auth0Permissions.grants(&c, ""));
        assert!(!ScpClaim.grants(&c, ""));
    }

    #[test]
    fn closures_never_grant_the_empty_permission() {
        let c = claims(serde_json::json!({}));
        let everything = |_: &Claims, _: &str| true;
        assert!(everything.grants(&c, "x"));
        assert!(!everything.grants(&c, ""));
    }

    #[test]
    fn empty_claim_path_grants_nothing() {
        let c = claims(serde_json::json!({ "": "x" }));
        assert!(!ClaimPath::new(Vec::<String>::new()).grants(&c, "x"));
        assert!(ClaimPath::new([""]).grants(&c, "x"));
    }
}
