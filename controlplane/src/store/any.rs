//! [`AnyStore`]: the backend chosen at runtime, dispatching to either.
use super::{
    EmbeddedStore, EtcdStore, KeyValue, Range, Revision, Store, StoreResult, Txn, WatchOptions,
    WatchStream,
};

/// One of the store backends, chosen by configuration.
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// The embedded redb file (the default).
    Embedded(EmbeddedStore),
    /// A shared etcd cluster (boxed: its client is large).
    Etcd(Box<EtcdStore>),
}

impl From<EmbeddedStore> for AnyStore {
    fn from(s: EmbeddedStore) -> Self {
        AnyStore::Embedded(s)
    }
}

impl From<EtcdStore> for AnyStore {
    fn from(s: EtcdStore) -> Self {
        AnyStore::Etcd(Box::new(s))
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            AnyStore::Embedded($s) => $call.await,
            AnyStore::Etcd($s) => $call.await,
        }
    };
}

impl Store for AnyStore {
    async fn get(&self, key: &[u8]) -> StoreResult<Option<KeyValue>> {
        dispatch!(self, s => s.get(key))
    }

    async fn range(&self, prefix: &[u8], limit: Option<usize>) -> StoreResult<Range> {
        dispatch!(self, s => s.range(prefix, limit))
    }

    async fn txn(&self, txn: Txn) -> StoreResult<Option<Revision>> {
        dispatch!(self, s => s.txn(txn))
    }

    async fn watch(&self, prefix: &[u8], options: WatchOptions) -> StoreResult<WatchStream> {
        dispatch!(self, s => s.watch(prefix, options))
    }

    async fn compact(&self, revision: Revision) -> StoreResult<()> {
        dispatch!(self, s => s.compact(revision))
    }

    async fn current_revision(&self) -> StoreResult<Revision> {
        dispatch!(self, s => s.current_revision())
    }
}
