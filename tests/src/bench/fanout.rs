//! Fan-out at scale: one `jotasu-controlplane` process (embedded store, no
//! controllers: the benchmark writes the EndpointSlices itself, as the
//! endpoints controller would) holding `--services` Services with one
//! EndpointSlice each, and `--nodes` simulated nodes, each holding its
//! node-scoped watch of EndpointSlices (an agent's view) on one of a few
//! connections. One endpoint of one slice changes (its `ready` flips);
//! the time from the write to each node's receipt, over `--changes`
//! changes; and the control plane's RSS and CPU while it serves them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use jotasu_api::client::{Client, WatchFilter};
use jotasu_api::{Kind, Object};
use tokio::sync::mpsc;

use super::Report;
use crate::controlplane::{ControlPlane, Options};
use crate::objects::service;

/// The benchmark's name (`target/bench/fanout.json`).
pub const NAME: &str = "fanout";
const NS: &str = "fanout";

/// How the benchmark runs.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Simulated nodes, each with its node-scoped watch.
    #[arg(long, default_value_t = 5000)]
    pub nodes: usize,
    /// Services (one EndpointSlice each).
    #[arg(long, default_value_t = 10000)]
    pub services: usize,
    /// Endpoint changes measured.
    #[arg(long, default_value_t = 20)]
    pub changes: usize,
    /// Watches per connection.
    #[arg(long, default_value_t = 100)]
    pub per_connection: usize,
}

/// One line on what the run does.
pub fn describe(cfg: &Config) -> String {
    format!(
        "fan-out: {} node-scoped watches, {} Services with one EndpointSlice each, {} endpoint changes",
        cfg.nodes, cfg.services, cfg.changes
    )
}

fn slice(i: usize, ready: bool) -> anyhow::Result<Object> {
    let mut o: Object = serde_json::from_value(serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("svc-{i:05}-abcde"), "namespace": NS,
                     "labels": {"kubernetes.io/service-name": format!("svc-{i:05}"),
                                "endpointslice.kubernetes.io/managed-by": "bench.jotasu.io"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [format!("10.244.{}.{}", i / 250 % 250, i % 250 + 2)],
                       "conditions": {"ready": ready, "serving": ready, "terminating": false}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    }))?;
    o.apply_defaults();
    Ok(o)
}

/// (RSS bytes, CPU seconds) of process `pid`.
fn usage(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // After the command's closing parenthesis: the state (field 3), …,
    // utime (14) and stime (15).
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11)
        .zip(fields.get(12))
        .and_then(|(u, s)| Some(u.parse::<f64>().ok()? + s.parse::<f64>().ok()?))
        .unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((rss_kb * 1024.0, ticks / hz))
}

/// Runs the benchmark.
pub fn run(cfg: &Config) -> anyhow::Result<Report> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run_async(cfg))
}

async fn run_async(cfg: &Config) -> anyhow::Result<Report> {
    let mut report = Report::new(NAME);
    let cp = ControlPlane::start(Options {
        args: vec!["--no-controllers".into()],
        ..Options::default()
    })
    .await?;
    let pid = cp
        .pid()
        .ok_or_else(|| anyhow::anyhow!("the control plane is not running"))?;
    let client = cp.client().await?;
    let ns: Object = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}))?;
    client.apply(&[ns], false).await?;
    let started = Instant::now();
    for chunk in (0..cfg.services).collect::<Vec<_>>().chunks(500) {
        let mut objects = Vec::with_capacity(chunk.len() * 2);
        for &i in chunk {
            objects.push(service(NS, &format!("svc-{i:05}"), i)?);
            objects.push(slice(i, true)?);
        }
        client.apply(&objects, false).await?;
    }
    eprintln!(
        "{} Services and slices written in {:.1} s",
        cfg.services,
        started.elapsed().as_secs_f64()
    );
    let (idle_rss, _) = usage(pid)?;

    // The watches: `per_connection` per client connection.
    let (tx, mut rx) = mpsc::unbounded_channel::<(usize, String, Instant)>();
    let mut clients: Vec<Client> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    let opened = Arc::new(tokio::sync::Semaphore::new(0));
    for n in 0..cfg.nodes {
        if n % cfg.per_connection.max(1) == 0 {
            clients.push(cp.client().await?);
        }
        let c = clients
            .last()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no client"))?;
        let (tx, opened) = (tx.clone(), Arc::clone(&opened));
        tasks.spawn(async move {
            let filter = WatchFilter {
                kinds: vec![Kind::EndpointSlice],
                node: Some(format!("fanout-node-{n:05}")),
                ..WatchFilter::default()
            };
            let Ok(mut events) = c.watch(&filter).await else {
                opened.add_permits(1);
                return;
            };
            opened.add_permits(1);
            while let Some(Ok(e)) = events.next().await {
                let _ = tx.send((n, e.object.metadata().name().to_owned(), Instant::now()));
            }
        });
    }
    let _ = opened.acquire_many(u32::try_from(cfg.nodes)?).await?;
    let (watching_rss, cpu_before) = usage(pid)?;
    eprintln!("{} watches open", cfg.nodes);

    let mut latencies = Vec::new();
    let mut missing = 0usize;
    let phase = Instant::now();
    for k in 0..cfg.changes {
        // A different slice each time (7919 is prime): its endpoint turns unready.
        let i = (k * 7919) % cfg.services;
        let name = format!("svc-{i:05}-abcde");
        let written = Instant::now();
        client.apply(&[slice(i, false)?], false).await?;
        let mut seen = vec![false; cfg.nodes];
        let mut count = 0;
        let deadline = written + Duration::from_secs(30);
        while count < cfg.nodes {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some((n, got, at))) if got == name && !seen[n] => {
                    seen[n] = true;
                    count += 1;
                    latencies.push(at.saturating_duration_since(written).as_secs_f64());
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        missing += cfg.nodes - count;
    }
    let elapsed = phase.elapsed().as_secs_f64();
    let (peak_rss, cpu_after) = usage(pid)?;
    tasks.abort_all();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let idx = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies.get(idx).copied().unwrap_or(f64::NAN) * 1000.0
    };
    let case = format!("{} nodes, {} Services", cfg.nodes, cfg.services);
    report.row(&case, "delivery p50", at(0.5), "ms");
    report.row(&case, "delivery p99", at(0.99), "ms");
    report.row(&case, "delivery max", at(1.0), "ms");
    report.row(&case, "deliveries missing after 30 s", missing as f64, "");
    report.row(&case, "control plane RSS idle", idle_rss / 1e6, "MB");
    report.row(
        &case,
        "control plane RSS with the watches",
        watching_rss.max(peak_rss) / 1e6,
        "MB",
    );
    report.row(
        &case,
        "control plane CPU during the changes",
        (cpu_after - cpu_before) / elapsed * 100.0,
        "% of a core",
    );
    report.goal_at_most("delivery p99 to every node", 1000.0, at(0.99), " ms");
    report.goal_at_most("deliveries missing", 0.0, missing as f64, "");
    Ok(report)
}
