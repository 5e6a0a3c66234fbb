//! Our reqwest client as `oauth2`'s HTTP client, for the client
//! credentials grant.

use super::token::BoxFuture;
use crate::endpoint::PostError;
use oauth2::{AsyncHttpClient, HttpRequest, HttpResponse};
use std::fmt;
use std::time::Duration;

/// Our reqwest client as oauth2's HTTP client: oauth2 5 targets reqwest
/// 0.12, so we adapt rather than pull in a second reqwest. Only 200 answers
/// go back to oauth2; errors are classified here, keeping the status.
pub(super) struct OAuthHttp {
    pub(super) client: reqwest::Client,
    pub(super) timeout: Duration,
    /// The DPoP key the token is requested for: each request carries a
    /// proof by it, and each answer's `DPoP-Nonce` is kept for the next.
    #[cfg(feature = "dpop")]
    pub(super) dpop: Option<super::DpopSigner>,
}

#[derive(Debug)]
pub(super) struct HttpError(pub(super) PostError);

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("token request failed")
    }
}

impl std::error::Error for HttpError {}

impl<'c> AsyncHttpClient<'c> for OAuthHttp {
    type Error = HttpError;
    type Future = BoxFuture<'c, Result<HttpResponse, HttpError>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let url = url::Url::parse(&parts.uri.to_string())
                .map_err(|e| HttpError(PostError::Unreachable(e.to_string())))?;
            let span = crate::client_span::ClientSpan::start(parts.method.as_str(), &url);
            let mut headers = parts.headers;
            headers.extend(span.trace_headers());
            #[cfg(feature = "dpop")]
            if let Some(signer) = &self.dpop {
                let nonce = signer.nonces().get(url.as_str());
                let proof = signer
                    .proof(parts.method.as_str(), url.as_str(), None, nonce.as_deref())
                    .ok()
                    .and_then(|proof| http::HeaderValue::try_from(proof).ok())
                    .ok_or_else(|| {
                        HttpError(PostError::Body("the DPoP proof could not be made".into()))
                    })?;
                headers.insert(crate::dpop::DPOP, proof);
            }
            let send = self
                .client
                .request(parts.method, url.clone())
                .headers(headers)
                .timeout(self.timeout)
                .body(body)
                .send();
            let response = span.run(send).await.map_err(|e| {
                span.unreachable();
                HttpError(PostError::Unreachable(e.without_url().to_string()))
            })?;
            let status = response.status();
            span.status(status.as_u16());
            #[cfg(feature = "dpop")]
            if let Some(signer) = &self.dpop {
                signer.nonces().remember(url.as_str(), response.headers());
            }
            if status.as_u16() >= 500 || status.as_u16() == 429 {
                return Err(HttpError(PostError::Status(status.as_u16())));
            }
            let headers = response.headers().clone();
            let body = crate::endpoint::read_limited(response)
                .await
                .map_err(|e| HttpError(PostError::Body(e)))?;
            if status != http::StatusCode::OK {
                return Err(HttpError(match crate::endpoint::oauth_error(&body) {
                    Some((code, description)) => PostError::OAuth {
                        status: status.as_u16(),
                        code,
                        description,
                    },
                    None => PostError::Unexpected(status.as_u16()),
                }));
            }
            let mut out = http::Response::new(body);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(out)
        })
    }
}
