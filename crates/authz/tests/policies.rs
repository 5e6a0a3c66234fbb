//! Policies and combinators, evaluated directly and through `ensure`.

mod common;

use common::{ISSUER, TOKEN, principal};
use serde_json::json;
use std::sync::Arc;
use tessera_authn::{Claims, Principal};
use tessera_authz::permissions::{Auth0Permissions, KeycloakClientRoles, KeycloakRealmRoles};
use tessera_authz::policy::{self, Policy};
use tessera_authz::{Forbidden, ensure};

#[test]
fn scopes_all_needs_every_scope() {
    let p = policy::scopes_all(["a", "b"]);
    assert!(p.check(&principal(json!({ "scope": "b a c" }))).is_ok());
    let denied = p.check(&principal(json!({ "scope": "a" }))).unwrap_err();
    assert_eq!(denied.required_scopes(), ["a", "b"]);
    assert!(denied.required_roles().is_empty());
}

#[test]
fn scopes_any_needs_one_scope() {
    let p = policy::scopes_any(["a", "b"]);
    assert!(p.check(&principal(json!({ "scope": "b" }))).is_ok());
    assert!(p.check(&principal(json!({ "scp": ["a"] }))).is_ok());
    let denied = p.check(&principal(json!({ "scope": "c" }))).unwrap_err();
    assert_eq!(denied.required_scopes(), ["a", "b"]);
}

#[test]
fn scope_policies_match_exactly() {
    let p = policy::scopes_all(["admin"]);
    for scope in [
        "administrator",
        "Admin",
        "ADMIN",
        "admin:read",
        "sysadmin",
        "",
    ] {
        assert!(
            p.check(&principal(json!({ "scope": scope }))).is_err(),
            "{scope:?}"
        );
    }
    assert!(p.check(&principal(json!({ "scope": " admin " }))).is_ok());
}

#[test]
fn roles_policies_read_the_chosen_mapping() {
    let kc = principal(json!({
        "realm_access": { "roles": ["admin"] },
        "resource_access": { "orders-api": { "roles": ["refunder"] } },
    }));
    assert!(
        policy::roles_all(["admin"])
            .from(KeycloakRealmRoles)
            .check(&kc)
            .is_ok()
    );
    // The default mapping is the plain `roles` claim, which this token lacks.
    assert!(policy::roles_all(["admin"]).check(&kc).is_err());
    assert!(
        policy::roles_any(["admin", "refunder"])
            .from(KeycloakClientRoles::new("orders-api"))
            .check(&kc)
            .is_ok()
    );
    let denied = policy::roles_all(["refunder", "admin"])
        .from(KeycloakClientRoles::new("orders-api"))
        .check(&kc)
        .unwrap_err();
    assert_eq!(denied.required_roles(), ["refunder", "admin"]);
    assert!(denied.required_scopes().is_empty());
}

#[test]
fn scope_policies_can_read_auth0_permissions() {
    let p = policy::scopes_all(["read:orders"]).from(Auth0Permissions);
    assert!(
        p.check(&principal(json!({ "permissions": ["read:orders"] })))
            .is_ok()
    );
    assert!(
        p.check(&principal(json!({ "scope": "read:orders" })))
            .is_err()
    );
}

#[test]
fn empty_requirement_lists_deny() {
    let anyone = principal(json!({ "scope": "a", "roles": ["r"] }));
    let none: [&str; 0] = [];
    assert!(policy::scopes_all(none).check(&anyone).is_err());
    assert!(policy::scopes_any(none).check(&anyone).is_err());
    assert!(policy::roles_all(none).check(&anyone).is_err());
    assert!(policy::roles_any(none).check(&anyone).is_err());
}

#[test]
fn an_empty_required_permission_is_never_met() {
    // Even through a mapping that would wrongly grant everything.
    let generous = |_: &Claims, _: &str| true;
    let p = policy::scopes_all([""]).from(generous);
    assert!(p.check(&principal(json!({}))).is_err());
    assert!(
        policy::scopes_all(["x"])
            .from(generous)
            .check(&principal(json!({})))
            .is_ok()
    );
}

#[test]
fn closures_are_policies() {
    let alice_only = |p: &Principal| p.subject() == Some("alice");
    assert!(alice_only.check(&principal(json!({}))).is_ok());
    let bob = Principal::new(ISSUER, common::claims(json!({ "sub": "bob" })), TOKEN);
    let denied = alice_only.check(&bob).unwrap_err();
    assert_eq!(denied.reason(), "denied by policy");
}

#[test]
fn all_allows_only_when_every_policy_allows() {
    let p = policy::all((policy::scopes_all(["a"]), |p: &Principal| {
        p.subject() == Some("alice")
    }));
    assert!(p.check(&principal(json!({ "scope": "a" }))).is_ok());
    assert!(p.check(&principal(json!({ "scope": "b" }))).is_err());
    let bob = Principal::new(
        ISSUER,
        common::claims(json!({ "sub": "bob", "scope": "a" })),
        TOKEN,
    );
    assert!(p.check(&bob).is_err());
}

#[test]
fn all_answers_with_the_first_denial_and_stops_there() {
    let calls = std::cell::Cell::new(0);
    let counted = |_: &Principal| {
        calls.set(calls.get() + 1);
        true
    };
    let p = policy::all((policy::scopes_all(["missing"]), counted));
    let denied = p.check(&principal(json!({}))).unwrap_err();
    assert_eq!(denied.required_scopes(), ["missing"]);
    assert_eq!(calls.get(), 0);
}

#[test]
fn any_allows_when_one_policy_allows() {
    let p = policy::any((policy::scopes_all(["a"]), policy::roles_all(["r"])));
    assert!(p.check(&principal(json!({ "scope": "a" }))).is_ok());
    assert!(p.check(&principal(json!({ "roles": ["r"] }))).is_ok());
    assert!(
        p.check(&principal(json!({ "scope": "r", "roles": ["a"] })))
            .is_err()
    );
}

#[test]
fn any_denial_lists_every_alternative() {
    let p = policy::any((
        policy::scopes_all(["a"]),
        policy::scopes_all(["b", "a"]),
        policy::roles_any(["r"]),
    ));
    let denied = p.check(&principal(json!({}))).unwrap_err();
    assert_eq!(denied.required_scopes(), ["a", "b"]);
    assert_eq!(denied.required_roles(), ["r"]);
    assert_eq!(denied.reason(), "no alternative allows the request");
}

#[test]
fn any_with_one_alternative_keeps_its_denial() {
    let p = policy::any((policy::scopes_all(["a"]),));
    let denied = p.check(&principal(json!({}))).unwrap_err();
    assert_eq!(denied.reason(), "the token lacks a required scope");
}

#[test]
fn not_inverts() {
    let suspended = |p: &Principal| p.claims().extra.get("suspended") == Some(&json!(true));
    let p = policy::not(suspended);
    assert!(p.check(&principal(json!({}))).is_ok());
    assert!(p.check(&principal(json!({ "suspended": true }))).is_err());
    let no_admin = policy::not(policy::scopes_any(["admin"]));
    assert!(
        no_admin
            .check(&principal(json!({ "scope": "admin" })))
            .is_err()
    );
    assert!(
        no_admin
            .check(&principal(json!({ "scope": "read" })))
            .is_ok()
    );
}

#[test]
fn empty_policy_sets_deny() {
    let anyone = principal(json!({}));
    let none: Vec<policy::Authenticated> = Vec::new();
    assert!(policy::all(none.clone()).check(&anyone).is_err());
    assert!(policy::any(none).check(&anyone).is_err());
    assert!(
        policy::all([policy::authenticated()])
            .check(&anyone)
            .is_ok()
    );
}

#[test]
fn vecs_and_arrays_of_boxed_policies_combine() {
    let set: Vec<Arc<dyn Policy + Send + Sync>> = vec![
        Arc::new(policy::scopes_all(["a"])),
        Arc::new(|p: &Principal| p.subject().is_some()),
    ];
    assert!(
        policy::all(set.clone())
            .check(&principal(json!({ "scope": "a" })))
            .is_ok()
    );
    assert!(
        policy::all(set.clone())
            .check(&principal(json!({})))
            .is_err()
    );
    assert!(policy::any(set).check(&principal(json!({}))).is_ok());
    let array = [policy::scopes_all(["a"]), policy::scopes_all(["b"])];
    assert!(
        policy::any(array)
            .check(&principal(json!({ "scope": "b" })))
            .is_ok()
    );
}

#[test]
fn nested_combinators_compose() {
    // Write scope, and (author or moderator), and not suspended.
    let may_edit = |author: &'static str| {
        policy::all((
            policy::scopes_all(["comments:write"]),
            policy::any((
                policy::subject_is(author),
                policy::roles_any(["moderator"]).from(KeycloakRealmRoles),
            )),
            policy::not(|p: &Principal| p.claims().extra.contains_key("suspended")),
        ))
    };
    let alice = principal(json!({ "scope": "comments:write" }));
    assert!(may_edit("alice").check(&alice).is_ok());
    assert!(may_edit("bob").check(&alice).is_err());
    let moderator = principal(json!({
        "scope": "comments:write", "realm_access": { "roles": ["moderator"] },
    }));
    assert!(may_edit("bob").check(&moderator).is_ok());
    let suspended = principal(json!({ "scope": "comments:write", "suspended": true }));
    assert!(may_edit("alice").check(&suspended).is_err());
}

#[test]
fn subject_is_matches_the_sub_claim_exactly() {
    let alice = principal(json!({}));
    assert!(policy::subject_is("alice").check(&alice).is_ok());
    assert!(
        policy::subject_is(String::from("alice"))
            .check(&alice)
            .is_ok()
    );
    assert!(policy::subject_is("Alice").check(&alice).is_err());
    assert!(policy::subject_is("alic").check(&alice).is_err());
    assert!(policy::subject_is("").check(&alice).is_err());
}

#[test]
fn subject_is_denies_principals_without_a_subject() {
    let claims: Claims =
        serde_json::from_value(json!({ "iss": ISSUER, "exp": 1_900_000_000 })).unwrap();
    let anonymous = Principal::new(ISSUER, claims, TOKEN);
    assert!(policy::subject_is("alice").check(&anonymous).is_err());
    assert!(policy::subject_is("").check(&anonymous).is_err());
}

#[test]
fn issuer_is_matches_the_trusted_issuer() {
    let alice = principal(json!({}));
    assert!(policy::issuer_is(ISSUER).check(&alice).is_ok());
    assert!(
        policy::issuer_is("https://other.example")
            .check(&alice)
            .is_err()
    );
    assert!(policy::issuer_is("").check(&alice).is_err());
}

#[test]
fn with_reason_replaces_the_reason_and_keeps_requirements() {
    let p = policy::with_reason(
        "orders need the write scope",
        policy::scopes_all(["orders:write"]),
    );
    let denied = p.check(&principal(json!({}))).unwrap_err();
    assert_eq!(denied.reason(), "orders need the write scope");
    assert_eq!(denied.required_scopes(), ["orders:write"]);
    assert!(
        p.check(&principal(json!({ "scope": "orders:write" })))
            .is_ok()
    );
}

#[test]
fn ensure_passes_allowed_principals() {
    let alice = principal(json!({}));
    assert_eq!(ensure(&alice, policy::subject_is("alice")), Ok(()));
}

#[test]
fn ensure_returns_forbidden_for_denied_principals() {
    let alice = principal(json!({}));
    let denied = ensure(&alice, policy::subject_is("bob")).unwrap_err();
    assert_eq!(
        denied.reason(),
        "the caller is not the owner of this resource"
    );
    assert_eq!(denied.status(), http::StatusCode::FORBIDDEN);
}

#[test]
fn ensure_only_lets_the_author_edit_a_comment() {
    struct Comment {
        author: String,
        text: String,
    }
    fn edit(principal: &Principal, comment: &mut Comment, text: &str) -> Result<(), Forbidden> {
        ensure(principal, policy::subject_is(&comment.author))?;
        comment.text = text.to_owned();
        Ok(())
    }
    let alice = principal(json!({}));
    let mut own = Comment {
        author: "alice".into(),
        text: "a".into(),
    };
    let mut other = Comment {
        author: "bob".into(),
        text: "b".into(),
    };
    assert!(edit(&alice, &mut own, "edited").is_ok());
    assert_eq!(own.text, "edited");
    assert!(edit(&alice, &mut other, "edited").is_err());
    assert_eq!(other.text, "b");
}

#[derive(serde::Deserialize, Clone, Debug)]
struct MyClaims {
    tenant: String,
}

#[test]
fn policies_work_with_own_claims_types() {
    let claims: Claims<MyClaims> = serde_json::from_value(
        json!({ "iss": ISSUER, "sub": "alice", "exp": 1, "tenant": "acme" }),
    )
    .unwrap();
    let p = Principal::new(ISSUER, claims, TOKEN);
    let acme = |p: &Principal<MyClaims>| p.claims().extra.tenant == "acme";
    assert!(ensure(&p, policy::all((acme, policy::subject_is("alice")))).is_ok());
    let umbrella = |p: &Principal<MyClaims>| p.claims().extra.tenant == "umbrella";
    assert!(ensure(&p, umbrella).is_err());
}
