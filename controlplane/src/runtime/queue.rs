//! A work queue of keys for one controller's worker: a key added while
//! already queued is queued once; a key can come back after a delay
//! (requeue on conflict, minReadySeconds, a progress deadline).

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Debug)]
struct State<K> {
    order: VecDeque<K>,
    queued: HashSet<K>,
}

/// Keys waiting to be reconciled. Cloning shares the queue.
#[derive(Debug)]
pub struct WorkQueue<K> {
    state: Arc<Mutex<State<K>>>,
    ready: Arc<Notify>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
            ready: Arc::clone(&self.ready),
        }
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash + Send + 'static> WorkQueue<K> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                order: VecDeque::new(),
                queued: HashSet::new(),
            })),
            ready: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `key` unless it is queued already.
    pub fn add(&self, key: K) {
        let mut state = self.lock();
        if state.queued.insert(key.clone()) {
            state.order.push_back(key);
            drop(state);
            self.ready.notify_one();
        }
    }

    /// Queues `key` after `delay`.
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let queue = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key);
        });
    }

    /// Takes the next key if one is queued.
    pub fn try_next(&self) -> Option<K> {
        let mut state = self.lock();
        let key = state.order.pop_front()?;
        state.queued.remove(&key);
        Some(key)
    }

    /// Waits for the next key.
    pub async fn next(&self) -> K {
        loop {
            let notified = self.ready.notified();
            if let Some(key) = self.try_next() {
                return key;
            }
            notified.await;
        }
    }

    /// Keys queued now.
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedupes_and_orders() {
        let q = WorkQueue::new();
        q.add("a");
        q.add("b");
        q.add("a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await, "a");
        assert_eq!(q.next().await, "b");
        assert!(q.try_next().is_none());
        q.add("a");
        assert_eq!(q.try_next(), Some("a"));
    }

    #[tokio::test]
    async fn delayed() {
        let q = WorkQueue::new();
        q.add_after("x", Duration::from_millis(50));
        tokio::task::yield_now().await;
        assert!(q.is_empty());
        assert_eq!(q.next().await, "x");
    }
}
