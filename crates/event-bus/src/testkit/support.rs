//! What the cases share: unique names, kit events, waiting for deliveries and dead letters.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;

use super::TestBackend;
use crate::{Attributes, DeadLetter, Delivery, RawEvent, SubscribeOptions, Subscription};

pub(super) fn unique_group(case: &str) -> String {
    format!("testkit-{case}-{}", uuid::Uuid::new_v4().simple())
}

pub(super) fn kit_type(case: &str) -> String {
    format!("tessera.testkit.{case}.v1")
}

pub(super) fn raw_event(ty: &str, n: u32, subject: Option<&str>) -> RawEvent {
    let mut attrs = Attributes::new(Attributes::new_id(), "/testkit", ty);
    attrs.subject = subject.map(str::to_owned);
    attrs.datacontenttype = Some("application/json".to_owned());
    RawEvent::new(attrs, Bytes::from(format!(r#"{{"n":{n}}}"#)))
}

/// Publishes one kit event of type `ty` and returns it.
pub(super) async fn publish_one<B: TestBackend>(backend: &B, ty: &str) -> RawEvent {
    let event = raw_event(ty, 1, None);
    backend
        .publisher()
        .await
        .publish(event.clone())
        .await
        .expect("publish");
    event
}

pub(super) async fn subscribe<B: TestBackend>(
    backend: &B,
    group: &str,
    ty: &str,
) -> (Arc<dyn crate::Subscriber>, Box<dyn Subscription>) {
    let subscriber = backend.subscriber().await;
    let sub = subscriber
        .subscribe(SubscribeOptions::new(group).event_type(ty))
        .await
        .expect("subscribe");
    (subscriber, sub)
}

pub(super) async fn next<B: TestBackend>(backend: &B, sub: &mut Box<dyn Subscription>) -> Delivery {
    match tokio::time::timeout(backend.patience(), sub.next()).await {
        Ok(Ok(Some(delivery))) => delivery,
        Ok(Ok(None)) => panic!("the subscription closed while a delivery was expected"),
        Ok(Err(e)) => panic!("the subscription failed: {e}"),
        Err(_) => panic!("no delivery within {:?}", backend.patience()),
    }
}

pub(super) async fn assert_quiet<B: TestBackend>(
    backend: &B,
    sub: &mut Box<dyn Subscription>,
    why: &str,
) {
    if let Ok(Ok(Some(d))) = tokio::time::timeout(backend.quiet_period(), sub.next()).await {
        panic!(
            "{why}: unexpected delivery of {} (attempt {})",
            d.event().id(),
            d.attempt()
        );
    }
}

/// The dead letters of `group` so far, oldest first.
pub(super) async fn dead_letters<B: TestBackend>(backend: &B, group: &str) -> Vec<DeadLetter> {
    backend
        .dead_letter_queue(group)
        .list(usize::MAX)
        .await
        .expect("the dead letters are readable")
}

/// Waits until `group` has at least `n` dead letters.
pub(super) async fn wait_dead_letters<B: TestBackend>(
    backend: &B,
    group: &str,
    n: usize,
) -> Vec<DeadLetter> {
    let deadline = tokio::time::Instant::now() + backend.patience();
    loop {
        let dead = dead_letters(backend, group).await;
        if dead.len() >= n {
            return dead;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {n} dead letters in {group}, found {}",
            dead.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The type name of a kit event, as a `&str` for subscriptions.
pub(super) trait TypeName {
    const TYPE_NAME: &'static str;
}

impl<E: crate::Event> TypeName for E {
    const TYPE_NAME: &'static str = E::TYPE;
}
