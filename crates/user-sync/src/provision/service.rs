//! [`Provision`]: the middleware, registering unknown subjects before passing
//! their requests on.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response, StatusCode};
use tessera_authn::{Principal, claims::ExtraClaims};
use tower_service::Service;

use super::{future::ResponseFuture, profile::ProfileFn};
use crate::producer::{Registration, UserDirectory};

/// The service made by [`ProvisionLayer`](super::ProvisionLayer); see the [module docs](super).
pub struct Provision<S, D, E = ExtraClaims> {
    inner: S,
    directory: Arc<D>,
    known: moka::sync::Cache<String, ()>,
    profile: ProfileFn<E>,
}

impl<S: Clone, D, E> Clone for Provision<S, D, E> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            directory: Arc::clone(&self.directory),
            known: self.known.clone(),
            profile: Arc::clone(&self.profile),
        }
    }
}

impl<S: fmt::Debug, D: fmt::Debug, E> fmt::Debug for Provision<S, D, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provision")
            .field("inner", &self.inner)
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

impl<S, D, E> Provision<S, D, E> {
    pub(super) fn from_parts(
        inner: S,
        directory: Arc<D>,
        known: moka::sync::Cache<String, ()>,
        profile: ProfileFn<E>,
    ) -> Self {
        Self {
            inner,
            directory,
            known,
            profile,
        }
    }

    tessera_authn::define_inner_service_accessors!();
}

fn status<B: Default>(status: StatusCode) -> Response<B> {
    let mut res = Response::new(B::default());
    *res.status_mut() = status;
    res
}

impl<S, D, E, ReqB, ResB> Service<Request<ReqB>> for Provision<S, D, E>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    D: UserDirectory,
    E: Send + Sync + 'static,
    ReqB: Send + 'static,
    ResB: Default + Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, Response<ResB>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // Call the instance that was driven to readiness; keep a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let principal = req.extensions().get::<Principal<E>>().cloned();
        let Some((sub, principal)) = principal
            .and_then(|p| p.subject().map(str::to_owned).map(|sub| (sub, p)))
            .filter(|(sub, _)| !self.known.contains_key(sub))
        else {
            return ResponseFuture::passed_on(inner.call(req));
        };
        let directory = Arc::clone(&self.directory);
        let known = self.known.clone();
        let profile = (self.profile)(principal.claims());
        ResponseFuture::provisioning(Box::pin(async move {
            match directory.register(&sub, profile).await {
                Ok(Registration::Existing(record)) if record.is_deleted() => {
                    tracing::info!(user_id = %sub, "request from a deleted account refused");
                    Ok(status(StatusCode::FORBIDDEN))
                }
                Ok(registration) => {
                    if matches!(registration, Registration::Created(_)) {
                        tracing::info!(user_id = %sub, "user provisioned just in time");
                    }
                    known.insert(sub, ());
                    inner.call(req).await
                }
                Err(error) => {
                    tracing::warn!(user_id = %sub, %error, "just-in-time provisioning failed");
                    Ok(status(StatusCode::SERVICE_UNAVAILABLE))
                }
            }
        }))
    }
}
