//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

#[cfg(feature = "postgres")]
pub mod postgres;

use proptest::prelude::*;
use tessera_user_sync::events::{UserDeleted, UserEvent, UserProfileUpdated, UserRegistered};
use time::OffsetDateTime;

/// A fixed time plus `secs`.
pub fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
}

/// A well-formed history of one user: registered at version 1, updates,
/// optionally a deletion with the highest version.
pub fn history(user: &str, updates: &[String], deleted: bool) -> Vec<UserEvent> {
    let mut events = vec![UserEvent::from(
        UserRegistered::new(user, 1, format!("{user} v1"))
            .email(format!("{user}@example.com"))
            .occurred_at(at(1)),
    )];
    for (i, name) in updates.iter().enumerate() {
        let v = i as u64 + 2;
        let mut e = UserProfileUpdated::new(user, v, name.clone()).occurred_at(at(v as i64));
        if v.is_multiple_of(2) {
            e = e.username(format!("{user}-{v}"));
        }
        events.push(e.into());
    }
    if deleted {
        let v = updates.len() as u64 + 2;
        events.push(UserDeleted::new(user, v).occurred_at(at(v as i64)).into());
    }
    events
}

/// Several users' histories in order, and a permutation of them with duplicates.
pub fn histories_and_shuffle() -> impl Strategy<Value = (Vec<UserEvent>, Vec<UserEvent>)> {
    let one = (prop::collection::vec("[a-z]{1,6}", 0..6), any::<bool>());
    prop::collection::vec(one, 1..4)
        .prop_flat_map(|users| {
            let in_order: Vec<UserEvent> = users
                .iter()
                .enumerate()
                .flat_map(|(i, (updates, deleted))| {
                    history(&format!("user-{i}"), updates, *deleted)
                })
                .collect();
            let n = in_order.len();
            let extra = prop::collection::vec(0..n, 0..=n);
            (Just(in_order), extra)
        })
        .prop_flat_map(|(in_order, extra)| {
            let mut indices: Vec<usize> = (0..in_order.len()).collect();
            indices.extend(extra);
            (Just(in_order), Just(indices).prop_shuffle())
        })
        .prop_map(|(in_order, indices)| {
            let shuffled = indices.iter().map(|&i| in_order[i].clone()).collect();
            (in_order, shuffled)
        })
}

/// The distinct user ids of some events.
pub fn user_ids(events: &[UserEvent]) -> Vec<String> {
    let mut ids: Vec<String> = events.iter().map(|e| e.user_id().to_owned()).collect();
    ids.sort();
    ids.dedup();
    ids
}
