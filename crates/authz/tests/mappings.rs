//! The ready permission mappings: shapes, wrong JSON types, exact matching.

mod common;

use common::claims;
use serde_json::json;
use tessera_authn::Claims;
use tessera_authz::permissions::{
    Auth0Permissions, ClaimPath, KeycloakClientRoles, KeycloakRealmRoles, OAuthScopes,
    PermissionSource, RolesClaim, ScopeClaim, ScpClaim,
};

fn grants(source: &impl PermissionSource, extra: serde_json::Value, permission: &str) -> bool {
    source.grants(&claims(extra), permission)
}

#[test]
fn scope_claim_is_space_delimited() {
    let c = json!({ "scope": "openid orders:read orders:write" });
    assert!(grants(&ScopeClaim, c.clone(), "orders:read"));
    assert!(grants(&ScopeClaim, c.clone(), "orders:write"));
    assert!(grants(&ScopeClaim, c.clone(), "openid"));
    assert!(!grants(&ScopeClaim, c, "orders"));
}

#[test]
fn scope_matching_is_exact_and_case_sensitive() {
    assert!(!grants(
        &ScopeClaim,
        json!({ "scope": "administrator" }),
        "admin"
    ));
    assert!(!grants(
        &ScopeClaim,
        json!({ "scope": "admin" }),
        "administrator"
    ));
    assert!(!grants(
        &ScopeClaim,
        json!({ "scope": "sysadmin" }),
        "admin"
    ));
    assert!(!grants(&ScopeClaim, json!({ "scope": "Admin" }), "admin"));
    assert!(!grants(&ScopeClaim, json!({ "scope": "admin" }), "ADMIN"));
    assert!(!grants(
        &ScopeClaim,
        json!({ "scope": "admin:read" }),
        "admin"
    ));
}

#[test]
fn stray_spaces_in_scope_strings_still_split() {
    for s in ["admin ", " admin", "  read   admin  ", "admin  read"] {
        assert!(grants(&ScopeClaim, json!({ "scope": s }), "admin"), "{s:?}");
    }
}

#[test]
fn empty_permission_is_never_granted() {
    for extra in [
        json!({ "scope": "" }),
        json!({ "scope": "  " }),
        json!({ "scope": "a  b" }),
        json!({ "scp": [""] }),
        json!({ "scp": "" }),
        json!({ "permissions": [""] }),
        json!({ "roles": [""] }),
        json!({ "realm_access": { "roles": [""] } }),
        json!({ "resource_access": { "api": { "roles": [""] } } }),
    ] {
        let c = claims(extra.clone());
        assert!(!OAuthScopes.grants(&c, ""), "{extra}");
        assert!(!Auth0Permissions.grants(&c, ""), "{extra}");
        assert!(!RolesClaim.grants(&c, ""), "{extra}");
        assert!(!KeycloakRealmRoles.grants(&c, ""), "{extra}");
        assert!(!KeycloakClientRoles::new("api").grants(&c, ""), "{extra}");
    }
}

#[test]
fn scope_of_the_wrong_json_type_grants_nothing() {
    for scope in [
        json!(["admin"]),
        json!({ "admin": true }),
        json!(1),
        json!(true),
        json!(null),
    ] {
        assert!(
            !grants(&ScopeClaim, json!({ "scope": scope }), "admin"),
            "{scope}"
        );
    }
}

#[test]
fn scp_as_a_string_is_space_delimited() {
    // Entra ID.
    let c = json!({ "scp": "User.Read Orders.ReadWrite" });
    assert!(grants(&ScpClaim, c.clone(), "Orders.ReadWrite"));
    assert!(grants(&ScpClaim, c.clone(), "User.Read"));
    assert!(!grants(&ScpClaim, c, "Orders.Read"));
}

#[test]
fn scp_as_an_array_matches_whole_elements() {
    // Okta.
    let c = json!({ "scp": ["orders:read", "openid"] });
    assert!(grants(&ScpClaim, c.clone(), "orders:read"));
    assert!(grants(&ScpClaim, c.clone(), "openid"));
    assert!(!grants(&ScpClaim, c, "orders"));
    // Array elements are not split: "a b" is one (odd) element, not two scopes.
    assert!(!grants(
        &ScpClaim,
        json!({ "scp": ["read admin"] }),
        "admin"
    ));
}

#[test]
fn scp_of_the_wrong_json_type_grants_nothing() {
    for scp in [
        json!(1),
        json!({ "admin": true }),
        json!(["admin", 1]),
        json!([["admin"]]),
        json!([null, "admin"]),
        json!(null),
    ] {
        assert!(!grants(&ScpClaim, json!({ "scp": scp }), "admin"), "{scp}");
    }
}

#[test]
fn oauth_scopes_reads_scope_or_scp() {
    assert!(grants(&OAuthScopes, json!({ "scope": "a" }), "a"));
    assert!(grants(&OAuthScopes, json!({ "scp": "a" }), "a"));
    assert!(grants(&OAuthScopes, json!({ "scp": ["a"] }), "a"));
    assert!(grants(
        &OAuthScopes,
        json!({ "scope": "a", "scp": ["b"] }),
        "b"
    ));
    // A malformed claim does not spoil the other one, and grants nothing itself.
    assert!(grants(
        &OAuthScopes,
        json!({ "scope": 5, "scp": ["a"] }),
        "a"
    ));
    assert!(!grants(
        &OAuthScopes,
        json!({ "scope": ["a"], "scp": 5 }),
        "a"
    ));
    assert!(!grants(&OAuthScopes, json!({}), "a"));
}

#[test]
fn scope_mappings_do_not_read_other_claims() {
    let c = json!({ "roles": ["admin"], "permissions": ["admin"], "realm_access": { "roles": ["admin"] } });
    assert!(!grants(&ScopeClaim, c.clone(), "admin"));
    assert!(!grants(&ScpClaim, c.clone(), "admin"));
    assert!(!grants(&OAuthScopes, c, "admin"));
}

#[test]
fn auth0_permissions_is_an_array() {
    let c = json!({ "permissions": ["read:orders", "write:orders"] });
    assert!(grants(&Auth0Permissions, c.clone(), "read:orders"));
    assert!(grants(&Auth0Permissions, c.clone(), "write:orders"));
    assert!(!grants(&Auth0Permissions, c.clone(), "read"));
    assert!(!grants(&Auth0Permissions, c, "READ:ORDERS"));
}

#[test]
fn auth0_permissions_of_the_wrong_json_type_grant_nothing() {
    for permissions in [
        json!("read:orders"),
        json!({ "read:orders": true }),
        json!(["read:orders", 7]),
        json!(1),
    ] {
        assert!(
            !grants(
                &Auth0Permissions,
                json!({ "permissions": permissions }),
                "read:orders"
            ),
            "{permissions}"
        );
    }
}

#[test]
fn keycloak_realm_roles_are_read_from_realm_access() {
    let c = json!({ "realm_access": { "roles": ["offline_access", "admin"] } });
    assert!(grants(&KeycloakRealmRoles, c.clone(), "admin"));
    assert!(!grants(&KeycloakRealmRoles, c.clone(), "Admin"));
    assert!(!grants(&KeycloakRealmRoles, c, "adm"));
    // Roles elsewhere are not realm roles.
    assert!(!grants(
        &KeycloakRealmRoles,
        json!({ "roles": ["admin"] }),
        "admin"
    ));
    assert!(!grants(
        &KeycloakRealmRoles,
        json!({ "resource_access": { "account": { "roles": ["admin"] } } }),
        "admin"
    ));
}

#[test]
fn keycloak_realm_roles_of_unexpected_shapes_grant_nothing() {
    for realm_access in [
        json!(["admin"]),
        json!("admin"),
        json!({ "roles": "admin" }),
        json!({ "roles": { "admin": true } }),
        json!({ "roles": ["admin", false] }),
        json!({ "role": ["admin"] }),
        json!({}),
        json!(null),
    ] {
        assert!(
            !grants(
                &KeycloakRealmRoles,
                json!({ "realm_access": realm_access }),
                "admin"
            ),
            "{realm_access}"
        );
    }
}

#[test]
fn keycloak_client_roles_are_per_client() {
    let c = json!({ "resource_access": {
        "orders-api": { "roles": ["refunder"] },
        "account": { "roles": ["manage-account"] },
    } });
    let orders = KeycloakClientRoles::new("orders-api");
    assert!(grants(&orders, c.clone(), "refunder"));
    assert!(!grants(&orders, c.clone(), "manage-account"));
    assert!(grants(
        &KeycloakClientRoles::new("account"),
        c.clone(),
        "manage-account"
    ));
    assert!(!grants(
        &KeycloakClientRoles::new("billing"),
        c.clone(),
        "refunder"
    ));
    assert!(!grants(
        &KeycloakClientRoles::new("Orders-API"),
        c,
        "refunder"
    ));
    // Realm roles are not client roles.
    assert!(!grants(
        &orders,
        json!({ "realm_access": { "roles": ["refunder"] } }),
        "refunder"
    ));
}

#[test]
fn keycloak_client_roles_of_unexpected_shapes_grant_nothing() {
    let orders = KeycloakClientRoles::new("orders-api");
    for resource_access in [
        json!(["refunder"]),
        json!("orders-api"),
        json!({ "orders-api": ["refunder"] }),
        json!({ "orders-api": "refunder" }),
        json!({ "orders-api": { "roles": "refunder" } }),
        json!({ "orders-api": { "roles": ["refunder", 1] } }),
        json!({ "orders-api": null }),
        json!(null),
    ] {
        assert!(
            !grants(
                &orders,
                json!({ "resource_access": resource_access }),
                "refunder"
            ),
            "{resource_access}"
        );
    }
}

#[test]
fn roles_claim_is_an_array_or_a_space_delimited_string() {
    assert!(grants(
        &RolesClaim,
        json!({ "roles": ["Orders.Write"] }),
        "Orders.Write"
    ));
    assert!(grants(&RolesClaim, json!({ "roles": "admin" }), "admin"));
    assert!(grants(
        &RolesClaim,
        json!({ "roles": "staff admin " }),
        "admin"
    ));
    assert!(!grants(
        &RolesClaim,
        json!({ "roles": ["administrator"] }),
        "admin"
    ));
    assert!(!grants(
        &RolesClaim,
        json!({ "roles": "administrator" }),
        "admin"
    ));
}

#[test]
fn roles_claim_of_the_wrong_json_type_grants_nothing() {
    for roles in [
        json!(1),
        json!({ "admin": true }),
        json!(["admin", {}]),
        json!(null),
    ] {
        assert!(
            !grants(&RolesClaim, json!({ "roles": roles }), "admin"),
            "{roles}"
        );
    }
}

#[test]
fn claim_path_reads_nested_and_namespaced_claims() {
    let c = json!({
        "cognito:groups": ["admins"],
        "https://shop.example/claims": { "perms": "a b" },
        "deep": { "er": { "roles": ["x"] } },
    });
    assert!(grants(
        &ClaimPath::new(["cognito:groups"]),
        c.clone(),
        "admins"
    ));
    assert!(grants(
        &ClaimPath::new(["https://shop.example/claims", "perms"]),
        c.clone(),
        "b"
    ));
    assert!(grants(
        &ClaimPath::new(["deep", "er", "roles"]),
        c.clone(),
        "x"
    ));
    assert!(!grants(&ClaimPath::new(["deep", "er"]), c.clone(), "x"));
    assert!(!grants(
        &ClaimPath::new(["deep", "er", "roles", "x"]),
        c.clone(),
        "x"
    ));
    assert!(!grants(&ClaimPath::new(["missing"]), c, "x"));
}

#[test]
fn mappings_never_read_registered_claims() {
    // `sub` and `iss` are typed fields, not permissions.
    let c = claims(json!({}));
    assert!(!RolesClaim.grants(&c, "alice"));
    assert!(!ClaimPath::new(["sub"]).grants(&c, "alice"));
}

#[test]
fn a_pair_of_sources_grants_what_either_grants() {
    let c = claims(json!({ "scope": "a", "permissions": ["b"] }));
    let both = (ScopeClaim, Auth0Permissions);
    assert!(both.grants(&c, "a"));
    assert!(both.grants(&c, "b"));
    assert!(!both.grants(&c, "c"));
}

#[derive(serde::Deserialize, Clone, Debug)]
struct MyClaims {
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Clone, Copy, Debug)]
struct Groups;

impl PermissionSource<MyClaims> for Groups {
    fn grants(&self, claims: &Claims<MyClaims>, permission: &str) -> bool {
        claims.extra.groups.iter().any(|g| g == permission)
    }
}

#[test]
fn own_claims_types_implement_the_trait() {
    let c: Claims<MyClaims> =
        serde_json::from_value(json!({ "iss": "i", "exp": 1, "groups": ["ops"] })).unwrap();
    assert!(Groups.grants(&c, "ops"));
    assert!(!Groups.grants(&c, "dev"));
    let closure = |c: &Claims<MyClaims>, p: &str| c.extra.groups.iter().any(|g| g == p);
    assert!(closure.grants(&c, "ops"));
}
