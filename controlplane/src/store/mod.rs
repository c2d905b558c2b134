//! The control plane's store: revisioned keys with etcd semantics.
//!
//! Keys and values are bytes. Every write gets a new global, monotonic
//! [`Revision`]; each key remembers when it was created, last modified and how
//! many times ([`KeyValue`]). Writers use compare-and-swap on the mod revision
//! ([`Store::update_if`]), readers list a prefix at a revision
//! ([`Store::range`]) and then watch from the next one ([`Store::watch`]).
//! History before the compaction point is forgotten ([`Store::compact`]); a
//! watch that starts there fails with [`StoreError::Compacted`] so the caller
//! relists instead of silently missing events.
//!
//! Two backends implement [`Store`]: [`EmbeddedStore`] (the default: one
//! crash-safe redb file, no server) and [`EtcdStore`] (a real etcd, for
//! several control planes). [`AnyStore`] selects one at runtime.

mod any;
pub mod embedded;
mod error;
pub mod etcd;
mod types;

use std::future::Future;

pub use any::AnyStore;
pub use embedded::{EmbeddedOptions, EmbeddedStore};
pub use error::{StoreError, StoreResult};
pub use etcd::{EtcdStore, EtcdTls};
pub use types::{
    Compare, EventKind, KeyValue, Op, Range, Revision, Txn, WatchEvent, WatchOptions, WatchStream,
};

/// A key-value store with etcd semantics. Cloning a handle is cheap where the
/// backend allows it; all methods take `&self` and are safe to call
/// concurrently.
pub trait Store: Send + Sync + 'static {
    /// Reads one key at the current revision; `None` if it does not exist.
    fn get(&self, key: &[u8]) -> impl Future<Output = StoreResult<Option<KeyValue>>> + Send;

    /// Lists the keys starting with `prefix` at the current revision, sorted
    /// by key, at most `limit` of them (`None`: all). The returned
    /// [`Range::revision`] is the revision the listing reflects: watch from
    /// `revision + 1` to follow on without a gap.
    fn range(
        &self,
        prefix: &[u8],
        limit: Option<usize>,
    ) -> impl Future<Output = StoreResult<Range>> + Send;

    /// Applies a transaction atomically: if every [`Compare`] holds, all its
    /// [`Op`]s are applied under one new revision, which is returned (`None`
    /// when nothing changed, e.g. only deletes of absent keys). If a compare
    /// fails, nothing is written and [`StoreError::Conflict`] names the key
    /// and its current mod revision.
    fn txn(&self, txn: Txn) -> impl Future<Output = StoreResult<Option<Revision>>> + Send;

    /// Watches the keys starting with `prefix`: every event with revision
    /// `>= options.from_revision` in revision order, then live events as they
    /// are committed, with no gap and no duplicate. Errors end the stream:
    /// [`StoreError::Compacted`] (from the call, or as the first item) when
    /// the start is older than the compaction point, [`StoreError::Lagged`]
    /// when the watcher fell behind; both say where to resume.
    fn watch(
        &self,
        prefix: &[u8],
        options: WatchOptions,
    ) -> impl Future<Output = StoreResult<WatchStream>> + Send;

    /// Forgets history before `revision`: watches from earlier revisions fail
    /// with [`StoreError::Compacted`] afterwards. Compacting to a revision at
    /// or below the current compaction point does nothing; a revision above
    /// the current one is [`StoreError::FutureRevision`].
    fn compact(&self, revision: Revision) -> impl Future<Output = StoreResult<()>> + Send;

    /// The revision of the latest write (the store's "now").
    fn current_revision(&self) -> impl Future<Output = StoreResult<Revision>> + Send;

    /// Writes `key` unconditionally; returns the new revision.
    fn put(&self, key: &[u8], value: &[u8]) -> impl Future<Output = StoreResult<Revision>> + Send {
        let txn = Txn::new().put(key, value);
        async move { required_revision(self.txn(txn).await?) }
    }

    /// Creates `key`; fails with [`StoreError::AlreadyExists`] if it exists.
    fn create(
        &self,
        key: &[u8],
        value: &[u8],
    ) -> impl Future<Output = StoreResult<Revision>> + Send {
        let txn = Txn::new().when(Compare::absent(key)).put(key, value);
        async move {
            match self.txn(txn).await {
                Ok(rev) => required_revision(rev),
                Err(StoreError::Conflict {
                    key,
                    current: Some(mod_revision),
                    ..
                }) => Err(StoreError::AlreadyExists { key, mod_revision }),
                Err(e) => Err(e),
            }
        }
    }

    /// Replaces `key` if its mod revision is still `expected_mod_revision`
    /// (compare-and-swap); otherwise [`StoreError::Conflict`] carries the
    /// current mod revision (`None`: the key is gone).
    fn update_if(
        &self,
        key: &[u8],
        value: &[u8],
        expected_mod_revision: Revision,
    ) -> impl Future<Output = StoreResult<Revision>> + Send {
        let txn = Txn::new()
            .when(Compare::mod_revision(key, expected_mod_revision))
            .put(key, value);
        async move { required_revision(self.txn(txn).await?) }
    }

    /// Deletes `key`; returns the revision of the deletion, or `None` if the
    /// key did not exist (no revision is consumed then, as in etcd).
    fn delete(&self, key: &[u8]) -> impl Future<Output = StoreResult<Option<Revision>>> + Send {
        self.txn(Txn::new().delete(key))
    }

    /// Deletes `key` if its mod revision is still `expected_mod_revision`;
    /// otherwise [`StoreError::Conflict`].
    fn delete_if(
        &self,
        key: &[u8],
        expected_mod_revision: Revision,
    ) -> impl Future<Output = StoreResult<Revision>> + Send {
        let txn = Txn::new()
            .when(Compare::mod_revision(key, expected_mod_revision))
            .delete(key);
        async move { required_revision(self.txn(txn).await?) }
    }
}

/// A write that must have changed something did not: a backend bug, reported
/// rather than panicking.
fn required_revision(rev: Option<Revision>) -> StoreResult<Revision> {
    rev.ok_or_else(|| StoreError::Internal("a write produced no revision".into()))
}
