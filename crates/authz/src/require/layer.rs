//! [`RequireLayer`] and the constructors [`Require`], [`RequireScopes`],
//! [`RequireRoles`].

use super::render::{EmptyBody, JsonBody};
use super::service::RequireService;
use crate::permissions::{OAuthScopes, PermissionSource, RolesClaim};
use crate::policy::{self, Authenticated, Permissions, Policy};
use std::fmt;
use std::marker::PhantomData;
use tessera_authn::ExtraClaims;
use tower_layer::Layer;

/// Applies a [`Policy`] to every request: the layer of
/// [`RequireService`].
///
/// Built by [`Require::policy`], [`RequireScopes`], [`RequireRoles`] or
/// [`RequireLayer::new`]. `E` is the principal's claims type (the guard
/// reads `Principal<E>` from the request extensions), `R` how rejections are
/// rendered ([`JsonBody`] by default).
pub struct RequireLayer<P, E = ExtraClaims, R = JsonBody> {
    policy: P,
    render: R,
    // fn() -> E: the layer never holds an E, so it is Send + Sync regardless.
    _claims: PhantomData<fn() -> E>,
}

impl<P, E> RequireLayer<P, E, JsonBody>
where
    P: Policy<E>,
{
    /// A guard applying `policy` to principals with claims of type `E`.
    ///
    /// With the default claims type, [`Require::policy`] reads better; with
    /// your own claims type, name it: `RequireLayer::<_, MyClaims>::new(p)`.
    pub fn new(policy: P) -> Self {
        Self {
            policy,
            render: JsonBody,
            _claims: PhantomData,
        }
    }
}

impl<P, E, R> RequireLayer<P, E, R> {
    /// The policy applied.
    #[must_use]
    pub fn policy(&self) -> &P {
        &self.policy
    }

    /// Renders rejections with a JSON body (the default; needs a response
    /// body type that is `From<Bytes>`, as axum's is).
    #[must_use]
    pub fn json_body(self) -> RequireLayer<P, E, JsonBody> {
        self.render_with(JsonBody)
    }

    /// Renders rejections with an empty body, for response body types that
    /// only implement `Default` (boxed bodies, tonic). Status and
    /// `WWW-Authenticate` are the same.
    #[must_use]
    pub fn empty_body(self) -> RequireLayer<P, E, EmptyBody> {
        self.render_with(EmptyBody)
    }

    /// Renders rejections with `render`, e.g. a closure
    /// `Fn(Rejection) -> Response<B>` producing `application/problem+json`.
    #[must_use]
    pub fn render_with<R2>(self, render: R2) -> RequireLayer<P, E, R2> {
        RequireLayer {
            policy: self.policy,
            render,
            _claims: PhantomData,
        }
    }
}

impl<M, E, R> RequireLayer<Permissions<M>, E, R> {
    /// Reads the permissions through another mapping, e.g.
    /// `RequireRoles::all(["admin"]).from(KeycloakRealmRoles)`.
    ///
    /// The claims type follows the mapping: a mapping implemented for your
    /// own claims type makes a guard for principals of that type.
    #[must_use]
    pub fn from<N, E2>(self, source: N) -> RequireLayer<Permissions<N>, E2, R>
    where
        N: PermissionSource<E2>,
    {
        RequireLayer {
            policy: self.policy.from(source),
            render: self.render,
            _claims: PhantomData,
        }
    }
}

impl<S, P, E, R> Layer<S> for RequireLayer<P, E, R>
where
    P: Clone,
    R: Clone,
{
    type Service = RequireService<S, P, E, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireService::from_parts(inner, self.policy.clone(), self.render.clone())
    }
}

impl<P: Clone, E, R: Clone> Clone for RequireLayer<P, E, R> {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
            render: self.render.clone(),
            _claims: PhantomData,
        }
    }
}

impl<P: fmt::Debug, E, R: fmt::Debug> fmt::Debug for RequireLayer<P, E, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireLayer")
            .field("policy", &self.policy)
            .field("render", &self.render)
            .finish()
    }
}

/// Guards built from any [`Policy`], for the default claims type.
///
/// A namespace: it has no values.
///
/// ```
/// use tessera_authn::Principal;
/// use tessera_authz::{Require, policy};
///
/// let staff_only = Require::policy(policy::any((
///     policy::roles_any(["staff"]),
///     |p: &Principal| p.subject() == Some("service-account-ops"),
/// )));
/// # let _ = staff_only;
/// ```
#[derive(Debug)]
pub enum Require {}

impl Require {
    /// A guard applying `policy`.
    pub fn policy<P>(policy: P) -> RequireLayer<P>
    where
        P: Policy,
    {
        RequireLayer::new(policy)
    }

    /// A guard that only needs a principal: 401 without one.
    #[must_use]
    pub fn authenticated() -> RequireLayer<Authenticated> {
        RequireLayer::new(policy::authenticated())
    }
}

/// Scope guards: all or any of a set of scopes, read from `scope` or `scp`
/// ([`OAuthScopes`]) unless [`from`](RequireLayer::from) picks another
/// mapping. Denials are 403 with
/// `WWW-Authenticate: Bearer error="insufficient_scope", scope="<the scopes>"`.
///
/// A namespace: it has no values.
///
/// ```
/// use tessera_authz::RequireScopes;
/// use tessera_authz::permissions::Auth0Permissions;
///
/// let write = RequireScopes::all(["orders:read", "orders:write"]);
/// let read = RequireScopes::any(["orders:read", "orders:admin"]);
/// let auth0 = RequireScopes::all(["read:orders"]).from(Auth0Permissions);
/// # let _ = (write, read, auth0);
/// ```
#[derive(Debug)]
pub enum RequireScopes {}

impl RequireScopes {
    /// Requires every scope of `scopes`. An empty list denies every request.
    pub fn all<I>(scopes: I) -> RequireLayer<Permissions<OAuthScopes>>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        RequireLayer::new(policy::scopes_all(scopes))
    }

    /// Requires at least one scope of `scopes`. An empty list denies every
    /// request.
    pub fn any<I>(scopes: I) -> RequireLayer<Permissions<OAuthScopes>>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        RequireLayer::new(policy::scopes_any(scopes))
    }
}

/// Role guards: all or any of a set of roles, read from the `roles` claim
/// ([`RolesClaim`]) unless [`from`](RequireLayer::from) picks another
/// mapping (Keycloak realm or client roles, ...). Denials are 403 with
/// `WWW-Authenticate: Bearer error="insufficient_scope"`; the role names are
/// logged, not sent.
///
/// A namespace: it has no values.
///
/// ```
/// use tessera_authz::RequireRoles;
/// use tessera_authz::permissions::{KeycloakClientRoles, KeycloakRealmRoles};
///
/// let admins = RequireRoles::all(["admin"]).from(KeycloakRealmRoles);
/// let refunds = RequireRoles::any(["refunder", "admin"]).from(KeycloakClientRoles::new("orders-api"));
/// let entra = RequireRoles::all(["Orders.Write"]); // Entra app roles: `roles`
/// # let _ = (admins, refunds, entra);
/// ```
#[derive(Debug)]
pub enum RequireRoles {}

impl RequireRoles {
    /// Requires every role of `roles`. An empty list denies every request.
    pub fn all<I>(roles: I) -> RequireLayer<Permissions<RolesClaim>>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        RequireLayer::new(policy::roles_all(roles))
    }

    /// Requires at least one role of `roles`. An empty list denies every
    /// request.
    pub fn any<I>(roles: I) -> RequireLayer<Permissions<RolesClaim>>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        RequireLayer::new(policy::roles_any(roles))
    }
}
