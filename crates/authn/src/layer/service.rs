//! [`Authn`]: the service that finds the token, validates it, and either
//! calls the inner service with the principal or answers the refusal.

use super::binding::{Bound, check};
use super::future::{Outcome, ResponseFuture};
use super::layer::{AuthnLayer, Config};
use super::refusal::{Http, Refusal, reject};
use super::token::{Scheme, extract};
use super::trace::RequestSpan;
use crate::claims::ExtraClaims;
use crate::error::AuthnError;
use crate::validator::JwtValidator;
use crate::validator::Step;
use http::{HeaderName, HeaderValue, Request, Response};
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
        let config = &self.config;
        let span = RequestSpan::current();
        let (scheme, token) = match extract(
            &req,
            &config.location,
            config.max_header_len,
            config.dpop_on(),
        ) {
            Ok(found) => found,
            Err(AuthnError::MissingToken) if config.optional => {
                span.anonymous();
                return ResponseFuture::inner(self.inner.call(req));
            }
            Err(error) => {
                span.refused(&error);
                return ResponseFuture::reject(reject::<M, _>(&error, config, None));
            }
        };
        let header = nonce_header(config, scheme);
        match self.validator.validate_or_defer(token) {
            Ok(Step::Done(principal)) => match check(&req, scheme, token, &principal, config) {
                Ok(Bound::Ready) => {
                    span.authenticated(&principal, config.record_enduser_id);
                    req.extensions_mut().insert(principal);
                    ResponseFuture::inner_with(self.inner.call(req), header)
                }
                #[cfg(feature = "dpop")]
                Ok(Bound::Replay(pending)) => {
                    let mut inner = self.take_ready();
                    let config = Arc::clone(&self.config);
                    ResponseFuture::boxed(Box::pin(async move {
                        match pending.record().await {
                            Ok(()) => {
                                span.authenticated(&principal, config.record_enduser_id);
                                req.extensions_mut().insert(principal);
                                Ok(Outcome::Call(inner.call(req), header))
                            }
                            Err(error) => {
                                span.refused(&error);
                                Ok(Outcome::Respond(reject::<M, _>(
                                    &error,
                                    &config,
                                    Some(scheme),
                                )))
                            }
                        }
                    }))
                }
                Err(error) => {
                    span.refused(&error);
                    ResponseFuture::reject(reject::<M, _>(&error, config, Some(scheme)))
                }
            },
            Err(error) => {
                span.refused(&error);
                ResponseFuture::reject(reject::<M, _>(&error, config, Some(scheme)))
            }
            Ok(Step::Later(deferred)) => {
                // Keys must be fetched (or the token introspected) first; the
                // parsed token goes along, so it is not parsed again.
                let token = token.to_owned();
                let mut inner = self.take_ready();
                let validator = self.validator.clone();
                let config = Arc::clone(&self.config);
                ResponseFuture::boxed(Box::pin(async move {
                    let refuse = |error: AuthnError| {
                        span.refused(&error);
                        Ok(Outcome::Respond(reject::<M, _>(
                            &error,
                            &config,
                            Some(scheme),
                        )))
                    };
                    let principal = match validator.finish_deferred(&token, deferred).await {
                        Ok(principal) => principal,
                        Err(error) => return refuse(error),
                    };
                    match check(&req, scheme, &token, &principal, &config) {
                        Ok(Bound::Ready) => {}
                        #[cfg(feature = "dpop")]
                        Ok(Bound::Replay(pending)) => {
                            if let Err(error) = pending.record().await {
                                return refuse(error);
                            }
                        }
                        Err(error) => return refuse(error),
                    }
                    span.authenticated(&principal, config.record_enduser_id);
                    req.extensions_mut().insert(principal);
                    Ok(Outcome::Call(inner.call(req), header))
                }))
            }
        }
    }
}

impl<S: Clone, E, M> Authn<S, E, M> {
    /// The ready inner service, to call later from a future; a fresh clone
    /// stays behind (tower's documented pattern for services that await
    /// before calling).
    fn take_ready(&mut self) -> S {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }
}

/// The `DPoP-Nonce` header for the response to a DPoP request, when the
/// server demands nonces.
fn nonce_header(config: &Config, scheme: Scheme) -> Option<(HeaderName, HeaderValue)> {
    #[cfg(feature = "dpop")]
    if scheme == Scheme::Dpop {
        return config
            .dpop
            .as_ref()
            .and_then(|d| d.current_nonce())
            .map(|nonce| (crate::dpop::DPOP_NONCE, nonce));
    }
    let _ = (config, scheme);
    None
}
