//! The conformance cases, one async fn each;
//! [`replica_store_tests!`](crate::replica_store_tests) turns each into a
//! test. Each panics with a message saying what broke.
//!
//! [`converges_like_in_order`] is not a case of its own: it checks one
//! history, for a property test that generates many.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use tessera_user_sync::testkit::{MemoryTestStore, cases};
//!
//! cases::a_late_update_never_resurrects_a_deleted_user(&MemoryTestStore::new()).await;
//! # });
//! ```

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use time::OffsetDateTime;

use super::TestStore;
use crate::{
    error::{ApplyError, InvalidEvent},
    events::{UserDeleted, UserEvent, UserProfileUpdated, UserRegistered},
    replica::{UserReplica, UserReplicaBuilder},
    snapshot::{Backfill, SnapshotUser, StaticSnapshot},
    store::{
        ApplyReport, Change, DeletedUser, Fields, Hooks, MemoryStore, Outcome, ReplicaStore,
        ReplicatedUser, UserState,
    },
};

/// The transaction type of the store under test.
type Tx<T> = <<T as TestStore>::Store as ReplicaStore>::Tx;

/// A fixed time plus `secs`.
fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// How many times the hooks of a replica ran.
#[derive(Debug, Default, Clone)]
struct Calls {
    updated: Arc<AtomicUsize>,
    deleted: Arc<AtomicUsize>,
}

impl Calls {
    fn updated(&self) -> usize {
        self.updated.load(Ordering::SeqCst)
    }

    fn deleted(&self) -> usize {
        self.deleted.load(Ordering::SeqCst)
    }
}

/// A replica named `name` on a fresh store, with hooks counting their calls.
async fn counting<T: TestStore>(t: &T, name: &str) -> (UserReplicaBuilder<T::Store>, Calls) {
    let calls = Calls::default();
    let (u, d) = (Arc::clone(&calls.updated), Arc::clone(&calls.deleted));
    let builder = UserReplica::builder(name, t.store(name).await)
        .on_updated(move |_: &mut Tx<T>, _: &ReplicatedUser| {
            u.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        })
        .on_deleted(move |_: &mut Tx<T>, _: &DeletedUser| {
            d.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        });
    (builder, calls)
}

/// A replica named `name` on a fresh store, without hooks.
async fn plain<T: TestStore>(t: &T, name: &str) -> UserReplicaBuilder<T::Store> {
    UserReplica::builder(name, t.store(name).await)
}

/// A fresh store named `name` holding the live user `user` (version 1), and
/// store-level hooks whose `on_deleted` fails once, then succeeds; with the
/// count of its calls.
async fn with_failing_hook<T: TestStore>(
    t: &T,
    name: &str,
    user: &str,
) -> (T::Store, Hooks<Tx<T>>, Arc<AtomicUsize>) {
    let store = t.store(name).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let mut hooks = Hooks::default();
    let c = Arc::clone(&calls);
    hooks.on_deleted(move |_: &mut Tx<T>, _: &DeletedUser| {
        let first = c.fetch_add(1, Ordering::SeqCst) == 0;
        let result = match first {
            true => Err("comments database down".into()),
            false => Ok(()),
        };
        Box::pin(std::future::ready(result))
    });
    store
        .apply(vec![upsert(user, 1, user)], &hooks)
        .await
        .unwrap();
    (store, hooks, calls)
}

/// Applies the events one by one, checking each one's outcome.
async fn assert_outcomes<S: ReplicaStore>(
    replica: &UserReplica<S>,
    steps: impl IntoIterator<Item = (UserEvent, Outcome)>,
) {
    for (step, (event, want)) in steps.into_iter().enumerate() {
        let got = replica.apply(event.clone()).await.unwrap();
        assert_eq!(got, want, "step {step}: {event:?}");
    }
}

fn upsert(id: &str, v: u64, name: &str) -> Change {
    Change::Upsert(ReplicatedUser::new(id, v, at(v as i64)).with_display_name(name))
}

/// An upsert of an equal or lower version is a no-op; a higher one replaces the user.
pub async fn stale_and_duplicate_versions_are_no_ops<T: TestStore>(t: &T) {
    let replica = plain(t, "stale").await.build();
    assert_outcomes(
        &replica,
        [
            (UserRegistered::new("u", 1, "A").into(), Outcome::Inserted),
            (
                UserProfileUpdated::new("u", 3, "C").into(),
                Outcome::Updated,
            ),
            // A duplicate version, then a stale one.
            (
                UserProfileUpdated::new("u", 3, "C again").into(),
                Outcome::Ignored,
            ),
            (
                UserProfileUpdated::new("u", 2, "B").into(),
                Outcome::Ignored,
            ),
        ],
    )
    .await;
    let u = replica.get("u").await.unwrap().unwrap();
    assert_eq!((u.version, u.display_name.as_deref()), (3, Some("C")));
    t.clean_up("stale").await;
}

/// After a deletion, neither an overtaken update, nor a duplicate deletion,
/// nor a higher version brings the user back; each hook ran once.
pub async fn a_late_update_never_resurrects_a_deleted_user<T: TestStore>(t: &T) {
    let (builder, calls) = counting(t, "late_update").await;
    let replica = builder.build();
    assert_outcomes(
        &replica,
        [
            (
                UserRegistered::new("u", 1, "A").occurred_at(at(1)).into(),
                Outcome::Inserted,
            ),
            (
                UserDeleted::new("u", 3).occurred_at(at(3)).into(),
                Outcome::Deleted,
            ),
            // The update that was overtaken by the deletion, then duplicates.
            (
                UserProfileUpdated::new("u", 2, "B").into(),
                Outcome::Ignored,
            ),
            (UserDeleted::new("u", 3).into(), Outcome::Ignored),
            (UserRegistered::new("u", 9, "C").into(), Outcome::Ignored),
        ],
    )
    .await;
    assert_eq!(replica.get("u").await.unwrap(), None);
    assert_eq!(
        replica.state("u").await.unwrap(),
        Some(UserState::Deleted(DeletedUser::new("u", 3, at(3))))
    );
    assert_eq!(calls.deleted(), 1, "on_deleted once");
    assert_eq!(calls.updated(), 1, "on_updated once");
    t.clean_up("late_update").await;
}

/// A deletion with a lower version than the stored one still deletes, keeps
/// the higher version, and is final; reads never return the tombstone.
pub async fn a_deletion_wins_over_any_version_and_is_final<T: TestStore>(t: &T) {
    let store = t.store("delete_wins").await;
    let hooks = Hooks::default();
    store
        .apply(vec![upsert("u", 5, "a")], &hooks)
        .await
        .unwrap();
    let r = store
        .apply(
            vec![Change::Delete(DeletedUser::new("u", 3, at(9)))],
            &hooks,
        )
        .await
        .unwrap();
    assert_eq!(r.single(), Outcome::Deleted);
    let r = store
        .apply(vec![upsert("u", 9, "b")], &hooks)
        .await
        .unwrap();
    assert_eq!(r.single(), Outcome::Ignored);
    assert_eq!(
        store.state("u").await.unwrap(),
        Some(UserState::Deleted(DeletedUser::new("u", 5, at(9))))
    );
    assert_eq!(store.get("u").await.unwrap(), None);
    assert!(store.get_many(&["u".to_owned()]).await.unwrap().is_empty());
    t.clean_up("delete_wins").await;
}

/// Deleting a user the replica never saw leaves a tombstone (an older
/// registration arriving later is ignored) and runs `on_deleted`.
pub async fn a_deletion_of_an_unknown_user_leaves_a_tombstone_and_runs_the_hook<T: TestStore>(
    t: &T,
) {
    let (builder, calls) = counting(t, "unknown_deleted").await;
    let replica = builder.build();
    replica.apply(UserDeleted::new("ghost", 2)).await.unwrap();
    replica
        .apply(UserRegistered::new("ghost", 1, "Boo"))
        .await
        .unwrap();
    assert_eq!(replica.get("ghost").await.unwrap(), None);
    assert_eq!(calls.deleted(), 1);
    t.clean_up("unknown_deleted").await;
}

/// Only the declared fields reach the store and come back.
pub async fn only_declared_fields_are_kept<T: TestStore>(t: &T) {
    let full = UserRegistered::new("u", 1, "Ada")
        .username("ada")
        .email("ada@example.com")
        .avatar_url("https://example.com/a.png");
    let names = plain(t, "fields_default").await.build();
    names.apply(full.clone()).await.unwrap();
    let u = names.get("u").await.unwrap().unwrap();
    assert_eq!(u.display_name.as_deref(), Some("Ada"));
    assert_eq!((u.username, u.email, u.avatar_url), (None, None, None));

    let ids = plain(t, "fields_none").await.keep(Fields::NONE).build();
    ids.apply(full.clone()).await.unwrap();
    let u = ids.get("u").await.unwrap().unwrap();
    assert_eq!((u.version, u.display_name), (1, None));

    let avatars = plain(t, "fields_avatar")
        .await
        .keep(Fields::DISPLAY_NAME | Fields::AVATAR_URL)
        .build();
    avatars.apply(full).await.unwrap();
    let u = avatars.get("u").await.unwrap().unwrap();
    assert_eq!(u.avatar_url.as_deref(), Some("https://example.com/a.png"));
    assert_eq!(u.email, None);
    for name in ["fields_default", "fields_none", "fields_avatar"] {
        t.clean_up(name).await;
    }
}

/// `get_many` returns the live users among the ids, by id: no tombstones, no unknown ids.
pub async fn get_many_returns_live_users_only<T: TestStore>(t: &T) {
    let replica = plain(t, "get_many").await.build();
    replica
        .apply_all(
            (0..150)
                .map(|i| UserEvent::from(UserRegistered::new(format!("u{i}"), 1, format!("n{i}")))),
        )
        .await
        .unwrap();
    replica.apply(UserDeleted::new("u7", 2)).await.unwrap();
    let found = replica
        .get_many(["u1", "u7", "u9", "nobody"])
        .await
        .unwrap();
    let mut keys: Vec<_> = found.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["u1", "u9"]);
    assert_eq!(found["u9"].display_name.as_deref(), Some("n9"));
    assert!(
        replica
            .get_many(Vec::<String>::new())
            .await
            .unwrap()
            .is_empty()
    );
    let ids: Vec<String> = (0..100)
        .map(|i| format!("u{i}"))
        .chain(["ghost".to_owned()])
        .collect();
    let found = replica.get_many(ids).await.unwrap();
    assert_eq!(found.len(), 99);
    assert!(!found.contains_key("u7"));
    assert_eq!(found["u42"].display_name.as_deref(), Some("n42"));
    t.clean_up("get_many").await;
}

/// Invalid events are permanent errors and change nothing; a batch with one
/// applies nothing.
pub async fn invalid_events_are_errors_and_change_nothing<T: TestStore>(t: &T) {
    let replica = plain(t, "invalid").await.build();
    replica
        .apply(UserRegistered::new("u", 1, "A"))
        .await
        .unwrap();
    let err = replica
        .apply(UserProfileUpdated::new("u", 0, "zero"))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ApplyError::Invalid(InvalidEvent::VersionOutOfRange(0))
    ));
    assert!(!err.is_transient());
    let err = replica
        .apply(UserProfileUpdated::new("u", u64::MAX, "max"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "invalid user event: version {} is out of range (1 to 2^53 - 1)",
            u64::MAX
        )
    );
    let err = replica.apply(UserDeleted::new("  ", 2)).await.unwrap_err();
    assert!(matches!(
        err,
        ApplyError::Invalid(InvalidEvent::EmptyUserId)
    ));
    // A batch with one invalid event applies nothing.
    let err = replica
        .apply_all([
            UserProfileUpdated::new("u", 2, "B").into(),
            UserDeleted::new("", 3).into(),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, ApplyError::Invalid(_)));
    let err = replica
        .apply_all([
            UserProfileUpdated::new("u", 3, "A3").into(),
            UserProfileUpdated::new("u", 0, "zero").into(),
        ])
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    let u = replica.get("u").await.unwrap().unwrap();
    assert_eq!((u.version, u.display_name.as_deref()), (1, Some("A")));
    t.clean_up("invalid").await;
}

/// `(inserted, updated, deleted, ignored)`.
type Counts = (usize, usize, usize, usize);

/// Checks a batch's report: `one_by_one` from a store counting each change,
/// `coalesced` from one that coalesces a batch per user.
fn assert_counts(report: &ApplyReport, coalesces: bool, one_by_one: Counts, coalesced: Counts) {
    let counts = (
        report.inserted,
        report.updated,
        report.deleted,
        report.ignored,
    );
    let want = if coalesces { coalesced } else { one_by_one };
    assert_eq!(counts, want, "coalesced batches: {coalesces}");
}

/// A batch reports what each change did: counted one by one, or, for a
/// store that coalesces a batch per user, one effect per user and the rest
/// ignored.
pub async fn apply_all_reports_what_happened<T: TestStore>(t: &T) {
    let coalesces = t.capabilities().coalesces_batches;
    let replica = plain(t, "batches")
        .await
        .keep(Fields::DISPLAY_NAME | Fields::USERNAME)
        .build();
    let report = replica
        .apply_all([
            UserRegistered::new("a", 1, "A").into(),
            UserProfileUpdated::new("a", 2, "A2").into(),
            UserProfileUpdated::new("a", 2, "A2").into(),
            UserRegistered::new("b", 1, "B").into(),
            UserDeleted::new("b", 2).into(),
        ])
        .await
        .unwrap();
    assert_counts(&report, coalesces, (2, 1, 1, 1), (1, 0, 1, 3));

    let report = replica
        .apply_all([
            UserRegistered::new("x", 1, "X")
                .email("x@example.com")
                .into(),
            UserProfileUpdated::new("x", 2, "X2").username("x2").into(),
            UserProfileUpdated::new("x", 2, "X2").into(),
            UserRegistered::new("y", 1, "Y").into(),
            UserDeleted::new("y", 2).into(),
            UserDeleted::new("z", 5).into(),
        ])
        .await
        .unwrap();
    assert_counts(&report, coalesces, (2, 1, 2, 1), (1, 0, 2, 3));
    let x = replica.get("x").await.unwrap().unwrap();
    assert_eq!(
        (
            x.version,
            x.display_name.as_deref(),
            x.username.as_deref(),
            x.email
        ),
        (2, Some("X2"), Some("x2"), None)
    );
    assert!(matches!(
        replica.state("z").await.unwrap(),
        Some(UserState::Deleted(_))
    ));
    t.clean_up("batches").await;
}

/// A failing hook leaves its change unwritten and is a transient error
/// naming the user; applying the change again succeeds.
pub async fn a_failing_hook_leaves_the_change_unwritten<T: TestStore>(t: &T) {
    let (store, hooks, calls) = with_failing_hook(t, "hook_fails", "u").await;
    let delete = Change::Delete(DeletedUser::new("u", 2, at(2)));
    let err = store.apply(vec![delete.clone()], &hooks).await.unwrap_err();
    assert!(
        matches!(err, ApplyError::Hook { .. }) && err.is_transient(),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "replica hook failed for user `u`: comments database down"
    );
    assert!(
        store.get("u").await.unwrap().is_some(),
        "still live: the tombstone is not written"
    );
    assert_eq!(store.apply(vec![delete], &hooks).await.unwrap().deleted, 1);
    assert_eq!(store.get("u").await.unwrap(), None);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    t.clean_up("hook_fails").await;
}

/// When a hook fails in a batch, the failing change is not written; in a
/// transactional store, none of the batch is.
pub async fn a_failing_hook_fails_the_whole_batch_when_transactional<T: TestStore>(t: &T) {
    let (store, hooks, _calls) = with_failing_hook(t, "hook_fails_batch", "v").await;
    let batch = vec![
        upsert("u", 1, "a"),
        Change::Delete(DeletedUser::new("v", 2, at(2))),
    ];
    store.apply(batch.clone(), &hooks).await.unwrap_err();
    assert!(
        store.get("v").await.unwrap().is_some(),
        "the failing change is not written"
    );
    if t.capabilities().transactional {
        assert_eq!(
            store.state("u").await.unwrap(),
            None,
            "a transactional store writes a batch all or nothing"
        );
    }
    let report = store.apply(batch, &hooks).await.unwrap();
    assert_eq!(report.deleted, 1);
    assert_eq!(store.get("v").await.unwrap(), None);
    assert!(store.get("u").await.unwrap().is_some());
    t.clean_up("hook_fails_batch").await;
}

/// Writers racing on one user from several tasks: the deletion wins, and
/// `on_deleted` runs once.
pub async fn concurrent_writers_racing_on_one_user_delete_it_once<T: TestStore>(t: &T) {
    let (builder, calls) = counting(t, "race").await;
    let replica = builder.build();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20u64 {
        let r = replica.clone();
        tasks.spawn(async move {
            let event: UserEvent = match i % 4 {
                0 => UserDeleted::new("u", 11).into(),
                _ => UserProfileUpdated::new("u", 1 + i % 10, format!("v{i}")).into(),
            };
            r.apply(event).await.unwrap();
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    assert_eq!(calls.deleted(), 1);
    assert!(matches!(
        replica.state("u").await.unwrap(),
        Some(UserState::Deleted(_))
    ));
    t.clean_up("race").await;
}

/// A backfill inserts a snapshot's users page by page; reconciliation
/// tombstones the live users the snapshot no longer has (the store lists
/// them by when they were applied) and leaves the others be.
pub async fn backfill_and_reconciliation_converge<T: TestStore>(t: &T) {
    let replica = plain(t, "backfill").await.build();
    let source = StaticSnapshot::new(
        (0..25)
            .map(|i| SnapshotUser::new(format!("u{i:02}"), 2, format!("n{i}")))
            .collect(),
    );
    let report = Backfill::new(source.clone())
        .page_size(10)
        .run(&replica)
        .await
        .unwrap();
    assert_eq!(
        (report.pages, report.users, report.applied.inserted),
        (3, 25, 25)
    );
    source.remove("u03");
    source.remove("u17");
    // No grace: every user applied before the run may be removed.
    let reconciliation = Backfill::new(source).page_size(10).grace(Duration::ZERO);
    let report = reconciliation.reconcile(&replica).await.unwrap();
    assert_eq!(report.removed, 2);
    assert_eq!(report.applied.ignored, 23, "same versions: no-ops");
    assert!(replica.get("u03").await.unwrap().is_none());
    assert!(matches!(
        replica.state("u17").await.unwrap(),
        Some(UserState::Deleted(_))
    ));
    assert!(replica.get("u04").await.unwrap().is_some());
    t.clean_up("backfill").await;
}

/// Pruning: tombstones older than the retention go, newer tombstones and
/// live users stay, and (why the retention must be long) a late update of a
/// pruned user brings it back.
pub async fn old_tombstones_are_pruned_and_newer_ones_kept<T: TestStore>(t: &T) {
    let replica = plain(t, "prune").await.build();
    let deleted = |user: &str| -> [UserEvent; 2] {
        [
            UserRegistered::new(user, 1, format!("{user} v1"))
                .email(format!("{user}@example.com"))
                .occurred_at(at(1))
                .into(),
            UserDeleted::new(user, 2).occurred_at(at(2)).into(),
        ]
    };
    for event in deleted("old") {
        replica.apply(event).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    for event in deleted("new") {
        replica.apply(event).await.unwrap();
    }
    replica
        .apply(UserRegistered::new("live", 1, "live v1").occurred_at(at(1)))
        .await
        .unwrap();
    replica
        .apply(UserProfileUpdated::new("live", 2, "Ada").occurred_at(at(2)))
        .await
        .unwrap();

    let pruned = replica
        .prune_tombstones(Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(pruned, 1, "only the tombstone older than the retention");
    assert_eq!(replica.state("old").await.unwrap(), None);
    assert!(matches!(
        replica.state("new").await.unwrap(),
        Some(UserState::Deleted(_))
    ));
    assert_eq!(
        replica.get("live").await.unwrap().map(|u| u.version),
        Some(2)
    );
    assert_eq!(
        replica
            .prune_tombstones(Duration::from_secs(u64::MAX))
            .await
            .unwrap(),
        0,
        "a retention beyond the calendar prunes nothing"
    );

    // The documented risk: nothing guards the pruned user any more.
    let late = UserProfileUpdated::new("old", 1, "resurrected").occurred_at(at(1));
    replica.apply(late).await.unwrap();
    assert!(replica.get("old").await.unwrap().is_some());
    t.clean_up("prune").await;
}

/// Applies `singles` one by one, then `batch` with one `apply_all`, to a
/// fresh store named `name` with an `on_deleted` hook, and checks that every
/// user ends as `in_order` (applied in order to a [`MemoryStore`]) leaves it,
/// with `on_deleted` run once per deleted user.
///
/// `singles` and `batch` together are meant to be a permutation of
/// `in_order` with duplicates, so the result must not depend on the order:
/// a property test generates them (see this crate's `tests/replica.rs`).
pub async fn converges_like_in_order<T: TestStore>(
    t: &T,
    name: &str,
    in_order: &[UserEvent],
    singles: &[UserEvent],
    batch: &[UserEvent],
) {
    let expected = UserReplica::builder("in-order", MemoryStore::new()).build();
    for e in in_order {
        expected.apply(e.clone()).await.unwrap();
    }
    let (builder, calls) = counting(t, name).await;
    let actual = builder.build();
    for e in singles {
        actual.apply(e.clone()).await.unwrap();
    }
    if !batch.is_empty() {
        actual.apply_all(batch.to_vec()).await.unwrap();
    }
    let mut ids: Vec<&str> = in_order.iter().map(UserEvent::user_id).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        assert_eq!(
            actual.state(id).await.unwrap(),
            expected.state(id).await.unwrap(),
            "user {id}"
        );
    }
    let deletions = in_order
        .iter()
        .filter(|e| matches!(e, UserEvent::Deleted(_)))
        .count();
    assert_eq!(
        calls.deleted(),
        deletions,
        "on_deleted once per deleted user"
    );
    t.clean_up(name).await;
}
