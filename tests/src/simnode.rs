//! [`SimNode`]: a simulated node that speaks to the real control plane
//! over gRPC exactly as an agent does — registers its Node (capacity,
//! allocatable, address), heartbeats every [`HEARTBEAT`] with its pods'
//! CPU usage, watches the pods bound to it and reports them Running with
//! an IP and (after a delay) Ready, and finalizes pods being deleted —
//! without running any container. Tests steer it: stop it (the node dies),
//! make a pod unready, set the CPU its pods use.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt as _;
use jotasu_api::client::{Client, DeleteOptions, EventType, PodUsage, WatchFilter};
use jotasu_api::kinds::node::{NodeAddress, NodeStatus, Taint};
use jotasu_api::kinds::pod_status::{
    ContainerState, ContainerStateRunning, ContainerStatus, PodPhase, PodStatus,
};
use jotasu_api::{Condition, ConditionStatus, Kind, Node, Object, ObjectRef, Pod, Quantity, Time};
use jotasu_controlplane::runtime::status;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// How often a simulated node heartbeats.
pub const HEARTBEAT: Duration = Duration::from_millis(500);

/// What a simulated node looks like.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Its name.
    pub name: String,
    /// Its index (its address: 10.0.0.<i>; pod addresses come from the
    /// pod CIDR the control plane allocates).
    pub index: u8,
    /// CPU cores.
    pub cpu: &'static str,
    /// Memory.
    pub memory: &'static str,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Taints.
    pub taints: Vec<Taint>,
    /// Delay between a pod running and it turning Ready.
    pub ready_after: Duration,
}

impl NodeSpec {
    /// A 4-core, 8 GiB node with no labels or taints, ready pods at once.
    pub fn new(name: &str, index: u8) -> Self {
        Self {
            name: name.to_owned(),
            index,
            cpu: "4",
            memory: "8Gi",
            labels: BTreeMap::new(),
            taints: Vec::new(),
            ready_after: Duration::ZERO,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    alive: bool,
    /// CPU millicores every pod uses unless set per pod.
    default_cpu: i64,
    cpu: HashMap<(String, String), i64>,
    /// Pods held not ready.
    unready: HashSet<(String, String)>,
    /// Pods running here, with their IP's last octet.
    pods: HashMap<(String, String), u8>,
    next_ip: u8,
    /// The first three octets of the node's pod CIDR (a /24).
    pod_net: String,
}

/// A running simulated node. Its tasks stop on [`SimNode::stop`] or drop.
#[derive(Debug)]
pub struct SimNode {
    spec: NodeSpec,
    client: Client,
    state: Arc<Mutex<State>>,
    tasks: Vec<JoinHandle<()>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn quantities(cpu: &str, memory: &str) -> anyhow::Result<BTreeMap<String, Quantity>> {
    Ok(BTreeMap::from([
        ("cpu".to_owned(), Quantity::parse(cpu)?),
        ("memory".to_owned(), Quantity::parse(memory)?),
        ("pods".to_owned(), Quantity::parse("110")?),
    ]))
}

fn pod_key(pod: &Pod) -> (String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name().to_owned(),
    )
}

fn pod_ref(key: &(String, String)) -> ObjectRef {
    ObjectRef {
        kind: Kind::Pod,
        namespace: Some(key.0.clone()),
        name: key.1.clone(),
    }
}

fn condition(type_: &str, ok: bool, now: &Time) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if ok {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        },
        last_transition_time: Some(now.clone()),
        ..Condition::default()
    }
}

impl SimNode {
    /// Registers the node and starts heartbeating and running its pods.
    pub async fn start(client: Client, spec: NodeSpec) -> anyhow::Result<Self> {
        let mut node = Node::default();
        node.metadata.name = Some(spec.name.clone());
        node.metadata.labels = spec.labels.clone();
        node.spec.taints = spec.taints.clone();
        client
            .apply(&[Object::Node(node)], false)
            .await
            .with_context(|| format!("registering node {}", spec.name))?;
        let r = ObjectRef {
            kind: Kind::Node,
            namespace: None,
            name: spec.name.clone(),
        };
        let Object::Node(mut node) = client.get(&r).await? else {
            anyhow::bail!("node {} came back as another kind", spec.name);
        };
        let resources = quantities(spec.cpu, spec.memory)?;
        node.status = Some(NodeStatus {
            capacity: resources.clone(),
            allocatable: resources,
            conditions: Vec::new(),
            addresses: vec![NodeAddress {
                type_: "InternalIP".into(),
                address: format!("10.0.0.{}", spec.index),
            }],
            ..NodeStatus::default()
        });
        let pod_cidr = node.spec.pod_cidr.clone().unwrap_or_default();
        let pod_net = pod_cidr
            .strip_suffix(".0/24")
            .with_context(|| format!("node {}: pod CIDR {pod_cidr:?} is not a /24", spec.name))?
            .to_owned();
        client.update_status(&Object::Node(node)).await?;
        let state = Arc::new(Mutex::new(State {
            alive: true,
            default_cpu: 0,
            next_ip: 2,
            pod_net,
            ..State::default()
        }));
        let mut me = Self {
            spec,
            client,
            state,
            tasks: Vec::new(),
        };
        me.tasks.push(tokio::spawn(heartbeat(
            me.client.clone(),
            me.spec.name.clone(),
            Arc::clone(&me.state),
        )));
        me.tasks.push(tokio::spawn(run_pods(
            me.client.clone(),
            me.spec.clone(),
            Arc::clone(&me.state),
        )));
        Ok(me)
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The node dies: no more heartbeats, its pods are left as they are.
    pub fn stop(&mut self) {
        lock(&self.state).alive = false;
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }

    /// The node leaves the cluster: stops and deletes its Node object.
    pub async fn leave(mut self) -> anyhow::Result<()> {
        self.stop();
        let r = ObjectRef {
            kind: Kind::Node,
            namespace: None,
            name: self.spec.name.clone(),
        };
        self.client.delete(&r, None).await?;
        Ok(())
    }

    /// CPU millicores each pod here reports from now on.
    pub fn set_cpu(&self, millicores: i64) {
        let mut s = lock(&self.state);
        s.default_cpu = millicores;
        s.cpu.clear();
    }

    /// Holds a pod not ready (`false`) or lets it be ready again.
    pub fn set_ready(&self, namespace: &str, name: &str, ready: bool) {
        let key = (namespace.to_owned(), name.to_owned());
        let mut s = lock(&self.state);
        if ready {
            s.unready.remove(&key);
        } else {
            s.unready.insert(key);
        }
    }
}

impl Drop for SimNode {
    fn drop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

async fn heartbeat(client: Client, node: String, state: Arc<Mutex<State>>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        let usage: Vec<PodUsage> = {
            let s = lock(&state);
            if !s.alive {
                return;
            }
            s.pods
                .keys()
                .map(|k| PodUsage {
                    namespace: k.0.clone(),
                    name: k.1.clone(),
                    cpu_millicores: s.cpu.get(k).copied().unwrap_or(s.default_cpu),
                    memory_bytes: 64 << 20,
                })
                .collect()
        };
        if let Err(e) = client.heartbeat(&node, usage).await {
            warn!(%node, error = %e, "simulated node: heartbeat failed");
        }
    }
}

/// Follows the pods bound to this node: runs new ones, finalizes deleted ones.
async fn run_pods(client: Client, spec: NodeSpec, state: Arc<Mutex<State>>) {
    loop {
        if let Err(e) = follow_pods(&client, &spec, &state).await {
            debug!(node = %spec.name, error = %e, "simulated node: pod watch ended; again");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn follow_pods(
    client: &Client,
    spec: &NodeSpec,
    state: &Arc<Mutex<State>>,
) -> anyhow::Result<()> {
    let list = client.list(Kind::Pod, None, "").await?;
    for object in list.items {
        if let Object::Pod(p) = object {
            on_pod(client, spec, state, &p, false);
        }
    }
    let filter = WatchFilter {
        kinds: vec![Kind::Pod],
        from_revision: list.revision + 1,
        ..WatchFilter::default()
    };
    let mut events = client.watch(&filter).await?;
    while let Some(event) = events.next().await {
        let event = event?;
        if let Object::Pod(p) = event.object {
            on_pod(client, spec, state, &p, event.kind == EventType::Deleted);
        }
    }
    Ok(())
}

fn on_pod(client: &Client, spec: &NodeSpec, state: &Arc<Mutex<State>>, pod: &Pod, deleted: bool) {
    if pod.spec.node_name.as_deref() != Some(spec.name.as_str()) {
        return;
    }
    let key = pod_key(pod);
    if deleted {
        lock(state).pods.remove(&key);
        return;
    }
    if pod.metadata.deletion_timestamp.is_some() {
        // Stop it (nothing to stop) and remove the object, as an agent does.
        let client = client.clone();
        tokio::spawn(async move {
            let options = DeleteOptions {
                resource_version: None,
                grace_period_seconds: Some(0),
            };
            let _ = client.delete_with(&pod_ref(&key), &options).await;
        });
        return;
    }
    let ip = {
        let mut s = lock(state);
        match s.pods.get(&key) {
            Some(ip) => *ip,
            None if s.alive => {
                let ip = s.next_ip;
                s.next_ip = s.next_ip.wrapping_add(1).max(2);
                s.pods.insert(key.clone(), ip);
                drop(s);
                spawn_report(client, spec, state, key, ip, true);
                return;
            }
            None => return,
        }
    };
    // A pod already running: report again when its readiness is not what
    // the test wants.
    let want_ready = !lock(state).unready.contains(&key);
    let is_ready = status::is_ready(pod);
    let running = pod.status.as_ref().and_then(|s| s.phase) == Some(PodPhase::Running);
    if running && want_ready != is_ready {
        spawn_report(client, spec, state, key, ip, false);
    }
}

/// Reports the pod Running (and Ready after the node's delay, unless held).
fn spawn_report(
    client: &Client,
    spec: &NodeSpec,
    state: &Arc<Mutex<State>>,
    key: (String, String),
    ip: u8,
    first: bool,
) {
    let client = client.clone();
    let state = Arc::clone(state);
    let index = spec.index;
    let delay = if first {
        spec.ready_after
    } else {
        Duration::ZERO
    };
    tokio::spawn(async move {
        if first && !delay.is_zero() {
            let _ = report(&client, &state, &key, index, ip, false).await;
            tokio::time::sleep(delay).await;
        }
        let ready = !lock(&state).unready.contains(&key);
        if let Err(e) = report(&client, &state, &key, index, ip, ready).await {
            debug!(pod = ?key, error = %e, "simulated node: status report failed");
        }
    });
}

async fn report(
    client: &Client,
    state: &Mutex<State>,
    key: &(String, String),
    index: u8,
    ip: u8,
    ready: bool,
) -> anyhow::Result<()> {
    for _ in 0..10 {
        if !lock(state).alive {
            return Ok(());
        }
        let Object::Pod(mut pod) = client.get(&pod_ref(key)).await? else {
            return Ok(());
        };
        if pod.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let now = Time::now();
        let pod_net = lock(state).pod_net.clone();
        let mut status = pod.status.clone().unwrap_or_default();
        let ready_since = status::ready_since(&pod).map(Time::from_unix_seconds);
        let scheduled = status
            .conditions
            .iter()
            .find(|c| c.type_ == "PodScheduled")
            .cloned();
        let mut ready_condition = condition("Ready", ready, &now);
        if ready && let Some(since) = ready_since {
            ready_condition.last_transition_time = Some(since);
        }
        status = PodStatus {
            phase: Some(PodPhase::Running),
            conditions: scheduled
                .into_iter()
                .chain([
                    condition("Initialized", true, &now),
                    condition("ContainersReady", ready, &now),
                    ready_condition,
                ])
                .collect(),
            pod_ip: Some(format!("{pod_net}.{ip}")),
            host_ip: Some(format!("10.0.0.{index}")),
            start_time: status.start_time.or_else(|| Some(now.clone())),
            container_statuses: pod
                .spec
                .containers
                .iter()
                .map(|c| ContainerStatus {
                    name: c.name.clone(),
                    ready,
                    image: c.image.clone(),
                    state: Some(ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: Some(now.clone()),
                        }),
                        ..ContainerState::default()
                    }),
                    started: Some(true),
                    ..ContainerStatus::default()
                })
                .collect(),
            ..PodStatus::default()
        };
        pod.status = Some(status);
        match client.update_status(&Object::Pod(pod)).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() => continue,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
