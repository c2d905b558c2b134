//! [`Fenced`]: the store as the leader's scheduler and controllers see it.
//! Every write carries one more guard in the same transaction: the fence
//! key still has the mod revision it got when this control plane won the
//! election. A new leader rewrites the fence as it takes the Lease, so a
//! deposed or paused leader's writes fail as a whole — none lands on a
//! stale view, however late it wakes up. Reads and watches pass through.

use std::sync::Arc;

use crate::store::{
    Compare, KeyValue, Range, Revision, Store, StoreError, StoreResult, Txn, WatchOptions,
    WatchStream,
};

/// The key a new leader rewrites as it takes the election Lease. Outside
/// `/registry/`, so no API list or watch ever shows it.
pub const FENCE_KEY: &[u8] = b"/leader/fence";

/// `S` with every write guarded by the fence at `revision`.
#[derive(Debug)]
pub struct Fenced<S> {
    inner: Arc<S>,
    revision: Revision,
}

impl<S> Fenced<S> {
    /// Guards writes to `inner` by the fence's mod revision `revision` (the
    /// one this control plane's election write gave it).
    pub fn new(inner: Arc<S>, revision: Revision) -> Self {
        Self { inner, revision }
    }

    /// The fence revision writes are guarded by.
    pub fn revision(&self) -> Revision {
        self.revision
    }
}

impl<S: Store> Store for Fenced<S> {
    async fn get(&self, key: &[u8]) -> StoreResult<Option<KeyValue>> {
        self.inner.get(key).await
    }

    async fn range(&self, prefix: &[u8], limit: Option<usize>) -> StoreResult<Range> {
        self.inner.range(prefix, limit).await
    }

    async fn txn(&self, mut txn: Txn) -> StoreResult<Option<Revision>> {
        txn.compares
            .push(Compare::mod_revision(FENCE_KEY, self.revision));
        match self.inner.txn(txn).await {
            Err(StoreError::Conflict { key, .. }) if key == FENCE_KEY => {
                Err(StoreError::Fenced { key })
            }
            other => other,
        }
    }

    async fn watch(&self, prefix: &[u8], options: WatchOptions) -> StoreResult<WatchStream> {
        self.inner.watch(prefix, options).await
    }

    async fn compact(&self, revision: Revision) -> StoreResult<()> {
        self.inner.compact(revision).await
    }

    async fn current_revision(&self) -> StoreResult<Revision> {
        self.inner.current_revision().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EmbeddedOptions, EmbeddedStore};

    #[tokio::test]
    async fn writes_land_while_the_fence_holds_and_none_after_it_moved() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            EmbeddedStore::open(&dir.path().join("s.redb"), EmbeddedOptions::default())
                .await
                .unwrap(),
        );
        let won = store.put(FENCE_KEY, b"a").await.unwrap();
        let fenced = Fenced::new(Arc::clone(&store), won);
        fenced.put(b"/registry/x", b"1").await.unwrap();
        fenced.create(b"/registry/y", b"1").await.unwrap();
        // Another control plane wins: it rewrites the fence.
        store.put(FENCE_KEY, b"b").await.unwrap();
        let before = store.current_revision().await.unwrap();
        for result in [
            fenced.put(b"/registry/x", b"2").await.map(|_| ()),
            fenced.create(b"/registry/z", b"1").await.map(|_| ()),
            fenced.delete(b"/registry/y").await.map(|_| ()),
        ] {
            assert!(
                matches!(result, Err(StoreError::Fenced { .. })),
                "{result:?}"
            );
        }
        assert_eq!(
            store.current_revision().await.unwrap(),
            before,
            "nothing landed"
        );
        assert_eq!(
            store.get(b"/registry/x").await.unwrap().unwrap().value,
            b"1"
        );
        // A guard of the caller's own still reports its own conflict.
        let fresh = Fenced::new(
            Arc::clone(&store),
            store.get(FENCE_KEY).await.unwrap().unwrap().mod_revision,
        );
        let err = fresh.update_if(b"/registry/x", b"3", 1).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict { ref key, .. } if key == b"/registry/x"),
            "{err:?}"
        );
    }
}
