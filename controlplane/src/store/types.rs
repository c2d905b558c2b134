//! The values the [`Store`](super::Store) trait speaks in.
use std::pin::Pin;

use futures::Stream;

use super::StoreError;

/// A store revision: a global, monotonic counter bumped by every write.
/// `0` never names a write (etcd convention: "absent" / "from now").
pub type Revision = u64;

/// One key's current value and its history counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value (empty in a delete event's `kv`).
    pub value: Vec<u8>,
    /// The revision that created the key (since its last deletion).
    pub create_revision: Revision,
    /// The revision of the key's last write (for a delete event: the delete).
    pub mod_revision: Revision,
    /// Writes since creation: 1 after create, 0 for a deleted key.
    pub version: u64,
}

/// The result of [`Store::range`](super::Store::range).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// The matching keys, sorted by key.
    pub kvs: Vec<KeyValue>,
    /// The revision this listing reflects.
    pub revision: Revision,
    /// More keys matched than `limit` allowed.
    pub more: bool,
}

/// What happened to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The key was created or replaced.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change delivered by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the event (for a delete: key, empty value, zero
    /// counters but `mod_revision` = the delete's revision, as etcd).
    pub kv: KeyValue,
    /// The key before the event, when asked for ([`WatchOptions::with_prev_kv`])
    /// and the key existed.
    pub prev_kv: Option<KeyValue>,
    /// The revision of the write (equal to `kv.mod_revision`).
    pub revision: Revision,
}

/// The events of a watch; an `Err` is always the last item.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, StoreError>> + Send>>;

/// Where a watch starts and what it carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// The first revision to deliver; `0` means "only future events".
    pub from_revision: Revision,
    /// Deliver the previous value with each event.
    pub prev_kv: bool,
}

impl WatchOptions {
    /// Watches from `revision` (inclusive); `0` means from now on.
    pub fn from_revision(revision: Revision) -> Self {
        Self {
            from_revision: revision,
            prev_kv: false,
        }
    }

    /// Also delivers each event's previous key-value.
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }
}

/// A guard of a [`Txn`]: the key's mod revision must equal `mod_revision`
/// (`0`: the key must not exist).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The key compared.
    pub key: Vec<u8>,
    /// The expected mod revision; `0` means absent.
    pub mod_revision: Revision,
}

impl Compare {
    /// `key` must currently have mod revision `revision`.
    pub fn mod_revision(key: &[u8], revision: Revision) -> Self {
        Self {
            key: key.to_vec(),
            mod_revision: revision,
        }
    }

    /// `key` must not exist.
    pub fn absent(key: &[u8]) -> Self {
        Self::mod_revision(key, 0)
    }
}

/// A write inside a [`Txn`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Delete `key` (nothing if absent).
    Delete {
        /// The key.
        key: Vec<u8>,
    },
}

impl Op {
    /// The key this op writes.
    pub fn key(&self) -> &[u8] {
        match self {
            Op::Put { key, .. } | Op::Delete { key } => key,
        }
    }
}

/// Several writes applied atomically under one revision if all compares
/// hold. Each key may be written at most once per transaction (as in etcd).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Txn {
    /// Guards; all must hold.
    pub compares: Vec<Compare>,
    /// Writes, applied in order under one revision.
    pub ops: Vec<Op>,
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a guard.
    pub fn when(mut self, compare: Compare) -> Self {
        self.compares.push(compare);
        self
    }

    /// Adds a put.
    pub fn put(mut self, key: &[u8], value: &[u8]) -> Self {
        self.ops.push(Op::Put {
            key: key.to_vec(),
            value: value.to_vec(),
        });
        self
    }

    /// Adds a delete.
    pub fn delete(mut self, key: &[u8]) -> Self {
        self.ops.push(Op::Delete { key: key.to_vec() });
        self
    }

    /// Rejects empty keys and keys written twice, which neither backend
    /// accepts.
    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        if self.ops.is_empty() {
            return Err(StoreError::InvalidArgument(
                "a transaction needs at least one put or delete".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for key in self
            .ops
            .iter()
            .map(Op::key)
            .chain(self.compares.iter().map(|c| c.key.as_slice()))
        {
            if key.is_empty() {
                return Err(StoreError::InvalidArgument("keys must not be empty".into()));
            }
        }
        for op in &self.ops {
            if !seen.insert(op.key()) {
                return Err(StoreError::InvalidArgument(format!(
                    "key {} is written twice in one transaction; write it once",
                    op.key().escape_ascii()
                )));
            }
        }
        Ok(())
    }
}
