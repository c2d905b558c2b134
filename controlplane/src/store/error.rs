//! [`StoreError`]: what failed, on which key, and what the caller should do.
use super::Revision;

/// A store result.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `create` found the key already there.
    #[error(
        "key {} already exists (mod revision {mod_revision}); read it and update it with that revision",
        key.escape_ascii()
    )]
    AlreadyExists {
        /// The key.
        key: Vec<u8>,
        /// Its current mod revision.
        mod_revision: Revision,
    },
    /// A compare-and-swap guard failed: someone else wrote the key first.
    #[error(
        "key {} changed: expected mod revision {expected}, found {}; re-read it and retry",
        key.escape_ascii(),
        match current { Some(r) => r.to_string(), None => "no key".to_string() }
    )]
    Conflict {
        /// The key whose guard failed.
        key: Vec<u8>,
        /// The mod revision the caller expected (0: absent).
        expected: Revision,
        /// The key's current mod revision; `None` if it does not exist.
        current: Option<Revision>,
    },
    /// History at `requested` was compacted away.
    #[error(
        "revision {requested} is compacted (history starts at {compact_revision}); list again and watch from the list's revision + 1"
    )]
    Compacted {
        /// The revision asked for.
        requested: Revision,
        /// The oldest revision still available.
        compact_revision: Revision,
    },
    /// A revision that has not happened yet.
    #[error("revision {requested} is in the future (current revision {current})")]
    FutureRevision {
        /// The revision asked for.
        requested: Revision,
        /// The current revision.
        current: Revision,
    },
    /// The watcher did not keep up and its bounded buffer overflowed.
    #[error("watcher fell behind and was dropped; watch again from revision {resume_from}")]
    Lagged {
        /// The first revision not (fully) delivered.
        resume_from: Revision,
    },
    /// The watch ended because the store or its connection went away.
    #[error(
        "watch ended (store closed or connection lost); watch again from revision {resume_from}"
    )]
    WatchClosed {
        /// The first revision not (fully) delivered.
        resume_from: Revision,
    },
    /// etcd canceled a watch for a reason other than compaction.
    #[error("etcd canceled the watch: {reason}; watch again from revision {resume_from}")]
    WatchCanceled {
        /// etcd's reason.
        reason: String,
        /// The first revision not (fully) delivered.
        resume_from: Revision,
    },
    /// The request itself is malformed.
    #[error("invalid store request: {0}")]
    InvalidArgument(String),
    /// The embedded database failed.
    #[error("embedded store: {op} failed: {source}")]
    Embedded {
        /// What was being done.
        op: &'static str,
        /// redb's error.
        #[source]
        source: Box<redb::Error>,
    },
    /// A record in the embedded file does not decode: the file is corrupt or
    /// was written by an incompatible version.
    #[error("embedded store: corrupt record: {0}; restore from a backup")]
    Corrupt(String),
    /// etcd refused or failed a request.
    #[error("etcd {op} on {} failed: {source}", key.escape_ascii())]
    Etcd {
        /// The request.
        op: &'static str,
        /// The key or prefix (without the store's prefix).
        key: Vec<u8>,
        /// etcd-client's error.
        #[source]
        source: Box<etcd_client::Error>,
    },
    /// An invariant was broken; a bug in the store.
    #[error("store internal error: {0}")]
    Internal(String),
    /// A write guarded by the leader fence was refused: another control
    /// plane took the leadership since this one won it.
    #[error(
        "refused: this control plane is no longer the leader (the fence {} moved); its controllers stop and another control plane's run",
        key.escape_ascii()
    )]
    Fenced {
        /// The fence key.
        key: Vec<u8>,
    },
}

impl StoreError {
    /// Wraps a redb error.
    pub(crate) fn embedded(op: &'static str, e: impl Into<redb::Error>) -> Self {
        StoreError::Embedded {
            op,
            source: Box::new(e.into()),
        }
    }

    /// Wraps an etcd-client error.
    pub(crate) fn etcd(op: &'static str, key: &[u8], e: etcd_client::Error) -> Self {
        StoreError::Etcd {
            op,
            key: key.to_vec(),
            source: Box::new(e),
        }
    }
}
