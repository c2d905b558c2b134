//! The scheduling queue: every pending pod (unbound, not being deleted)
//! in one of four states — active (to schedule: higher `spec.priority`
//! first, then first in first out, as kube-scheduler's active queue),
//! in flight (a node chosen, binding under way), backing off (its binding
//! was refused; tried again later) or unschedulable (parked until room may
//! have appeared: a node added or changed, a pod gone, or the periodic
//! retry).

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jotasu_api::Pod;

use crate::runtime::Key;

/// The first retry delay after a refused binding; it doubles per refusal.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// The longest retry delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Where a pending pod is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting its turn.
    Active,
    /// Being bound.
    InFlight,
    /// Waiting until the instant before trying again.
    Backoff(Instant),
    /// No node could take it.
    Unschedulable,
}

#[derive(Debug)]
struct Pending {
    pod: Arc<Pod>,
    revision: u64,
    state: State,
    refusals: u32,
}

/// How many pods are parked and backing off (to skip scans when none are).
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    unschedulable: usize,
    backoff: usize,
}

impl Counts {
    fn count(&mut self, state: State, delta: isize) {
        let n = match state {
            State::Unschedulable => &mut self.unschedulable,
            State::Backoff(_) => &mut self.backoff,
            State::Active | State::InFlight => return,
        };
        *n = n.saturating_add_signed(delta);
    }
}

fn transition(counts: &mut Counts, p: &mut Pending, to: State) {
    counts.count(p.state, -1);
    counts.count(to, 1);
    p.state = to;
}

/// A pod's turn: its priority, then the order it became active in.
type Turn = (i32, Reverse<u64>, Key);

/// The pending pods.
#[derive(Debug, Default)]
pub struct Queue {
    pending: HashMap<Key, Pending>,
    active: BinaryHeap<Turn>,
    next: u64,
    counts: Counts,
}

/// Its place in the active queue.
fn turn(next: &mut u64, pod: &Pod, key: Key) -> Turn {
    *next += 1;
    (pod.spec.priority.unwrap_or(0), Reverse(*next), key)
}

impl Queue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pending pods.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no pod is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Pods no node could take.
    pub fn unschedulable(&self) -> usize {
        self.counts.unschedulable
    }

    /// Whether a pod waits its turn.
    pub fn has_active(&self) -> bool {
        !self.active.is_empty()
    }

    /// The state of pod `key`.
    pub fn state(&self, key: &Key) -> Option<State> {
        self.pending.get(key).map(|p| p.state)
    }

    /// The latest version of pending pod `key`.
    pub fn pod(&self, key: &Key) -> Option<&Arc<Pod>> {
        self.pending.get(key).map(|p| &p.pod)
    }

    /// Every pending pod's key.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.pending.keys()
    }

    /// A pending pod appeared or changed (older versions are ignored). A
    /// new pod becomes active; so does an unschedulable one whose spec
    /// changed (it may fit now).
    pub fn upsert(&mut self, key: Key, pod: Arc<Pod>) {
        let rev = pod.metadata.revision().unwrap_or(0);
        match self.pending.entry(key) {
            Entry::Vacant(v) => {
                self.active
                    .push(turn(&mut self.next, &pod, v.key().clone()));
                v.insert(Pending {
                    pod,
                    revision: rev,
                    state: State::Active,
                    refusals: 0,
                });
            }
            Entry::Occupied(mut o) => {
                let p = o.get_mut();
                if rev < p.revision {
                    return;
                }
                let changed =
                    p.pod.spec != pod.spec || p.pod.metadata.labels != pod.metadata.labels;
                p.pod = pod;
                p.revision = rev;
                if changed && p.state == State::Unschedulable {
                    transition(&mut self.counts, p, State::Active);
                    let pod = Arc::clone(&p.pod);
                    self.active
                        .push(turn(&mut self.next, &pod, o.key().clone()));
                }
            }
        }
    }

    /// The pod is no longer pending (bound, being deleted, or gone).
    pub fn remove(&mut self, key: &Key) {
        // Its key may stay in `active`; `pop` skips it.
        if let Some(p) = self.pending.remove(key) {
            self.counts.count(p.state, -1);
        }
    }

    /// The next active pod, now in flight.
    pub fn pop(&mut self) -> Option<(Key, Arc<Pod>)> {
        while let Some((_, _, key)) = self.active.pop() {
            if let Some(p) = self.pending.get_mut(&key)
                && p.state == State::Active
            {
                p.state = State::InFlight;
                let pod = Arc::clone(&p.pod);
                return Some((key, pod));
            }
        }
        None
    }

    /// No node could take the pod: park it.
    pub fn park(&mut self, key: &Key) {
        if let Some(p) = self.pending.get_mut(key) {
            transition(&mut self.counts, p, State::Unschedulable);
        }
    }

    /// Its binding was refused: try again after a backoff that doubles
    /// with each refusal.
    pub fn back_off(&mut self, key: &Key, now: Instant) {
        if let Some(p) = self.pending.get_mut(key) {
            let factor = 1u32 << p.refusals.min(16);
            let delay = INITIAL_BACKOFF.saturating_mul(factor).min(MAX_BACKOFF);
            p.refusals = p.refusals.saturating_add(1);
            transition(&mut self.counts, p, State::Backoff(now + delay));
        }
    }

    /// Makes every unschedulable pod active again (room may have appeared).
    pub fn retry_unschedulable(&mut self) {
        if self.counts.unschedulable == 0 {
            return;
        }
        for (key, p) in &mut self.pending {
            if p.state == State::Unschedulable {
                transition(&mut self.counts, p, State::Active);
                self.active.push(turn(&mut self.next, &p.pod, key.clone()));
            }
        }
    }

    /// Makes pods whose backoff ended active; returns when the next one
    /// ends, if any is backing off.
    pub fn end_backoffs(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        if self.counts.backoff == 0 {
            return next;
        }
        for (key, p) in &mut self.pending {
            if let State::Backoff(at) = p.state {
                if at <= now {
                    transition(&mut self.counts, p, State::Active);
                    self.active.push(turn(&mut self.next, &p.pod, key.clone()));
                } else {
                    next = Some(next.map_or(at, |n| n.min(at)));
                }
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::nodes::tests::{key, pod};

    fn version(name: &str, rv: u64) -> Arc<Pod> {
        let mut p = pod(name, "1", "1Gi", None);
        p.metadata.resource_version = Some(rv.to_string());
        Arc::new(p)
    }

    #[test]
    fn higher_priorities_go_first_then_first_come() {
        let with = |name: &str, priority: i32| {
            let mut p = (*version(name, 1)).clone();
            p.spec.priority = Some(priority);
            Arc::new(p)
        };
        let mut q = Queue::new();
        q.upsert(key("low"), with("low", -5));
        q.upsert(key("a"), version("a", 1));
        q.upsert(key("critical"), with("critical", 2_000_000_000));
        q.upsert(key("b"), version("b", 1));
        let order: Vec<String> = std::iter::from_fn(|| q.pop().map(|(k, _)| k.1)).collect();
        assert_eq!(order, ["critical", "a", "b", "low"]);
    }

    #[test]
    fn fifo_dedup_and_states() {
        let mut q = Queue::new();
        q.upsert(key("a"), version("a", 1));
        q.upsert(key("b"), version("b", 2));
        q.upsert(key("a"), version("a", 3));
        assert_eq!(q.len(), 2);
        let (k, p) = q.pop().unwrap();
        assert_eq!(
            (k, p.metadata.resource_version.as_deref()),
            (key("a"), Some("3"))
        );
        assert_eq!(q.state(&key("a")), Some(State::InFlight));
        // An older version is ignored.
        q.upsert(key("a"), version("a", 2));
        assert_eq!(
            q.pod(&key("a"))
                .unwrap()
                .metadata
                .resource_version
                .as_deref(),
            Some("3")
        );
        q.remove(&key("b"));
        assert!(q.pop().is_none(), "a removed pod is skipped");
    }

    #[test]
    fn unschedulable_pods_wait_for_a_reason() {
        let mut q = Queue::new();
        q.upsert(key("a"), version("a", 1));
        q.pop();
        q.park(&key("a"));
        assert!(!q.has_active());
        // A status-only change (the Unschedulable condition) keeps it parked.
        let mut status_only = (*version("a", 2)).clone();
        status_only.status = Some(Default::default());
        q.upsert(key("a"), Arc::new(status_only));
        assert!(!q.has_active());
        q.retry_unschedulable();
        assert_eq!(q.pop().map(|(k, _)| k), Some(key("a")));
        q.park(&key("a"));
        // A spec change makes it active.
        let mut changed = (*version("a", 3)).clone();
        changed
            .spec
            .node_selector
            .insert("disk".into(), "ssd".into());
        q.upsert(key("a"), Arc::new(changed));
        assert_eq!(q.pop().map(|(k, _)| k), Some(key("a")));
    }

    #[test]
    fn refused_bindings_back_off_exponentially() {
        let mut q = Queue::new();
        let t0 = Instant::now();
        q.upsert(key("a"), version("a", 1));
        q.pop();
        q.back_off(&key("a"), t0);
        assert_eq!(q.end_backoffs(t0), Some(t0 + INITIAL_BACKOFF));
        assert!(q.pop().is_none());
        assert_eq!(q.end_backoffs(t0 + INITIAL_BACKOFF), None);
        q.pop().unwrap();
        q.back_off(&key("a"), t0);
        assert_eq!(q.end_backoffs(t0), Some(t0 + 2 * INITIAL_BACKOFF));
        for _ in 0..20 {
            q.back_off(&key("a"), t0);
        }
        assert_eq!(q.end_backoffs(t0), Some(t0 + MAX_BACKOFF));
    }
}
