//! Random bytes and random mutations of a valid token never validate and never panic.

mod common;

use common::{trusted, validator_for};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use std::sync::OnceLock;
use tessera_authn::test_util::TestIssuer;
use tessera_authn::{Algorithm, JwtValidator, KeySet};

struct Fixture {
    validator: JwtValidator,
    tokens: Vec<String>,
    _runtime: tokio::runtime::Runtime,
    _idp: TestIssuer,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let idp = runtime.block_on(TestIssuer::start()).unwrap();
        for alg in [Algorithm::ES256, Algorithm::EdDSA] {
            idp.add_key(alg).unwrap();
        }
        // Static keys: validation never waits, so it runs synchronously here.
        let keys = KeySet::from_jwks(idp.jwks().to_string().as_bytes()).unwrap();
        let validator = validator_for(trusted(&idp).keys(keys));
        let tokens = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
            .into_iter()
            .map(|alg| idp.token().alg(alg).sign())
            .collect::<Vec<_>>();
        for t in &tokens {
            assert!(validator.validate_now(t).unwrap().is_some());
        }
        Fixture {
            validator,
            tokens,
            _runtime: runtime,
            _idp: idp,
        }
    })
}

fn rejects(token: &str) -> bool {
    !matches!(fixture().validator.validate_now(token), Ok(Some(_)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_validate(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(rejects(&text));
    }

    #[test]
    fn random_dotted_base64_never_validates(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 3)) {
        let token = parts.iter().map(|p| URL_SAFE_NO_PAD.encode(p)).collect::<Vec<_>>().join(".");
        prop_assert!(rejects(&token));
    }

    #[test]
    fn single_character_mutations_never_validate(which in 0usize..3, pos in any::<prop::sample::Index>(), replacement in prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ".to_vec())) {
        let token = &fixture().tokens[which];
        let i = pos.index(token.len());
        let mut bytes = token.as_bytes().to_vec();
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        let mutated = String::from_utf8(bytes).unwrap();
        prop_assert!(rejects(&mutated), "mutation at {} validated", i);
    }

    #[test]
    fn truncations_and_extensions_never_validate(which in 0usize..3, cut in any::<prop::sample::Index>(), tail in "[A-Za-z0-9_-]{0,8}") {
        let token = &fixture().tokens[which];
        let i = cut.index(token.len());
        let truncated = format!("{}{}", &token[..i], tail);
        prop_assume!(truncated != *token);
        prop_assert!(rejects(&truncated));
    }
}
