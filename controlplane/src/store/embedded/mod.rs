//! [`EmbeddedStore`]: the default backend, one crash-safe redb file.
//!
//! Layout: table `kv` (key → create/mod revision, version, value), table
//! `log` (revision → the events of that revision, with previous values) and
//! table `meta` (`revision`, `compact_revision`).
//!
//! Writes go through one writer thread ([`writer`]) that commits with
//! [`redb::Durability::Immediate`]: once a write method returns `Ok`, the write
//! survives `kill -9` and power loss. Waiting writes are group-committed
//! (one fsync per batch). Reads run on tokio's blocking pool against
//! snapshots; the async runtime is never blocked.
//!
//! Watches replay the log from their start revision, then receive live events
//! pushed by the writer after each commit ([`hub`]); registration and the
//! replay snapshot are taken under the hub's lock, so replay ends exactly
//! where live delivery begins.
//!
//! The file stays bounded: keeping `retention` revisions of history, the log
//! is compacted automatically (in steps of `retention / 8`) and every
//! `file_compaction_every` such steps redb compacts the file itself. Pages
//! freed by log compaction are reused in between.
mod codec;
mod hub;
#[cfg(test)]
mod tests;
mod writer;

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError, RwLock},
    thread::JoinHandle,
};

use redb::{Database, ReadableDatabase as _, TableDefinition};
use tokio::sync::{mpsc, oneshot};

use self::{
    codec::{decode_events, decode_record},
    hub::{Hub, Receiver},
    writer::{Request, Writer},
};
use super::{
    KeyValue, Range, Revision, Store, StoreError, StoreResult, Txn, WatchOptions, WatchStream,
};

const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
const META_COMPACT: &str = "compact_revision";

/// Tuning of an [`EmbeddedStore`].
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// Revisions of history kept for watches; older ones are compacted
    /// automatically. `0` disables automatic compaction.
    pub retention: u64,
    /// Event batches (one per revision) a watcher may have queued before it
    /// is dropped with [`StoreError::Lagged`].
    pub watch_buffer: usize,
    /// Run redb's file compaction after this many automatic log compactions
    /// (`0`: never).
    pub file_compaction_every: u64,
    /// Write requests that may wait for the writer thread.
    pub write_queue: usize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            retention: 10_000,
            watch_buffer: 1024,
            file_compaction_every: 16,
            write_queue: 1024,
        }
    }
}

/// What the writer thread and the readers share.
struct Shared {
    path: PathBuf,
    /// Written only for redb's file compaction, which needs it exclusively.
    db: RwLock<Database>,
    hub: Mutex<Hub>,
    options: EmbeddedOptions,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("path", &self.path)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The embedded store. Clones share one file, one writer and one hub.
#[derive(Clone, Debug)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    requests: mpsc::Sender<Request>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`. A file left by a crash
    /// is repaired by redb on open; every acknowledged write is there.
    pub async fn open(path: impl AsRef<Path>, options: EmbeddedOptions) -> StoreResult<Self> {
        let path = path.as_ref().to_path_buf();
        blocking(move || Self::open_blocking(path, options)).await?
    }

    fn open_blocking(path: PathBuf, options: EmbeddedOptions) -> StoreResult<Self> {
        let db = Database::create(&path).map_err(|e| StoreError::embedded("open file", e))?;
        let wtx = db
            .begin_write()
            .map_err(|e| StoreError::embedded("begin write", e))?;
        {
            let open = |e| StoreError::embedded("create tables", e);
            wtx.open_table(KV).map_err(open)?;
            wtx.open_table(LOG).map_err(open)?;
            wtx.open_table(META).map_err(open)?;
        }
        wtx.commit()
            .map_err(|e| StoreError::embedded("create tables", e))?;
        let revision = read_meta(&db, META_REVISION)?;
        tracing::info!(path = %path.display(), revision, "opened embedded store");
        let shared = Arc::new(Shared {
            path,
            db: RwLock::new(db),
            hub: Mutex::new(Hub::new(revision)),
            options,
        });
        let (requests, rx) = mpsc::channel(shared.options.write_queue.max(1));
        let writer = Writer::new(shared.clone());
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| StoreError::Internal(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                requests,
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// Closes the store and waits until the file is released (so it can be
    /// opened again), if this is the last handle; otherwise just drops it.
    pub async fn close(self) -> StoreResult<()> {
        let Ok(inner) = Arc::try_unwrap(self.inner) else {
            return Ok(());
        };
        let Inner {
            shared,
            requests,
            writer,
        } = inner;
        drop(requests);
        let handle = writer.lock().unwrap_or_else(PoisonError::into_inner).take();
        blocking(move || {
            if let Some(h) = handle {
                h.join()
                    .map_err(|_| StoreError::Internal("the writer thread panicked".into()))?;
            }
            drop(shared);
            Ok(())
        })
        .await?
    }

    /// The path of the store file.
    pub fn path(&self) -> &Path {
        &self.inner.shared.path
    }

    /// The revision before which history is forgotten.
    pub async fn compact_revision(&self) -> StoreResult<Revision> {
        let shared = self.inner.shared.clone();
        blocking(move || {
            read_meta(
                &shared.db.read().unwrap_or_else(PoisonError::into_inner),
                META_COMPACT,
            )
        })
        .await?
    }

    /// How many watchers are registered (for metrics and tests).
    pub fn watcher_count(&self) -> usize {
        self.inner
            .shared
            .hub
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> Request,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel();
        let gone = || StoreError::Internal("the store writer thread is gone".into());
        self.inner
            .requests
            .send(make(tx))
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    fn watch_blocking(
        shared: &Shared,
        prefix: &[u8],
        options: WatchOptions,
    ) -> StoreResult<WatchStream> {
        let db = shared.db.read().unwrap_or_else(PoisonError::into_inner);
        let (rx, lagged, from, upto, rtx) = {
            let mut hub = shared.hub.lock().unwrap_or_else(PoisonError::into_inner);
            let upto = hub.last_published;
            let from = match options.from_revision {
                0 => upto + 1,
                r => r,
            };
            let rtx = db
                .begin_read()
                .map_err(|e| StoreError::embedded("begin read", e))?;
            let (rx, lagged) =
                hub.subscribe(prefix, from, options.prev_kv, shared.options.watch_buffer);
            (rx, lagged, from, upto, rtx)
        };
        let meta = rtx
            .open_table(META)
            .map_err(|e| StoreError::embedded("open meta", e))?;
        let compact_revision = meta
            .get(META_COMPACT)
            .map_err(|e| StoreError::embedded("read meta", e))?
            .map(|g| g.value())
            .unwrap_or(0);
        if from < compact_revision {
            return Err(StoreError::Compacted {
                requested: from,
                compact_revision,
            });
        }
        let log = rtx
            .open_table(LOG)
            .map_err(|e| StoreError::embedded("open log", e))?;
        let mut replay = Vec::new();
        if from <= upto {
            let read = |e| StoreError::embedded("read log", e);
            for entry in log.range(from..=upto).map_err(read)? {
                let (rev, events) = entry.map_err(read)?;
                let events = decode_events(rev.value(), events.value())?;
                replay.extend(hub::filter(&events, prefix, options.prev_kv));
            }
        }
        tracing::debug!(prefix = %prefix.escape_ascii(), from, replayed = replay.len(), "watch started");
        Ok(Box::pin(Receiver::new(replay, rx, lagged, from)))
    }
}

impl Store for EmbeddedStore {
    async fn get(&self, key: &[u8]) -> StoreResult<Option<KeyValue>> {
        let shared = self.inner.shared.clone();
        let key = key.to_vec();
        blocking(move || {
            let db = shared.db.read().unwrap_or_else(PoisonError::into_inner);
            let rtx = db
                .begin_read()
                .map_err(|e| StoreError::embedded("begin read", e))?;
            let kv = rtx
                .open_table(KV)
                .map_err(|e| StoreError::embedded("open kv", e))?;
            match kv
                .get(key.as_slice())
                .map_err(|e| StoreError::embedded("read key", e))?
            {
                Some(g) => Ok(Some(decode_record(g.value())?.into_kv(&key))),
                None => Ok(None),
            }
        })
        .await?
    }

    async fn range(&self, prefix: &[u8], limit: Option<usize>) -> StoreResult<Range> {
        let shared = self.inner.shared.clone();
        let prefix = prefix.to_vec();
        blocking(move || {
            let db = shared.db.read().unwrap_or_else(PoisonError::into_inner);
            let rtx = db
                .begin_read()
                .map_err(|e| StoreError::embedded("begin read", e))?;
            let revision = {
                let meta = rtx
                    .open_table(META)
                    .map_err(|e| StoreError::embedded("open meta", e))?;
                meta.get(META_REVISION)
                    .map_err(|e| StoreError::embedded("read meta", e))?
                    .map(|g| g.value())
                    .unwrap_or(0)
            };
            let kv = rtx
                .open_table(KV)
                .map_err(|e| StoreError::embedded("open kv", e))?;
            let read = |e| StoreError::embedded("range", e);
            let mut kvs = Vec::new();
            let mut more = false;
            for entry in kv.range::<&[u8]>(prefix.as_slice()..).map_err(read)? {
                let (k, v) = entry.map_err(read)?;
                if !k.value().starts_with(&prefix) {
                    break;
                }
                if limit.is_some_and(|l| kvs.len() >= l) {
                    more = true;
                    break;
                }
                kvs.push(decode_record(v.value())?.into_kv(k.value()));
            }
            Ok(Range {
                kvs,
                revision,
                more,
            })
        })
        .await?
    }

    async fn txn(&self, txn: Txn) -> StoreResult<Option<Revision>> {
        txn.validate()?;
        self.request(|tx| Request::Txn(txn, tx)).await
    }

    async fn watch(&self, prefix: &[u8], options: WatchOptions) -> StoreResult<WatchStream> {
        let shared = self.inner.shared.clone();
        let prefix = prefix.to_vec();
        blocking(move || Self::watch_blocking(&shared, &prefix, options)).await?
    }

    async fn compact(&self, revision: Revision) -> StoreResult<()> {
        self.request(|tx| Request::Compact(revision, tx)).await
    }

    async fn current_revision(&self) -> StoreResult<Revision> {
        let shared = self.inner.shared.clone();
        blocking(move || {
            read_meta(
                &shared.db.read().unwrap_or_else(PoisonError::into_inner),
                META_REVISION,
            )
        })
        .await?
    }
}

fn read_meta(db: &Database, name: &str) -> StoreResult<u64> {
    let rtx = db
        .begin_read()
        .map_err(|e| StoreError::embedded("begin read", e))?;
    let meta = rtx
        .open_table(META)
        .map_err(|e| StoreError::embedded("open meta", e))?;
    Ok(meta
        .get(name)
        .map_err(|e| StoreError::embedded("read meta", e))?
        .map(|g| g.value())
        .unwrap_or(0))
}

/// Runs blocking redb work off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> StoreResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Internal(format!("store task failed: {e}")))
}
