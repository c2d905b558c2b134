//! One kind's cache as plain data, without a store: the current objects,
//! the ring of recent events, the revision they reflect and the watchers
//! fed from it. The store watch ([`super::driver`]) feeds it; API watches
//! subscribe to it ([`super::serve`]). Everything here is synchronous and
//! unit-tested with hand-made events.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, OnceLock};

use tokio::sync::mpsc;

use super::Limits;
use super::ring::Ring;
use crate::store::{EventKind, KeyValue, Range, Revision, WatchEvent};

/// Why the cache stopped feeding a subscriber (set before its queue
/// closes; a queue closed without one: the cache went away).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Its queue was full when the event at `at` came: it fell behind.
    Overflow {
        /// The revision of the first event it did not get.
        at: Revision,
    },
    /// The cache lost history (its store watch was compacted away) and
    /// listed again at `listed_at`: the subscriber must relist.
    Resync {
        /// The revision of the new list.
        listed_at: Revision,
    },
}

/// Why a subscription was refused: the caller watches the store instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The cache is (re)listing.
    NotLive,
    /// The start is older than the ring holds.
    TooOld {
        /// The oldest revision the ring can replay from.
        oldest: Revision,
    },
}

/// What a subscriber gets: the held events from its start, then a queue
/// of live ones.
#[derive(Debug)]
pub struct Subscription {
    /// The first revision it gets (the cache's revision + 1 for "now").
    pub from: Revision,
    /// Events from the ring, oldest first, delivered before the queue.
    pub replay: Vec<Arc<WatchEvent>>,
    /// Live events after the replay.
    pub rx: mpsc::Receiver<Arc<WatchEvent>>,
    /// Why the queue closed, once it has.
    pub end: Arc<OnceLock<End>>,
}

/// A subscriber as the cache holds it.
#[derive(Debug)]
struct Subscriber {
    /// Events before this revision were replayed to it.
    from: Revision,
    tx: mpsc::Sender<Arc<WatchEvent>>,
    end: Arc<OnceLock<End>>,
}

/// What applying a store event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// The event was already applied (a resumed store watch repeats the
    /// events of the revision it resumed at).
    pub duplicate: bool,
    /// Events the ring evicted for it.
    pub evicted: usize,
    /// Subscribers ended because their queue was full.
    pub overflowed: usize,
}

/// One kind's cached state.
#[derive(Debug)]
pub struct KindState {
    limits: Limits,
    objects: BTreeMap<Vec<u8>, KeyValue>,
    ring: Ring,
    /// Every event up to this revision is applied.
    revision: Revision,
    /// The keys applied at `revision` (to drop a resumed watch's repeats).
    at_revision: HashSet<Vec<u8>>,
    /// Following the store (false before the first list and while relisting).
    live: bool,
    subscribers: Vec<Subscriber>,
}

impl KindState {
    /// An empty, not yet live state.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            objects: BTreeMap::new(),
            ring: Ring::new(limits.events, limits.bytes, 1),
            revision: 0,
            at_revision: HashSet::new(),
            live: false,
            subscribers: Vec::new(),
        }
    }

    /// Takes a fresh list: the objects it holds at its revision, an empty
    /// ring from the next revision on. Subscribers still attached missed
    /// what happened since the last event: they are ended with
    /// [`End::Resync`]; returns how many.
    pub fn reset(&mut self, range: Range) -> usize {
        self.objects = range
            .kvs
            .into_iter()
            .map(|kv| (kv.key.clone(), kv))
            .collect();
        self.revision = range.revision;
        self.at_revision.clear();
        self.ring.clear(range.revision + 1);
        self.live = true;
        self.end_all(End::Resync {
            listed_at: range.revision,
        })
    }

    /// Stops serving until the next [`Self::reset`]: subscribers are
    /// ended with [`End::Resync`] (they missed events); returns how many.
    pub fn invalidate(&mut self) -> usize {
        self.live = false;
        self.end_all(End::Resync {
            listed_at: self.revision,
        })
    }

    /// Stops serving (shutdown): subscribers are let go without an
    /// [`End`], so they report the shutdown themselves.
    pub fn stop(&mut self) {
        self.live = false;
        self.subscribers.clear();
    }

    fn end_all(&mut self, end: End) -> usize {
        let n = self.subscribers.len();
        for s in self.subscribers.drain(..) {
            let _ = s.end.set(end);
        }
        n
    }

    /// Applies the next store event and hands it to every subscriber; a
    /// subscriber whose queue is full is ended ([`End::Overflow`]), the
    /// others are not held up.
    pub fn apply(&mut self, ev: WatchEvent) -> Applied {
        if ev.revision < self.revision
            || (ev.revision == self.revision && self.at_revision.contains(&ev.kv.key))
        {
            return Applied {
                duplicate: true,
                ..Applied::default()
            };
        }
        if ev.revision != self.revision {
            self.revision = ev.revision;
            self.at_revision.clear();
        }
        self.at_revision.insert(ev.kv.key.clone());
        match ev.kind {
            EventKind::Put => {
                self.objects.insert(ev.kv.key.clone(), ev.kv.clone());
            }
            EventKind::Delete => {
                self.objects.remove(&ev.kv.key);
            }
        }
        let ev = Arc::new(ev);
        let evicted = self.ring.push(Arc::clone(&ev));
        let mut overflowed = 0;
        self.subscribers.retain(|s| {
            if ev.revision < s.from {
                return !s.tx.is_closed();
            }
            match s.tx.try_send(Arc::clone(&ev)) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let _ = s.end.set(End::Overflow { at: ev.revision });
                    overflowed += 1;
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        Applied {
            duplicate: false,
            evicted,
            overflowed,
        }
    }

    /// Subscribes from `from` (0: from the next event on): the ring's
    /// events from there, then live ones through a queue of
    /// [`Limits::queue`] events.
    pub fn subscribe(&mut self, from: Revision) -> Result<Subscription, Refused> {
        if !self.live {
            return Err(Refused::NotLive);
        }
        let from = if from == 0 { self.revision + 1 } else { from };
        let replay = self.ring.since(from).ok_or(Refused::TooOld {
            oldest: self.ring.oldest(),
        })?;
        // Those whose watch ended since the last event go now, so a kind
        // rarely written does not collect them.
        self.subscribers.retain(|s| !s.tx.is_closed());
        let (tx, rx) = mpsc::channel(self.limits.queue.max(1));
        let end = Arc::new(OnceLock::new());
        // Live from the current revision, not the next: a transaction's
        // events share one revision, and the rest of the one being applied
        // would be lost (the pump skips what the replay already sent).
        self.subscribers.push(Subscriber {
            from: from.max(self.revision),
            tx,
            end: Arc::clone(&end),
        });
        Ok(Subscription {
            from,
            replay,
            rx,
            end,
        })
    }

    /// The objects under `prefix` and the revision they reflect; `None`
    /// while not live.
    pub fn list(&self, prefix: &[u8]) -> Option<(Vec<KeyValue>, Revision)> {
        if !self.live {
            return None;
        }
        let kvs = self
            .objects
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, kv)| kv.clone())
            .collect();
        Some((kvs, self.revision))
    }

    /// Whether it follows the store.
    pub fn live(&self) -> bool {
        self.live
    }

    /// The revision every applied event is at or before.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// Subscribers attached (those whose receiver left are counted until
    /// the next event).
    pub fn subscribers(&self) -> usize {
        self.subscribers.len()
    }

    /// Objects held.
    pub fn objects(&self) -> usize {
        self.objects.len()
    }

    /// The ring: events, bytes and its oldest replayable revision.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }
}
