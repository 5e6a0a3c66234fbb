//! [`Authn`]: the service that finds the token, validates it, and either
//! calls the inner service with the principal or answers the refusal.

use super::future::{Outcome, ResponseFuture};
use super::layer::{AuthnLayer, Config};
use super::refusal::{Http, Refusal, reject};
use super::token::extract;
use super::trace::RequestSpan;
use crate::claims::ExtraClaims;
use crate::error::AuthnError;
use crate::validator::JwtValidator;
use crate::validator::Step;
use http::{Request, Response};
use serde::de::DeserializeOwned;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// The service built by [`AuthnLayer`].
pub struct Authn<S, E = ExtraClaims, M = Http> {
    inner: S,
    validator: JwtValidator<E>,
    config: Arc<Config>,
    mode: PhantomData<fn() -> M>,
}

impl<S: Clone, E, M> Clone for Authn<S, E, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            validator: self.validator.clone(),
            config: Arc::clone(&self.config),
            mode: PhantomData,
        }
    }
}

impl<S: fmt::Debug, E, M> fmt::Debug for Authn<S, E, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authn")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, E, M> Authn<S, E, M> {
    /// Wraps `inner`.
    pub fn new(inner: S, layer: &AuthnLayer<E, M>) -> Self {
        layer.layer(inner)
    }

    /// A service over the layer's validator and settings.
    pub(super) fn from_parts(inner: S, validator: JwtValidator<E>, config: Arc<Config>) -> Self {
        Self {
            inner,
            validator,
            config,
            mode: PhantomData,
        }
    }

    define_inner_service_accessors!();
}

impl<S, E, M, ReqBody, ResBody> Service<Request<ReqBody>> for Authn<S, E, M>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    E: DeserializeOwned + Send + Sync + 'static,
    M: Refusal<ResBody>,
    ReqBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let span = RequestSpan::current();
        let token = match extract(&req, &self.config.location, self.config.max_header_len) {
            Ok(token) => token,
            Err(AuthnError::MissingToken) if self.config.optional => {
                span.anonymous();
                return ResponseFuture::inner(self.inner.call(req));
            }
            Err(error) => {
                span.refused(&error);
                return ResponseFuture::reject(reject::<M, _>(&error, &self.config.realm));
            }
        };
        match self.validator.validate_or_defer(token) {
            Ok(Step::Done(principal)) => {
                span.authenticated(&principal, self.config.record_enduser_id);
                req.extensions_mut().insert(principal);
                ResponseFuture::inner(self.inner.call(req))
            }
            Err(error) => {
                span.refused(&error);
                ResponseFuture::reject(reject::<M, _>(&error, &self.config.realm))
            }
            Ok(Step::Later(deferred)) => {
                // Keys must be fetched (or the token introspected) first; the
                // parsed token goes along, so it is not parsed again. The ready
                // inner service goes with the request; a fresh clone stays
                // behind (tower's documented pattern for services that await
                // before calling).
                let token = token.to_owned();
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let validator = self.validator.clone();
                let config = Arc::clone(&self.config);
                ResponseFuture::boxed(Box::pin(async move {
                    match validator.finish_deferred(&token, deferred).await {
                        Ok(principal) => {
                            span.authenticated(&principal, config.record_enduser_id);
                            req.extensions_mut().insert(principal);
                            Ok(Outcome::Call(inner.call(req)))
                        }
                        Err(error) => {
                            span.refused(&error);
                            Ok(Outcome::Respond(reject::<M, _>(&error, &config.realm)))
                        }
                    }
                }))
            }
        }
    }
}
