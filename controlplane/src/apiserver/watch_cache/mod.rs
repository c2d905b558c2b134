//! The watch cache: each control plane holds one store watch per kind and
//! fans it out to its API watches, as kube-apiserver's watch cache does.
//!
//! **Per kind** ([`KindCache`], started on the first watch or cached List
//! of the kind): the kind's current objects and a bounded ring of its
//! recent store events ([`Limits`]: by default 10,000 events or 64 MiB,
//! whichever is reached first). It lists `/registry/<plural>/` and watches
//! from the list's revision + 1, so it has no gap ([`driver`]).
//!
//! **Watches** of one kind ([`serve`]) subscribe to it: from a revision the
//! ring holds they get the ring's events from there, then live ones. Each
//! has a bounded queue ([`Limits::queue`]); the cache never waits for a
//! subscriber. One whose queue is full is cut off and resumes from the ring
//! where it stopped; one that fell out of the ring is ended with
//! `StoreError::Lagged { resume_from }` (kube-apiserver ends slow watchers
//! too). Watches the cache cannot serve use their own store watch, as
//! before: several kinds at once, a node's ConfigMaps or Secrets (they
//! follow its Pods), a start older than the ring, or a kind whose cache is
//! not listed within a moment.
//!
//! **Failures.** A store watch that lags or loses its connection is resumed
//! from where it stopped (repeated events are dropped); subscribers only
//! wait. One that starts before the compaction makes the cache list again;
//! its subscribers are ended with `resync` (they missed events) and list
//! again, as they would have with a store watch of their own.
//!
//! **List** with `resourceVersion: "0"` (any recent state, Kubernetes'
//! rule) is served from the cache; an unset one still reads the store.

pub mod driver;
pub mod ring;
pub mod serve;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jotasu_api::Kind;
use tokio::sync::watch;
use tracing::{Instrument as _, info_span};

use crate::store::{Range, Revision, Store, WatchEvent};
pub use state::{Applied, End, KindState, Refused, Subscription};

/// The cache's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Events kept per kind for replay.
    pub events: usize,
    /// Bytes (keys and values) kept per kind for replay.
    pub bytes: usize,
    /// Events queued per watcher before it counts as too slow.
    pub queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            events: 10_000,
            bytes: 64 << 20,
            queue: 1024,
        }
    }
}

/// Counters of the whole cache (every kind).
#[derive(Debug, Default)]
struct Counters {
    served: AtomicU64,
    fallbacks: AtomicU64,
    resumed: AtomicU64,
    ended_slow: AtomicU64,
    ended_resync: AtomicU64,
    lists_served: AtomicU64,
}

/// A snapshot of the cache's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// API watches served from the cache.
    pub served: u64,
    /// API watches that used a store watch of their own.
    pub fallbacks: u64,
    /// Subscribers cut off for a full queue that resumed from the ring.
    pub resumed: u64,
    /// Watches ended as too slow (fallen out of the ring).
    pub ended_slow: u64,
    /// Watches ended with `resync` because the cache relisted.
    pub ended_resync: u64,
    /// Lists served from the cache.
    pub lists_served: u64,
}

/// One kind's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KindStats {
    /// Store watches open now (1 while following, 0 while relisting).
    pub store_watches: usize,
    /// Store watches opened in all (resumes included).
    pub store_watches_opened: u64,
    /// Lists of the store made (the first and relists).
    pub lists: u64,
    /// Subscribers attached.
    pub watchers: usize,
    /// Objects held.
    pub objects: usize,
    /// Events in the ring.
    pub ring_events: usize,
    /// Bytes in the ring.
    pub ring_bytes: usize,
    /// The revision the cache reflects.
    pub revision: Revision,
}

/// One kind's cache: its state and the figures of its store watch.
#[derive(Debug)]
pub struct KindCache {
    kind: Kind,
    state: Mutex<KindState>,
    live: watch::Sender<bool>,
    store_watches: AtomicUsize,
    store_watches_opened: AtomicU64,
    lists: AtomicU64,
}

impl KindCache {
    fn new(kind: Kind, limits: Limits) -> Self {
        Self {
            kind,
            state: Mutex::new(KindState::new(limits)),
            live: watch::Sender::new(false),
            store_watches: AtomicUsize::new(0),
            store_watches_opened: AtomicU64::new(0),
            lists: AtomicU64::new(0),
        }
    }

    /// The kind cached.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    fn lock(&self) -> MutexGuard<'_, KindState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// See [`KindState::reset`].
    pub fn reset(&self, range: Range) -> usize {
        self.lists.fetch_add(1, Ordering::Relaxed);
        let ended = self.lock().reset(range);
        self.live.send_replace(true);
        ended
    }

    /// See [`KindState::invalidate`].
    pub fn invalidate(&self) -> usize {
        self.live.send_replace(false);
        self.lock().invalidate()
    }

    /// See [`KindState::apply`].
    pub fn apply(&self, ev: WatchEvent) -> Applied {
        self.lock().apply(ev)
    }

    /// See [`KindState::subscribe`].
    pub fn subscribe(&self, from: Revision) -> Result<Subscription, Refused> {
        self.lock().subscribe(from)
    }

    /// See [`KindState::list`].
    pub fn list(&self, prefix: &[u8]) -> Option<(Vec<crate::store::KeyValue>, Revision)> {
        self.lock().list(prefix)
    }

    /// The revision the cache reflects.
    pub fn revision(&self) -> Revision {
        self.lock().revision()
    }

    /// Waits up to `wait` until the cache follows the store.
    pub async fn wait_live(&self, wait: Duration) -> bool {
        let mut rx = self.live.subscribe();
        matches!(
            tokio::time::timeout(wait, rx.wait_for(|live| *live)).await,
            Ok(Ok(_))
        )
    }

    /// Counts a store watch open until the guard drops.
    pub fn store_watch_opened(&self) -> StoreWatchGuard<'_> {
        self.store_watches.fetch_add(1, Ordering::Relaxed);
        self.store_watches_opened.fetch_add(1, Ordering::Relaxed);
        StoreWatchGuard(self)
    }

    /// This kind's figures.
    pub fn stats(&self) -> KindStats {
        let state = self.lock();
        KindStats {
            store_watches: self.store_watches.load(Ordering::Relaxed),
            store_watches_opened: self.store_watches_opened.load(Ordering::Relaxed),
            lists: self.lists.load(Ordering::Relaxed),
            watchers: state.subscribers(),
            objects: state.objects(),
            ring_events: state.ring().len(),
            ring_bytes: state.ring().bytes(),
            revision: state.revision(),
        }
    }

    /// Stops serving (shutdown): subscribers are let go without an end.
    fn stop(&self) {
        self.live.send_replace(false);
        self.lock().stop();
    }
}

/// An open store watch of a [`KindCache`], counted while it lives.
#[derive(Debug)]
pub struct StoreWatchGuard<'a>(&'a KindCache);

impl Drop for StoreWatchGuard<'_> {
    fn drop(&mut self) {
        self.0.store_watches.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The caches of every kind watched so far, over one store.
pub struct WatchCache<S> {
    store: Arc<S>,
    shutdown: watch::Receiver<bool>,
    limits: Limits,
    kinds: Mutex<HashMap<Kind, Arc<KindCache>>>,
    counters: Counters,
}

impl<S> std::fmt::Debug for WatchCache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchCache")
            .field("limits", &self.limits)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<S: Store> WatchCache<S> {
    /// A cache over `store` whose store watches end when `shutdown` turns
    /// true. Nothing starts until a kind is asked for.
    pub fn new(store: Arc<S>, shutdown: watch::Receiver<bool>, limits: Limits) -> Self {
        Self {
            store,
            shutdown,
            limits,
            kinds: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        }
    }

    /// The cache's bounds.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The cache of `kind`, its store watch started on first use.
    pub fn kind(&self, kind: Kind) -> Arc<KindCache> {
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = kinds.get(&kind) {
            return Arc::clone(c);
        }
        let cache = Arc::new(KindCache::new(kind, self.limits));
        kinds.insert(kind, Arc::clone(&cache));
        let span = info_span!("watch_cache", %kind);
        tokio::spawn(
            driver::follow(
                Arc::clone(&self.store),
                Arc::downgrade(&cache),
                self.shutdown.clone(),
            )
            .instrument(span),
        );
        cache
    }

    /// The cache of `kind` once it follows the store (started if needed),
    /// waiting at most `wait`; `None` if it does not by then.
    pub async fn ready(&self, kind: Kind, wait: Duration) -> Option<Arc<KindCache>> {
        // Stopping (or the switch is gone): the store answers, as before.
        if *self.shutdown.borrow() || self.shutdown.has_changed().is_err() {
            return None;
        }
        let cache = self.kind(kind);
        cache.wait_live(wait).await.then_some(cache)
    }

    /// The figures of `kind`'s cache, if it was started.
    pub fn kind_stats(&self, kind: Kind) -> Option<KindStats> {
        let kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        kinds.get(&kind).map(|c| c.stats())
    }

    /// The counters of every kind together.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            served: c.served.load(Ordering::Relaxed),
            fallbacks: c.fallbacks.load(Ordering::Relaxed),
            resumed: c.resumed.load(Ordering::Relaxed),
            ended_slow: c.ended_slow.load(Ordering::Relaxed),
            ended_resync: c.ended_resync.load(Ordering::Relaxed),
            lists_served: c.lists_served.load(Ordering::Relaxed),
        }
    }

    fn count(&self, counter: fn(&Counters) -> &AtomicU64) {
        counter(&self.counters).fetch_add(1, Ordering::Relaxed);
    }
}
