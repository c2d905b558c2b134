//! Watches as the API serves them: store events under `/registry/` turned
//! into typed ADDED / MODIFIED / DELETED events, filtered by kind, namespace
//! and label selector (an object that stops matching is DELETED for this
//! watcher, one that starts matching is ADDED, as Kubernetes does), and,
//! for an agent, by node ([`super::node_scope`]).
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
use super::node_scope::{NodeScope, bound_to};
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
    /// An agent's view of one node: Pods bound to it, ConfigMaps and
    /// Secrets its Pods reference (see [`super::node_scope`]).
    pub node: Option<String>,
}

/// One change, with the object after it (before it, for deletions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventType,
    /// The object's JSON, resourceVersion stamped.
    pub json: String,
    /// The store revision of the change.
    pub revision: Revision,
}

/// Events queued per watcher between the store and the gRPC stream.
pub(crate) const WATCH_QUEUE: usize = 1024;

impl WatchSpec {
    fn prefix(&self) -> Vec<u8> {
        match self.kinds.as_slice() {
            // A node's ConfigMaps and Secrets follow its Pods' events too.
            [Kind::ConfigMap | Kind::Secret] if self.node.is_some() => ROOT.as_bytes().to_vec(),
            [kind] => kind_prefix(*kind, self.namespace.as_deref()),
            _ => ROOT.as_bytes().to_vec(),
        }
    }

    /// Whether objects of `kind` are followed.
    pub fn follows(&self, kind: Kind) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }

    /// Whether the object stored at `key` as `value` is one this watcher
    /// follows (for a node's watch, Pods only if bound to the node; the
    /// references of ConfigMaps and Secrets are the node scope's business).
    pub fn wants(&self, key: &[u8], value: &[u8]) -> ApiResult<bool> {
        let Some((kind, namespace, _)) = split_key(key) else {
            return Ok(false);
        };
        Ok(self.follows(kind)
            && (namespace.is_none()
                || self.namespace.is_none()
                || self.namespace.as_deref() == namespace)
            && raw::matches(&self.selector, key, value)?
            && match (&self.node, kind) {
                (Some(node), Kind::Pod) => bound_to(node, key, value)?,
                _ => true,
            })
    }

    /// The event this watcher sees for one store event, if any.
    pub fn translate(&self, ev: &WatchEvent) -> ApiResult<Option<Event>> {
        let was = match &ev.prev_kv {
            Some(p) => self.wants(&p.key, &p.value)?,
            None => false,
        };
        let now = ev.kind == EventKind::Put && self.wants(&ev.kv.key, &ev.kv.value)?;
        emit(ev, was, now)
    }
}

/// The event for a store event, given whether its object was visible to
/// the watcher before and is after.
pub fn emit(ev: &WatchEvent, was: bool, now: bool) -> ApiResult<Option<Event>> {
    if ev.kind == EventKind::Delete && ev.prev_kv.is_none() && split_key(&ev.kv.key).is_some() {
        return Err(ApiServerError::Corrupt {
            key: String::from_utf8_lossy(&ev.kv.key).into_owned(),
            reason: "a delete event without the deleted value".into(),
        });
    }
    let current = || raw::stamp(&ev.kv.key, &ev.kv.value, ev.kv.mod_revision);
    let (kind, json) = match (was, now, &ev.prev_kv) {
        (false, false, _) => return Ok(None),
        (false, true, _) => (EventType::Added, current()?),
        (true, true, _) => (EventType::Modified, current()?),
        (true, false, Some(before)) if ev.kind == EventKind::Delete => (
            EventType::Deleted,
            raw::stamp(&before.key, &before.value, ev.revision)?,
        ),
        (true, false, _) => (EventType::Deleted, current()?),
    };
    Ok(Some(Event {
        kind,
        json,
        revision: ev.revision,
    }))
}

impl<S: Store> ApiServer<S> {
    /// Starts a watch. The receiver yields events in revision order; an
    /// error ends it (`resync` when the start was compacted away, shutting
    /// down with the revision to resume from, `Lagged` with it for a
    /// watcher too slow for the watch cache, [`super::watch_cache`]).
    pub async fn watch(&self, spec: WatchSpec) -> ApiResult<mpsc::Receiver<ApiResult<Event>>> {
        // One kind: served from the control plane's watch cache if it can.
        if let Some(rx) = self.watch_cached(&spec).await? {
            return Ok(rx);
        }
        // Open the store watch before answering, so a bad start revision is
        // the call's error and events from now on are not missed.
        let options = WatchOptions::from_revision(spec.from_revision).with_prev_kv();
        let stream = self.store.watch(&spec.prefix(), options).await?;
        // A node's scope starts from what it has now (read after the store
        // watch opened: nothing between is missed).
        let scope = match &spec.node {
            Some(node) => Some(self.node_scope(&spec, node).await?),
            None => None,
        };
        let (tx, rx) = mpsc::channel(WATCH_QUEUE);
        let me = self.clone();
        tokio::spawn(async move { me.pump(spec, scope, stream, tx).await });
        Ok(rx)
    }

    /// Sends what one store event means for this watcher; false when the
    /// watch is over (the receiver left, or an error was sent).
    pub(crate) async fn deliver(
        &self,
        spec: &WatchSpec,
        scope: Option<&mut NodeScope>,
        ev: &WatchEvent,
        tx: &mpsc::Sender<ApiResult<Event>>,
    ) -> bool {
        let events = match self.events_for(spec, scope, ev).await {
            Ok(events) => events,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return false;
            }
        };
        for event in events {
            if tx.send(Ok(event)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// The events one store event makes for this watcher, in order.
    async fn events_for(
        &self,
        spec: &WatchSpec,
        scope: Option<&mut NodeScope>,
        ev: &WatchEvent,
    ) -> ApiResult<Vec<Event>> {
        let Some(scope) = scope else {
            return Ok(spec.translate(ev)?.into_iter().collect());
        };
        let mut events = Vec::new();
        for step in scope.step(spec, ev)? {
            events.extend(self.resolve(spec, scope, step).await?);
        }
        Ok(events)
    }

    async fn pump(
        &self,
        spec: WatchSpec,
        mut scope: Option<NodeScope>,
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
                    if !self.deliver(&spec, scope.as_mut(), &ev, &tx).await {
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
pub(crate) fn next(last: Revision, from: Revision) -> Revision {
    if last == 0 { from } else { last + 1 }
}
