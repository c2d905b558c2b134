//! Node heartbeats and the pod usage they carry, held in memory (as
//! metrics-server holds usage): the node lifecycle controller reads when
//! each node last spoke, the autoscaler reads pod CPU. Nothing here is
//! stored: after a control-plane restart every node gets a fresh grace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use jotasu_api::{Kind, ObjectRef};

use super::ApiServer;
use super::error::{ApiResult, ApiServerError};
use super::keys::object_key;
use crate::store::Store;

/// One pod's usage as its node last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// CPU in millicores.
    pub cpu_millicores: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
}

/// Pod `(namespace, name)`.
type PodKey = (String, String);

#[derive(Debug, Default)]
struct Registry {
    /// When each node last spoke, and the pods it reported.
    nodes: HashMap<String, (Instant, Vec<PodKey>)>,
    /// Every reported pod's usage (a pod runs on one node).
    pods: HashMap<PodKey, Usage>,
}

/// The heartbeat registry, shared by the API server and the controllers.
#[derive(Debug, Clone, Default)]
pub struct Heartbeats {
    registry: Arc<Mutex<Registry>>,
}

impl Heartbeats {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a heartbeat of `node` now, with its pods' usage.
    pub fn record(&self, node: &str, pods: impl IntoIterator<Item = (PodKey, Usage)>) {
        self.record_at(node, Instant::now(), pods);
    }

    /// Records a heartbeat at a given instant (tests).
    pub fn record_at(
        &self,
        node: &str,
        at: Instant,
        pods: impl IntoIterator<Item = (PodKey, Usage)>,
    ) {
        let mut r = self.lock();
        let mut keys = Vec::new();
        let mut fresh = HashMap::new();
        for (key, usage) in pods {
            keys.push(key.clone());
            fresh.insert(key, usage);
        }
        if let Some((_, old)) = r.nodes.insert(node.to_owned(), (at, keys)) {
            for key in old {
                r.pods.remove(&key);
            }
        }
        r.pods.extend(fresh);
    }

    /// When `node` last sent a heartbeat (None: not since this control plane started).
    pub fn last(&self, node: &str) -> Option<Instant> {
        self.lock().nodes.get(node).map(|(at, _)| *at)
    }

    /// The usage of pod `namespace/name`, as its node last reported it.
    pub fn pod_usage(&self, namespace: &str, name: &str) -> Option<Usage> {
        let key = (namespace.to_owned(), name.to_owned());
        self.lock().pods.get(&key).copied()
    }

    /// Forgets a node (it was deleted).
    pub fn forget(&self, node: &str) {
        let mut r = self.lock();
        if let Some((_, keys)) = r.nodes.remove(node) {
            for key in keys {
                r.pods.remove(&key);
            }
        }
    }
}

impl<S: Store> ApiServer<S> {
    /// A heartbeat from `node`, which must be registered.
    pub async fn heartbeat(
        &self,
        node: &str,
        pods: impl IntoIterator<Item = (PodKey, Usage)>,
    ) -> ApiResult<()> {
        let r = ObjectRef {
            kind: Kind::Node,
            namespace: None,
            name: node.to_owned(),
        };
        if self.store.get(&object_key(&r)).await?.is_none() {
            return Err(ApiServerError::NotFound(r));
        }
        self.heartbeats.record(node, pods);
        Ok(())
    }

    /// The heartbeat registry.
    pub fn heartbeats(&self) -> &Heartbeats {
        &self.heartbeats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_reads() {
        let h = Heartbeats::default();
        assert!(h.last("n1").is_none());
        let usage = Usage {
            cpu_millicores: 250,
            memory_bytes: 1 << 20,
        };
        h.record("n1", [(("default".to_owned(), "p".to_owned()), usage)]);
        assert!(h.last("n1").is_some());
        assert_eq!(h.pod_usage("default", "p"), Some(usage));
        assert_eq!(h.pod_usage("default", "q"), None);
        h.forget("n1");
        assert!(h.last("n1").is_none());
    }
}
