//! Watches as the API serves them: store events under `/registry/` turned
//! into typed ADDED / MODIFIED / DELETED events, filtered by kind, namespace
//! and label selector (an object that stops matching is DELETED for this
//! watcher, one that starts matching is ADDED, as Kubernetes does).
//!
//! No event is lost silently: a store watch that lags is resumed from its
//! `resume_from` (skipping what was already sent of that revision); one
//! that starts before the compaction ends with `resync`; shutdown ends it
//! with the revision to resume from.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt as _;
pub use jotasu_api::EventType;
use jotasu_api::{Kind, LabelSelector};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::error::{ApiResult, ApiServerError};
use super::keys::{ROOT, kind_prefix, split_key};
use super::{ApiServer, raw};
use crate::store::{EventKind, Revision, Store, StoreError, WatchEvent, WatchOptions};

/// What a watch follows.
#[derive(Debug, Clone, Default)]
pub struct WatchSpec {
    /// Kinds (empty: all).
    pub kinds: Vec<Kind>,
    /// One namespace, or all.
    pub namespace: Option<String>,
    /// Objects whose labels match.
    pub selector: LabelSelector,
    /// First revision to deliver; 0: from now on.
    pub from_revision: Revision,
}

/// One change, with the object after it (before it, for deletions).
#[derive(Debug, Clone)]
pub struct Event {
    /// What happened.
    pub kind: EventType,
    /// The object's JSON, resourceVersion stamped.
    pub json: String,
    /// The store revision of the change.
    pub revision: Revision,
}

/// Events queued per watcher between the store and the gRPC stream.
const WATCH_QUEUE: usize = 1024;

impl WatchSpec {
    fn prefix(&self) -> Vec<u8> {
        match self.kinds.as_slice() {
            [kind] => kind_prefix(*kind, self.namespace.as_deref()),
            _ => ROOT.as_bytes().to_vec(),
        }
    }

    /// Whether the object stored at `key` as `value` is one this watcher follows.
    fn wants(&self, key: &[u8], value: &[u8]) -> ApiResult<bool> {
        let Some((kind, namespace, _)) = split_key(key) else {
            return Ok(false);
        };
        Ok((self.kinds.is_empty() || self.kinds.contains(&kind))
            && (namespace.is_none()
                || self.namespace.is_none()
                || self.namespace.as_deref() == namespace)
            && raw::matches(&self.selector, key, value)?)
    }

    /// The event this watcher sees for one store event, if any.
    fn translate(&self, ev: &WatchEvent) -> ApiResult<Option<Event>> {
        let was = match &ev.prev_kv {
            Some(p) => self.wants(&p.key, &p.value)?,
            None => false,
        };
        let (kind, json) = match ev.kind {
            EventKind::Put => {
                let json = || raw::stamp(&ev.kv.key, &ev.kv.value, ev.kv.mod_revision);
                match (was, self.wants(&ev.kv.key, &ev.kv.value)?) {
                    (false, true) => (EventType::Added, json()?),
                    (true, true) => (EventType::Modified, json()?),
                    (true, false) => (EventType::Deleted, json()?),
                    (false, false) => return Ok(None),
                }
            }
            EventKind::Delete => match &ev.prev_kv {
                Some(before) if was => (
                    EventType::Deleted,
                    raw::stamp(&before.key, &before.value, ev.revision)?,
                ),
                Some(_) => return Ok(None),
                None if split_key(&ev.kv.key).is_none() => return Ok(None),
                None => {
                    return Err(ApiServerError::Corrupt {
                        key: String::from_utf8_lossy(&ev.kv.key).into_owned(),
                        reason: "a delete event without the deleted value".into(),
                    });
                }
            },
        };
        Ok(Some(Event {
            kind,
            json,
            revision: ev.revision,
        }))
    }
}

impl<S: Store> ApiServer<S> {
    /// Starts a watch. The receiver yields events in revision order; an
    /// error ends it (`resync` when the start was compacted away, shutting
    /// down with the revision to resume from).
    pub async fn watch(&self, spec: WatchSpec) -> ApiResult<mpsc::Receiver<ApiResult<Event>>> {
        // Open the store watch before answering, so a bad start revision is
        // the call's error and events from now on are not missed.
        let options = WatchOptions::from_revision(spec.from_revision).with_prev_kv();
        let stream = self.store.watch(&spec.prefix(), options).await?;
        let (tx, rx) = mpsc::channel(WATCH_QUEUE);
        let me = self.clone();
        tokio::spawn(async move { me.pump(spec, stream, tx).await });
        Ok(rx)
    }

    async fn pump(
        &self,
        spec: WatchSpec,
        mut stream: crate::store::WatchStream,
        tx: mpsc::Sender<ApiResult<Event>>,
    ) {
        let mut shutdown = self.shutdown.clone();
        // The last revision delivered and the keys of it already sent, so a
        // resumed store watch does not repeat them.
        let mut last: Revision = 0;
        let mut sent_at_last: HashSet<Vec<u8>> = HashSet::new();
        loop {
            let item = tokio::select! {
                biased;
                item = stream.next() => item,
                () = async { drop(shutdown.wait_for(|stop| *stop).await) } => {
                    let resume_from = match next(last, spec.from_revision) {
                        0 => self.store.current_revision().await.unwrap_or(0) + 1,
                        r => r,
                    };
                    let _ = tx.send(Err(ApiServerError::ShuttingDown { resume_from })).await;
                    return;
                }
                () = tx.closed() => return,
            };
            let resume_from = match item {
                Some(Ok(ev)) => {
                    if ev.revision == last && sent_at_last.contains(&ev.kv.key) {
                        continue;
                    }
                    if ev.revision != last {
                        last = ev.revision;
                        sent_at_last.clear();
                    }
                    sent_at_last.insert(ev.kv.key.clone());
                    let event = match spec.translate(&ev) {
                        Ok(Some(e)) => Ok(e),
                        Ok(None) => continue,
                        Err(e) => Err(e),
                    };
                    let failed = event.is_err();
                    if tx.send(event).await.is_err() || failed {
                        return;
                    }
                    continue;
                }
                Some(Err(StoreError::Lagged { resume_from })) => {
                    debug!(resume_from, "watch lagged behind the store; resuming");
                    resume_from
                }
                Some(Err(
                    StoreError::WatchClosed { resume_from }
                    | StoreError::WatchCanceled { resume_from, .. },
                )) => {
                    warn!(resume_from, "store watch closed; resuming in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    resume_from
                }
                None => next(last, spec.from_revision),
                Some(Err(e)) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            let options = WatchOptions::from_revision(resume_from).with_prev_kv();
            stream = match self.store.watch(&spec.prefix(), options).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
        }
    }
}

/// The revision after the last one delivered (`from` if none was yet; 0: unknown).
fn next(last: Revision, from: Revision) -> Revision {
    if last == 0 { from } else { last + 1 }
}
