//! Arbitrary OIDC discovery documents through the key source's discovery
//! (`jwks_uri`) and the client's and introspection's endpoint discovery:
//! errors, no panic, and only http(s) URLs of the configured issuer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_authn::fuzzing::endpoint_discovery;
use tessera_authn::jwks::OidcDiscovery;
use tessera_fuzz::ISSUER;

fuzz_target!(|data: &[u8]| {
    if let Ok(discovery) = OidcDiscovery::from_slice(data)
        && let Ok(url) = discovery.jwks_uri_for(ISSUER)
    {
        assert_eq!(discovery.issuer, ISSUER);
        assert!(matches!(url.scheme(), "http" | "https"), "{url}");
    }
    for url in endpoint_discovery(data, ISSUER).into_iter().flatten() {
        assert!(matches!(url.scheme(), "http" | "https"), "{url}");
        // (Not re-read as a `serde_json::Value`: serde skips members it
        // ignores without checking their strings, a `Value` checks them.)
        if let Ok(discovery) = OidcDiscovery::from_slice(data) {
            assert_eq!(discovery.issuer, ISSUER);
        }
    }
});
