//! The watch-cache benchmark: etcd's write rate through the API with 0
//! API watchers against with many (default 1,000) watching the kind
//! written, all namespaces, in the same run (goal: ratio >= 0.90).
//!
//! One `jotasu-controlplane` process (no controllers: every write is the
//! benchmark's) runs on a throwaway etcd. `--writers` clients apply
//! ConfigMaps (creates, then updates of the same names) as fast as they
//! are acknowledged for `--seconds`; then the watchers open their watches
//! (over `--connections` connections) and the writers run again while every
//! watcher drains its stream. etcd's own watcher gauge
//! (`etcd_debugging_mvcc_watcher_total` on its `/metrics`) shows how many
//! store watches the control plane holds in each phase.
use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use futures::StreamExt as _;
use jotasu_api::{Kind, client::Client, grpc::v1};
use tokio::{sync::Barrier, task::JoinSet};

use super::{Report, calls::apply_one};
use crate::{
    controlplane::{ControlPlane, Options},
    etcd::EtcdServer,
    objects::{config_map, namespace},
    signals,
};

/// The benchmark's name (`target/bench/watchers.json`).
pub const NAME: &str = "watchers";
const NAMESPACE: &str = "bench-watchers";
/// Names each writer cycles through.
const NAMES_PER_WRITER: usize = 200;

/// How the benchmark runs.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// API watchers of the second phase.
    #[arg(long, default_value_t = 1000)]
    pub watchers: usize,
    /// Connections the watchers share (HTTP/2 streams on each).
    #[arg(long, default_value_t = 50)]
    pub connections: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    /// Seconds each phase writes.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Also measure as many watchers that the cache does not serve (each
    /// its own etcd watch, as every watch was before the cache).
    #[arg(long)]
    pub uncached: bool,
}

/// One line on how the run was made, printed above the table.
pub fn describe(cfg: &Config) -> String {
    format!(
        "a control plane (no controllers) on a throwaway etcd; {} writers apply ConfigMaps for \
         {} s with 0 API watchers, then for {} s with {} API watchers of ConfigMaps in all \
         namespaces on {} connections, each draining its stream",
        cfg.writers, cfg.seconds, cfg.seconds, cfg.watchers, cfg.connections
    ) + if cfg.uncached {
        "; then as many watchers of ConfigMaps and Secrets, which the cache does not serve \
         (each its own etcd watch)"
    } else {
        ""
    }
}

/// Runs the benchmark.
pub fn run(cfg: &Config) -> anyhow::Result<Report> {
    ensure!(
        cfg.writers >= 1 && cfg.connections >= 1 && cfg.seconds >= 1,
        "--writers, --connections and --seconds must be at least 1"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // etcd and the control plane are spawned from this thread (they die with it).
    rt.block_on(measure(cfg))
}

/// What one write phase did.
struct Phase {
    writes: u64,
    seconds: f64,
}

/// `writers` clients apply ConfigMaps for `seconds`; the writes acknowledged.
async fn write_phase(
    cp: &ControlPlane,
    writers: usize,
    seconds: u64,
    round: usize,
) -> anyhow::Result<Phase> {
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let mut tasks = JoinSet::new();
    for w in 0..writers {
        let client = cp.client().await?;
        tasks.spawn(async move {
            let mut n = 0u64;
            let mut k = 0usize;
            while Instant::now() < until {
                signals::check()?;
                let name = format!("w{w}-{:03}", k % NAMES_PER_WRITER);
                apply_one(
                    &client,
                    &config_map(NAMESPACE, &name, round * 1_000_000 + k)?,
                )
                .await?;
                n += 1;
                k += 1;
            }
            anyhow::Ok(n)
        });
    }
    let mut writes = 0;
    while let Some(r) = tasks.join_next().await {
        writes += r??;
    }
    Ok(Phase {
        writes,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Opens `watchers` watches of ConfigMaps over `connections` clients; each
/// counts its events into `delivered` until aborted.
async fn open_watchers(
    cp: &ControlPlane,
    watchers: usize,
    connections: usize,
    kinds: &[Kind],
    delivered: &Arc<AtomicU64>,
) -> anyhow::Result<JoinSet<anyhow::Result<()>>> {
    let kinds: Vec<String> = kinds.iter().map(|k| k.as_str().to_owned()).collect();
    let mut clients = Vec::with_capacity(connections);
    for _ in 0..connections.min(watchers.max(1)) {
        clients.push(cp.client().await?);
    }
    let ready = Arc::new(Barrier::new(watchers + 1));
    let mut set = JoinSet::new();
    for i in 0..watchers {
        let client: Client = clients[i % clients.len()].clone();
        let ready = Arc::clone(&ready);
        let delivered = Arc::clone(delivered);
        let kinds = kinds.clone();
        set.spawn(async move {
            // The raw stream: counting events, not decoding 1,000 copies of
            // each (this process shares the machine with the servers).
            let request = v1::WatchRequest {
                kinds,
                ..v1::WatchRequest::default()
            };
            let stream = client.raw().watch(request).await;
            ready.wait().await;
            let mut stream = stream?.into_inner();
            while let Some(ev) = stream.next().await {
                ev?;
                delivered.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::bail!("a watch ended")
        });
    }
    ready.wait().await;
    Ok(set)
}

/// CPU seconds (user + system) a process has used so far; 0 if unknown.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: f64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { ticks / hz as f64 } else { 0.0 }
}

/// CPU seconds of etcd, the control plane and this process.
fn cpu(etcd: &EtcdServer, cp: &ControlPlane) -> [f64; 3] {
    [
        cpu_seconds(etcd.pid()),
        cp.pid().map_or(0.0, cpu_seconds),
        cpu_seconds(std::process::id()),
    ]
}

/// Rows of CPU time per write, per process, between two [`cpu`] readings.
fn cpu_rows(report: &mut Report, case: &str, before: [f64; 3], after: [f64; 3], writes: u64) {
    let names = [
        "etcd CPU per write",
        "control plane CPU per write",
        "bench CPU per write",
    ];
    for (k, name) in names.iter().enumerate() {
        let us = (after[k] - before[k]) * 1e6 / writes.max(1) as f64;
        report.row(case, name, us, "µs");
    }
}

/// etcd's count of its watchers (`etcd_debugging_mvcc_watcher_total`).
fn etcd_watchers(etcd: &EtcdServer) -> anyhow::Result<f64> {
    let addr = etcd
        .client_url()
        .strip_prefix("http://")
        .context("etcd's URL")?;
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /metrics HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    body.lines()
        .find_map(|l| l.strip_prefix("etcd_debugging_mvcc_watcher_total "))
        .and_then(|v| v.trim().parse().ok())
        .context("etcd_debugging_mvcc_watcher_total not in etcd's /metrics")
}

/// Opens the watchers of `kinds`, writes for `--seconds` while they drain,
/// waits until they have all the events (at most 30 s), closes them;
/// the rows of `case` and the write rate.
async fn watched_phase(
    cp: &ControlPlane,
    etcd: &EtcdServer,
    cfg: &Config,
    case: &str,
    kinds: &[Kind],
    round: usize,
    report: &mut Report,
) -> anyhow::Result<f64> {
    eprintln!("{case}: opening");
    let delivered = Arc::new(AtomicU64::new(0));
    let opened = Instant::now();
    let mut watching = open_watchers(cp, cfg.watchers, cfg.connections, kinds, &delivered).await?;
    let open_s = opened.elapsed().as_secs_f64();
    signals::check()?;
    eprintln!("{case}: writing for {} s", cfg.seconds);
    let etcd_during = etcd_watchers(etcd)?;
    let before = delivered.load(Ordering::Relaxed);
    let cpu_before = cpu(etcd, cp);
    let busy = write_phase(cp, cfg.writers, cfg.seconds, round).await?;
    let cpu_after = cpu(etcd, cp);
    // Let the watchers drain what was written (those still watching).
    let expected = busy.writes * cfg.watchers as u64;
    let drain_until = Instant::now() + Duration::from_secs(30);
    let mut ended = 0usize;
    let mut first_end = None;
    while delivered.load(Ordering::Relaxed) - before < expected && Instant::now() < drain_until {
        match tokio::time::timeout(Duration::from_millis(100), watching.join_next()).await {
            Ok(Some(r)) => {
                ended += 1;
                let why = match r {
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(())) => "ended".to_owned(),
                    Err(e) => e.to_string(),
                };
                first_end.get_or_insert(why);
            }
            Ok(None) => break,
            Err(_) => {}
        }
    }
    let got = delivered.load(Ordering::Relaxed) - before;
    watching.abort_all();
    while watching.join_next().await.is_some() {}
    if let Some(why) = &first_end {
        eprintln!("!!! {ended} watchers ended during the run; the first: {why}");
    }
    let rate = busy.writes as f64 / busy.seconds;
    report.row(case, "writes", rate, "/s");
    report.row(case, "etcd watchers", etcd_during, "");
    cpu_rows(report, case, cpu_before, cpu_after, busy.writes);
    report.row(case, "watches opened in", open_s * 1e3, "ms");
    report.row(case, "events delivered", got as f64, "");
    report.row(case, "events expected", expected as f64, "");
    report.row(case, "watchers ended", ended as f64, "");
    report.goal_at_least(
        &format!("{case}: events delivered / expected"),
        1.0,
        if expected > 0 {
            got as f64 / expected as f64
        } else {
            0.0
        },
        "x",
    );
    Ok(rate)
}

async fn measure(cfg: &Config) -> anyhow::Result<Report> {
    let etcd = EtcdServer::start_or_skip()?
        .context("the watchers benchmark needs etcd (/usr/bin/etcd)")?;
    let cp = ControlPlane::start(Options {
        etcd_endpoints: vec![etcd.client_url().to_owned()],
        args: vec!["--no-controllers".into()],
        ..Options::default()
    })
    .await?;
    cp.client()
        .await?
        .apply(&[namespace(NAMESPACE)?], false)
        .await
        .context("creating the namespace")?;
    let mut report = Report::new(NAME);
    eprintln!("warming up");
    write_phase(&cp, cfg.writers, 1, 0).await?;

    eprintln!("writing with 0 watchers for {} s", cfg.seconds);
    let etcd_before = etcd_watchers(&etcd)?;
    let cpu_before = cpu(&etcd, &cp);
    let idle = write_phase(&cp, cfg.writers, cfg.seconds, 1).await?;
    cpu_rows(
        &mut report,
        "0 watchers",
        cpu_before,
        cpu(&etcd, &cp),
        idle.writes,
    );
    let base = idle.writes as f64 / idle.seconds;
    report.row("0 watchers", "writes", base, "/s");
    report.row("0 watchers", "etcd watchers", etcd_before, "");

    let cached = format!("{} watchers", cfg.watchers);
    let rate = watched_phase(&cp, &etcd, cfg, &cached, &[Kind::ConfigMap], 2, &mut report).await?;
    let ratio = if base > 0.0 { rate / base } else { 0.0 };
    report.row(&cached, "writes vs 0 watchers", ratio, "x");
    report.goal_at_least("write rate, watched / unwatched", 0.90, ratio, "x");
    if cfg.uncached {
        // Two kinds: the cache does not serve them, each API watch is an
        // etcd watch of its own (every watch before the cache).
        let case = format!("{} watchers, uncached", cfg.watchers);
        let kinds = [Kind::ConfigMap, Kind::Secret];
        let rate = watched_phase(&cp, &etcd, cfg, &case, &kinds, 3, &mut report).await?;
        let ratio = if base > 0.0 { rate / base } else { 0.0 };
        report.row(&case, "writes vs 0 watchers", ratio, "x");
    }
    Ok(report)
}
