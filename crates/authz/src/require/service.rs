//! [`RequireService`]: the middleware.

use super::future::ResponseFuture;
use super::layer::RequireLayer;
use super::render::{JsonBody, RenderRejection};
use crate::policy::Policy;
use crate::rejection::{Rejection, trace_forbidden, trace_unauthenticated};
use http::{Request, Response};
use std::fmt;
use std::marker::PhantomData;
use std::task::{Context, Poll};
use tessera_authn::{ExtraClaims, Principal};
use tower_service::Service;

/// Middleware that lets a request through only when a `Principal<E>` is in
/// its extensions (else 401) and the policy allows it (else 403).
///
/// The inner service's error type is kept: refusals are responses, built by
/// `R` ([`JsonBody`] by default). See the [module docs](super).
pub struct RequireService<S, P, E = ExtraClaims, R = JsonBody> {
    inner: S,
    policy: P,
    render: R,
    _claims: PhantomData<fn() -> E>,
}

impl<S, P, E> RequireService<S, P, E, JsonBody> {
    /// Wraps `inner`, applying `policy`.
    pub fn new(inner: S, policy: P) -> Self {
        Self::from_parts(inner, policy, JsonBody)
    }

    /// A [`RequireLayer`] applying `policy`.
    pub fn layer(policy: P) -> RequireLayer<P, E>
    where
        P: Policy<E>,
    {
        RequireLayer::new(policy)
    }
}

impl<S, P, E, R> RequireService<S, P, E, R> {
    pub(super) fn from_parts(inner: S, policy: P, render: R) -> Self {
        Self {
            inner,
            policy,
            render,
            _claims: PhantomData,
        }
    }

    /// The policy applied.
    #[must_use]
    pub fn policy(&self) -> &P {
        &self.policy
    }

    tessera_authn::define_inner_service_accessors!();
}

impl<S, P, E, R, ReqBody, ResBody> Service<Request<ReqBody>> for RequireService<S, P, E, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    P: Policy<E>,
    E: Send + Sync + 'static,
    R: RenderRejection<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Some(principal) = req.extensions().get::<Principal<E>>() else {
            trace_unauthenticated(req.uri().path());
            return ResponseFuture::rejected(self.render.render(Rejection::Unauthenticated));
        };
        match self.policy.check(principal) {
            Ok(()) => ResponseFuture::allowed(self.inner.call(req)),
            Err(forbidden) => {
                trace_forbidden(principal, &forbidden, Some(req.uri().path()));
                ResponseFuture::rejected(self.render.render(Rejection::Forbidden(forbidden)))
            }
        }
    }
}

impl<S: Clone, P: Clone, E, R: Clone> Clone for RequireService<S, P, E, R> {
    fn clone(&self) -> Self {
        Self::from_parts(self.inner.clone(), self.policy.clone(), self.render.clone())
    }
}

impl<S: fmt::Debug, P: fmt::Debug, E, R: fmt::Debug> fmt::Debug for RequireService<S, P, E, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireService")
            .field("inner", &self.inner)
            .field("policy", &self.policy)
            .field("render", &self.render)
            .finish()
    }
}
