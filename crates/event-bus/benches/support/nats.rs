//! What the NATS benches' raw async-nats side shares: the headers a Tessera
//! publish carries, so raw and Tessera send the same message.

use async_nats::HeaderMap;
use tessera_event_bus::{RawEvent, wire};

/// The headers a Tessera publish carries (`ce-` attributes, `Content-Type`,
/// `Nats-Msg-Id`), for the raw side of a comparison. The attribute values
/// the benches use need no percent-encoding.
pub(crate) fn raw_headers(event: &RawEvent) -> HeaderMap {
    let msg = wire::to_binary(event);
    let mut headers = HeaderMap::new();
    for (k, v) in &msg.headers {
        headers.insert(k.as_str(), v.as_str());
    }
    if let Some(ct) = &msg.content_type {
        headers.insert("ce-datacontenttype", ct.as_str());
        headers.insert("Content-Type", ct.as_str());
    }
    headers.insert("Nats-Msg-Id", event.id());
    headers
}
