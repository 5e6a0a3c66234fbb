//! [`RequestSpan`]: the layer's outcome on the request's span (feature
//! `otel`; without it, nothing is recorded and this costs nothing).
//!
//! The span is the one current when the layer is called, usually the HTTP
//! server span of `tower-http`'s `TraceLayer` or the application's own. It
//! gets `tessera.authn.outcome` (`authenticated`, `anonymous` or `refused`),
//! `tessera.authn.refusal` (the [`AuthnError::reason`] of a refusal) and,
//! only when [`AuthnLayer::record_enduser_id`](super::AuthnLayer::record_enduser_id)
//! says so, `enduser.id` (the token's `sub`).

// Without `otel` the methods record nothing and ignore `self`.
#![cfg_attr(not(feature = "otel"), allow(clippy::unused_self))]

use crate::error::AuthnError;
use crate::principal::Principal;

/// The span of the request the layer is deciding on.
#[derive(Debug, Clone)]
pub(super) struct RequestSpan {
    #[cfg(feature = "otel")]
    span: tracing::Span,
}

impl RequestSpan {
    /// The current span.
    pub(super) fn current() -> Self {
        Self {
            #[cfg(feature = "otel")]
            span: tracing::Span::current(),
        }
    }

    /// The request goes on with `principal`.
    pub(super) fn authenticated<E>(&self, _principal: &Principal<E>, _record_enduser_id: bool) {
        #[cfg(feature = "otel")]
        {
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;
            self.span
                .set_attribute("tessera.authn.outcome", "authenticated");
            if _record_enduser_id && let Some(subject) = _principal.subject() {
                self.span.set_attribute("enduser.id", subject.to_owned());
            }
        }
    }

    /// The request had no token and goes on without a principal.
    pub(super) fn anonymous(&self) {
        #[cfg(feature = "otel")]
        {
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;
            self.span
                .set_attribute("tessera.authn.outcome", "anonymous");
        }
    }

    /// The request is refused because of `error`.
    pub(super) fn refused(&self, _error: &AuthnError) {
        #[cfg(feature = "otel")]
        {
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;
            self.span.set_attribute("tessera.authn.outcome", "refused");
            self.span
                .set_attribute("tessera.authn.refusal", _error.reason());
        }
    }
}
