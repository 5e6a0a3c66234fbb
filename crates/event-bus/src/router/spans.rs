//! [`DeliverySpans`]: what each delivery's span says about the backend,
//! and how it joins the producer's trace.

use crate::messaging::Messaging;

/// Settings of the router's delivery (`process`) spans.
#[derive(Debug, Clone, Default)]
pub(super) struct DeliverySpans {
    /// The subscriber's `messaging.system` and destination.
    pub(super) messaging: Messaging,
    /// Whether a process span is a child of the producer's span (it always links to it).
    #[cfg(feature = "otel")]
    pub(super) producer_as_parent: bool,
}
