//! The scheduler benchmark: how fast pending pods are placed, in process
//! (embedded store in a temp dir, the API server, informers, the
//! scheduler; no gRPC).
//!
//! Case `pods`: N Ready nodes and P unbound pods (a few hundred owners)
//! are written first; then the informers and the scheduler start and the
//! clock runs until the pods informer shows every pod bound. Afterwards the
//! pods are listed from the store and summed per node: no node may hold
//! more than it offers. The nodes' Ready condition is written directly (in
//! a cluster the node lifecycle controller sets it from heartbeats).
//!
//! Case `deployment`: a Deployment of R replicas applied through the API
//! with every controller running (the full in-process manager), on M nodes
//! that heartbeat; the clock runs from the apply until every pod is bound.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures::{StreamExt as _, TryStreamExt as _};
use jotasu_api::{Kind, LabelSelector, Node, Pod};
use jotasu_controlplane::apiserver::allocate::Ranges;
use jotasu_controlplane::apiserver::{ApiServer, bootstrap};
use jotasu_controlplane::manager;
use jotasu_controlplane::runtime::{Change, Context, Informer, Informers, next_change};
use jotasu_controlplane::scheduler::{self, resources};
use jotasu_controlplane::store::{EmbeddedOptions, EmbeddedStore};
use serde_json::json;
use tokio::sync::watch;

use super::Report;
use crate::signals;

/// The benchmark's name (`target/bench/scheduler.json`).
pub const NAME: &str = "scheduler";
/// Objects per Apply call while filling the store.
const APPLY_BATCH: usize = 500;
/// Concurrent status updates while making nodes Ready.
const STATUS_WRITERS: usize = 64;
/// The placement rate the scheduler must reach.
const GOAL_PODS_PER_SECOND: f64 = 10_000.0;

pub(crate) type Api = ApiServer<EmbeddedStore>;

/// A case of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Case {
    /// Unbound pods written up front, then the scheduler alone.
    Pods,
    /// As `pods`, a third of them (every third owner) carrying required
    /// pod anti-affinity by host or a zone spread constraint.
    Constrained,
    /// A Deployment through every controller.
    Deployment,
}

/// How the benchmark runs.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Cases to run.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Case::Pods])]
    pub cases: Vec<Case>,
    /// Nodes of the `pods` case.
    #[arg(long, default_value_t = 5000)]
    pub nodes: usize,
    /// Pods of the `pods` case.
    #[arg(long, default_value_t = 100_000)]
    pub pods: usize,
    /// Distinct controllers (owner references) among those pods.
    #[arg(long, default_value_t = 300)]
    pub owners: usize,
    /// Replicas of the `deployment` case.
    #[arg(long, default_value_t = 10_000)]
    pub replicas: usize,
    /// Nodes of the `deployment` case.
    #[arg(long, default_value_t = 1000)]
    pub deployment_nodes: usize,
    /// Seconds a case may take before it is reported unfinished.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// One line on how the run was made, printed above the table.
pub fn describe(cfg: &Config) -> String {
    let mut parts = Vec::new();
    if cfg.cases.contains(&Case::Pods) {
        parts.push(format!(
            "pods: {} unbound pods (100m CPU, 128Mi; {} owners) on {} Ready nodes \
             (32 CPU, 64Gi, 110 pods), the scheduler alone (MostAllocated), timed from its \
             start until the pods informer shows all bound",
            cfg.pods, cfg.owners, cfg.nodes
        ));
    }
    if cfg.cases.contains(&Case::Constrained) {
        parts.push(String::from(
            "constrained: as pods, the pods of every third owner carrying required pod \
             anti-affinity by kubernetes.io/hostname (half of them) or a \
             topology.kubernetes.io/zone spread constraint (maxSkew 1, DoNotSchedule) with a \
             ScheduleAnyway spread by host (the other half); afterwards no rule may be broken",
        ));
    }
    if cfg.cases.contains(&Case::Deployment) {
        parts.push(format!(
            "deployment: one Deployment of {} replicas applied with every controller running, \
             on {} heartbeating nodes, timed from the apply until every pod is bound",
            cfg.replicas, cfg.deployment_nodes
        ));
    }
    format!(
        "in process: embedded store in a temp dir, the API server, informers; {}",
        parts.join("; ")
    )
}

/// A fresh store and API server in `dir`.
pub(crate) async fn server(
    dir: &tempfile::TempDir,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Api> {
    let options = EmbeddedOptions {
        retention: 100_000,
        ..EmbeddedOptions::default()
    };
    let store = EmbeddedStore::open(dir.path().join("store.redb"), options)
        .await
        .context("opening the embedded store")?;
    // A pod CIDR for every one of thousands of nodes: a /24 each out of a
    // /8 (the default /16 holds 256 nodes, as in Kubernetes).
    let ranges = Ranges {
        cluster_cidr: "10.0.0.0/8".parse().context("the bench's cluster CIDR")?,
        ..Ranges::default()
    };
    let api = ApiServer::new(Arc::new(store), stop.clone()).with_ranges(ranges);
    // What every cluster has, and the namespace the bench works in.
    bootstrap::ensure(&api)
        .await
        .context("writing the objects every cluster has")?;
    let ns =
        to_json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}))?;
    api.apply(&[ns], false)
        .await
        .context("creating the bench namespace")?;
    Ok(api)
}

pub(crate) fn node_name(i: usize) -> String {
    format!("node-{i:05}")
}

pub(crate) fn to_json(v: &serde_json::Value) -> anyhow::Result<String> {
    serde_json::to_string(v).context("encoding an object")
}

/// Heartbeats the first `count` nodes ([`node_name`]) every second until `stop`.
pub(crate) fn heartbeats(
    api: &Api,
    count: usize,
    stop: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let names: Vec<String> = (0..count).map(node_name).collect();
    let (api, mut stop) = (api.clone(), stop.clone());
    tokio::spawn(async move {
        loop {
            for n in &names {
                api.heartbeats().record(n, std::iter::empty());
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    })
}

/// Registers `count` nodes and makes them Ready (written directly).
pub(crate) async fn make_nodes(api: &Api, count: usize) -> anyhow::Result<()> {
    let names: Vec<String> = (0..count).map(node_name).collect();
    let mut versions = Vec::with_capacity(count);
    for chunk in names.chunks(APPLY_BATCH) {
        signals::check()?;
        let objects = chunk
            .iter()
            .map(|name| {
                to_json(&json!({
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": {
                        "kubernetes.io/hostname": name,
                        "topology.kubernetes.io/zone": zone_of(name),
                    }},
                }))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let applied = api.apply(&objects, false).await.context("creating nodes")?;
        versions.extend(applied.into_iter().map(|a| a.resource_version));
    }
    let now = jotasu_api::Time::from_unix_seconds(jotasu_controlplane::runtime::now_seconds());
    let resources = json!({"cpu": "32", "memory": "64Gi", "pods": "110"});
    futures::stream::iter(names.iter().zip(versions))
        .map(|(name, rv)| {
            let status = json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "resourceVersion": rv.to_string()},
                "status": {
                    "capacity": resources, "allocatable": resources,
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "lastHeartbeatTime": now, "lastTransitionTime": now}],
                },
            });
            async move {
                api.update_status(&to_json(&status)?)
                    .await
                    .with_context(|| format!("making {name} Ready"))
            }
        })
        .buffer_unordered(STATUS_WRITERS)
        .try_for_each(|_| async { Ok(()) })
        .await
}

/// The rules the pods of `owner` carry in the constrained case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    None,
    AntiAffinity,
    Spread,
}

fn rule_of(owner: usize, constrained: bool) -> Rule {
    match owner % 6 {
        _ if !constrained => Rule::None,
        0 => Rule::AntiAffinity,
        3 => Rule::Spread,
        _ => Rule::None,
    }
}

fn pod_json(i: usize, owners: usize, constrained: bool) -> anyhow::Result<String> {
    let owner = i % owners.max(1);
    let app = format!("app-{owner}");
    let selector = json!({"matchLabels": {"app": app}});
    let rules = match rule_of(owner, constrained) {
        Rule::None => json!({}),
        Rule::AntiAffinity => json!({"affinity": {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": selector, "topologyKey": "kubernetes.io/hostname"}]}}}),
        Rule::Spread => json!({"topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
             "whenUnsatisfiable": "DoNotSchedule", "labelSelector": selector},
            {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
             "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": selector}]}),
    };
    let mut spec = json!({"containers": [{
        "name": "app", "image": "registry.example.com/app:1.0",
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                      "limits": {"cpu": "500m", "memory": "256Mi"}},
    }]});
    if let (Some(spec), Some(rules)) = (spec.as_object_mut(), rules.as_object()) {
        spec.extend(rules.clone());
    }
    to_json(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("pod-{i:06}"), "namespace": "bench",
            "labels": {"app": app},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": app, "uid": format!("00000000-0000-4000-8000-{owner:012}"),
                "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": spec,
    }))
}

/// Writes `count` unbound pods, a few Apply calls at a time.
async fn make_pods(
    api: &Api,
    count: usize,
    owners: usize,
    constrained: bool,
) -> anyhow::Result<()> {
    let batches: Vec<std::ops::Range<usize>> = (0..count)
        .step_by(APPLY_BATCH)
        .map(|s| s..(s + APPLY_BATCH).min(count))
        .collect();
    futures::stream::iter(batches)
        .map(|range| async move {
            signals::check()?;
            let objects = range
                .map(|i| pod_json(i, owners, constrained))
                .collect::<anyhow::Result<Vec<_>>>()?;
            api.apply(&objects, false).await.context("creating pods")?;
            anyhow::Ok(())
        })
        .buffer_unordered(2)
        .try_for_each(|()| async { Ok(()) })
        .await
}

fn is_bound(pod: &Pod) -> bool {
    pod.spec.node_name.is_some()
}

/// Bound pods in the cache and the revision it reflects.
fn count_bound(pods: &Informer<Pod>) -> (usize, u64) {
    let cache = pods.read();
    let bound = cache.objects.values().filter(|p| is_bound(p)).count();
    (bound, cache.revision)
}

/// Waits until `want` pods are bound in `pods`, counting the changes it
/// broadcasts (a scan of the cache only at the start and after a resync,
/// so the count costs the scheduler nothing); returns the seconds taken
/// from `start`, or how many were bound when time ran out.
async fn all_bound(
    pods: &Informer<Pod>,
    want: usize,
    start: Instant,
    timeout: Duration,
) -> Result<f64, usize> {
    let mut rx = pods.subscribe();
    let (mut bound, mut seen) = count_bound(pods);
    let deadline = tokio::time::Instant::from(start + timeout);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    while bound < want {
        tokio::select! {
            change = next_change(&mut rx) => match change {
                // Changes the scan already counted are skipped.
                Some(Change::Applied { old, new }) if new.metadata.revision().unwrap_or(0) > seen => {
                    let was = old.as_deref().is_some_and(is_bound);
                    match (was, is_bound(&new)) {
                        (false, true) => bound += 1,
                        (true, false) => bound -= 1,
                        _ => {}
                    }
                }
                Some(Change::Deleted(p)) if is_bound(&p) => bound = bound.saturating_sub(1),
                Some(Change::Resynced) => (bound, seen) = count_bound(pods),
                Some(_) => {}
                None => return Err(bound),
            },
            _ = tick.tick() => {
                if signals::interrupted() {
                    return Err(bound);
                }
            }
            () = tokio::time::sleep_until(deadline) => return Err(bound),
        }
    }
    Ok(start.elapsed().as_secs_f64())
}

/// What the store holds after the run, summed per node.
struct Placement {
    bound: usize,
    nodes_used: usize,
    max_pods: i64,
    overcommitted: Vec<String>,
    /// Pods placed against their anti-affinity or zone spread rule.
    broken_rules: usize,
}

async fn check_placement(api: &Api) -> anyhow::Result<Placement> {
    let selector = LabelSelector::default();
    let (nodes, _) = api.list(Kind::Node, None, &selector).await?;
    let (pods, _) = api.list(Kind::Pod, None, &selector).await?;
    let mut used: HashMap<String, resources::Resources> = HashMap::new();
    let mut bound = 0;
    // (app, node) → pods, for anti-affinity; (app, zone) → pods, for spread.
    let mut per_host: HashMap<(String, String), usize> = HashMap::new();
    let mut per_zone: HashMap<String, HashMap<String, usize>> = HashMap::new();
    for json in &pods {
        let pod: Pod = serde_json::from_str(json).context("decoding a pod")?;
        if let Some(node) = pod.spec.node_name.as_deref() {
            let app = pod.metadata.labels.get("app").cloned().unwrap_or_default();
            if pod.spec.affinity.is_some() {
                *per_host.entry((app.clone(), node.to_owned())).or_default() += 1;
            }
            if !pod.spec.topology_spread_constraints.is_empty() {
                let zone = zone_of(node);
                *per_zone.entry(app).or_default().entry(zone).or_default() += 1;
            }
            bound += 1;
            let u = used.entry(node.to_owned()).or_default();
            *u = *u + resources::pod_usage(&pod).requests;
        }
    }
    let mut overcommitted = Vec::new();
    for json in &nodes {
        let node: Node = serde_json::from_str(json).context("decoding a node")?;
        let offer = resources::node_allocatable(&node);
        if let Some(u) = used.get(node.metadata.name())
            && (u.cpu_millis > offer.cpu_millis
                || u.memory_bytes > offer.memory_bytes
                || u.pods > offer.pods)
        {
            overcommitted.push(node.metadata.name().to_owned());
        }
    }
    let crowded = per_host.values().filter(|n| **n > 1).count();
    let skewed = per_zone
        .values()
        .filter(|zones| {
            let counts: Vec<usize> = (0..3)
                .map(|z| zones.get(&format!("zone-{z}")).copied().unwrap_or(0))
                .collect();
            counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0) > 1
        })
        .count();
    Ok(Placement {
        bound,
        nodes_used: used.len(),
        max_pods: used.values().map(|u| u.pods).max().unwrap_or(0),
        overcommitted,
        broken_rules: crowded + skewed,
    })
}

/// The zone of node `name` (`node-00042` → `zone-0`): three zones.
fn zone_of(name: &str) -> String {
    let index: usize = name
        .trim_start_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .unwrap_or(0);
    format!("zone-{}", index % 3)
}

async fn case_pods(cfg: &Config, report: &mut Report, constrained: bool) -> anyhow::Result<()> {
    let case = if constrained {
        format!("constrained: {} pods, {} nodes", cfg.pods, cfg.nodes)
    } else {
        format!("pods: {} pods, {} nodes", cfg.pods, cfg.nodes)
    };
    let dir = tempfile::tempdir().context("making a temp dir")?;
    let (stop_tx, stop) = watch::channel(false);
    let api = server(&dir, &stop).await?;
    let t = Instant::now();
    make_nodes(&api, cfg.nodes).await?;
    make_pods(&api, cfg.pods, cfg.owners, constrained).await?;
    eprintln!("{case}: store filled in {:.1} s", t.elapsed().as_secs_f64());

    let informers = Informers::start(&api, &stop);
    informers.synced().await;
    let ctx = Context {
        api: api.clone(),
        informers: informers.clone(),
        shutdown: stop.clone(),
    };
    let start = Instant::now();
    let scheduler = tokio::spawn(scheduler::run(ctx, scheduler::Config::default()));
    let result = all_bound(
        &informers.pods,
        cfg.pods,
        start,
        Duration::from_secs(cfg.timeout),
    )
    .await;
    let _ = stop_tx.send(true);
    let _ = scheduler.await;
    signals::check()?;
    let placement = check_placement(&api).await?;
    match result {
        Ok(seconds) => {
            let rate = cfg.pods as f64 / seconds;
            report.row(&case, "time to all bound", seconds, "s");
            report.row(&case, "placed", rate, "pods/s");
            report.goal_at_least(
                &format!("{case}: placed"),
                GOAL_PODS_PER_SECOND,
                rate,
                " pods/s",
            );
        }
        Err(bound) => {
            eprintln!(
                "{case}: only {bound}/{} bound after {} s",
                cfg.pods, cfg.timeout
            );
            report.goal_at_least(
                &format!("{case}: placed"),
                GOAL_PODS_PER_SECOND,
                0.0,
                " pods/s",
            );
        }
    }
    report.row(&case, "bound", placement.bound as f64, "pods");
    report.row(&case, "nodes used", placement.nodes_used as f64, "nodes");
    report.row(
        &case,
        "most pods on a node",
        placement.max_pods as f64,
        "pods",
    );
    report.row(
        &case,
        "overcommitted nodes",
        placement.overcommitted.len() as f64,
        "nodes",
    );
    report.goal_at_most(
        &format!("{case}: overcommitted nodes"),
        0.0,
        placement.overcommitted.len() as f64,
        "",
    );
    if constrained {
        report.row(
            &case,
            "pods against their rules",
            placement.broken_rules as f64,
            "",
        );
        report.goal_at_most(
            &format!("{case}: owners with a broken anti-affinity or spread rule"),
            0.0,
            placement.broken_rules as f64,
            "",
        );
    }
    if let Some(n) = placement.overcommitted.first() {
        eprintln!("{case}: {n} holds more than it offers");
    }
    Ok(())
}

fn deployment_json(replicas: usize) -> anyhow::Result<String> {
    let template = json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{
            "name": "web", "image": "registry.example.com/web:1.0",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
        }]},
    });
    to_json(&json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "bench"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": template},
    }))
}

async fn case_deployment(cfg: &Config, report: &mut Report) -> anyhow::Result<()> {
    let case = format!(
        "deployment: {} replicas, {} nodes",
        cfg.replicas, cfg.deployment_nodes
    );
    let dir = tempfile::tempdir().context("making a temp dir")?;
    let (stop_tx, stop) = watch::channel(false);
    let api = server(&dir, &stop).await?;
    make_nodes(&api, cfg.deployment_nodes).await?;
    let beats = heartbeats(&api, cfg.deployment_nodes, &stop);
    let controllers = tokio::spawn(manager::run(
        api.clone(),
        manager::Config::default(),
        stop.clone(),
    ));
    let pods: Informer<Pod> = Informer::start(api.clone(), stop.clone());
    pods.synced().await;
    let start = Instant::now();
    api.apply(&[deployment_json(cfg.replicas)?], false)
        .await
        .context("applying the Deployment")?;
    let result = all_bound(&pods, cfg.replicas, start, Duration::from_secs(cfg.timeout)).await;
    let _ = stop_tx.send(true);
    let _ = controllers.await;
    let _ = beats.await;
    signals::check()?;
    match result {
        Ok(seconds) => {
            report.row(&case, "time to all bound", seconds, "s");
            report.row(&case, "placed", cfg.replicas as f64 / seconds, "pods/s");
        }
        Err(bound) => {
            eprintln!(
                "{case}: only {bound}/{} bound after {} s (are the Deployment and ReplicaSet \
                 controllers in?)",
                cfg.replicas, cfg.timeout
            );
            report.row(&case, "bound before the timeout", bound as f64, "pods");
        }
    }
    Ok(())
}

async fn measure(cfg: &Config) -> anyhow::Result<Report> {
    let mut report = Report::new(NAME);
    for case in &cfg.cases {
        match case {
            Case::Pods => case_pods(cfg, &mut report, false).await?,
            Case::Constrained => case_pods(cfg, &mut report, true).await?,
            Case::Deployment => case_deployment(cfg, &mut report).await?,
        }
    }
    Ok(report)
}

/// Runs the benchmark.
pub fn run(cfg: &Config) -> anyhow::Result<Report> {
    ensure!(
        cfg.nodes >= 1 && cfg.deployment_nodes >= 1,
        "nodes must be at least 1"
    );
    ensure!(cfg.owners >= 1, "--owners must be at least 1");
    if cfg.cases.is_empty() {
        bail!("no case to run");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(measure(cfg))
}
