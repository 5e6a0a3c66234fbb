//! Arbitrary RFC 7662 introspection responses through the decision and
//! caching rules: errors, no panic, and an accepted token is active, from
//! the trusted issuer, for our audience, unexpired, and cached no longer than
//! it lives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::Duration;
use tessera_authn::fuzzing::IntrospectionResponses;

/// A fixed clock: 2027-01-15.
const NOW: i64 = 1_800_000_000;

fn client() -> &'static IntrospectionResponses {
    static CLIENT: OnceLock<IntrospectionResponses> = OnceLock::new();
    CLIENT.get_or_init(IntrospectionResponses::new)
}

fuzz_target!(|data: &[u8]| {
    let decision = client().decide(data, NOW);
    assert!(decision.cache_ttl <= IntrospectionResponses::CACHE_TTL.max(Duration::from_secs(5)));
    if let Ok(principal) = decision.outcome {
        let response: serde_json::Value = serde_json::from_slice(data).expect("it parsed");
        assert_eq!(response["active"], true);
        assert_eq!(principal.issuer(), IntrospectionResponses::ISSUER);
        let claims = principal.claims();
        assert!(claims.aud.contains(IntrospectionResponses::AUDIENCE));
        assert!(claims.exp.saturating_add(IntrospectionResponses::LEEWAY) >= NOW);
        let left = u64::try_from(claims.exp.saturating_sub(NOW)).unwrap_or(0);
        assert!(decision.cache_ttl <= Duration::from_secs(left));
    }
});
