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

/// What one node last said.
#[derive(Debug, Clone)]
struct Beat {
    at: Instant,
    pods: HashMap<(String, String), Usage>,
}

/// The heartbeat registry, shared by the API server and the controllers.
#[derive(Debug, Clone, Default)]
pub struct Heartbeats {
    nodes: Arc<Mutex<HashMap<String, Beat>>>,
}

impl Heartbeats {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Beat>> {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a heartbeat of `node` now, with its pods' usage.
    pub fn record(&self, node: &str, pods: impl IntoIterator<Item = ((String, String), Usage)>) {
        self.record_at(node, Instant::now(), pods);
    }

    /// Records a heartbeat at a given instant (tests).
    pub fn record_at(
        &self,
        node: &str,
        at: Instant,
        pods: impl IntoIterator<Item = ((String, String), Usage)>,
    ) {
        self.lock().insert(
            node.to_owned(),
            Beat {
                at,
                pods: pods.into_iter().collect(),
            },
        );
    }

    /// When `node` last sent a heartbeat (None: not since this control plane started).
    pub fn last(&self, node: &str) -> Option<Instant> {
        self.lock().get(node).map(|b| b.at)
    }

    /// The usage of pod `namespace/name`, as its node last reported it.
    pub fn pod_usage(&self, namespace: &str, name: &str) -> Option<Usage> {
        let key = (namespace.to_owned(), name.to_owned());
        self.lock().values().find_map(|b| b.pods.get(&key).copied())
    }

    /// Forgets a node (it was deleted).
    pub fn forget(&self, node: &str) {
        self.lock().remove(node);
    }
}

impl<S: Store> ApiServer<S> {
    /// A heartbeat from `node`, which must be registered.
    pub async fn heartbeat(
        &self,
        node: &str,
        pods: impl IntoIterator<Item = ((String, String), Usage)>,
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
