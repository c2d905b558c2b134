//! Node heartbeats and what they carry. Each heartbeat renews the node's
//! Lease in the store ([`super::node_lease`]), and every control plane
//! follows those Leases into this registry, so all of them know when each
//! node last spoke and the revision its data plane is programmed from,
//! whichever control plane the node talks to: the node lifecycle
//! controller reads the former, a stopping pod's agent waits on the latter
//! ([`ApiServer::wait_endpoints_programmed`]). Pods' usage stays in the
//! memory of the control plane that received it (as metrics-server holds
//! usage) for the autoscaler. The registry itself is never stored: after a
//! control-plane restart or a change of leader every node gets a fresh
//! grace.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use jotasu_api::{Kind, LabelSelector, Object, ObjectRef};
use tokio::sync::watch;

use super::ApiServer;
use super::error::{ApiResult, ApiServerError};
use super::keys::object_key;
use crate::store::Store;

/// The longest wait for nodes' data planes a caller may ask for.
pub const MAX_PROGRAMMED_WAIT: Duration = Duration::from_secs(60);

/// A node silent for this long does not hold up a wait (unless set with
/// [`Heartbeats::with_live_within`]: the control plane's node grace period).
pub const DEFAULT_LIVE_WITHIN: Duration = Duration::from_secs(10);

/// A node as a wait for programmed data planes judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    /// The node's name.
    pub name: String,
    /// Its Ready condition is True.
    pub ready: bool,
    /// When it last sent a heartbeat (None: not since this control plane started).
    pub last: Option<Instant>,
    /// The revision its data plane was last programmed from, as reported.
    pub programmed: Option<i64>,
}

/// The nodes that hold up a wait for `revision` at `now`, sorted: live
/// ones (Ready, heard from within `live_within`) whose data plane does not
/// cover it. A NotReady or silent node never does: its pods leave the
/// endpoints anyway, and a dead node must not stall every pod's stop.
pub fn lagging(
    nodes: &[NodeReport],
    revision: i64,
    now: Instant,
    live_within: Duration,
) -> Vec<String> {
    let mut out: Vec<String> = nodes
        .iter()
        .filter(|n| {
            let live = n.ready
                && n.last
                    .is_some_and(|t| now.saturating_duration_since(t) < live_within);
            live && n.programmed.is_none_or(|p| p < revision)
        })
        .map(|n| n.name.clone())
        .collect();
    out.sort();
    out
}

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
    /// When each node was last heard from (here or through its Lease).
    last: HashMap<String, Instant>,
    /// The pods each node last reported.
    nodes: HashMap<String, Vec<PodKey>>,
    /// Every reported pod's usage (a pod runs on one node).
    pods: HashMap<PodKey, Usage>,
    /// The revision each node's data plane was last programmed from.
    programmed: HashMap<String, i64>,
    /// When this control plane last wrote each node's Lease, and the
    /// programmed revision it wrote.
    leases: HashMap<String, (Instant, Option<i64>)>,
}

/// The heartbeat registry, shared by the API server and the controllers.
#[derive(Debug, Clone)]
pub struct Heartbeats {
    registry: Arc<Mutex<Registry>>,
    /// Bumps at every heartbeat (wakes the waits for programmed data planes).
    beats: watch::Sender<u64>,
    live_within: Duration,
}

impl Default for Heartbeats {
    fn default() -> Self {
        Self {
            registry: Arc::default(),
            beats: watch::Sender::new(0),
            live_within: DEFAULT_LIVE_WITHIN,
        }
    }
}

impl Heartbeats {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The same registry, counting a node silent for `live_within` as not
    /// live (the node grace period).
    #[must_use]
    pub fn with_live_within(mut self, live_within: Duration) -> Self {
        self.live_within = live_within;
        self
    }

    /// The node grace period: silent longer, a node is not live.
    pub fn live_within(&self) -> Duration {
        self.live_within
    }

    /// Whether `node`'s Lease needs writing at `now`: never written here,
    /// last written `every` ago or longer, or `programmed` moved.
    pub fn lease_due(
        &self,
        node: &str,
        programmed: Option<i64>,
        every: Duration,
        now: Instant,
    ) -> bool {
        self.lock().leases.get(node).is_none_or(|(at, p)| {
            now.saturating_duration_since(*at) >= every
                || (programmed.is_some() && programmed != *p)
        })
    }

    /// Records that `node`'s Lease was written at `at` with `programmed`.
    pub fn lease_written(&self, node: &str, programmed: Option<i64>, at: Instant) {
        self.lock().leases.insert(node.to_owned(), (at, programmed));
    }

    /// Records the revision `node`'s data plane was programmed from (a
    /// lower one replaces it too: the agent relisted an older store).
    pub fn record_programmed(&self, node: &str, revision: i64) {
        self.lock().programmed.insert(node.to_owned(), revision);
        self.beats.send_modify(|b| *b += 1);
    }

    /// The revision `node` last reported programmed.
    pub fn programmed(&self, node: &str) -> Option<i64> {
        self.lock().programmed.get(node).copied()
    }

    /// The registry's view of `nodes` (name and readiness) for a wait.
    pub fn reports(&self, nodes: impl IntoIterator<Item = (String, bool)>) -> Vec<NodeReport> {
        let r = self.lock();
        nodes
            .into_iter()
            .map(|(name, ready)| NodeReport {
                last: r.last.get(&name).copied(),
                programmed: r.programmed.get(&name).copied(),
                name,
                ready,
            })
            .collect()
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
        self.lock().last.insert(node.to_owned(), at);
        self.record_usage(node, pods);
    }

    /// Records that `node` was heard from at `at` (its Lease was renewed).
    pub fn touch(&self, node: &str, at: Instant) {
        self.lock().last.insert(node.to_owned(), at);
        self.beats.send_modify(|b| *b += 1);
    }

    /// Records the usage of `node`'s pods (replacing its earlier report).
    pub fn record_usage(&self, node: &str, pods: impl IntoIterator<Item = (PodKey, Usage)>) {
        let mut r = self.lock();
        let mut keys = Vec::new();
        let mut fresh = HashMap::new();
        for (key, usage) in pods {
            keys.push(key.clone());
            fresh.insert(key, usage);
        }
        if let Some(old) = r.nodes.insert(node.to_owned(), keys) {
            for key in old {
                r.pods.remove(&key);
            }
        }
        r.pods.extend(fresh);
        drop(r);
        self.beats.send_modify(|b| *b += 1);
    }

    /// When `node` last sent a heartbeat (None: not since this control plane started).
    pub fn last(&self, node: &str) -> Option<Instant> {
        self.lock().last.get(node).copied()
    }

    /// The usage of pod `namespace/name`, as its node last reported it.
    pub fn pod_usage(&self, namespace: &str, name: &str) -> Option<Usage> {
        let key = (namespace.to_owned(), name.to_owned());
        self.lock().pods.get(&key).copied()
    }

    /// Forgets a node (it was deleted).
    pub fn forget(&self, node: &str) {
        let mut r = self.lock();
        if let Some(keys) = r.nodes.remove(node) {
            for key in keys {
                r.pods.remove(&key);
            }
        }
        r.last.remove(node);
        r.programmed.remove(node);
        r.leases.remove(node);
    }
}

impl<S: Store> ApiServer<S> {
    /// A heartbeat from `node`, which must be registered, with the revision
    /// its data plane is programmed from when it reports one.
    pub async fn heartbeat(
        &self,
        node: &str,
        pods: impl IntoIterator<Item = (PodKey, Usage)>,
        programmed: Option<i64>,
    ) -> ApiResult<()> {
        let r = ObjectRef {
            kind: Kind::Node,
            namespace: None,
            name: node.to_owned(),
        };
        let Some(kv) = self.store.get(&object_key(&r)).await? else {
            return Err(ApiServerError::NotFound(r));
        };
        // Heard here at once; the other control planes hear it through
        // the Lease.
        if let Some(revision) = programmed {
            self.heartbeats.record_programmed(node, revision);
        }
        self.heartbeats.record(node, pods);
        self.renew_node_lease(&kv, node, programmed).await
    }

    /// Waits until no live node lags behind `revision` ([`lagging`]), at
    /// most `timeout` (capped at [`MAX_PROGRAMMED_WAIT`]); returns the
    /// nodes that still lag (empty: every live node's data plane covers it).
    pub async fn wait_endpoints_programmed(
        &self,
        revision: i64,
        timeout: Duration,
    ) -> ApiResult<Vec<String>> {
        let deadline = tokio::time::Instant::now() + timeout.min(MAX_PROGRAMMED_WAIT);
        let mut beats = self.heartbeats.beats.subscribe();
        // Liveness changes with time alone: look again at least this often.
        let recheck = (self.heartbeats.live_within / 4).max(Duration::from_millis(100));
        loop {
            beats.borrow_and_update();
            let nodes = self.ready_nodes().await?;
            let reports = self.heartbeats.reports(nodes);
            let behind = lagging(
                &reports,
                revision,
                Instant::now(),
                self.heartbeats.live_within,
            );
            if behind.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(behind);
            }
            let until = deadline.min(tokio::time::Instant::now() + recheck);
            tokio::select! {
                r = beats.changed() => if r.is_err() { return Ok(behind) },
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// Every Node's name and whether it is Ready.
    async fn ready_nodes(&self) -> ApiResult<Vec<(String, bool)>> {
        let (items, _) = self
            .list(Kind::Node, None, &LabelSelector::default())
            .await?;
        let mut out = Vec::with_capacity(items.len());
        for json in items {
            let Ok(Object::Node(node)) = serde_json::from_str::<Object>(&json) else {
                continue;
            };
            let ready = crate::runtime::status::is_node_ready(&node);
            out.push((node.metadata.name().to_owned(), ready));
        }
        Ok(out)
    }

    /// The heartbeat registry.
    pub fn heartbeats(&self) -> &Heartbeats {
        &self.heartbeats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str, ready: bool, silent: Option<u64>, programmed: Option<i64>) -> NodeReport {
        let now = Instant::now();
        NodeReport {
            name: name.into(),
            ready,
            last: silent.map(|s| now - Duration::from_secs(s)),
            programmed,
        }
    }

    #[test]
    fn only_live_nodes_behind_the_revision_hold_a_wait_up() {
        let live = Duration::from_secs(10);
        let nodes = [
            report("ahead", true, Some(1), Some(120)),
            report("exact", true, Some(1), Some(100)),
            report("behind", true, Some(1), Some(99)),
            report("never-said", true, Some(1), None),
            report("not-ready", false, Some(1), Some(1)),
            report("silent", true, Some(30), Some(1)),
            report("unheard", true, None, None),
        ];
        assert_eq!(
            lagging(&nodes, 100, Instant::now(), live),
            ["behind", "never-said"]
        );
        assert_eq!(lagging(&nodes, 99, Instant::now(), live), ["never-said"]);
        assert!(lagging(&nodes[..2], 100, Instant::now(), live).is_empty());
        assert!(lagging(&[], 100, Instant::now(), live).is_empty());
    }

    #[test]
    fn programmed_revisions_are_kept_per_node_and_forgotten_with_it() {
        let h = Heartbeats::default();
        h.record("n1", []);
        h.record_programmed("n1", 7);
        h.record_programmed("n1", 5);
        assert_eq!(h.programmed("n1"), Some(5), "the latest report counts");
        let r = h.reports([("n1".to_owned(), true), ("n2".to_owned(), false)]);
        assert_eq!((r[0].programmed, r[0].last.is_some()), (Some(5), true));
        assert_eq!((r[1].programmed, r[1].last), (None, None));
        h.forget("n1");
        assert_eq!(h.programmed("n1"), None);
    }

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
