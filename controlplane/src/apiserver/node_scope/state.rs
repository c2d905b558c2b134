//! [`NodeScope`]: the state of one node-scoped watch, as a step function
//! from store events to what the watcher is sent (see the parent module
//! for the rules). Pure: the reads it needs are returned as
//! [`Step::Add`] / [`Step::Remove`] for the pump to do.

use std::collections::{BTreeSet, HashMap, HashSet};

use jotasu_api::{Kind, ObjectRef};

use super::refs::{bound_to, decode_pod, references};
use crate::apiserver::error::ApiResult;
use crate::apiserver::keys::{object_key, split_key};
use crate::apiserver::watch::{Event, WatchSpec, emit};
use crate::store::{EventKind, KeyValue, Revision, WatchEvent};

/// What the pump does for one store event, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this event.
    Send(Event),
    /// A Pod of the node started referencing `key`: read it and, if it
    /// exists and the watch wants it, send it as ADDED at `revision`, then
    /// report it with [`NodeScope::shown`].
    Add {
        /// The ConfigMap's or Secret's store key.
        key: Vec<u8>,
        /// The revision of the Pod event.
        revision: Revision,
    },
    /// No Pod of the node references `key` any more: send it as DELETED
    /// at `revision` (its current state, or a stub if it is gone).
    Remove {
        /// The ConfigMap's or Secret's store key.
        key: Vec<u8>,
        /// The revision of the Pod event.
        revision: Revision,
    },
}

/// The node-scoped state of one watch.
#[derive(Debug)]
pub struct NodeScope {
    node: String,
    /// Whether ConfigMap / Secret references are followed (the watch has the kind).
    config_maps: bool,
    secrets: bool,
    /// The revision the node's pods were listed at: events up to it are
    /// replayed against the references of that list.
    listed_at: Revision,
    /// The node's pods (store key) and the keys they reference.
    pods: HashMap<Vec<u8>, BTreeSet<Vec<u8>>>,
    /// How many of the node's pods reference each key.
    counts: HashMap<Vec<u8>, usize>,
    /// Referenced objects the watcher holds (after `listed_at`).
    sent: HashSet<Vec<u8>>,
    /// Referenced objects whose state at `listed_at` is unknown (they
    /// changed or went away before the start could read them): their next
    /// event's previous value says whether the watcher holds them.
    pending: HashSet<Vec<u8>>,
    /// Objects sent by a read rather than by their own event, and the
    /// revision of the state sent: their older events are skipped.
    shown_until: HashMap<Vec<u8>, Revision>,
    /// Objects sent as DELETED while replaying (each once).
    dropped: HashSet<Vec<u8>>,
}

impl NodeScope {
    /// The scope of `node` for a watch of `spec`, before the start's list.
    pub fn new(spec: &WatchSpec, node: &str) -> Self {
        Self {
            node: node.to_owned(),
            config_maps: spec.follows(Kind::ConfigMap),
            secrets: spec.follows(Kind::Secret),
            listed_at: 0,
            pods: HashMap::new(),
            counts: HashMap::new(),
            sent: HashSet::new(),
            pending: HashSet::new(),
            shown_until: HashMap::new(),
            dropped: HashSet::new(),
        }
    }

    /// Whether references are followed at all (else only Pods are filtered).
    pub fn tracks_references(&self) -> bool {
        self.config_maps || self.secrets
    }

    /// The start: the pods (of the watch's namespace) at `revision`.
    pub fn listed(&mut self, pods: &[KeyValue], revision: Revision) -> ApiResult<()> {
        self.listed_at = revision;
        for kv in pods {
            if let Some(keys) = self.references_of(kv)? {
                for k in &keys {
                    *self.counts.entry(k.clone()).or_default() += 1;
                }
                self.pods.insert(kv.key.clone(), keys);
            }
        }
        Ok(())
    }

    /// The revision of the start's list of the node's pods.
    pub fn listed_at(&self) -> Revision {
        self.listed_at
    }

    /// The keys the node's pods reference, sorted.
    pub fn referenced(&self) -> Vec<Vec<u8>> {
        let mut keys: Vec<_> = self.counts.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// What the start read for a referenced `key` (after the pods' list):
    /// unchanged since the list, the watcher holds it if the watch wants
    /// it; changed or gone, its next event tells.
    pub fn known(
        &mut self,
        spec: &WatchSpec,
        key: &[u8],
        current: Option<&KeyValue>,
    ) -> ApiResult<()> {
        match current {
            Some(kv) if kv.mod_revision <= self.listed_at => {
                if spec.wants(&kv.key, &kv.value)? {
                    self.sent.insert(key.to_vec());
                }
            }
            _ => {
                self.pending.insert(key.to_vec());
            }
        }
        Ok(())
    }

    /// The pump sent `key` as read, at `mod_revision`.
    pub fn shown(&mut self, key: &[u8], mod_revision: Revision) {
        self.sent.insert(key.to_vec());
        self.pending.remove(key);
        self.shown_until.insert(key.to_vec(), mod_revision);
    }

    /// What to do for one store event.
    pub fn step(&mut self, spec: &WatchSpec, ev: &WatchEvent) -> ApiResult<Vec<Step>> {
        match split_key(&ev.kv.key) {
            Some((Kind::Pod, namespace, _)) => {
                let namespace = namespace.map(str::to_owned);
                self.pod_event(spec, ev, namespace.as_deref())
            }
            Some((Kind::ConfigMap, _, _)) if self.config_maps => self.config_event(spec, ev),
            Some((Kind::Secret, _, _)) if self.secrets => self.config_event(spec, ev),
            _ => Ok(spec.translate(ev)?.map(Step::Send).into_iter().collect()),
        }
    }

    /// The keys (of followed kinds) a stored pod references, if it is bound here.
    fn references_of(&self, kv: &KeyValue) -> ApiResult<Option<BTreeSet<Vec<u8>>>> {
        let Some((Kind::Pod, Some(namespace), _)) = split_key(&kv.key) else {
            return Ok(None);
        };
        if !bound_to(&self.node, &kv.key, &kv.value)? {
            return Ok(None);
        }
        let refs = references(&decode_pod(&kv.key, &kv.value)?);
        let key = |kind, name: String| {
            object_key(&ObjectRef {
                kind,
                namespace: Some(namespace.to_owned()),
                name,
            })
        };
        let mut keys = BTreeSet::new();
        if self.config_maps {
            keys.extend(
                refs.config_maps
                    .into_iter()
                    .map(|n| key(Kind::ConfigMap, n)),
            );
        }
        if self.secrets {
            keys.extend(refs.secrets.into_iter().map(|n| key(Kind::Secret, n)));
        }
        Ok(Some(keys))
    }

    /// A Pod event: the references it adds come before it (a consumer has
    /// a pod's configuration when the pod arrives), those it drops after.
    fn pod_event(
        &mut self,
        spec: &WatchSpec,
        ev: &WatchEvent,
        namespace: Option<&str>,
    ) -> ApiResult<Vec<Step>> {
        let own = spec.translate(ev)?.map(Step::Send);
        let in_namespace = spec.namespace.is_none() || spec.namespace.as_deref() == namespace;
        if !self.tracks_references() || !in_namespace {
            return Ok(own.into_iter().collect());
        }
        let before = match &ev.prev_kv {
            Some(p) => self.references_of(p)?,
            None => None,
        };
        let after = match ev.kind {
            EventKind::Put => self.references_of(&ev.kv)?,
            EventKind::Delete => None,
        };
        let (adds, removes) = if ev.revision <= self.listed_at {
            self.replay(before.unwrap_or_default(), after.unwrap_or_default())
        } else {
            self.apply(&ev.kv.key, after)
        };
        let revision = ev.revision;
        let mut steps: Vec<Step> = adds
            .into_iter()
            .map(|key| Step::Add { key, revision })
            .collect();
        steps.extend(own);
        steps.extend(
            removes
                .into_iter()
                .map(|key| Step::Remove { key, revision }),
        );
        Ok(steps)
    }

    /// A pod event after the start: the counts move exactly.
    fn apply(
        &mut self,
        pod: &[u8],
        after: Option<BTreeSet<Vec<u8>>>,
    ) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let old = self.pods.remove(pod).unwrap_or_default();
        let new = after.clone().unwrap_or_default();
        if let Some(keys) = after {
            self.pods.insert(pod.to_vec(), keys);
        }
        let mut adds = Vec::new();
        for k in new.difference(&old) {
            let count = self.counts.entry(k.clone()).or_default();
            *count += 1;
            if *count == 1 {
                adds.push(k.clone());
            }
        }
        let mut removes = Vec::new();
        for k in old.difference(&new) {
            let Some(count) = self.counts.get_mut(k) else {
                continue;
            };
            *count -= 1;
            if *count == 0 {
                self.counts.remove(k);
                self.shown_until.remove(k);
                let held = self.sent.remove(k);
                if self.pending.remove(k) || held {
                    removes.push(k.clone());
                }
            }
        }
        (adds, removes)
    }

    /// A pod event replayed from before the start: the references of the
    /// start stand. A key the pod starts referencing that is referenced at
    /// the start is sent (once); one it stops referencing that is not
    /// referenced at the start is DELETED (once).
    fn replay(
        &mut self,
        before: BTreeSet<Vec<u8>>,
        after: BTreeSet<Vec<u8>>,
    ) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let adds = after
            .difference(&before)
            .filter(|k| self.counts.contains_key(*k) && !self.shown_until.contains_key(*k))
            .cloned()
            .collect();
        let removes = before
            .difference(&after)
            .filter(|k| !self.counts.contains_key(*k))
            .filter(|k| self.dropped.insert((*k).clone()))
            .cloned()
            .collect();
        (adds, removes)
    }

    /// A ConfigMap or Secret event: visible while referenced and wanted.
    fn config_event(&mut self, spec: &WatchSpec, ev: &WatchEvent) -> ApiResult<Vec<Step>> {
        let key = &ev.kv.key;
        if self
            .shown_until
            .get(key)
            .is_some_and(|shown| ev.revision <= *shown)
        {
            return Ok(Vec::new());
        }
        let referenced = self.counts.contains_key(key);
        let now = referenced && ev.kind == EventKind::Put && spec.wants(key, &ev.kv.value)?;
        let prev_visible = referenced
            && match &ev.prev_kv {
                Some(p) => spec.wants(&p.key, &p.value)?,
                None => false,
            };
        let was = if ev.revision <= self.listed_at || self.pending.remove(key) {
            prev_visible
        } else {
            self.sent.contains(key)
        };
        if ev.revision > self.listed_at {
            if now {
                self.sent.insert(key.clone());
            } else {
                self.sent.remove(key);
            }
        }
        Ok(emit(ev, was, now)?.map(Step::Send).into_iter().collect())
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
