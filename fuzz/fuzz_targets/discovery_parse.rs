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
        let doc: serde_json::Value = serde_json::from_slice(data).expect("it parsed");
        assert_eq!(doc["issuer"], ISSUER);
    }
});
