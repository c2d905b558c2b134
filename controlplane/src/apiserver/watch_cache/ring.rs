//! The bounded ring of one kind's recent store events: at most
//! [`Limits::events`](super::Limits::events) events and
//! [`Limits::bytes`](super::Limits::bytes) bytes (keys and values, the
//! previous value included); the oldest go first.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::store::{Revision, WatchEvent};

/// Recent events in revision order, and from which revision on they are
/// complete.
#[derive(Debug, Default)]
pub struct Ring {
    events: VecDeque<Arc<WatchEvent>>,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
    /// Every event with a revision at or after this one is held.
    oldest: Revision,
}

/// The bytes an event holds.
pub fn event_bytes(ev: &WatchEvent) -> usize {
    ev.kv.key.len() + ev.kv.value.len() + ev.prev_kv.as_ref().map_or(0, |p| p.value.len())
}

impl Ring {
    /// An empty ring complete from `oldest` on, of at most `max_events`
    /// events (at least 1) and `max_bytes` bytes.
    pub fn new(max_events: usize, max_bytes: usize, oldest: Revision) -> Self {
        Self {
            events: VecDeque::new(),
            bytes: 0,
            max_events: max_events.max(1),
            max_bytes,
            oldest,
        }
    }

    /// Forgets everything: complete from `oldest` on (a fresh list's
    /// revision + 1).
    pub fn clear(&mut self, oldest: Revision) {
        self.events.clear();
        self.bytes = 0;
        self.oldest = oldest;
    }

    /// Adds the newest event, evicting the oldest beyond the limits (an
    /// event larger than the byte limit is kept alone). Returns how many
    /// were evicted.
    pub fn push(&mut self, ev: Arc<WatchEvent>) -> usize {
        self.bytes += event_bytes(&ev);
        self.events.push_back(ev);
        let mut evicted = 0;
        while self.events.len() > self.max_events
            || (self.bytes > self.max_bytes && self.events.len() > 1)
        {
            let Some(old) = self.events.pop_front() else {
                break;
            };
            self.bytes -= event_bytes(&old);
            // Other events of its revision may remain, but not all of them.
            self.oldest = self.oldest.max(old.revision + 1);
            evicted += 1;
        }
        evicted
    }

    /// The first revision from which on every event is held.
    pub fn oldest(&self) -> Revision {
        self.oldest
    }

    /// The held events with revision `>= from`, oldest first; `None` when
    /// `from` is older than [`Self::oldest`].
    pub fn since(&self, from: Revision) -> Option<Vec<Arc<WatchEvent>>> {
        if from < self.oldest {
            return None;
        }
        let start = self.events.partition_point(|e| e.revision < from);
        Some(self.events.range(start..).cloned().collect())
    }

    /// Events held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}
