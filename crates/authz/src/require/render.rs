//! How a guard turns a [`Rejection`] into a response: [`RenderRejection`].

use crate::rejection::Rejection;
use http::Response;

/// Builds the response for a [`Rejection`], in the body type of the
/// protected service.
///
/// Guards use [`JsonBody`] by default, [`EmptyBody`] after
/// [`RequireLayer::empty_body`](super::layer::RequireLayer::empty_body), or any
/// closure `Fn(Rejection) -> Response<B>` given to
/// [`RequireLayer::render_with`](super::layer::RequireLayer::render_with).
pub trait RenderRejection<B> {
    /// The response for `rejection`.
    fn render(&self, rejection: Rejection) -> Response<B>;
}

impl<B, F> RenderRejection<B> for F
where
    F: Fn(Rejection) -> Response<B>,
{
    fn render(&self, rejection: Rejection) -> Response<B> {
        self(rejection)
    }
}

/// Status, `WWW-Authenticate` challenge and a small JSON body
/// ([`Rejection::into_http_response`]), for bodies made from `Bytes`:
/// `axum::body::Body`, `http_body_util::Full<Bytes>`, `Bytes`. The default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonBody;

impl<B: From<bytes::Bytes>> RenderRejection<B> for JsonBody {
    fn render(&self, rejection: Rejection) -> Response<B> {
        rejection.into_http_response()
    }
}

/// Status and `WWW-Authenticate` challenge with an empty body
/// ([`Rejection::into_empty_http_response`]), for bodies that only offer
/// `Default`: boxed bodies, `tonic`'s body (gRPC clients map 401 to
/// `UNAUTHENTICATED` and 403 to `PERMISSION_DENIED`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmptyBody;

impl<B: Default> RenderRejection<B> for EmptyBody {
    fn render(&self, rejection: Rejection) -> Response<B> {
        rejection.into_empty_http_response()
    }
}
