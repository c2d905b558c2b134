//! Leases as stored objects: read, build and write them straight on the
//! store (the election needs its own guards in the same transaction, and
//! node renewals need no admission), in the very JSON the API serves.

use jotasu_api::kinds::coordination::{Lease, MicroTime};
use jotasu_api::{Kind, Object, ObjectMeta, ObjectRef, Time};

use crate::apiserver::keys::object_key;
use crate::store::KeyValue;

/// The store key of Lease `namespace/name`.
pub fn key(namespace: &str, name: &str) -> Vec<u8> {
    object_key(&ObjectRef {
        kind: Kind::Lease,
        namespace: Some(namespace.to_owned()),
        name: name.to_owned(),
    })
}

/// A new Lease `namespace/name` held by `holder` for `duration_seconds`,
/// acquired and renewed now.
pub fn fresh(namespace: &str, name: &str, holder: &str, duration_seconds: i32) -> Lease {
    let now = MicroTime::now();
    let mut lease = Lease {
        metadata: ObjectMeta::named(name),
        ..Lease::default()
    };
    lease.metadata.namespace = Some(namespace.to_owned());
    lease.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
    lease.metadata.creation_timestamp = Some(Time::now());
    lease.spec.holder_identity = Some(holder.to_owned());
    lease.spec.lease_duration_seconds = Some(duration_seconds);
    lease.spec.acquire_time = Some(now.clone());
    lease.spec.renew_time = Some(now);
    lease.spec.lease_transitions = Some(0);
    lease
}

/// Decodes a stored Lease; `None` if the value is not one (then it is
/// treated as held by nobody known, and replaced once it expires).
pub fn decode(kv: &KeyValue) -> Option<Lease> {
    match serde_json::from_slice::<Object>(&kv.value) {
        Ok(Object::Lease(l)) => Some(l),
        _ => None,
    }
}

/// The stored form of `lease` (no resourceVersion: the store's revision is it).
pub fn encode(lease: &Lease) -> Vec<u8> {
    let mut lease = lease.clone();
    lease.metadata.resource_version = None;
    // A Lease always serializes: every field is a plain string or number.
    serde_json::to_vec(&Object::Lease(lease)).unwrap_or_default()
}

/// Seconds as a Lease's `leaseDurationSeconds`, at least 1.
pub fn seconds(d: std::time::Duration) -> i32 {
    i32::try_from(d.as_secs_f64().ceil() as i64)
        .unwrap_or(i32::MAX)
        .max(1)
}
