//! Outgoing tokens: a cached `ClientCredentials::token()` call, and 1,000
//! concurrent callers on a cold cache (one token request; latency until the
//! last caller has its token).
//!
//! Run with `cargo bench -p tessera-authn --bench client --features client,test-util`.
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use std::hint::black_box;
use std::time::{Duration, Instant};
use tessera_authn::client::ClientCredentials;
use tessera_authn::test_util::{TestClient, TestIssuer};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn credentials(idp: &TestIssuer) -> ClientCredentials {
    ClientCredentials::builder("bench", "secret")
        .token_endpoint(&idp.token_url())
        .build()
        .expect("client")
}

fn cached_token(c: &mut Criterion) {
    let rt = runtime();
    let idp = rt.block_on(TestIssuer::start()).expect("issuer");
    idp.add_client(TestClient::new("bench", "secret"));
    let cc = credentials(&idp);
    rt.block_on(cc.token()).expect("token");
    c.bench_function("client_credentials/token_cached", |b| {
        // A cached token never awaits: poll once, no runtime round trip.
        b.iter(|| black_box(cc.token().now_or_never().expect("ready").expect("token")));
    });
}

fn cold_cache_thousand_callers(c: &mut Criterion) {
    let rt = runtime();
    let idp = rt.block_on(TestIssuer::start()).expect("issuer");
    idp.add_client(TestClient::new("bench", "secret"));
    let mut group = c.benchmark_group("client_credentials");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("cold_cache_1000_callers", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let cc = credentials(&idp);
                let before = idp.token_requests();
                let started = Instant::now();
                rt.block_on(async {
                    let tasks: Vec<_> = (0..1000)
                        .map(|_| {
                            let cc = cc.clone();
                            tokio::spawn(async move { cc.token().await })
                        })
                        .collect();
                    for task in tasks {
                        task.await.expect("join").expect("token");
                    }
                });
                total += started.elapsed();
                assert_eq!(idp.token_requests(), before + 1, "single flight");
            }
            total
        });
    });
    group.finish();
}

criterion_group!(benches, cached_token, cold_cache_thousand_callers);
criterion_main!(benches);
