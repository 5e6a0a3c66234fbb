//! W3C Trace Context (`traceparent`, `tracestate`) carried in event extensions.
//!
//! The router reads the incoming event's trace context, records its trace id
//! on the delivery's span, and gives every event a handler publishes a child
//! `traceparent` in the same trace (the CloudEvents distributed tracing
//! extension). An invalid `traceparent` is ignored and a new trace starts, as
//! the W3C specification asks.
//!
//! ```
//! use tessera_event_bus::trace_context::TraceContext;
//!
//! let parent = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None)
//!     .expect("valid traceparent");
//! let child = parent.child();
//! assert_eq!(child.trace_id(), parent.trace_id());
//! assert_ne!(child.span_id(), parent.span_id());
//! assert!(child.traceparent().starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
//! assert!(TraceContext::parse("garbage", None).is_none());
//! ```

use crate::Attributes;

/// A W3C trace context: trace id, the span id of the parent, flags, and vendor state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
    tracestate: Option<String>,
}

impl TraceContext {
    /// A new trace with random ids, sampled.
    pub fn new_root() -> Self {
        Self {
            trace_id: nonzero_random(),
            span_id: nonzero_random(),
            flags: 0x01,
            tracestate: None,
        }
    }

    /// Parses a `traceparent` (and keeps `tracestate`); `None` if it is invalid.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<Self> {
        let tp = traceparent.trim();
        let bytes = tp.as_bytes();
        if bytes.len() < 55 || !tp.is_ascii() {
            return None;
        }
        let version = u8::from_str_radix(&tp[0..2], 16).ok()?;
        // Version 00 has exactly four fields; future versions may append more.
        let valid_len = match version {
            0xff => false,
            0x00 => bytes.len() == 55,
            _ => bytes.len() == 55 || bytes[55] == b'-',
        };
        if !valid_len || bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return None;
        }
        let trace_id: [u8; 16] = decode_hex(&tp[3..35])?;
        let span_id: [u8; 8] = decode_hex(&tp[36..52])?;
        let [flags] = decode_hex::<1>(&tp[53..55])?;
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(Self {
            trace_id,
            span_id,
            flags,
            tracestate: tracestate.filter(|s| !s.is_empty()).map(str::to_owned),
        })
    }

    /// The trace context of an event's `traceparent` / `tracestate` extensions, if valid.
    pub fn from_attributes(attributes: &Attributes) -> Option<Self> {
        Self::parse(attributes.traceparent()?, attributes.tracestate())
    }

    /// A child in the same trace: same trace id, flags and state, new span id.
    #[must_use]
    pub fn child(&self) -> Self {
        Self {
            span_id: nonzero_random(),
            ..self.clone()
        }
    }

    /// The trace id in lowercase hex (32 characters).
    pub fn trace_id(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id in lowercase hex (16 characters).
    pub fn span_id(&self) -> String {
        hex(&self.span_id)
    }

    /// The trace id as [`trace_id`](Self::trace_id) writes it, formatted
    /// only when displayed (a span field that may never be recorded).
    pub(crate) fn display_trace_id(&self) -> Hex<'_> {
        Hex(&self.trace_id)
    }

    /// The span id, formatted only when displayed.
    pub(crate) fn display_span_id(&self) -> Hex<'_> {
        Hex(&self.span_id)
    }

    /// Whether the sampled flag is set.
    pub fn is_sampled(&self) -> bool {
        self.flags & 0x01 == 0x01
    }

    /// The `tracestate`, if any.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The `traceparent` header value (version 00).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.display_trace_id(),
            self.display_span_id(),
            self.flags
        )
    }

    /// Writes `traceparent` (and `tracestate` when present) into event attributes.
    pub fn write_to(&self, attributes: &mut Attributes) {
        attributes.set_traceparent(self.traceparent());
        match &self.tracestate {
            Some(state) => attributes.set_tracestate(state.clone()),
            None => {
                attributes.extensions.remove(crate::attributes::TRACESTATE);
            }
        }
    }
}

thread_local! {
    /// Trace and span ids need to be unpredictable enough not to collide, not
    /// secret: a fast generator per thread, seeded from the OS-seeded one (as
    /// OpenTelemetry SDKs do), instead of a cryptographic one per id.
    static IDS: std::cell::RefCell<rand::rngs::SmallRng> =
        std::cell::RefCell::new(rand::SeedableRng::from_rng(&mut rand::rng()));
}

fn nonzero_random<const N: usize>() -> [u8; N] {
    loop {
        let mut bytes = [0; N];
        IDS.with_borrow_mut(|rng| rand::RngCore::fill_bytes(rng, &mut bytes));
        if bytes != [0; N] {
            return bytes;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    Hex(bytes).to_string()
}

/// Bytes displayed in lowercase hex.
pub(crate) struct Hex<'a>(&'a [u8]);

impl std::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        // Eight bytes (sixteen digits) per write: a span id in one, a trace id in two.
        for chunk in self.0.chunks(8) {
            let mut digits = [0u8; 16];
            for (pair, b) in digits.chunks_exact_mut(2).zip(chunk) {
                pair[0] = DIGITS[usize::from(b >> 4)];
                pair[1] = DIGITS[usize::from(b & 0x0f)];
            }
            let written = &digits[..2 * chunk.len()];
            // Only ASCII digits were written.
            f.write_str(std::str::from_utf8(written).map_err(|_| std::fmt::Error)?)?;
        }
        Ok(())
    }
}

/// Lowercase hex only, as W3C Trace Context requires.
fn decode_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N * 2
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn valid_traceparent_round_trips() {
        let tc = TraceContext::parse(VALID, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(tc.traceparent(), VALID);
        assert_eq!(tc.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tc.span_id(), "00f067aa0ba902b7");
        assert!(tc.is_sampled());
        assert_eq!(tc.tracestate(), Some("congo=t61rcWkgMzE"));
    }

    #[test]
    fn invalid_traceparents_are_rejected_without_panicking() {
        for bad in [
            "",
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
        ] {
            assert!(TraceContext::parse(bad, None).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn future_versions_with_more_fields_are_read() {
        let tp = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        let tc = TraceContext::parse(tp, None).unwrap();
        assert_eq!(tc.traceparent(), VALID, "we write version 00");
    }

    #[test]
    fn child_stays_in_the_trace_and_write_to_sets_extensions() {
        let root = TraceContext::new_root();
        let child = root.child();
        assert_eq!(child.trace_id(), root.trace_id());
        assert_ne!(child.span_id(), root.span_id());
        let mut attrs = Attributes::new("1", "/s", "t");
        attrs.set_tracestate("stale=1");
        child.write_to(&mut attrs);
        assert_eq!(attrs.traceparent(), Some(child.traceparent().as_str()));
        assert_eq!(attrs.tracestate(), None);
        assert_eq!(TraceContext::from_attributes(&attrs), Some(child));
    }
}
