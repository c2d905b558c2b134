//! EndpointSlices against Endpoints: the bytes the API sends to the nodes'
//! watches for one endpoint's change, in process (embedded store in a temp
//! dir, the API server, informers, the endpoints controller). A Service
//! selects E Running, Ready pods spread over N Ready nodes; once its
//! Endpoints and slices list every pod, N watches of Endpoints and N of
//! EndpointSlices open (one per simulated node, as each agent holds one),
//! one pod turns not ready, and every event each watch receives within
//! two seconds is counted in bytes (the object's JSON, as the wire
//! carries it).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use jotasu_api::{Kind, LabelSelector};
use jotasu_controlplane::apiserver::{ApiResult, Event, WatchSpec};
use jotasu_controlplane::controllers::endpoints;
use jotasu_controlplane::runtime::{Context, Informers};
use serde_json::json;
use tokio::sync::watch;

use super::Report;
use super::scheduler::{Api, make_nodes, node_name, server, to_json};
use crate::signals;

/// The benchmark's name (`target/bench/endpointslices.json`).
pub const NAME: &str = "endpointslices";
/// How long each watch is read after the change.
const SETTLE: Duration = Duration::from_secs(2);

/// How the benchmark runs.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Endpoints (pods) of the Service.
    #[arg(long, default_value_t = 1000)]
    pub endpoints: usize,
    /// Simulated nodes, each with one watch of each kind.
    #[arg(long, default_value_t = 100)]
    pub nodes: usize,
    /// Seconds the controller may take to list every pod.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// What the run does, for the report.
pub fn describe(cfg: &Config) -> String {
    format!(
        "in process: embedded store, API server, informers, endpoints controller; a Service \
         of {} Ready pods on {} Ready nodes; {} watches of Endpoints and {} of EndpointSlices; \
         one pod turns not ready; bytes of the events every watch receives in {} s",
        cfg.endpoints,
        cfg.nodes,
        cfg.nodes,
        cfg.nodes,
        SETTLE.as_secs()
    )
}

fn pod_ip(i: usize) -> String {
    format!(
        "10.{}.{}.{}",
        200 + i / 62_500,
        (i / 250) % 250,
        i % 250 + 1
    )
}

/// Writes the Service and its pods, bound and Ready.
async fn make_service(api: &Api, cfg: &Config) -> anyhow::Result<()> {
    let svc = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "bench"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}});
    api.apply(&[to_json(&svc)?], false)
        .await
        .context("creating the Service")?;
    let names: Vec<String> = (0..cfg.endpoints).map(|i| format!("web-{i:05}")).collect();
    let mut versions = Vec::new();
    for chunk in names.chunks(500) {
        signals::check()?;
        let pods = chunk
            .iter()
            .map(|name| {
                let i: usize = name[4..].parse().unwrap_or(0);
                to_json(&json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "bench", "labels": {"app": "web"}},
                    "spec": {"nodeName": node_name(i % cfg.nodes),
                             "containers": [{"name": "web", "image": "registry.example.com/web:1.0"}]}}))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let applied = api.apply(&pods, false).await.context("creating pods")?;
        versions.extend(applied.into_iter().map(|a| a.resource_version));
    }
    futures::stream::iter(names.iter().zip(versions).enumerate())
        .map(|(i, (name, rv))| async move {
            ready(api, name, &rv.to_string(), &pod_ip(i), true).await
        })
        .buffer_unordered(64)
        .try_for_each(|()| async { Ok(()) })
        .await
}

/// Writes pod `name`'s status: Running at `ip`, Ready or not.
async fn ready(api: &Api, name: &str, rv: &str, ip: &str, is_ready: bool) -> anyhow::Result<()> {
    let status = if is_ready { "True" } else { "False" };
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "bench", "resourceVersion": rv},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": status}]}});
    api.update_status(&to_json(&pod)?)
        .await
        .with_context(|| format!("writing {name}'s status"))?;
    Ok(())
}

/// Waits until the Endpoints and the slices list every pod.
async fn listed(informers: &Informers, cfg: &Config) -> anyhow::Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(cfg.timeout);
    loop {
        signals::check()?;
        let in_endpoints = informers.endpoints.get("bench", "web").map_or(0, |e| {
            e.subsets.iter().map(|s| s.addresses.len()).sum::<usize>()
        });
        let slices = informers.endpoint_slices.list_in("bench");
        let in_slices: usize = slices.iter().map(|s| s.endpoints.len()).sum();
        if in_endpoints == cfg.endpoints && in_slices == cfg.endpoints {
            return Ok(slices.len());
        }
        if Instant::now() > deadline {
            bail!(
                "after {} s the Endpoints list {in_endpoints} pods and the slices {in_slices}, not {}",
                cfg.timeout,
                cfg.endpoints
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

type Watch = tokio::sync::mpsc::Receiver<ApiResult<Event>>;

/// `count` watches of `kind`, from now on.
async fn watches(api: &Api, kind: Kind, count: usize) -> anyhow::Result<Vec<Watch>> {
    let mut watches = Vec::with_capacity(count);
    for _ in 0..count {
        let spec = WatchSpec {
            kinds: vec![kind],
            namespace: None,
            selector: LabelSelector::default(),
            from_revision: 0,
            node: None,
        };
        watches.push(api.watch(spec).await.context("opening a watch")?);
    }
    Ok(watches)
}

/// Bytes and events the watches receive until `until`.
async fn drain(watches: Vec<Watch>, until: Instant) -> (usize, usize) {
    let mut bytes = 0;
    let mut events = 0;
    for mut w in watches {
        while let Ok(Some(Ok(ev))) =
            tokio::time::timeout(until.saturating_duration_since(Instant::now()), w.recv()).await
        {
            bytes += ev.json.len();
            events += 1;
        }
    }
    (bytes, events)
}

async fn measure(cfg: &Config) -> anyhow::Result<Report> {
    let dir = tempfile::tempdir().context("making a temp dir")?;
    let (stop_tx, stop) = watch::channel(false);
    let api = server(&dir, &stop).await?;
    make_nodes(&api, cfg.nodes).await?;
    make_service(&api, cfg).await?;
    let informers = Informers::start(&api, &stop);
    informers.synced().await;
    let ctx = Context {
        api: api.clone(),
        informers: informers.clone(),
        shutdown: stop.clone(),
    };
    let controller = tokio::spawn(endpoints::run(ctx));
    let slice_count = listed(&informers, cfg).await?;
    let endpoint_watches = watches(&api, Kind::Endpoints, cfg.nodes).await?;
    let slice_watches = watches(&api, Kind::EndpointSlice, cfg.nodes).await?;
    let changed = cfg.endpoints / 2;
    let name = format!("web-{changed:05}");
    let pod: jotasu_api::Pod = serde_json::from_str(
        &api.get(&jotasu_api::ObjectRef {
            kind: Kind::Pod,
            namespace: Some("bench".into()),
            name: name.clone(),
        })
        .await?,
    )?;
    let rv = pod.metadata.resource_version.clone().unwrap_or_default();
    ready(&api, &name, &rv, &pod_ip(changed), false).await?;
    let until = Instant::now() + SETTLE;
    let ((ep_bytes, ep_events), (sl_bytes, sl_events)) =
        tokio::join!(drain(endpoint_watches, until), drain(slice_watches, until));
    let _ = stop_tx.send(true);
    let _ = controller.await;
    if ep_events < cfg.nodes || sl_events < cfg.nodes {
        bail!(
            "not every watch saw the change: {ep_events} Endpoints events and {sl_events} slice events for {} watches each",
            cfg.nodes
        );
    }
    let mut report = Report::new(NAME);
    let case = format!(
        "one change of a {}-endpoint Service, {} nodes",
        cfg.endpoints, cfg.nodes
    );
    report.row(&case, "slices of the Service", slice_count as f64, "");
    report.row(&case, "Endpoints: bytes sent", ep_bytes as f64, "B");
    report.row(&case, "Endpoints: events", ep_events as f64, "");
    report.row(&case, "EndpointSlices: bytes sent", sl_bytes as f64, "B");
    report.row(&case, "EndpointSlices: events", sl_events as f64, "");
    let ratio = sl_bytes as f64 / ep_bytes.max(1) as f64;
    report.row(&case, "slices / Endpoints", ratio, "");
    report.goal_at_most(&format!("{case}: slices / Endpoints bytes"), 0.2, ratio, "");
    Ok(report)
}

/// Runs the benchmark.
pub fn run(cfg: &Config) -> anyhow::Result<Report> {
    anyhow::ensure!(
        cfg.nodes >= 1 && cfg.endpoints >= 2,
        "need at least 1 node and 2 endpoints"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(measure(cfg))
}
