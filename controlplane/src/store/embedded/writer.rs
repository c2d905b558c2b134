//! The writer thread: the only place that writes the file. It takes queued
//! requests, applies as many as are waiting in one redb transaction (group
//! commit: one fsync for the batch, each request still gets its own
//! revision), commits durably, publishes the events, then answers.
use std::sync::{Arc, PoisonError};

use redb::{Durability, ReadableTable as _, Table, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::{
    KV, LOG, META, META_COMPACT, META_REVISION, Shared,
    codec::{Record, decode_record, encode_events, encode_record},
};
use crate::store::{EventKind, KeyValue, Op, Revision, StoreError, StoreResult, Txn, WatchEvent};

/// How many queued requests one redb transaction may carry.
const MAX_GROUP: usize = 256;

/// A request to the writer thread.
#[derive(Debug)]
pub(super) enum Request {
    /// Apply a transaction.
    Txn(Txn, oneshot::Sender<StoreResult<Option<Revision>>>),
    /// Compact history before a revision.
    Compact(Revision, oneshot::Sender<StoreResult<()>>),
}

/// The writer's bookkeeping between transactions.
#[derive(Debug)]
pub(super) struct Writer {
    shared: Arc<Shared>,
    retention_compactions: u64,
}

impl Writer {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            retention_compactions: 0,
        }
    }

    /// Serves requests until every store handle is gone.
    pub fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        let _span =
            tracing::info_span!("store-writer", path = %self.shared.path.display()).entered();
        while let Some(first) = rx.blocking_recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(r) => group.push(r),
                    Err(_) => break,
                }
            }
            self.serve(group);
        }
        tracing::debug!("all store handles dropped; writer exits");
    }

    fn serve(&mut self, group: Vec<Request>) {
        let mut replies = Vec::with_capacity(group.len());
        let mut published: Vec<(Revision, Vec<WatchEvent>)> = Vec::new();
        let mut compact_file = false;
        let outcome = (|| -> StoreResult<()> {
            let db = self
                .shared
                .db
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            let mut wtx = db
                .begin_write()
                .map_err(|e| StoreError::embedded("begin write", e))?;
            wtx.set_durability(Durability::Immediate)
                .map_err(|e| StoreError::embedded("set durability", e))?;
            {
                let mut t = Tables::open(&wtx)?;
                for req in group {
                    match req {
                        Request::Txn(txn, reply) => {
                            let r = t.apply(&txn);
                            if let Ok(Some((rev, events))) = &r {
                                published.push((*rev, events.clone()));
                            }
                            let fatal = r
                                .as_ref()
                                .err()
                                .filter(|e| is_fatal(e))
                                .map(|e| e.to_string());
                            replies.push(Reply::Txn(reply, r.map(|o| o.map(|(rev, _)| rev))));
                            if let Some(e) = fatal {
                                // Partial writes may be in the transaction: roll it all back.
                                return Err(StoreError::Internal(e));
                            }
                        }
                        Request::Compact(rev, reply) => {
                            let r = t.compact(rev);
                            let fatal = r
                                .as_ref()
                                .err()
                                .filter(|e| is_fatal(e))
                                .map(|e| e.to_string());
                            replies.push(Reply::Compact(reply, r));
                            if let Some(e) = fatal {
                                return Err(StoreError::Internal(e));
                            }
                        }
                    }
                }
                if let Some(rev) = t.retention_point(self.shared.options.retention)? {
                    t.compact(rev)?;
                    self.retention_compactions += 1;
                    let every = self.shared.options.file_compaction_every;
                    compact_file = every > 0 && self.retention_compactions.is_multiple_of(every);
                    tracing::debug!(compact_revision = rev, "compacted history by retention");
                }
            }
            wtx.commit()
                .map_err(|e| StoreError::embedded("commit", e))?;
            Ok(())
        })();
        match outcome {
            Ok(()) => {
                let mut hub = self
                    .shared
                    .hub
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                for (rev, events) in &published {
                    hub.publish(*rev, events);
                }
                drop(hub);
                for r in replies {
                    r.send();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "store write failed; the batch is rolled back");
                for r in replies {
                    r.fail(&e);
                }
            }
        }
        if compact_file {
            self.compact_file();
        }
    }

    /// redb's own compaction: gives back the pages freed by history
    /// compaction. It needs the database to itself, so readers wait.
    fn compact_file(&self) {
        let mut db = self
            .shared
            .db
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        match db.compact() {
            Ok(done) => tracing::debug!(done, "compacted the store file"),
            Err(e) => {
                tracing::warn!(error = %e, "could not compact the store file; will retry later")
            }
        }
    }
}

/// Storage failures (as opposed to refused requests) abort the whole batch.
fn is_fatal(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Embedded { .. } | StoreError::Corrupt(_) | StoreError::Internal(_)
    )
}

/// A reply held back until the batch is committed.
enum Reply {
    Txn(
        oneshot::Sender<StoreResult<Option<Revision>>>,
        StoreResult<Option<Revision>>,
    ),
    Compact(oneshot::Sender<StoreResult<()>>, StoreResult<()>),
}

impl Reply {
    fn send(self) {
        // A caller that went away no longer needs the answer.
        match self {
            Reply::Txn(tx, r) => drop(tx.send(r)),
            Reply::Compact(tx, r) => drop(tx.send(r)),
        }
    }

    fn fail(self, e: &StoreError) {
        let err = || StoreError::Internal(format!("the write batch was rolled back: {e}"));
        match self {
            Reply::Txn(tx, _) => drop(tx.send(Err(err()))),
            Reply::Compact(tx, _) => drop(tx.send(Err(err()))),
        }
    }
}

/// The three tables, open inside one write transaction.
struct Tables<'t> {
    kv: Table<'t, &'static [u8], &'static [u8]>,
    log: Table<'t, u64, &'static [u8]>,
    meta: Table<'t, &'static str, u64>,
}

impl<'t> Tables<'t> {
    fn open(wtx: &'t WriteTransaction) -> StoreResult<Self> {
        let open = |e| StoreError::embedded("open table", e);
        Ok(Self {
            kv: wtx.open_table(KV).map_err(open)?,
            log: wtx.open_table(LOG).map_err(open)?,
            meta: wtx.open_table(META).map_err(open)?,
        })
    }

    fn meta(&self, name: &str) -> StoreResult<u64> {
        Ok(self
            .meta
            .get(name)
            .map_err(|e| StoreError::embedded("read meta", e))?
            .map(|g| g.value())
            .unwrap_or(0))
    }

    fn record(&self, key: &[u8]) -> StoreResult<Option<Record>> {
        match self
            .kv
            .get(key)
            .map_err(|e| StoreError::embedded("read key", e))?
        {
            Some(g) => Ok(Some(decode_record(g.value())?)),
            None => Ok(None),
        }
    }

    /// Checks the guards, then applies the ops under the next revision.
    /// A failed guard writes nothing. `None`: nothing changed.
    fn apply(&mut self, txn: &Txn) -> StoreResult<Option<(Revision, Vec<WatchEvent>)>> {
        for c in &txn.compares {
            let current = self.record(&c.key)?.map(|r| r.mod_revision);
            if current.unwrap_or(0) != c.mod_revision {
                return Err(StoreError::Conflict {
                    key: c.key.clone(),
                    expected: c.mod_revision,
                    current,
                });
            }
        }
        let rev = self.meta(META_REVISION)? + 1;
        let mut events = Vec::with_capacity(txn.ops.len());
        let ins = |e| StoreError::embedded("write key", e);
        for op in &txn.ops {
            let key = op.key();
            let prev = self.record(key)?;
            match op {
                Op::Put { value, .. } => {
                    let new = Record {
                        value: value.clone(),
                        create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                        mod_revision: rev,
                        version: prev.as_ref().map_or(1, |p| p.version + 1),
                    };
                    self.kv
                        .insert(key, encode_record(&new).as_slice())
                        .map_err(ins)?;
                    events.push(WatchEvent {
                        kind: EventKind::Put,
                        kv: new.into_kv(key),
                        prev_kv: prev.map(|p| p.into_kv(key)),
                        revision: rev,
                    });
                }
                Op::Delete { .. } => {
                    let Some(prev) = prev else { continue };
                    self.kv.remove(key).map_err(ins)?;
                    events.push(WatchEvent {
                        kind: EventKind::Delete,
                        kv: KeyValue {
                            key: key.to_vec(),
                            value: Vec::new(),
                            create_revision: 0,
                            mod_revision: rev,
                            version: 0,
                        },
                        prev_kv: Some(prev.into_kv(key)),
                        revision: rev,
                    });
                }
            }
        }
        if events.is_empty() {
            return Ok(None);
        }
        self.log
            .insert(rev, encode_events(&events).as_slice())
            .map_err(|e| StoreError::embedded("append to log", e))?;
        self.meta
            .insert(META_REVISION, rev)
            .map_err(|e| StoreError::embedded("write meta", e))?;
        Ok(Some((rev, events)))
    }

    /// Forgets the log before `rev` (no-op at or below the current point).
    fn compact(&mut self, rev: Revision) -> StoreResult<()> {
        let current = self.meta(META_REVISION)?;
        if rev > current {
            return Err(StoreError::FutureRevision {
                requested: rev,
                current,
            });
        }
        if rev <= self.meta(META_COMPACT)? {
            return Ok(());
        }
        self.log
            .retain_in::<u64, _>(..rev, |_, _| false)
            .map_err(|e| StoreError::embedded("compact log", e))?;
        self.meta
            .insert(META_COMPACT, rev)
            .map_err(|e| StoreError::embedded("write meta", e))?;
        Ok(())
    }

    /// Where retention wants history to start, if compaction is due: once
    /// `retention + retention/8` revisions are kept, keep `retention`.
    fn retention_point(&self, retention: u64) -> StoreResult<Option<Revision>> {
        if retention == 0 {
            return Ok(None);
        }
        let current = self.meta(META_REVISION)?;
        let compact = self.meta(META_COMPACT)?.max(1);
        let slack = (retention / 8).max(1);
        if current.saturating_sub(compact) + 1 >= retention + slack {
            Ok(Some(current + 1 - retention))
        } else {
            Ok(None)
        }
    }
}
