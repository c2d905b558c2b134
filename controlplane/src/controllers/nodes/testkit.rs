//! An in-process cluster for the controllers' runner tests: the embedded
//! store in a temporary directory, the API server, synced informers, and
//! simulated node agents driven by the test (register, heartbeat, report
//! pods Running and Ready, finalize terminating pods).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jotasu_api::kinds::node::NodeStatus;
use jotasu_api::kinds::pod_status::{PodPhase, PodStatus};
use jotasu_api::{Condition, ConditionStatus, Kind, Node, Object, ObjectRef, Pod, Time};
use tokio::sync::watch;

use crate::apiserver::{ApiServer, Usage};
use crate::runtime::{Context, Informers};
use crate::store::{EmbeddedOptions, EmbeddedStore};

/// A running in-process control plane without controllers.
pub struct Cluster {
    /// What controllers get.
    pub ctx: Context<EmbeddedStore>,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Parses and defaults an object.
pub fn object(v: serde_json::Value) -> Object {
    let mut o: Object = serde_json::from_value(v).expect("a valid test object");
    o.apply_defaults();
    o
}

/// A Pod's reference.
pub fn pod_ref(name: &str) -> ObjectRef {
    ObjectRef {
        kind: Kind::Pod,
        namespace: Some("default".into()),
        name: name.into(),
    }
}

impl Cluster {
    /// Starts the store, the API server and the informers (with `nodes`
    /// registered first, so the store is never empty).
    pub async fn start(nodes: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(dir.path().join("db"), EmbeddedOptions::default())
            .await
            .expect("store opens");
        let (stop, shutdown) = watch::channel(false);
        let api = ApiServer::new(Arc::new(store), shutdown.clone());
        // What every cluster has (namespaces, their default accounts, …).
        crate::apiserver::bootstrap::ensure(&api)
            .await
            .expect("bootstrap objects");
        let informers = Informers::start(&api, &shutdown);
        informers.synced().await;
        let cluster = Self {
            ctx: Context {
                api,
                informers,
                shutdown,
            },
            stop,
            _dir: dir,
        };
        for n in nodes {
            cluster.add_node(n).await;
        }
        cluster
    }

    /// Applies objects and waits until the caches show them.
    pub async fn apply(&self, objects: Vec<serde_json::Value>) {
        let objects: Vec<Object> = objects.into_iter().map(object).collect();
        let applied = self.ctx.apply(&objects).await.expect("apply");
        for a in applied {
            // caught_up alone is not enough: objects written together share
            // a revision, and the cache reaches it with the first of them.
            let r = &a.object_ref;
            let ns = r.namespace.as_deref().unwrap_or_default();
            while !self.has(r.kind, ns, &r.name, a.resource_version) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Whether the cache of `kind` holds `namespace/name` at `rev` or later.
    fn has(&self, kind: Kind, namespace: &str, name: &str, rev: u64) -> bool {
        fn at<T: jotasu_api::Resource>(o: Option<Arc<T>>, rev: u64) -> bool {
            o.and_then(|o| o.metadata().resource_version.clone())
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|v| v >= rev)
        }
        let i = &self.ctx.informers;
        match kind {
            Kind::Pod => at(i.pods.get(namespace, name), rev),
            Kind::Node => at(i.nodes.get(namespace, name), rev),
            Kind::DaemonSet => at(i.daemon_sets.get(namespace, name), rev),
            Kind::Service => at(i.services.get(namespace, name), rev),
            Kind::Endpoints => at(i.endpoints.get(namespace, name), rev),
            Kind::HorizontalPodAutoscaler => at(i.hpas.get(namespace, name), rev),
            Kind::Deployment => at(i.deployments.get(namespace, name), rev),
            Kind::ReplicaSet => at(i.replica_sets.get(namespace, name), rev),
            _ => true,
        }
    }

    /// Writes a status and waits until the cache shows it.
    pub async fn update_status(&self, object: Object) {
        let kind = object.kind();
        let written = self.ctx.update_status(&object).await.expect("status");
        let rev = written.metadata().revision().unwrap_or(0);
        self.caught_up(kind, rev).await;
    }

    /// Waits until the cache of `kind` reflects `rev`.
    pub async fn caught_up(&self, kind: Kind, rev: u64) {
        let i = &self.ctx.informers;
        let limit = Duration::from_secs(5);
        match kind {
            Kind::Pod => i.pods.caught_up(rev, limit).await,
            Kind::Node => i.nodes.caught_up(rev, limit).await,
            Kind::DaemonSet => i.daemon_sets.caught_up(rev, limit).await,
            Kind::Service => i.services.caught_up(rev, limit).await,
            Kind::Endpoints => i.endpoints.caught_up(rev, limit).await,
            Kind::HorizontalPodAutoscaler => i.hpas.caught_up(rev, limit).await,
            Kind::Deployment => i.deployments.caught_up(rev, limit).await,
            Kind::ReplicaSet => i.replica_sets.caught_up(rev, limit).await,
            _ => {}
        }
    }

    /// Registers a node (with capacity and an address) that has not spoken yet.
    pub async fn add_node(&self, name: &str) {
        let mut node = Node::default();
        node.metadata.name = Some(name.into());
        node.status = Some(NodeStatus::default());
        let applied = self.ctx.apply(&[Object::Node(node)]).await.expect("node");
        self.caught_up(Kind::Node, applied[0].resource_version)
            .await;
    }

    /// A heartbeat from `node`, with the usage of the pods bound to it.
    pub fn beat(&self, node: &str, cpu_millicores: i64) {
        let pods: Vec<((String, String), Usage)> = self
            .ctx
            .informers
            .pods
            .list()
            .into_iter()
            .filter(|p| p.spec.node_name.as_deref() == Some(node))
            .map(|p| {
                let key = (
                    p.metadata.namespace.clone().unwrap_or_default(),
                    p.metadata.name().to_owned(),
                );
                let usage = Usage {
                    cpu_millicores,
                    memory_bytes: 64 << 20,
                };
                (key, usage)
            })
            .collect();
        self.ctx.api.heartbeats().record(node, pods);
    }

    /// Acts once as the agent of `node`: reports its new pods Running with
    /// an IP and Ready, and removes its terminating pods.
    pub async fn agent(&self, node: &str) {
        act_as_agent(&self.ctx, node).await;
    }

    /// Acts as the agents of `nodes` every 100 ms until the handle is aborted.
    pub fn spawn_agents(&self, nodes: &[&str]) -> tokio::task::JoinHandle<()> {
        let ctx = self.ctx.clone();
        let nodes: Vec<String> = nodes.iter().map(|n| (*n).to_owned()).collect();
        tokio::spawn(async move {
            loop {
                for n in &nodes {
                    act_as_agent(&ctx, n).await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }

    /// Polls `check` until it gives Some, for at most `limit`.
    pub async fn eventually<T, F, Fut>(&self, what: &str, limit: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(start.elapsed() < limit, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One round of `node`'s agent: new pods reported Running and Ready,
/// terminating ones removed; waits until the pod cache shows it.
pub async fn act_as_agent(ctx: &Context<EmbeddedStore>, node: &str) {
    let pods = ctx.informers.pods.list();
    let mut rev = 0;
    for (i, pod) in pods.iter().enumerate() {
        if pod.spec.node_name.as_deref() != Some(node) {
            continue;
        }
        let r = ObjectRef {
            namespace: pod.metadata.namespace.clone(),
            ..pod_ref(pod.metadata.name())
        };
        if pod.metadata.deletion_timestamp.is_some() {
            let _ = ctx.api.delete_graceful(&r, None, Some(0)).await;
            continue;
        }
        if pod.status.as_ref().and_then(|s| s.phase) == Some(PodPhase::Running) {
            continue;
        }
        let mut p = Pod::clone(pod);
        p.status = Some(running_status(&format!("10.1.{}.{}", node.len(), i + 2)));
        if let Ok(written) = ctx.update_status(&Object::Pod(p)).await {
            rev = rev.max(written.metadata().revision().unwrap_or(0));
        }
    }
    let limit = Duration::from_secs(5);
    ctx.informers.pods.caught_up(rev, limit).await;
    let finalized = |c: &crate::runtime::Cache<Pod>| {
        c.objects.values().all(|p| {
            p.spec.node_name.as_deref() != Some(node) || p.metadata.deletion_timestamp.is_none()
        })
    };
    ctx.informers.pods.wait_until(limit, finalized).await;
}

/// A Running, Ready pod status with `ip`.
pub fn running_status(ip: &str) -> PodStatus {
    let now = Time::now();
    PodStatus {
        phase: Some(PodPhase::Running),
        pod_ip: Some(ip.into()),
        start_time: Some(now.clone()),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: ConditionStatus::True,
            last_transition_time: Some(now),
            ..Condition::default()
        }],
        ..PodStatus::default()
    }
}
