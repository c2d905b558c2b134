//! An agent's view of one node (`ListRequest.node`, `WatchRequest.node`):
//! Pods bound to the node (`spec.nodeName`), and the ConfigMaps and
//! Secrets those Pods reference ([`references`]); PersistentVolumes pinned
//! to the node (list only: its local volumes); every other kind is
//! unaffected.
//!
//! **List.** Pods of the node; ConfigMaps / Secrets referenced by a Pod of
//! the node. The revision of a ConfigMap or Secret list is that of the
//! Pods read it was computed from (read first), so a watch from
//! `revision + 1` replays whatever happened between the two reads.
//!
//! **Watch.** The node filter works like a label selector: a Pod that is
//! bound to the node arrives as ADDED, one that leaves (deleted) as
//! DELETED. A ConfigMap or Secret is visible while some Pod of the node
//! references it (and it matches the watch's namespace and selector): when
//! a Pod event makes it referenced, it is read from the store and sent as
//! ADDED, at the Pod event's revision and *before* the Pod's own event;
//! when the last referencing Pod lets go, it is sent as DELETED, *after*
//! the Pod's event. Its own events pass through while it is visible.
//!
//! The store has no reads at past revisions, so the object sent for a new
//! reference is its current state (its resourceVersion may be newer than
//! the event's revision); its older events that follow in the stream are
//! skipped. No event is sent for an object the watcher has not been sent,
//! and nothing visible is left without its DELETED.
//!
//! **Resumes.** The references are computed from the node's Pods when the
//! watch starts (revision N, read after the store watch opened). Events
//! between `from_revision` and N are replayed against those references,
//! as the watcher's own state before `from_revision` is unknown: a Pod
//! event there that adds a reference held at N sends the object (ADDED,
//! once, possibly one the watcher already has), one that drops a
//! reference not held at N sends a DELETED (once, possibly for an object
//! the watcher never had); ConfigMap/Secret events there count as visible
//! if referenced at N. At N the watcher then holds exactly what is
//! referenced, and from N on the rules above hold exactly. A watcher that
//! lists with `node` and watches from the list's revision + 1 replays
//! only what happened since its list.

mod refs;
mod state;

use jotasu_api::{Kind, LabelSelector};

pub use refs::{References, bound_to, references};
pub use state::{NodeScope, Step};

use super::error::ApiResult;
use super::keys::{kind_prefix, split_key};
use super::watch::{Event, EventType, WatchSpec};
use super::{ApiServer, raw};
use crate::store::{Revision, Store};

impl<S: Store> ApiServer<S> {
    /// Objects of `kind` as the agent of `node` sees them (see the module
    /// docs), as JSON, with the revision to watch from + 1.
    pub async fn list_for_node(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: &LabelSelector,
        node: &str,
    ) -> ApiResult<(Vec<String>, Revision)> {
        match kind {
            Kind::Pod => {
                self.list_where(kind, namespace, selector, |kv| {
                    bound_to(node, &kv.key, &kv.value)
                })
                .await
            }
            Kind::ConfigMap | Kind::Secret => {
                let spec = WatchSpec {
                    kinds: vec![kind],
                    namespace: namespace.map(str::to_owned),
                    node: Some(node.to_owned()),
                    ..WatchSpec::default()
                };
                let scope = self.node_pods(&spec, node).await?;
                let referenced = scope.referenced();
                let (items, _) = self
                    .list_where(kind, namespace, selector, |kv| {
                        Ok(referenced.binary_search(&kv.key).is_ok())
                    })
                    .await?;
                Ok((items, scope.listed_at()))
            }
            // The node's local volumes: those its node affinity pins to it.
            Kind::PersistentVolume => {
                self.list_where(kind, namespace, selector, |kv| {
                    let pv: jotasu_api::PersistentVolume = serde_json::from_slice(&kv.value)
                        .map_err(|e| super::error::ApiServerError::Corrupt {
                            key: String::from_utf8_lossy(&kv.key).into_owned(),
                            reason: e.to_string(),
                        })?;
                    Ok(crate::controllers::volumes::matching::pinned_node(&pv) == Some(node))
                })
                .await
            }
            _ => self.list(kind, namespace, selector).await,
        }
    }

    /// The scope of a node's watch at its start: the node's Pods now, and
    /// whether each object they reference is there unchanged since.
    pub(super) async fn node_scope(&self, spec: &WatchSpec, node: &str) -> ApiResult<NodeScope> {
        let mut scope = self.node_pods(spec, node).await?;
        for key in scope.referenced() {
            let current = self.store.get(&key).await?;
            scope.known(spec, &key, current.as_ref())?;
        }
        Ok(scope)
    }

    /// A node scope with the node's Pods (of the watch's namespace) read.
    async fn node_pods(&self, spec: &WatchSpec, node: &str) -> ApiResult<NodeScope> {
        let mut scope = NodeScope::new(spec, node);
        if scope.tracks_references() {
            let pods = self
                .store
                .range(&kind_prefix(Kind::Pod, spec.namespace.as_deref()), None)
                .await?;
            scope.listed(&pods.kvs, pods.revision)?;
        }
        Ok(scope)
    }

    /// Does the reads a step asks for; the event to send, if any.
    pub(super) async fn resolve(
        &self,
        spec: &WatchSpec,
        scope: &mut NodeScope,
        step: Step,
    ) -> ApiResult<Option<Event>> {
        match step {
            Step::Send(event) => Ok(Some(event)),
            Step::Add { key, revision } => {
                let Some(kv) = self.store.get(&key).await? else {
                    return Ok(None);
                };
                if !spec.wants(&kv.key, &kv.value)? {
                    return Ok(None);
                }
                scope.shown(&key, kv.mod_revision);
                Ok(Some(Event {
                    kind: EventType::Added,
                    json: raw::stamp(&kv.key, &kv.value, kv.mod_revision)?,
                    revision,
                }))
            }
            Step::Remove { key, revision } => {
                let json = match self.store.get(&key).await? {
                    Some(kv) => raw::stamp(&kv.key, &kv.value, kv.mod_revision)?,
                    None => stub(&key, revision),
                };
                Ok(Some(Event {
                    kind: EventType::Deleted,
                    json,
                    revision,
                }))
            }
        }
    }
}

/// The identity of a deleted object whose last state is no longer stored.
fn stub(key: &[u8], revision: Revision) -> String {
    let (kind, namespace, name) = split_key(key).unwrap_or((Kind::ConfigMap, None, ""));
    serde_json::json!({
        "apiVersion": kind.api_version(),
        "kind": kind.as_str(),
        "metadata": {
            "name": name,
            "namespace": namespace,
            "resourceVersion": revision.to_string(),
        }
    })
    .to_string()
}
