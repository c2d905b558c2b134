//! Control-plane failover on a real 3-member etcd cluster with three
//! control planes (all on 127.0.0.1, [`crate::ha::HaPlanes`]):
//! - **failover**: kill -9 of the leading control plane, then at once a
//!   change only the controllers carry out (a Deployment scaled up by
//!   one); from the kill to the new leader's Lease and to its first
//!   controller write (the new Pod), over N trials (the killed control
//!   plane is restarted as a follower between trials);
//! - **requests under failure**: 200 API writes/s spread over the control
//!   planes while one control plane, then one etcd member, is killed;
//!   how many failed at the first try, and how many still failed after the
//!   client retried on the next control plane.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jotasu_api::client::Client;
use jotasu_api::{Kind, Object, ObjectRef};

use super::{Report, median};
use crate::ha::HaPlanes;
use crate::objects::config_map;

/// The benchmark's name (`target/bench/failover.json`).
pub const NAME: &str = "failover";

/// How the benchmark runs.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Failover trials.
    #[arg(long, default_value_t = 10)]
    pub trials: usize,
    /// API writes per second in the requests-under-failure cases.
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// Seconds of load per requests-under-failure case (the kill is at a third).
    #[arg(long, default_value_t = 9)]
    pub seconds: u64,
    /// The control planes' --leader-elect-lease-duration, renew deadline
    /// and retry period (empty: their defaults, 2s / 1500ms / 250ms).
    #[arg(long, value_delimiter = ',', value_name = "LEASE,RENEW,RETRY")]
    pub election: Vec<String>,
}

/// One line on what the run does.
pub fn describe(cfg: &Config) -> String {
    format!(
        "control-plane failover: 3 etcd members, 3 control planes (election {}); {} kill -9 trials; {} writes/s for {} s while a control plane, then an etcd member, is killed",
        if cfg.election.is_empty() {
            "2s/1500ms/250ms".to_owned()
        } else {
            cfg.election.join("/")
        },
        cfg.trials,
        cfg.rate,
        cfg.seconds
    )
}

fn web() -> ObjectRef {
    ObjectRef {
        kind: Kind::Deployment,
        namespace: Some("default".into()),
        name: "web".into(),
    }
}

fn deployment() -> anyhow::Result<Object> {
    let mut o: Object = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 0,
                 "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox:latest"}]}}}
    }))?;
    o.apply_defaults();
    Ok(o)
}

async fn pod_count(client: &Client) -> usize {
    client
        .list(Kind::Pod, Some("default"), "app=web")
        .await
        .map_or(0, |l| {
            l.items
                .iter()
                .filter(|o| o.metadata().deletion_timestamp.is_none())
                .count()
        })
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
    anyhow::ensure!(
        crate::ha::etcd_or_skip()?,
        "etcd is missing: apt-get install etcd-server"
    );
    let mut report = Report::new(NAME);
    let args: Vec<&str> = match cfg.election.as_slice() {
        [lease, renew, retry] => vec![
            "--leader-elect-lease-duration",
            lease,
            "--leader-elect-renew-deadline",
            renew,
            "--leader-elect-retry-period",
            retry,
        ],
        [] => Vec::new(),
        _ => anyhow::bail!("--election takes LEASE,RENEW,RETRY, e.g. 1500ms,1s,250ms"),
    };
    let mut ha = HaPlanes::start(3, 3, &args).await?;
    ha.new_leader(None, Duration::from_secs(20)).await?;
    ha.client().await?.apply(&[deployment()?], false).await?;

    let (mut lease, mut write) = (Vec::new(), Vec::new());
    for trial in 0..cfg.trials {
        let leader = ha.new_leader(None, Duration::from_secs(20)).await?;
        // The other control planes are up and following.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let replicas = i32::try_from(trial + 1)?;
        let killed = Instant::now();
        ha.planes[leader].kill9()?;
        let client = ha.client().await?;
        client.scale(&web(), replicas).await?;
        let (mut took, mut wrote) = (None, None);
        while took.is_none() || wrote.is_none() {
            anyhow::ensure!(
                killed.elapsed() < Duration::from_secs(30),
                "trial {trial}: no new leader or no controller write within 30 s"
            );
            if took.is_none() && ha.leader().await.is_some_and(|l| l != leader) {
                took = Some(killed.elapsed());
            }
            if wrote.is_none() && pod_count(&client).await >= usize::try_from(replicas)? {
                wrote = Some(killed.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (took, wrote) = (took.unwrap_or_default(), wrote.unwrap_or_default());
        eprintln!(
            "trial {trial}: Lease taken after {:.2} s, first controller write after {:.2} s",
            took.as_secs_f64(),
            wrote.as_secs_f64()
        );
        lease.push(took.as_secs_f64());
        write.push(wrote.as_secs_f64());
        ha.planes[leader].restart().await?;
    }
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    for (metric, v) in [("Lease taken", &lease), ("first controller write", &write)] {
        report.row(
            "kill -9 of the leader",
            &format!("{metric} p50"),
            median(v.clone()),
            "s",
        );
        report.row(
            "kill -9 of the leader",
            &format!("{metric} max"),
            max(v),
            "s",
        );
    }
    report.goal_at_most(
        "failover p50 (first controller write)",
        2.0,
        median(write.clone()),
        " s",
    );
    report.goal_at_most(
        "failover max (first controller write)",
        5.0,
        max(&write),
        " s",
    );

    for case in ["control plane killed", "etcd member killed"] {
        let leader = ha.new_leader(None, Duration::from_secs(20)).await?;
        let (first, last) = load_while(&mut ha, cfg, case, leader).await?;
        report.row(case, "writes failed at the first try", first, "writes");
        report.row(case, "writes failed after retry", last, "writes");
        report.goal_at_most(&format!("{case}: writes failed after retry"), 0.0, last, "");
    }
    Ok(report)
}

/// Sends `cfg.rate` writes/s for `cfg.seconds`, killing the leading control
/// plane or etcd member 0 a third of the way in; each write goes to the
/// next control plane in turn and, when it fails, is retried once on the
/// one after. Returns (failed at the first try, failed after the retry).
async fn load_while(
    ha: &mut HaPlanes,
    cfg: &Config,
    case: &str,
    leader: usize,
) -> anyhow::Result<(f64, f64)> {
    let mut clients = Vec::new();
    for p in &ha.planes {
        clients.push(p.client().await?);
    }
    let clients = Arc::new(clients);
    let (first, last) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let total = cfg.seconds * u64::from(cfg.rate);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / cfg.rate);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        tick.tick().await;
        if i == total / 3 {
            match case {
                "control plane killed" => ha.planes[leader].kill9()?,
                _ => ha.etcd.kill(0),
            }
        }
        let (clients, first, last) = (Arc::clone(&clients), Arc::clone(&first), Arc::clone(&last));
        let n = clients.len();
        let at = usize::try_from(i)? % n;
        tasks.spawn(async move {
            let cm = config_map(
                "default",
                &format!("load-{}", i % 500),
                usize::try_from(i).unwrap_or(0),
            );
            let Ok(cm) = cm else { return };
            let attempt = |k: usize| {
                let c = clients[k % n].clone();
                let cm = cm.clone();
                async move {
                    tokio::time::timeout(Duration::from_secs(10), c.apply(&[cm], false))
                        .await
                        .map_err(|_| ())
                        .and_then(|r| r.map(|_| ()).map_err(|_| ()))
                }
            };
            if attempt(at).await.is_err() {
                first.fetch_add(1, Ordering::Relaxed);
                if attempt(at + 1).await.is_err() && attempt(at + 2).await.is_err() {
                    last.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let counts = (
        first.load(Ordering::Relaxed) as f64,
        last.load(Ordering::Relaxed) as f64,
    );
    eprintln!(
        "{case}: {} writes, {} failed at the first try, {} after retry",
        total, counts.0, counts.1
    );
    match case {
        "control plane killed" => ha.planes[leader].restart().await?,
        _ => ha.etcd.restart(0)?,
    }
    Ok(counts)
}
