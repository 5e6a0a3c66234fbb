//! Policies: what a principal needs to be allowed. The [`Policy`] trait, the
//! permission policies behind the scope and role guards, resource rules such
//! as [`subject_is`], and the combinators [`all`], [`any`], [`not`] and
//! [`with_reason`].
//!
//! ```
//! use tessera_authn::{Claims, Principal};
//! use tessera_authz::permissions::KeycloakRealmRoles;
//! use tessera_authz::policy::{self, Policy};
//!
//! let claims: Claims = serde_json::from_str(r#"{
//!     "iss": "https://idp.example", "sub": "alice", "exp": 1900000000,
//!     "scope": "comments:write", "realm_access": { "roles": ["moderator"] }
//! }"#).unwrap();
//! let alice = Principal::new("https://idp.example", claims, "eyJ...");
//!
//! // Edit a comment: with the write scope, as its author or as a moderator.
//! let author = "bob";
//! let may_edit = policy::all((
//!     policy::scopes_all(["comments:write"]),
//!     policy::any((
//!         policy::subject_is(author),
//!         policy::roles_any(["moderator"]).from(KeycloakRealmRoles),
//!     )),
//! ));
//! assert!(may_edit.check(&alice).is_ok());
//!
//! // Closures are policies too.
//! let not_suspended = |p: &Principal| p.claims().extra.get("suspended").is_none();
//! assert!(policy::all((may_edit, not_suspended)).check(&alice).is_ok());
//! ```
//!
//! # Fail closed
//!
//! A permission policy with no required permission, and [`all`] or [`any`]
//! over an empty set, deny every request: a guard that requires nothing is
//! most likely a configuration mistake. Use [`authenticated`] to admit every
//! authenticated caller on purpose.

use crate::permissions::{OAuthScopes, PermissionSource, RolesClaim};
use crate::rejection::{Forbidden, trace_forbidden};
use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use tessera_authn::{ExtraClaims, Principal};

/// A rule a principal must satisfy.
///
/// `E` is the principal's claims type (by default [`ExtraClaims`], a JSON
/// object). Closures `Fn(&Principal<E>) -> bool` are policies; so are
/// `Arc<P>` and `Arc<dyn Policy<E> + Send + Sync>` for policies chosen at
/// run time.
///
/// ```
/// use tessera_authn::Principal;
/// use tessera_authz::{Forbidden, Policy};
///
/// /// Only callers from one tenant.
/// #[derive(Clone, Debug)]
/// struct Tenant(String);
///
/// impl Policy for Tenant {
///     fn check(&self, principal: &Principal) -> Result<(), Forbidden> {
///         match principal.claims().extra.get("tenant") {
///             Some(t) if *t == *self.0 => Ok(()),
///             _ => Err(Forbidden::new("wrong tenant")),
///         }
///     }
/// }
/// # let claims = serde_json::from_str(r#"{"iss":"i","exp":1,"tenant":"acme"}"#).unwrap();
/// # let p = Principal::new("i", claims, "t");
/// # assert!(Tenant("acme".into()).check(&p).is_ok());
/// # assert!(Tenant("umbrella".into()).check(&p).is_err());
/// ```
pub trait Policy<E = ExtraClaims> {
    /// `Ok(())` when `principal` is allowed, otherwise why not.
    ///
    /// # Errors
    ///
    /// [`Forbidden`] when the policy denies.
    fn check(&self, principal: &Principal<E>) -> Result<(), Forbidden>;
}

const DENIED_BY_POLICY: &str = "denied by policy";

impl<E, F> Policy<E> for F
where
    F: Fn(&Principal<E>) -> bool,
{
    fn check(&self, principal: &Principal<E>) -> Result<(), Forbidden> {
        if self(principal) {
            Ok(())
        } else {
            Err(Forbidden::new(DENIED_BY_POLICY))
        }
    }
}

impl<E, P> Policy<E> for Arc<P>
where
    P: Policy<E> + ?Sized,
{
    fn check(&self, principal: &Principal<E>) -> Result<(), Forbidden> {
        (**self).check(principal)
    }
}

/// Checks `policy` inside a handler, for rules that depend on the resource
/// (only the author edits a comment). A denial is logged as a `tracing` event
/// (subject, issuer, reason, required scopes and roles; never the token) and
/// returned as [`Forbidden`], which renders as 403.
///
/// ```
/// use tessera_authn::Principal;
/// use tessera_authz::{Forbidden, ensure, policy};
///
/// struct Comment { author: String, text: String }
///
/// fn edit(principal: &Principal, comment: &mut Comment, text: &str) -> Result<(), Forbidden> {
///     ensure(principal, policy::with_reason(
///         "only the author may edit a comment",
///         policy::subject_is(&comment.author),
///     ))?;
///     comment.text = text.to_owned();
///     Ok(())
/// }
///
/// let claims = serde_json::from_str(r#"{"iss":"i","sub":"alice","exp":1900000000}"#).unwrap();
/// let alice = Principal::new("i", claims, "eyJ...");
/// let mut mine = Comment { author: "alice".into(), text: "hi".into() };
/// let mut theirs = Comment { author: "bob".into(), text: "hey".into() };
///
/// assert!(edit(&alice, &mut mine, "hello").is_ok());
/// let denied = edit(&alice, &mut theirs, "hello").unwrap_err();
/// assert_eq!(denied.reason(), "only the author may edit a comment");
/// assert_eq!(theirs.text, "hey");
/// ```
///
/// A closure needs its argument's type written out:
/// `ensure(&p, |p: &Principal| p.subject() == Some("alice"))`.
///
/// # Errors
///
/// [`Forbidden`] when the policy denies.
pub fn ensure<E, P>(principal: &Principal<E>, policy: P) -> Result<(), Forbidden>
where
    P: Policy<E>,
{
    policy
        .check(principal)
        .inspect_err(|f| trace_forbidden(principal, f, None))
}

/// Whether the permission policy needs all of its permissions or one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    All,
    Any,
}

/// What the permissions are, for the denial: scopes go into the challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Scopes,
    Roles,
}

/// Requires all or any of a set of permissions (scopes or roles), read
/// through a [`PermissionSource`] `M`.
///
/// Built with [`scopes_all`], [`scopes_any`], [`roles_all`], [`roles_any`];
/// [`from`](Self::from) picks another mapping. Cheap to clone (`Arc`
/// inside).
///
/// ```
/// use tessera_authz::permissions::{Auth0Permissions, KeycloakClientRoles};
/// use tessera_authz::policy;
///
/// let read = policy::scopes_all(["orders:read"]); // `scope` or `scp`
/// let auth0 = policy::scopes_all(["read:orders"]).from(Auth0Permissions);
/// let refunds = policy::roles_any(["refunder", "admin"]).from(KeycloakClientRoles::new("orders-api"));
/// # let _ = (read, auth0, refunds);
/// ```
#[derive(Clone)]
pub struct Permissions<M = OAuthScopes> {
    source: M,
    required: Arc<[Box<str>]>,
    mode: Mode,
    kind: Kind,
}

impl<M: fmt::Debug> fmt::Debug for Permissions<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permissions")
            .field("source", &self.source)
            .field("mode", &self.mode)
            .field("kind", &self.kind)
            .field("required", &self.required)
            .finish()
    }
}

fn collect<I>(items: I) -> Arc<[Box<str>]>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    items.into_iter().map(|s| s.as_ref().into()).collect()
}

/// All of these scopes, from `scope` or `scp` ([`OAuthScopes`]).
pub fn scopes_all<I>(scopes: I) -> Permissions<OAuthScopes>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    Permissions::new(OAuthScopes, collect(scopes), Mode::All, Kind::Scopes)
}

/// At least one of these scopes, from `scope` or `scp` ([`OAuthScopes`]).
pub fn scopes_any<I>(scopes: I) -> Permissions<OAuthScopes>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    Permissions::new(OAuthScopes, collect(scopes), Mode::Any, Kind::Scopes)
}

/// All of these roles, from the `roles` claim ([`RolesClaim`]); pick
/// another mapping with [`Permissions::from`].
pub fn roles_all<I>(roles: I) -> Permissions<RolesClaim>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    Permissions::new(RolesClaim, collect(roles), Mode::All, Kind::Roles)
}

/// At least one of these roles, from the `roles` claim ([`RolesClaim`]);
/// pick another mapping with [`Permissions::from`].
pub fn roles_any<I>(roles: I) -> Permissions<RolesClaim>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    Permissions::new(RolesClaim, collect(roles), Mode::Any, Kind::Roles)
}

impl<M> Permissions<M> {
    fn new(source: M, required: Arc<[Box<str>]>, mode: Mode, kind: Kind) -> Self {
        Self {
            source,
            required,
            mode,
            kind,
        }
    }

    /// The same requirement, read through `source` instead.
    #[must_use]
    pub fn from<N>(self, source: N) -> Permissions<N> {
        Permissions {
            source,
            required: self.required,
            mode: self.mode,
            kind: self.kind,
        }
    }

    /// The mapping the permissions are read through.
    #[must_use]
    pub fn source(&self) -> &M {
        &self.source
    }

    /// The required permissions, in the order given.
    pub fn required(&self) -> impl Iterator<Item = &str> {
        self.required.iter().map(|s| &**s)
    }

    fn denial(&self) -> Forbidden {
        let reason = match (self.kind, self.mode) {
            (Kind::Scopes, Mode::All) => "the token lacks a required scope",
            (Kind::Scopes, Mode::Any) => "the token has none of the accepted scopes",
            (Kind::Roles, Mode::All) => "the caller lacks a required role",
            (Kind::Roles, Mode::Any) => "the caller has none of the accepted roles",
        };
        let forbidden = Forbidden::new(reason);
        match self.kind {
            Kind::Scopes => forbidden.with_scopes(self.required()),
            Kind::Roles => forbidden.with_roles(self.required()),
        }
    }
}

impl<E, M> Policy<E> for Permissions<M>
where
    M: PermissionSource<E>,
{
    fn check(&self, principal: &Principal<E>) -> Result<(), Forbidden> {
        let claims = principal.claims();
        // Checked here as well as in the mappings: a custom mapping might
        // forget that the empty permission is never granted.
        let grants = |p: &str| !p.is_empty() && self.source.grants(claims, p);
        let allowed = !self.required.is_empty()
            && match self.mode {
                Mode::All => self.required().all(grants),
                Mode::Any => self.required().any(grants),
            };
        if allowed { Ok(()) } else { Err(self.denial()) }
    }
}

/// Allows the principal whose `sub` equals `subject` (exactly). A principal
/// without `sub`, or an empty `subject`, is denied.
///
/// Subjects are unique per issuer only: when several issuers are trusted,
/// combine it with [`issuer_is`] (`all((issuer_is(iss), subject_is(sub)))`).
pub fn subject_is<S: AsRef<str>>(subject: S) -> SubjectIs<S> {
    SubjectIs(subject)
}

/// The policy of [`subject_is`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubjectIs<S>(S);

impl<E, S: AsRef<str>> Policy<E> for SubjectIs<S> {
    fn check(&self, principal: &Principal<E>) -> Result<(), Forbidden> {
        let want = self.0.as_ref();
        if !want.is_empty() && principal.subject() == Some(want) {
            Ok(())
        } else {
            Err(Forbidden::new(
                "the caller is not the owner of this resource",
            ))
        }
    }
}

/// Allows principals vouched for by the issuer `issuer` (its configured URL,
/// [`Principal::issuer`]), exactly.
pub fn issuer_is<S: AsRef<str>>(issuer: S) -> IssuerIs<S> {
    IssuerIs(issuer)
}

/// The policy of [`issuer_is`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuerIs<S>(S);

impl<E, S: AsRef<str>> Policy<E> for IssuerIs<S> {
    fn check(&self, principal: &Principal<E>) -> Result<(), Forbidden> {
        let want = self.0.as_ref();
        if !want.is_empty() && principal.issuer() == want {
            Ok(())
        } else {
            Err(Forbidden::new("the caller's issuer is not accepted here"))
        }
    }
}

/// Allows every authenticated principal: a guard with it answers 401 without
/// a principal and lets everything else through.
#[must_use]
pub fn authenticated() -> Authenticated {
    Authenticated
}

/// The policy of [`authenticated`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Authenticated;

impl<E> Policy<E> for Authenticated {
    fn check(&self, _principal: &Principal<E>) -> Result<(), Forbidden> {
        Ok(())
    }
}

/// Several policies for [`all`] and [`any`]: tuples of up to eight policies
/// (of different types), arrays and `Vec`s of one policy type.
pub trait PolicySet<E = ExtraClaims> {
    /// Calls `f` with each policy in order until it returns `false`.
    fn each(&self, f: &mut dyn FnMut(&dyn Policy<E>) -> bool);
}

impl<E, P: Policy<E>> PolicySet<E> for Vec<P> {
    fn each(&self, f: &mut dyn FnMut(&dyn Policy<E>) -> bool) {
        self.as_slice().each(f);
    }
}

impl<E, P: Policy<E>, const N: usize> PolicySet<E> for [P; N] {
    fn each(&self, f: &mut dyn FnMut(&dyn Policy<E>) -> bool) {
        self.as_slice().each(f);
    }
}

impl<E, P: Policy<E>> PolicySet<E> for [P] {
    fn each(&self, f: &mut dyn FnMut(&dyn Policy<E>) -> bool) {
        for p in self {
            if !f(p) {
                break;
            }
        }
    }
}

macro_rules! tuple_set {
    ($($name:ident $idx:tt),+) => {
        impl<E, $($name: Policy<E>),+> PolicySet<E> for ($($name,)+) {
            fn each(&self, f: &mut dyn FnMut(&dyn Policy<E>) -> bool) {
                $(
                    if !f(&self.$idx) {
                        return;
                    }
                )+
            }
        }
    };
}

tuple_set!(A 0);
tuple_set!(A 0, B 1);
tuple_set!(A 0, B 1, C 2);
tuple_set!(A 0, B 1, C 2, D 3);
tuple_set!(A 0, B 1, C 2, D 3, F 4);
tuple_set!(A 0, B 1, C 2, D 3, F 4, G 5);
tuple_set!(A 0, B 1, C 2, D 3, F 4, G 5, H 6);
tuple_set!(A 0, B 1, C 2, D 3, F 4, G 5, H 6, I 7);

const EMPTY_SET: &str = "no policy configured";

/// Allows when every policy of `policies` allows, checked in order; the first
/// denial is the answer. An empty set denies.
pub fn all<S>(policies: S) -> All<S> {
    All(policies)
}

/// The policy of [`all`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct All<S>(S);

impl<E, S: PolicySet<E>> Policy<E> for All<S> {
    fn check(&self, principal: &Principal<E>) -> Result<(), Forbidden> {
        let mut result = Err(Forbidden::new(EMPTY_SET));
        self.0.each(&mut |p| {
            result = p.check(principal);
            result.is_ok()
        });
        result
    }
}

/// Allows when at least one policy of `policies` allows, checked in order
/// until one does. When all deny, the denial lists every scope and role that
/// would have been enough. An empty set denies.
pub fn any<S>(policies: S) -> Any<S> {
    Any(policies)
}

/// The policy of [`any`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Any<S>(S);

impl<E, S: PolicySet<E>> Policy<E> for Any<S> {
    fn check(&self, principal: &Principal<E>) -> Result<(), Forbidden> {
        let mut allowed = false;
        let mut denials: Vec<Forbidden> = Vec::new();
        self.0.each(&mut |p| match p.check(principal) {
            Ok(()) => {
                allowed = true;
                false
            }
            Err(f) => {
                denials.push(f);
                true
            }
        });
        if allowed {
            return Ok(());
        }
        let mut denials = denials.into_iter();
        match (denials.next(), denials.len()) {
            (None, _) => Err(Forbidden::new(EMPTY_SET)),
            (Some(only), 0) => Err(only),
            (Some(first), _) => {
                let mut merged = Forbidden::new("no alternative allows the request");
                merged.absorb(&first);
                for f in denials {
                    merged.absorb(&f);
                }
                Err(merged)
            }
        }
    }
}

/// Allows exactly when `policy` denies.
pub fn not<P>(policy: P) -> Not<P> {
    Not(policy)
}

/// The policy of [`not`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Not<P>(P);

impl<E, P: Policy<E>> Policy<E> for Not<P> {
    fn check(&self, principal: &Principal<E>) -> Result<(), Forbidden> {
        match self.0.check(principal) {
            Ok(()) => Err(Forbidden::new(DENIED_BY_POLICY)),
            Err(_) => Ok(()),
        }
    }
}

/// `policy`, with `reason` as the reason of its denials (sent to the client
/// as `error_description` and logged). Required scopes and roles are kept.
///
/// ```
/// use tessera_authn::Principal;
/// use tessera_authz::policy::{self, Policy};
///
/// let weekdays_only = policy::with_reason(
///     "closed on weekends",
///     |_: &Principal| false,
/// );
/// # let p = Principal::new("i", serde_json::from_str(r#"{"iss":"i","exp":1}"#).unwrap(), "t");
/// assert_eq!(weekdays_only.check(&p).unwrap_err().reason(), "closed on weekends");
/// ```
pub fn with_reason<P>(reason: impl Into<Cow<'static, str>>, policy: P) -> WithReason<P> {
    WithReason {
        reason: reason.into(),
        policy,
    }
}

/// The policy of [`with_reason`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithReason<P> {
    reason: Cow<'static, str>,
    policy: P,
}

impl<E, P: Policy<E>> Policy<E> for WithReason<P> {
    fn check(&self, principal: &Principal<E>) -> Result<(), Forbidden> {
        self.policy.check(principal).map_err(|f| {
            let mut renamed = Forbidden::new(self.reason.clone());
            renamed.absorb(&f);
            renamed
        })
    }
}
