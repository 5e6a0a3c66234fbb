//! Arbitrary user events through the router's decoding (CloudEvents type,
//! subject, JSON data) and the replica's service and version gate, on a
//! fresh in-memory replica per input: errors, no panic, and the gate's
//! rules hold after every event.
//!
//! Input: one event per line, `<kind><subject>\t<JSON data>`, kind `r`
//! registered, `u` profile updated, `d` deleted; an empty subject is none.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_event_bus::router::EventRequest;
use tessera_event_bus::{Attributes, Envelope, Event, EventContext, JsonCodec, RawEvent};
use tessera_fuzz::{block_on, lines};
use tessera_user_sync::UserReplica;
use tessera_user_sync::events::{UserDeleted, UserProfileUpdated, UserRegistered};
use tessera_user_sync::store::{MemoryStore, ReplicaStore, UserState};
use tower_service::Service;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stored {
    Absent,
    Live(u64),
    Deleted(u64),
}

fn stored(replica: &UserReplica<MemoryStore>, user_id: &str) -> Stored {
    match block_on(replica.store().state(user_id)).expect("the memory store does not fail") {
        None => Stored::Absent,
        Some(UserState::Live(u)) => Stored::Live(u.version),
        Some(UserState::Deleted(d)) => Stored::Deleted(d.version),
        Some(_) => unreachable!("a new user state"),
    }
}

/// Decodes `raw` as the router would and hands it to the replica's service.
/// `None` when it does not decode (the router dead-letters it, the replica
/// never sees it); else the user id and whether the service accepted it.
fn deliver<E>(
    replica: &UserReplica<MemoryStore>,
    raw: &RawEvent,
    user_id: fn(&E) -> &str,
) -> Option<(String, u64, bool)>
where
    E: Event + VersionOf,
    tessera_user_sync::replica::ReplicaService<MemoryStore>:
        Service<EventRequest<E>, Response = (), Error = tessera_event_bus::HandlerError>,
{
    let envelope = Envelope::<E>::decode(raw, &JsonCodec).ok()?;
    let id = user_id(envelope.data()).to_owned();
    let version = envelope.data().version_of();
    let request = EventRequest::new(envelope, EventContext::detached("fuzz"));
    let accepted = block_on(replica.service().call(request)).is_ok();
    Some((id, version, accepted))
}

trait VersionOf {
    fn version_of(&self) -> u64;
}
impl VersionOf for UserRegistered {
    fn version_of(&self) -> u64 {
        self.version
    }
}
impl VersionOf for UserProfileUpdated {
    fn version_of(&self) -> u64 {
        self.version
    }
}
impl VersionOf for UserDeleted {
    fn version_of(&self) -> u64 {
        self.version
    }
}

fuzz_target!(|data: &[u8]| {
    let replica = UserReplica::in_memory("fuzz");
    for line in lines(data).take(64) {
        let Some((&kind, rest)) = line.split_first() else {
            continue;
        };
        let (subject, json) = match rest.iter().position(|&b| b == b'\t') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (&b""[..], rest),
        };
        let ty = match kind {
            b'r' => UserRegistered::TYPE,
            b'u' => UserProfileUpdated::TYPE,
            b'd' => UserDeleted::TYPE,
            _ => continue,
        };
        let mut attributes = Attributes::new("1", "/users", ty);
        attributes.datacontenttype = Some("application/json".to_owned());
        if !subject.is_empty() {
            attributes.subject = Some(String::from_utf8_lossy(subject).into_owned());
        }
        let raw = RawEvent::new(attributes, json.to_vec());
        // The state before, read through the user id the data names.
        let Ok(probe) = serde_json::from_slice::<serde_json::Value>(json) else {
            continue;
        };
        let before = probe["user_id"].as_str().map(|id| stored(&replica, id));
        let delivered = match kind {
            b'r' => deliver::<UserRegistered>(&replica, &raw, |e| &e.user_id),
            b'u' => deliver::<UserProfileUpdated>(&replica, &raw, |e| &e.user_id),
            _ => deliver::<UserDeleted>(&replica, &raw, |e| &e.user_id),
        };
        let Some((user_id, version, accepted)) = delivered else {
            continue;
        };
        let before = before.expect("a decoded event has a string user_id");
        let after = stored(&replica, &user_id);
        let expected = if !accepted {
            before
        } else if kind == b'd' {
            match before {
                Stored::Deleted(_) => before,
                Stored::Absent => Stored::Deleted(version),
                Stored::Live(v) => Stored::Deleted(version.max(v)),
            }
        } else {
            match before {
                Stored::Absent => Stored::Live(version),
                Stored::Live(v) if version > v => Stored::Live(version),
                _ => before,
            }
        };
        assert_eq!(
            after, expected,
            "event {kind} v{version} for {user_id:?} from {before:?}"
        );
    }
});
