//! [`Probe`]: a store wrapper for the watch cache's tests.
use std::collections::HashMap;
use std::sync::Mutex;

use futures::StreamExt as _;
use jotasu_api::Kind;
use jotasu_controlplane::store::{
    KeyValue, Range, Revision, Store, StoreError, StoreResult, Txn, WatchEvent, WatchOptions,
    WatchStream,
};
use tokio::sync::watch;

/// A store that counts watches per prefix, can end every open watch with
/// `WatchClosed` ([`Probe::cut`]) and hold new ones ([`Probe::hold`]).
pub struct Probe<S> {
    inner: S,
    watches: Mutex<HashMap<Vec<u8>, usize>>,
    cut: watch::Sender<u64>,
    held: watch::Sender<bool>,
}

impl<S: Store> Probe<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            watches: Mutex::new(HashMap::new()),
            cut: watch::Sender::new(0),
            held: watch::Sender::new(false),
        }
    }

    /// Store watches opened on `kind`'s whole prefix.
    pub fn watches_of(&self, kind: Kind) -> usize {
        let prefix = format!("/registry/{}/", kind.plural()).into_bytes();
        self.watches
            .lock()
            .unwrap()
            .get(&prefix)
            .copied()
            .unwrap_or(0)
    }

    /// Store watches opened in all.
    pub fn all_watches(&self) -> usize {
        self.watches.lock().unwrap().values().sum()
    }

    pub fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn hold(&self, held: bool) {
        self.held.send_replace(held);
    }
}

impl<S: Store> Store for Probe<S> {
    async fn get(&self, key: &[u8]) -> StoreResult<Option<KeyValue>> {
        self.inner.get(key).await
    }

    async fn range(&self, prefix: &[u8], limit: Option<usize>) -> StoreResult<Range> {
        self.inner.range(prefix, limit).await
    }

    async fn txn(&self, txn: Txn) -> StoreResult<Option<Revision>> {
        self.inner.txn(txn).await
    }

    async fn watch(&self, prefix: &[u8], options: WatchOptions) -> StoreResult<WatchStream> {
        let mut held = self.held.subscribe();
        let _ = held.wait_for(|h| !*h).await;
        *self
            .watches
            .lock()
            .unwrap()
            .entry(prefix.to_vec())
            .or_default() += 1;
        let inner = self.inner.watch(prefix, options).await?;
        let mut cut = self.cut.subscribe();
        cut.mark_unchanged();
        let from = options.from_revision;
        let stream = futures::stream::unfold(
            (inner, cut, from, false),
            |(mut inner, mut cut, last, done)| async move {
                if done {
                    return None;
                }
                tokio::select! {
                    biased;
                    _ = cut.changed() => {
                        // Resume at the last revision seen: it may be partial.
                        let e = StoreError::WatchClosed { resume_from: last };
                        Some((Err(e), (inner, cut, last, true)))
                    }
                    item = inner.next() => {
                        let item = item?;
                        let last = item.as_ref().map_or(last, |ev: &WatchEvent| ev.revision);
                        let done = item.is_err();
                        Some((item, (inner, cut, last, done)))
                    }
                }
            },
        );
        Ok(Box::pin(stream))
    }

    async fn compact(&self, revision: Revision) -> StoreResult<()> {
        self.inner.compact(revision).await
    }

    async fn current_revision(&self) -> StoreResult<Revision> {
        self.inner.current_revision().await
    }
}
