//! The cache's logic without a store: hand-made events into a
//! [`KindState`], subscribers read from their queues.

use std::sync::Arc;

use super::ring::{Ring, event_bytes};
use super::{End, KindState, Limits, Refused};
use crate::store::{EventKind, KeyValue, Range, Revision, WatchEvent};

fn kv(key: &str, value: &str, rev: Revision) -> KeyValue {
    KeyValue {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        create_revision: rev,
        mod_revision: rev,
        version: 1,
    }
}

fn put(key: &str, rev: Revision) -> WatchEvent {
    WatchEvent {
        kind: EventKind::Put,
        kv: kv(key, "{}", rev),
        prev_kv: None,
        revision: rev,
    }
}

fn delete(key: &str, rev: Revision) -> WatchEvent {
    WatchEvent {
        kind: EventKind::Delete,
        kv: KeyValue {
            value: Vec::new(),
            ..kv(key, "", rev)
        },
        prev_kv: Some(kv(key, "{}", rev - 1)),
        revision: rev,
    }
}

fn limits(events: usize, queue: usize) -> Limits {
    Limits {
        events,
        bytes: 1 << 20,
        queue,
    }
}

fn listed(limits: Limits, revision: Revision) -> KindState {
    let mut s = KindState::new(limits);
    s.reset(Range {
        kvs: vec![kv("/registry/configmaps/a/x", "{}", 1)],
        revision,
        more: false,
    });
    s
}

fn revisions(evs: &[Arc<WatchEvent>]) -> Vec<Revision> {
    evs.iter().map(|e| e.revision).collect()
}

#[test]
fn not_live_before_the_first_list() {
    let mut s = KindState::new(Limits::default());
    assert_eq!(s.subscribe(0).err(), Some(Refused::NotLive));
    assert!(s.list(b"/").is_none());
}

#[test]
fn replays_from_a_revision_in_the_ring_then_live() {
    let mut s = listed(limits(100, 10), 10);
    for rev in 11..=15 {
        s.apply(put("/registry/configmaps/a/y", rev));
    }
    let mut sub = s.subscribe(13).expect("in the ring");
    assert_eq!(sub.from, 13);
    assert_eq!(revisions(&sub.replay), [13, 14, 15]);
    s.apply(put("/registry/configmaps/a/y", 16));
    assert_eq!(sub.rx.try_recv().map(|e| e.revision).ok(), Some(16));
    assert!(sub.rx.try_recv().is_err());
}

#[test]
fn from_now_gets_only_later_events() {
    let mut s = listed(limits(100, 10), 10);
    s.apply(put("/registry/configmaps/a/y", 11));
    let mut sub = s.subscribe(0).expect("live");
    assert_eq!(sub.from, 12);
    assert!(sub.replay.is_empty());
    s.apply(put("/registry/configmaps/a/y", 12));
    assert_eq!(sub.rx.try_recv().map(|e| e.revision).ok(), Some(12));
}

#[test]
fn a_start_older_than_the_ring_is_refused() {
    let mut s = listed(limits(3, 10), 10);
    // The list's own revision is not replayable: its events are not held.
    assert_eq!(s.subscribe(10).err(), Some(Refused::TooOld { oldest: 11 }));
    for rev in 11..=15 {
        s.apply(put("/registry/configmaps/a/y", rev));
    }
    assert_eq!(s.ring().len(), 3);
    assert_eq!(s.subscribe(12).err(), Some(Refused::TooOld { oldest: 13 }));
    assert_eq!(
        revisions(&s.subscribe(13).expect("held").replay),
        [13, 14, 15]
    );
}

#[test]
fn a_full_queue_ends_only_that_subscriber() {
    let mut s = listed(limits(100, 2), 10);
    let mut slow = s.subscribe(0).expect("live");
    let mut fast = s.subscribe(0).expect("live");
    for rev in 11..=14 {
        let applied = s.apply(put("/registry/configmaps/a/y", rev));
        assert_eq!(applied.overflowed, usize::from(rev == 13), "at {rev}");
        assert_eq!(fast.rx.try_recv().map(|e| e.revision).ok(), Some(rev));
    }
    assert_eq!(slow.end.get(), Some(&End::Overflow { at: 13 }));
    assert_eq!(slow.rx.try_recv().map(|e| e.revision).ok(), Some(11));
    assert_eq!(slow.rx.try_recv().map(|e| e.revision).ok(), Some(12));
    assert!(slow.rx.try_recv().is_err(), "closed after what it was sent");
    assert_eq!(s.subscribers(), 1);
    assert_eq!(fast.end.get(), None);
}

#[test]
fn a_resumed_store_watch_repeats_nothing() {
    let mut s = listed(limits(100, 10), 10);
    let mut sub = s.subscribe(0).expect("live");
    assert!(!s.apply(put("/registry/configmaps/a/p", 11)).duplicate);
    assert!(!s.apply(put("/registry/configmaps/a/q", 11)).duplicate);
    // The store watch resumed at 11: both come again.
    assert!(s.apply(put("/registry/configmaps/a/p", 11)).duplicate);
    assert!(s.apply(put("/registry/configmaps/a/q", 11)).duplicate);
    assert!(s.apply(put("/registry/configmaps/a/p", 9)).duplicate);
    assert!(!s.apply(put("/registry/configmaps/a/p", 12)).duplicate);
    let got: Vec<_> = std::iter::from_fn(|| sub.rx.try_recv().ok())
        .map(|e| (e.revision, e.kv.key.clone()))
        .collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(s.ring().len(), 3);
}

#[test]
fn objects_follow_puts_and_deletes() {
    let mut s = listed(limits(100, 10), 10);
    s.apply(put("/registry/configmaps/b/y", 11));
    s.apply(delete("/registry/configmaps/a/x", 12));
    let (kvs, rev) = s.list(b"/registry/configmaps/").expect("live");
    assert_eq!(rev, 12);
    let keys: Vec<_> = kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, [b"/registry/configmaps/b/y".to_vec()]);
    let (kvs, _) = s.list(b"/registry/configmaps/a/").expect("live");
    assert!(kvs.is_empty());
}

#[test]
fn a_relist_ends_subscribers_with_resync() {
    let mut s = listed(limits(100, 10), 10);
    let sub = s.subscribe(0).expect("live");
    assert_eq!(s.invalidate(), 1);
    assert_eq!(sub.end.get(), Some(&End::Resync { listed_at: 10 }));
    assert_eq!(s.subscribe(0).err(), Some(Refused::NotLive));
    assert!(s.list(b"/").is_none());
    s.reset(Range {
        kvs: Vec::new(),
        revision: 40,
        more: false,
    });
    assert_eq!(s.subscribe(0).map(|s| s.from).ok(), Some(41));
    assert_eq!(s.subscribe(30).err(), Some(Refused::TooOld { oldest: 41 }));
}

#[test]
fn a_departed_subscriber_is_dropped() {
    let mut s = listed(limits(100, 10), 10);
    drop(s.subscribe(0));
    s.apply(put("/registry/configmaps/a/y", 11));
    assert_eq!(s.subscribers(), 0);
    // Or at the next subscription, without an event.
    drop(s.subscribe(0));
    let _kept = s.subscribe(0).expect("live");
    assert_eq!(s.subscribers(), 1);
}

#[test]
fn the_ring_is_bounded_by_bytes() {
    let ev = put("/registry/configmaps/a/y", 1);
    let size = event_bytes(&ev);
    let mut ring = Ring::new(100, size * 2, 1);
    for rev in 1..=5 {
        ring.push(Arc::new(put("/registry/configmaps/a/y", rev)));
    }
    assert_eq!(ring.len(), 2);
    assert!(ring.bytes() <= size * 2);
    assert_eq!(ring.oldest(), 4);
    assert!(ring.since(3).is_none());
    // One event over the byte limit is still kept, alone.
    let mut tiny = Ring::new(100, 1, 1);
    tiny.push(Arc::new(put("/registry/configmaps/a/y", 1)));
    tiny.push(Arc::new(put("/registry/configmaps/a/y", 2)));
    assert_eq!(tiny.len(), 1);
    assert_eq!(tiny.oldest(), 2);
}

#[test]
fn evicting_part_of_a_revision_makes_it_unreplayable() {
    let mut ring = Ring::new(2, 1 << 20, 1);
    ring.push(Arc::new(put("/registry/configmaps/a/p", 5)));
    ring.push(Arc::new(put("/registry/configmaps/a/q", 5)));
    ring.push(Arc::new(put("/registry/configmaps/a/r", 6)));
    assert_eq!(ring.oldest(), 6, "revision 5 is only half held");
    assert!(ring.since(5).is_none());
    assert_eq!(ring.since(6).map(|v| v.len()), Some(1));
}

#[test]
fn a_subscriber_joining_mid_transaction_gets_the_rest_of_it() {
    let mut s = listed(limits(100, 16), 10);
    s.apply(put("/registry/configmaps/a/x", 11));
    let mut sub = s.subscribe(11).unwrap();
    assert_eq!(revisions(&sub.replay), [11]);
    // The same transaction's second key arrives after the subscription.
    s.apply(put("/registry/configmaps/a/y", 11));
    let live = sub.rx.try_recv().expect("the rest of revision 11, live");
    assert_eq!(live.kv.key, b"/registry/configmaps/a/y");
}
