//! Cross-node pod-to-pod networking (`jotasu-bench overlay`): TCP
//! throughput (iperf3) and TCP request/response rate (sockperf ping-pong:
//! one request in flight, as netperf's TCP_RR) from a pod on one node to a
//! pod on another, through jotasu's overlay (a real two-node cluster:
//! control plane, containerd, jotasu-agent; eBPF into a VXLAN device in
//! external mode) and through a flannel-style kernel overlay ([`super::flannel`]:
//! bridge, VXLAN device, routes, neighbour and FDB entries) built in the same
//! run. The two take turns, round after round; the medians are compared.
//!
//! iperf3 and sockperf run from this process inside the pods' network
//! namespaces, so both overlays carry the same programs' traffic.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use jotasu_api::{Kind, Object, Pod};

use super::flannel::FlannelPair;
use super::{Report, median};
use crate::cluster::{ClusterOptions, LocalCluster};
use crate::jotactl::Ctl;
use crate::netns::enter;
use crate::process::Spawned;

/// How the benchmark runs.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Rounds; each measures both overlays once, taking turns.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
}

/// One line on what the run does.
pub fn describe(cfg: &Config) -> String {
    format!(
        "cross-node pod to pod: TCP throughput (iperf3) and TCP request/response rate (sockperf ping-pong), {} s each, {} rounds, jotasu's eBPF overlay and a flannel-style kernel VXLAN overlay taking turns",
        cfg.seconds, cfg.rounds
    )
}

/// A client pod and a server pod on two nodes.
#[derive(Debug, Clone)]
struct Pair {
    case: &'static str,
    /// The client pod's network namespace (a name under /run/netns).
    client_ns: String,
    /// The server pod's.
    server_ns: String,
    server_ip: Ipv4Addr,
}

fn serve(cmd: Command) -> anyhow::Result<Spawned> {
    Spawned::start(cmd).context("run scripts/bootstrap.sh for iperf3 and sockperf")
}

/// Runs a client until `done` accepts its output (its server may still be
/// starting: iperf3 -J even exits 0 on "connection refused").
fn client<T>(mut cmd: Command, done: impl Fn(&str) -> Option<T>) -> anyhow::Result<T> {
    let mut last = String::new();
    for _ in 0..50 {
        let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success()
            && let Some(v) = done(&stdout)
        {
            return Ok(v);
        }
        last = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{cmd:?} kept failing: {last}")
}

/// TCP throughput from client to server, in Gbit/s.
fn throughput(p: &Pair, seconds: u64) -> anyhow::Result<f64> {
    let ip = p.server_ip.to_string();
    let mut s = enter(&p.server_ns, "iperf3");
    s.args(["-s", "-1", "-p", "5201", "-B", &ip]);
    let _server = serve(s)?;
    let mut c = enter(&p.client_ns, "iperf3");
    c.args(["-c", &ip, "-p", "5201", "-J", "-t", &seconds.to_string()]);
    client(c, |out| {
        let json: serde_json::Value = serde_json::from_str(out).ok()?;
        json["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .map(|bps| bps / 1e9)
    })
    .with_context(|| format!("iperf3 through {}", p.case))
}

/// Requests per second of one TCP ping-pong (one request in flight).
fn request_rate(p: &Pair, seconds: u64) -> anyhow::Result<f64> {
    let ip = p.server_ip.to_string();
    let mut s = enter(&p.server_ns, "sockperf");
    s.args(["sr", "--tcp", "-i", &ip, "-p", "11111"]);
    let _server = serve(s)?;
    let mut c = enter(&p.client_ns, "sockperf");
    c.args([
        "pp",
        "--tcp",
        "-i",
        &ip,
        "-p",
        "11111",
        "-t",
        &seconds.to_string(),
    ]);
    client(c, parse_sockperf).with_context(|| format!("sockperf through {}", p.case))
}

/// Received messages per second of sockperf's "[Valid Duration]" line.
pub fn parse_sockperf(out: &str) -> Option<f64> {
    let line = out.lines().find(|l| l.contains("[Valid Duration]"))?;
    let field = |name: &str| -> Option<f64> {
        let rest = &line[line.find(name)? + name.len()..];
        rest.split(|c: char| c == ';' || c.is_whitespace())
            .next()?
            .parse()
            .ok()
    };
    let secs = field("RunTime=")?;
    let received = field("ReceivedMessages=")?;
    (secs > 0.0).then(|| received / secs)
}

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: bench-client}
spec:
  nodeSelector: {kubernetes.io/hostname: NODE0}
  terminationGracePeriodSeconds: 0
  containers:
  - {name: main, image: jotasu.local/busybox:latest, command: ["sleep", "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: bench-server}
spec:
  nodeSelector: {kubernetes.io/hostname: NODE1}
  terminationGracePeriodSeconds: 0
  containers:
  - {name: main, image: jotasu.local/busybox:latest, command: ["sleep", "3600"]}
"#;

/// Waits until pod `name` (in `default`) runs with an IP; its namespace's name and its IP.
pub(crate) async fn running_pod(
    cluster: &LocalCluster,
    name: &str,
) -> anyhow::Result<(String, Ipv4Addr)> {
    let client = cluster.client().await?;
    let r = jotasu_api::ObjectRef {
        kind: Kind::Pod,
        namespace: Some("default".into()),
        name: name.into(),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Object::Pod(p)) = client.get(&r).await {
            let p: Pod = p;
            let ip = p.status.as_ref().and_then(|s| s.pod_ip.as_deref());
            if let (Some(ip), Some(netns)) = (ip, crate::e2e::netns_of(&p)) {
                return Ok((netns, ip.parse()?));
            }
        }
        if Instant::now() > deadline {
            bail!("pod {name} did not run within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn jotasu_pair(cluster: &mut LocalCluster) -> anyhow::Result<Pair> {
    cluster.import_demo_image()?;
    let nodes = cluster.nodes();
    let yaml = PODS
        .replace("NODE0", nodes[0].name())
        .replace("NODE1", nodes[1].name());
    let out = Ctl::new().pipe(&cluster.server(), &["apply", "-f", "-"], &yaml);
    if out.code != 0 {
        bail!("apply failed: {}", out.stderr);
    }
    let (client_ns, _) = running_pod(cluster, "bench-client").await?;
    let (server_ns, server_ip) = running_pod(cluster, "bench-server").await?;
    Ok(Pair {
        case: "jotasu (eBPF + VXLAN external mode)",
        client_ns,
        server_ns,
        server_ip,
    })
}

/// Runs the benchmark.
pub fn run(cfg: &Config) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut cluster = runtime.block_on(LocalCluster::start(ClusterOptions {
        nodes: 2,
        quiet: std::env::var_os("JOTASU_LOG").is_none(),
        ..ClusterOptions::default()
    }))?;
    let jotasu = runtime.block_on(jotasu_pair(&mut cluster))?;
    let flannel_net = FlannelPair::build(cluster.prefix())?;
    let flannel = Pair {
        case: "flannel-style (bridge + kernel VXLAN + routes)",
        client_ns: flannel_net.client_netns(),
        server_ns: flannel_net.server_netns(),
        server_ip: flannel_net.server_ip(),
    };
    let pairs = [jotasu, flannel];
    let mut gbps = vec![Vec::new(); pairs.len()];
    let mut rates = vec![Vec::new(); pairs.len()];
    for round in 0..cfg.rounds {
        // Alternate who goes first, so neither always runs on a warmer machine.
        let order: Vec<usize> = if round % 2 == 0 {
            vec![0, 1]
        } else {
            vec![1, 0]
        };
        for &i in &order {
            gbps[i].push(throughput(&pairs[i], cfg.seconds)?);
            rates[i].push(request_rate(&pairs[i], cfg.seconds)?);
        }
    }
    drop(flannel_net);
    drop(cluster);

    let mut report = Report::new("overlay");
    let medians: Vec<(f64, f64)> = (0..pairs.len())
        .map(|i| (median(gbps[i].clone()), median(rates[i].clone())))
        .collect();
    let spread = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        (lo, hi)
    };
    for (i, (p, (g, r))) in pairs.iter().zip(&medians).enumerate() {
        let (glo, ghi) = spread(&gbps[i]);
        let (rlo, rhi) = spread(&rates[i]);
        report.row(p.case, "TCP throughput (median)", *g, "Gbit/s");
        report.row(p.case, "TCP throughput (min)", glo, "Gbit/s");
        report.row(p.case, "TCP throughput (max)", ghi, "Gbit/s");
        report.row(p.case, "TCP request/response rate (median)", *r, "req/s");
        report.row(p.case, "TCP request/response rate (min)", rlo, "req/s");
        report.row(p.case, "TCP request/response rate (max)", rhi, "req/s");
    }
    let [(jg, jr), (fg, fr)] = [medians[0], medians[1]];
    report.goal_at_least("throughput jotasu / flannel-style", 0.95, jg / fg, "");
    report.goal_at_least("request rate jotasu / flannel-style", 1.0, jr / fr, "");
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sockperf_summary_gives_the_request_rate() {
        let out = "sockperf: [Total Run] RunTime=2.001 sec; Warm up time=400 msec; SentMessages=19156; ReceivedMessages=19155\n\
                   sockperf: [Valid Duration] RunTime=1.551 sec; SentMessages=12995; ReceivedMessages=12995\n";
        let rate = super::parse_sockperf(out).expect("a rate");
        assert!((rate - 12995.0 / 1.551).abs() < 1e-6, "{rate}");
        assert_eq!(super::parse_sockperf("no summary"), None);
    }
}
