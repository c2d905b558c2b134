//! Pod start-up (`jotasu-bench pods`): a real one-node cluster
//! ([`LocalCluster`]: control plane, containerd, jotasu-agent), a
//! Deployment of N busybox pods applied at once, and for each pod the time
//! from its creation (its ADDED watch event) to its Ready condition (the
//! MODIFIED event that carries it), as p50 / p99 / max; and the agent's
//! resident memory idle and with the N pods running.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use jotasu_api::client::{EventType, WatchFilter};
use jotasu_api::{Kind, Object};

use super::client::Histogram;
use super::{Report, median};
use crate::cluster::{ClusterOptions, LocalCluster};
use crate::jotactl::Ctl;

/// How the benchmark runs.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Replicas of the Deployment.
    #[arg(long, default_value_t = 30)]
    pub replicas: usize,
    /// Rounds (apply, all Ready, delete, all gone) in the same cluster; the
    /// goal is judged on the median round, since on a 2-core VM one round
    /// swings by a third with whatever else the host runs.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// An extra `jotasu-agent` flag (repeatable), e.g. `--agent-arg=--oci-runtime=runc`.
    #[arg(long = "agent-arg", allow_hyphen_values = true)]
    pub agent_args: Vec<String>,
}

/// One line on what the run does.
pub fn describe(cfg: &Config) -> String {
    format!(
        "pod start-up: a {}-replica Deployment on one node (real containerd, jotasu-cni, jotasu-agent{}), {} rounds; creation to Ready per pod, and the agent's RSS",
        cfg.replicas,
        if cfg.agent_args.is_empty() {
            String::new()
        } else {
            format!(" {}", cfg.agent_args.join(" "))
        },
        cfg.rounds.max(1),
    )
}

fn manifest(replicas: usize) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: bench
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: bench}}
  template:
    metadata:
      labels: {{app: bench}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: sleep
        image: jotasu.local/busybox:latest
        command: ["sleep", "3600"]
"#
    )
}

/// The resident set of a process, in MiB.
pub(crate) fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    Ok(kib / 1024.0)
}

fn ready(object: &Object) -> bool {
    matches!(object, Object::Pod(p) if crate::e2e::ready(p))
}

/// Runs the benchmark.
pub fn run(cfg: &Config) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(measure(cfg))
}

/// What one round measured.
struct Round {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    all_ready_s: f64,
    /// The agent's RSS 2 s after the last pod was Ready.
    loaded_rss_mib: f64,
}

async fn measure(cfg: &Config) -> anyhow::Result<Report> {
    let defaults = ClusterOptions::default();
    let mut cluster = LocalCluster::start(ClusterOptions {
        quiet: std::env::var_os("JOTASU_LOG").is_none(),
        agent_args: [defaults.agent_args.clone(), cfg.agent_args.clone()].concat(),
        ..defaults
    })
    .await?;
    cluster.import_demo_image()?;
    let pid = cluster.nodes()[0]
        .agent_pid()
        .context("the agent is not running")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = rss_mib(pid)?;

    let client = cluster.client().await?;
    let ctl = Ctl::new();
    let mut rounds = Vec::new();
    for _ in 0..cfg.rounds.max(1) {
        rounds.push(one_round(cfg, &cluster, &client, &ctl, pid).await?);
    }
    drop(cluster);
    let busy = rounds.iter().map(|r| r.loaded_rss_mib).fold(0.0, f64::max);

    let case = format!("{}-replica Deployment, one node", cfg.replicas);
    let mut report = Report::new("pods");
    for (i, r) in rounds.iter().enumerate() {
        let case = format!("round {}", i + 1);
        report.row(&case, "creation to Ready p50", r.p50_ms, "ms");
        report.row(&case, "creation to Ready p99", r.p99_ms, "ms");
        report.row(&case, "creation to Ready max", r.max_ms, "ms");
        report.row(&case, "apply to all Ready", r.all_ready_s, "s");
    }
    let of = |f: fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    let p99 = of(|r| r.p99_ms);
    let case = format!("{case}, median round");
    report.row(&case, "creation to Ready p50", of(|r| r.p50_ms), "ms");
    report.row(&case, "creation to Ready p99", p99, "ms");
    report.row(&case, "creation to Ready max", of(|r| r.max_ms), "ms");
    report.row(&case, "apply to all Ready", of(|r| r.all_ready_s), "s");
    report.row("jotasu-agent", "RSS idle", idle, "MiB");
    report.row(
        "jotasu-agent",
        &format!("RSS with {} pods", cfg.replicas),
        busy,
        "MiB",
    );
    report.goal_at_most("creation to Ready p99 (median round)", 1000.0, p99, " ms");
    report.goal_at_most("agent RSS idle", 30.0, idle, " MiB");
    Ok(report)
}

/// Applies the Deployment, times each pod from creation to Ready, reads the
/// RSS of the agent (`agent_pid`) 2 s after the last is Ready, deletes it
/// and waits until every pod is gone.
async fn one_round(
    cfg: &Config,
    cluster: &LocalCluster,
    client: &jotasu_api::client::Client,
    ctl: &Ctl,
    agent_pid: u32,
) -> anyhow::Result<Round> {
    let list = client.list(Kind::Pod, Some("default"), "app=bench").await?;
    let filter = WatchFilter {
        kinds: vec![Kind::Pod],
        namespace: Some("default".into()),
        label_selector: "app=bench".into(),
        from_revision: list.revision + 1,
        ..WatchFilter::default()
    };
    let mut events = client.watch(&filter).await?;
    let applied = Instant::now();
    let out = ctl.pipe(
        &cluster.server(),
        &["apply", "-f", "-"],
        &manifest(cfg.replicas),
    );
    if out.code != 0 {
        bail!("apply failed: {}", out.stderr);
    }
    let mut created: HashMap<String, Instant> = HashMap::new();
    let mut latencies = Histogram::default();
    let mut worst = Duration::ZERO;
    let mut done = 0;
    let deadline = applied + Duration::from_secs(180);
    while done < cfg.replicas {
        let event = tokio::time::timeout_at(deadline.into(), events.next())
            .await
            .context("the pods did not all become Ready within 180 s")?
            .context("the watch ended")??;
        let now = Instant::now();
        let name = event.object.metadata().name().to_owned();
        if event.kind == EventType::Added {
            created.entry(name.clone()).or_insert(now);
        }
        if ready(&event.object)
            && let Some(start) = created.remove(&name)
        {
            let took = now - start;
            worst = worst.max(took);
            latencies.record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
            done += 1;
        }
    }
    let all_ready = applied.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded_rss_mib = rss_mib(agent_pid)?;

    let out = ctl.at(&cluster.server(), &["delete", "deployment", "bench"]);
    if out.code != 0 {
        bail!("delete failed: {}", out.stderr);
    }
    let gone_by = Instant::now() + Duration::from_secs(120);
    while !client
        .list(Kind::Pod, Some("default"), "app=bench")
        .await?
        .items
        .is_empty()
    {
        if Instant::now() > gone_by {
            bail!("the pods were not all removed within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The node finishes tearing down (shims exiting, cgroups removed)
    // before the next round starts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ms = |ns: u64| ns as f64 / 1e6;
    Ok(Round {
        p50_ms: ms(latencies.quantile(0.5)),
        p99_ms: ms(latencies.quantile(0.99)),
        max_ms: worst.as_secs_f64() * 1e3,
        all_ready_s: all_ready.as_secs_f64(),
        loaded_rss_mib,
    })
}
