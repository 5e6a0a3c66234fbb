//! Validation cost: jsonwebtoken alone against the full validator, cold and
//! cached, and the tower layer's overhead over calling the validator.
//!
//! Run with `cargo bench -p tessera-authn --bench validate`.
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use http::Request;
use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;
use tessera_authn::test_util::TestIssuer;
use tessera_authn::{Algorithm, AuthnLayer, Claims, Issuer, JwtValidator};
use tower::{Layer as _, Service as _, ServiceExt as _};

const ALGS: [(Algorithm, &str); 3] = [
    (Algorithm::RS256, "RS256"),
    (Algorithm::ES256, "ES256"),
    (Algorithm::EdDSA, "EdDSA"),
];

struct Setup {
    runtime: tokio::runtime::Runtime,
    idp: TestIssuer,
}

fn setup() -> Setup {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let idp = runtime.block_on(TestIssuer::start()).expect("issuer");
    idp.add_key(Algorithm::ES256).expect("key");
    idp.add_key(Algorithm::EdDSA).expect("key");
    Setup { runtime, idp }
}

/// A validator fetching keys by discovery from the test issuer, warmed up,
/// as a service would run it.
fn validator(s: &Setup, cache: bool) -> JwtValidator {
    let mut builder = JwtValidator::builder().issuer(
        Issuer::new(s.idp.issuer())
            .audience(s.idp.audience())
            .discovery(),
    );
    if !cache {
        builder = builder.without_token_cache();
    }
    let v = builder.build().expect("validator");
    s.runtime.block_on(v.warm_up()).expect("keys");
    v
}

fn token(s: &Setup, alg: Algorithm) -> String {
    s.idp
        .token()
        .alg(alg)
        .expires_in_secs(24 * 3600)
        .claim("scope", "read write admin")
        .claim("name", "Alice Example")
        .claim("email", "alice@example.com")
        .sign()
}

fn validate(c: &mut Criterion) {
    let s = setup();
    let plain = validator(&s, false);
    let cached = validator(&s, true);
    let jwks = s.idp.jwks();
    let mut group = c.benchmark_group("validate");
    group
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for (alg, name) in ALGS {
        let token = token(&s, alg);
        let header = jsonwebtoken::decode_header(&token).expect("header");
        let jwk = jwks["keys"]
            .as_array()
            .and_then(|keys| {
                keys.iter()
                    .find(|k| k["kid"].as_str() == header.kid.as_deref())
            })
            .expect("jwk");
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).expect("jwk");
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("key");
        let mut validation = jsonwebtoken::Validation::new(alg);
        validation.set_audience(&[s.idp.audience()]);
        validation.set_issuer(&[s.idp.issuer()]);
        validation.leeway = 60;
        assert!(jsonwebtoken::decode::<Claims>(&token, &key, &validation).is_ok());
        assert!(plain.validate_now(&token).expect("valid").is_some());
        assert!(cached.validate_now(&token).expect("valid").is_some());

        group.bench_with_input(BenchmarkId::new("raw", name), &token, |b, t| {
            b.iter(|| {
                jsonwebtoken::decode::<Claims>(black_box(t), &key, &validation).expect("valid")
            });
        });
        group.bench_with_input(BenchmarkId::new("tessera", name), &token, |b, t| {
            b.iter(|| {
                plain
                    .validate_now(black_box(t))
                    .expect("valid")
                    .expect("no fetch")
            });
        });
        group.bench_with_input(BenchmarkId::new("tessera_cached", name), &token, |b, t| {
            b.iter(|| {
                cached
                    .validate_now(black_box(t))
                    .expect("valid")
                    .expect("no fetch")
            });
        });
    }
    group.finish();
}

fn layer(c: &mut Criterion) {
    let s = setup();
    let mut group = c.benchmark_group("layer");
    group
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let token = token(&s, Algorithm::RS256);
    let header = format!("Bearer {token}");
    for (cache, suffix) in [(false, ""), (true, "_cached")] {
        let v = validator(&s, cache);
        let service = AuthnLayer::new(v.clone()).layer(tower::service_fn(
            |req: Request<String>| async move {
                Ok::<_, Infallible>(http::Response::new(bytes::Bytes::from(
                    req.extensions()
                        .get::<tessera_authn::Principal>()
                        .map_or(0, |_| 1)
                        .to_string(),
                )))
            },
        ));
        group.bench_function(
            BenchmarkId::new(format!("validator{suffix}"), "RS256"),
            |b| {
                b.iter(|| {
                    v.validate_now(black_box(&token))
                        .expect("valid")
                        .expect("no fetch")
                });
            },
        );
        group.bench_function(
            BenchmarkId::new(format!("authn_layer{suffix}"), "RS256"),
            |b| {
                b.iter(|| {
                    let req = Request::builder()
                        .header(http::header::AUTHORIZATION, header.as_str())
                        .body(String::new())
                        .expect("request");
                    let mut svc = service.clone();
                    let res = svc
                        .ready()
                        .now_or_never()
                        .expect("ready")
                        .expect("ready")
                        .call(req)
                        .now_or_never()
                        .expect("no fetch")
                        .expect("response");
                    assert_eq!(res.status(), 200);
                    res
                });
            },
        );
    }
    group.finish();
}

/// Tokens never seen before, each validated once: what the validated-token
/// cache costs when it cannot help (every token is new, the cache full and
/// evicting), against the validator without a cache.
fn cold(c: &mut Criterion) {
    let s = setup();
    let mut group = c.benchmark_group("validate_cold");
    group
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for (alg, name) in [(Algorithm::EdDSA, "EdDSA"), (Algorithm::RS256, "RS256")] {
        for (cache, id) in [(false, "tessera_uncached"), (true, "tessera")] {
            let v = validator(&s, cache);
            let mut n = 0_u64;
            group.bench_function(BenchmarkId::new(id, name), |b| {
                b.iter_batched(
                    || {
                        n += 1;
                        s.idp
                            .token()
                            .alg(alg)
                            .subject(&format!("user-{n}"))
                            .expires_in_secs(24 * 3600)
                            .claim("scope", "read write admin")
                            .claim("name", "Alice Example")
                            .sign()
                    },
                    |t| v.validate_now(&t).expect("valid").expect("no fetch"),
                    criterion::BatchSize::SmallInput,
                );
            });
        }
    }
    group.finish();
}

/// The layer with DPoP: an RS256 token bound to an ES256 key, a fresh
/// proof per request (minted outside the measurement), cold and cached.
fn dpop(c: &mut Criterion) {
    use criterion::BatchSize;
    use tessera_authn::dpop::{DpopOptions, InMemoryReplayStore};
    use tessera_authn::test_util::DpopKey;

    let s = setup();
    let mut group = c.benchmark_group("layer");
    group
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    let key = DpopKey::generate(Algorithm::ES256);
    let token = s
        .idp
        .token()
        .expires_in_secs(24 * 3600)
        .claim("scope", "read write admin")
        .bound_to(&key)
        .sign();
    let authorization = format!("DPoP {token}");
    for (cache, suffix) in [(false, ""), (true, "_cached")] {
        let options = DpopOptions::new().replay_store(InMemoryReplayStore::new(50_000_000));
        let service = AuthnLayer::new(validator(&s, cache))
            .dpop(options)
            .layer(tower::service_fn(|req: Request<String>| async move {
                Ok::<_, Infallible>(http::Response::new(bytes::Bytes::from(
                    req.extensions()
                        .get::<tessera_authn::Principal>()
                        .map_or(0, |_| 1)
                        .to_string(),
                )))
            }));
        let request = || {
            let proof = key
                .proof("GET", "http://api.example/me")
                .access_token(&token)
                .sign();
            Request::get("/me")
                .header(http::header::HOST, "api.example")
                .header(http::header::AUTHORIZATION, authorization.as_str())
                .header("dpop", proof)
                .body(String::new())
                .expect("request")
        };
        group.bench_function(
            BenchmarkId::new(format!("authn_layer_dpop{suffix}"), "RS256+ES256"),
            |b| {
                b.iter_batched(
                    request,
                    |req| {
                        let mut svc = service.clone();
                        let res = svc
                            .ready()
                            .now_or_never()
                            .expect("ready")
                            .expect("ready")
                            .call(req)
                            .now_or_never()
                            .expect("no fetch")
                            .expect("response");
                        assert_eq!(res.status(), 200);
                        res
                    },
                    BatchSize::SmallInput,
                );
            },
        );
    }
    group.finish();
}

criterion_group!(benches, validate, layer, cold, dpop);
criterion_main!(benches);
