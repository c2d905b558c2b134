//! Production traffic (`jotasu-bench traffic`, issue 20), in one run:
//!
//! - **from outside the cluster**: new connections/s and TCP throughput
//!   (iperf3) from a host on the underlay to a pod through its Service's
//!   node port — `externalTrafficPolicy: Cluster` on the pod's node and on
//!   the other node (through the overlay), `Local` on the pod's node —
//!   against connecting to the pod's address directly (the host routes the
//!   pod CIDR to the pod's node, whose stack forwards: plain kernel routing);
//! - **a rolling update under load**: a 30-replica Deployment behind a
//!   NodePort Service replaced while clients on every node (to the
//!   ClusterIP) and outside (to the node port) send a paced total of about
//!   500 requests/s, each on a new connection: failed requests and the
//!   update's duration;
//! - **`from_pod`'s cost per packet** from the kernel's BPF run-time
//!   statistics (`BPF_ENABLE_STATS`, on only while measuring) while a
//!   client connects through the tc path, then the socket path, to one of
//!   N services (N = 10 and 10,000, ten backends each);
//! - **the flow stream's cost**: new connections/s through the tc path with
//!   flow events off and on (every new flow recorded, a reader draining and
//!   decoding the ring as the agent does), in alternating turns.
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aya::programs::SchedClassifier;

use super::datapath::case::{BACKENDS, Case, IDLE_PORT, service_set};
use super::world::{TurnClient, tune_client};
use super::{Report, median};
use crate::cluster::ClusterOptions;
use crate::e2e::{Harness, netns_of, ready};
use crate::lab::{Lab, testbin_path};
use crate::netns::{NetNs, enter};
use crate::process::Spawned;
use crate::signals;
use crate::traffic::{HttpLoad, LoadReport, http_load_args};
use crate::wait::eventually;

/// The benchmark's name (its JSON file).
pub const NAME: &str = "traffic";
const CONN_PORT: u16 = 9000;
const IPERF_PORT: u16 = 5201;
const METRIC_RATE: &str = "new connections/s";
const METRIC_GBPS: &str = "throughput";

/// How the benchmark runs.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Measured seconds of one turn (connections) or one iperf3 run.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Rounds; each measures every external case once, in a shuffled order.
    #[arg(long, default_value_t = 5)]
    pub rounds: u64,
    /// Connection loops of the load client.
    #[arg(long, default_value_t = 8)]
    pub threads: usize,
    /// Replicas of the rolling update.
    #[arg(long, default_value_t = 30)]
    pub replicas: usize,
    /// Requests per second during the rolling update, over all clients.
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Service counts N for from_pod's per-packet cost.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 10000])]
    pub services: Vec<usize>,
}

/// One line on what the run does.
pub fn describe(cfg: &Config) -> String {
    format!(
        "from a host outside the cluster: {} s turns x {} rounds of connect -> request -> reply -> close ({} threads) and iperf3, node port vs the pod's address; a {}-replica rolling update under {} requests/s; from_pod's run time per packet at N = {:?} services",
        cfg.seconds, cfg.rounds, cfg.threads, cfg.replicas, cfg.rate, cfg.services
    )
}

/// Runs the benchmark and returns its report.
pub fn run(cfg: &Config) -> anyhow::Result<Report> {
    anyhow::ensure!(
        cfg.seconds > 0.0 && cfg.rounds > 0 && cfg.threads > 0,
        "nothing to measure"
    );
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut report = Report::new(NAME);
    for &n in &cfg.services {
        signals::check()?;
        per_packet(n, cfg, &exe, &mut report)?;
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(cluster_cases(cfg, &exe, &mut report))?;
    goals(&mut report, cfg);
    Ok(report)
}

/// `from_pod`'s run time per packet while a client loads one of `n`
/// services: through the tc path (a process outside the node's cgroup:
/// `from_pod` translates every packet) and through the socket path (a pod's
/// process: `connect4` translated, `from_pod` checks and delivers).
fn per_packet(n: usize, cfg: &Config, exe: &Path, report: &mut Report) -> anyhow::Result<()> {
    anyhow::ensure!((4..60_000).contains(&n), "4 to 59999 services");
    eprintln!("N={n}: a node with {BACKENDS} backends, {n} services");
    let mut lab = Lab::new(BACKENDS, &[IDLE_PORT, Case::Tc.port(), Case::Socket.port()])?;
    tune_client(&lab.client().ns)?;
    lab.dp()
        .reconcile(&service_set(n, &[Case::Tc, Case::Socket]))?;
    let pin = lab.dp().pin_dir().join("progs/from_pod");
    let prog =
        SchedClassifier::from_pin(&pin).with_context(|| format!("opening {}", pin.display()))?;
    for case in [Case::Tc, Case::Socket] {
        let cgroup = (case == Case::Socket).then_some(&lab.node.cgroup);
        let mut client =
            TurnClient::spawn(exe, &lab.client().ns, cgroup, &case.targets(n), cfg.threads)?;
        // Warm: conntrack, caches.
        client.turn(
            Duration::from_secs_f64(0.5),
            Duration::from_secs_f64(cfg.seconds),
        )?;
        let stats = aya::sys::enable_stats(aya::sys::Stats::RunTime)
            .context("enabling the kernel's BPF run-time statistics")?;
        let before = prog.info()?;
        let mut load = super::client::Turns::default();
        for _ in 0..cfg.rounds {
            signals::check()?;
            load.add(&client.turn(Duration::ZERO, Duration::from_secs_f64(cfg.seconds))?);
        }
        let after = prog.info()?;
        drop(stats);
        let runs = after.run_count().saturating_sub(before.run_count());
        let ns = after
            .run_time()
            .saturating_sub(before.run_time())
            .as_nanos() as f64;
        anyhow::ensure!(runs > 0, "from_pod never ran: are the statistics on?");
        let name = format!("from_pod, {}, N={n}", case.label());
        report.row(&name, "run time per packet", ns / runs as f64, "ns");
        report.row(&name, "packets", runs as f64, "");
        report.row(&name, METRIC_RATE, load.total.rate(), "conn/s");
        report.row(&name, "failed", load.total.failures as f64, "conn");
        eprintln!(
            "{name}: {:.0} ns per packet over {runs} packets",
            ns / runs as f64
        );
        if case == Case::Tc {
            flow_stream_cost(&mut lab, &mut client, n, cfg, report)?;
        }
    }
    Ok(())
}

/// New connections/s through the tc path with flow events off and on
/// (every new flow and drop recorded, no sampling, no budget), in
/// alternating turns, while a reader drains and decodes the ring buffer as
/// the agent does.
fn flow_stream_cost(
    lab: &mut Lab,
    client: &mut TurnClient,
    n: usize,
    cfg: &Config,
    report: &mut Report,
) -> anyhow::Result<()> {
    use jotasu_ebpf::FlowEventConfig;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let dir = lab.dp().pin_dir().to_owned();
    let mut reader = jotasu_ebpf::FlowReader::open_dir(&dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    let decoded = Arc::new(AtomicU64::new(0));
    let drainer = {
        let (stop, decoded) = (Arc::clone(&stop), Arc::clone(&decoded));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                let got = reader.drain(4096);
                let ok = got.iter().filter(|e| e.is_ok()).count() as u64;
                decoded.fetch_add(ok, Ordering::Relaxed);
                if got.is_empty() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    let on = FlowEventConfig {
        new_flows: true,
        drops: true,
        ..FlowEventConfig::OFF
    };
    let settings = [("off", FlowEventConfig::OFF), ("on", on)];
    let mut turns: [super::client::Turns; 2] = Default::default();
    let before = lab.dp().flow_events().counters()?;
    let mut measure = || -> anyhow::Result<()> {
        for round in 0..cfg.rounds {
            for k in 0..2 {
                let i = (k + round as usize) % 2;
                signals::check()?;
                lab.dp().flow_events_mut().set_config(settings[i].1)?;
                let seconds = Duration::from_secs_f64(cfg.seconds);
                turns[i].add(&client.turn(Duration::from_secs_f64(0.2), seconds)?);
            }
        }
        Ok(())
    };
    let result = measure();
    lab.dp()
        .flow_events_mut()
        .set_config(FlowEventConfig::OFF)?;
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Release);
    let _ = drainer.join();
    result?;
    let after = lab.dp().flow_events().counters()?;
    for (i, (label, _)) in settings.iter().enumerate() {
        let name = format!("flow events {label}, tc path, N={n}");
        report.row(&name, METRIC_RATE, turns[i].total.rate(), "conn/s");
        report.row(&name, "rate ±95% CI", turns[i].rate_ci95(), "conn/s");
        report.row(&name, "failed", turns[i].total.failures as f64, "conn");
    }
    let name = format!("flow events on, tc path, N={n}");
    let emitted = after.emitted.saturating_sub(before.emitted) as f64;
    report.row(&name, "events emitted", emitted, "");
    let lost = after.lost.saturating_sub(before.lost) as f64;
    report.row(&name, "events lost (ring full)", lost, "");
    report.row(
        &name,
        "events decoded",
        decoded.load(Ordering::Relaxed) as f64,
        "",
    );
    Ok(())
}

/// A Service NodePort (`policy`) over the pod `srv`, both ports.
fn server_service(name: &str, policy: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  type: NodePort
  externalTrafficPolicy: {policy}
  selector: {{app: srv}}
  ports:
  - {{name: conn, port: {CONN_PORT}, targetPort: {CONN_PORT}}}
  - {{name: iperf, port: {IPERF_PORT}, targetPort: {IPERF_PORT}}}
---
"#
    )
}

const ROLL: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: roll
spec:
  replicas: REPLICAS
  selector:
    matchLabels: {app: roll}
  template:
    metadata:
      labels: {app: roll}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: httpd
        image: jotasu.local/busybox:latest
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && echo ok > /www/healthz && httpd -f -p 80 -h /www & wait"]
        env:
        - {name: REVISION, value: "VALUE"}
        readinessProbe:
          httpGet: {path: /healthz, port: 80}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata:
  name: roll
spec:
  type: NodePort
  selector: {app: roll}
  ports:
  - {name: http, port: 80, targetPort: 80}
"#;

/// A pod pinned to `node` that sleeps (a server's or a client's place).
fn sleeper(name: &str, app: &str, node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {app}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: sh
    image: jotasu.local/busybox:latest
    command: ["sleep", "3600"]
---
"#
    )
}

/// An external case: how the outside host reaches the server.
struct External {
    label: &'static str,
    conn: SocketAddr,
    iperf: SocketAddr,
}

async fn cluster_cases(cfg: &Config, exe: &Path, report: &mut Report) -> anyhow::Result<()> {
    eprintln!("starting a 2-node cluster");
    let h = Harness::start(ClusterOptions::spreading(2)).await;
    let names = h.node_names();
    let ips: Vec<Ipv4Addr> = h.cluster.nodes().iter().map(|n| n.ip()).collect();
    h.apply(&format!(
        "{}{}{}{}{}",
        sleeper("srv", "srv", &names[1]),
        sleeper("client-0", "client", &names[0]),
        sleeper("client-1", "client", &names[1]),
        server_service("srv", "Cluster"),
        server_service("srv-local", "Local"),
    ));
    let srv = eventually("the server pod runs", crate::e2e::SETTLE, || async {
        h.pod("srv").await.filter(ready)
    })
    .await;
    let srv_ip: Ipv4Addr = srv
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .context("the server has an address")?
        .parse()?;
    let srv_ns = netns_of(&srv).context("the server's network namespace")?;
    let testbin = testbin_path()?;
    let mut serve = enter(&srv_ns, &testbin);
    serve.args(["serve", "--name", "srv", "--ports", &CONN_PORT.to_string()]);
    let _server = Spawned::until_ready(serve, crate::traffic::READY)?;
    let mut iperf = enter(&srv_ns, "iperf3");
    iperf.args(["-s", "-p", &IPERF_PORT.to_string()]);
    let _iperf = Spawned::start(iperf).context("run scripts/bootstrap.sh for iperf3")?;

    // The host outside: the node ports, and the pod CIDR of node 1 routed
    // to it (node 1 forwards: the direct baseline is plain kernel routing).
    let (outside, _) = h.cluster.external_host(0)?;
    tune_client(&outside)?;
    let cidr = format!("{}/24", Ipv4Addr::from(u32::from(srv_ip) & 0xffff_ff00));
    outside.ip(&["route", "add", &cidr, "via", &ips[1].to_string()])?;
    h.cluster.nodes()[1]
        .netns()
        .sysctl("net.ipv4.conf.all.forwarding", "1")?;
    let (np_conn, np_iperf) = (
        h.node_port("srv", 0).await.context("a node port")?,
        h.node_port("srv", 1).await.context("a node port")?,
    );
    let (lp_conn, lp_iperf) = (
        h.node_port("srv-local", 0).await.context("a node port")?,
        h.node_port("srv-local", 1).await.context("a node port")?,
    );
    let cases = [
        External {
            label: "direct to the pod",
            conn: (srv_ip, CONN_PORT).into(),
            iperf: (srv_ip, IPERF_PORT).into(),
        },
        External {
            label: "node port, Cluster, the pod's node",
            conn: (ips[1], np_conn).into(),
            iperf: (ips[1], np_iperf).into(),
        },
        External {
            label: "node port, Local, the pod's node",
            conn: (ips[1], lp_conn).into(),
            iperf: (ips[1], lp_iperf).into(),
        },
        External {
            label: "node port, Cluster, the other node",
            conn: (ips[0], np_conn).into(),
            iperf: (ips[0], np_iperf).into(),
        },
    ];
    external_cases(cfg, exe, &outside, &cases, report)?;
    record_drops(&h, "after the external cases", report)?;
    rolling_update(cfg, &h, &outside, &ips, report).await?;
    record_drops(&h, "after the rolling update", report)?;
    drop(outside);
    Ok(())
}

/// Every node's drops by reason so far (non-zero ones), as rows.
fn record_drops(h: &Harness, when: &str, report: &mut Report) -> anyhow::Result<()> {
    for (i, node) in h.node_names().iter().enumerate() {
        let drops =
            jotasu_ebpf::drops::Drops::open_in(Path::new(jotasu_ebpf::DEFAULT_BPFFS), node)?;
        for (reason, n) in drops.counters()? {
            if n > 0 {
                report.row(
                    &format!("node {i} drops, {when}"),
                    reason.as_str(),
                    n as f64,
                    "pkt",
                );
            }
        }
    }
    Ok(())
}

fn external_cases(
    cfg: &Config,
    exe: &Path,
    outside: &NetNs,
    cases: &[External],
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut clients = Vec::new();
    for c in cases {
        clients.push(TurnClient::spawn(
            exe,
            outside,
            None,
            &[c.conn],
            cfg.threads,
        )?);
    }
    let mut turns: Vec<super::client::Turns> = cases.iter().map(|_| Default::default()).collect();
    let mut gbps: Vec<Vec<f64>> = cases.iter().map(|_| Vec::new()).collect();
    let seconds = Duration::from_secs_f64(cfg.seconds);
    for round in 1..=cfg.rounds {
        for i in super::datapath::shuffled(cases.len(), round) {
            signals::check()?;
            turns[i].add(&clients[i].turn(Duration::from_secs_f64(0.2), seconds)?);
            gbps[i].push(iperf(outside, cases[i].iperf, cfg.seconds)?);
        }
        eprintln!("external round {round}/{} done", cfg.rounds);
    }
    for (i, c) in cases.iter().enumerate() {
        let t = &turns[i];
        report.row(c.label, METRIC_RATE, t.total.rate(), "conn/s");
        report.row(c.label, "rate ±95% CI", t.rate_ci95(), "conn/s");
        report.row(c.label, "connect p99", t.total.connect_us(0.99), "µs");
        report.row(c.label, "failed", t.total.failures as f64, "conn");
        report.row(c.label, METRIC_GBPS, median(gbps[i].clone()), "Gbit/s");
    }
    Ok(())
}

/// iperf3 from the outside host to `to`, in Gbit/s.
fn iperf(outside: &NetNs, to: SocketAddr, seconds: f64) -> anyhow::Result<f64> {
    let secs = format!("{}", seconds.ceil().max(1.0));
    let (ip, port) = (to.ip().to_string(), to.port().to_string());
    for _ in 0..20 {
        let out = outside
            .command("iperf3")
            .args(["-c", &ip, "-p", &port, "-J", "-t", &secs])
            .output()
            .context("running iperf3: run scripts/bootstrap.sh")?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(bps) = json["end"]["sum_received"]["bits_per_second"].as_f64() {
            return Ok(bps / 1e9);
        }
        std::thread::sleep(Duration::from_millis(200)); // the server is between tests
    }
    anyhow::bail!("iperf3 to {to} kept failing")
}

async fn rolling_update(
    cfg: &Config,
    h: &Harness,
    outside: &NetNs,
    ips: &[Ipv4Addr],
    report: &mut Report,
) -> anyhow::Result<()> {
    let roll = ROLL.replace("REPLICAS", &cfg.replicas.to_string());
    h.apply(&roll.replace("VALUE", "1"));
    let first = h.ready_pods("app=roll", cfg.replicas).await;
    let vip = h.vip("roll").await;
    let np = h.node_port("roll", 0).await.context("a node port")?;
    eventually("every endpoint", crate::e2e::SETTLE, || async {
        (h.endpoint_ips("roll").await.len() == cfg.replicas).then_some(())
    })
    .await;
    let testbin = testbin_path()?;
    let testbin_str = testbin.to_str().context("a UTF-8 path")?;
    let share = cfg.rate / 3.0;
    let mut loads = Vec::new();
    for name in ["client-0", "client-1"] {
        let pod = h.pod(name).await.context("the client pod")?;
        let place = crate::dns::PodPlace::of(&pod).context("the client pod's place")?;
        let args = http_load_args(&format!("{vip}:80"), 4, share);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let cmd = place.command(Duration::from_secs(1800), testbin_str, &args);
        loads.push(HttpLoad::start(cmd, name)?);
    }
    let mut cmd: Command = outside.command(&testbin);
    cmd.args(http_load_args(&format!("{}:{np}", ips[0]), 4, share));
    loads.push(HttpLoad::start(cmd, "outside, node port")?);
    let load_began = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let began = Instant::now();
    h.apply(&roll.replace("VALUE", "2"));
    let run = h.ctl.at(
        &h.server,
        &["rollout", "status", "deployment/roll", "--timeout", "900s"],
    );
    let took = began.elapsed().as_secs_f64();
    anyhow::ensure!(run.code == 0, "the rollout did not complete: {run:?}");
    let second = h.ready_pods("app=roll", cfg.replicas).await;
    anyhow::ensure!(
        second
            .iter()
            .all(|p| first.iter().all(|f| f.metadata.uid != p.metadata.uid)),
        "the rollout left old pods Ready"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut all = LoadReport::default();
    for load in loads {
        let label = load.label().to_owned();
        let r = load.stop()?;
        eprintln!("{label}: {} answered, {} failed", r.ok, r.failures.len());
        if let Some(f) = r.failures.first() {
            eprintln!("{label}: first failure: {f}");
        }
        all.ok += r.ok;
        all.failures.extend(r.failures);
    }
    let loaded = load_began.elapsed().as_secs_f64();
    let case = format!("rolling update of {}", cfg.replicas);
    report.row(&case, "update took", took, "s");
    report.row(
        &case,
        "requests",
        (all.ok + all.failures.len() as u64) as f64,
        "",
    );
    report.row(
        &case,
        "request rate",
        (all.ok + all.failures.len() as u64) as f64 / loaded,
        "req/s",
    );
    report.row(&case, "failed requests", all.failures.len() as f64, "");
    Ok(())
}

fn goals(report: &mut Report, cfg: &Config) {
    let value = |r: &Report, case: &str, m: &str| r.value(case, m).unwrap_or(0.0);
    let direct = "direct to the pod";
    for case in [
        "node port, Cluster, the pod's node",
        "node port, Local, the pod's node",
    ] {
        for (metric, what) in [
            (METRIC_RATE, "new connections/s"),
            (METRIC_GBPS, "throughput"),
        ] {
            let d = value(report, direct, metric);
            let v = if d > 0.0 {
                value(report, case, metric) / d
            } else {
                0.0
            };
            report.goal_at_least(&format!("{case}: {what} / direct"), 0.95, v, "");
        }
    }
    let case = format!("rolling update of {}", cfg.replicas);
    let failed = value(report, &case, "failed requests");
    report.goal_at_most(&format!("{case}: failed requests"), 0.0, failed, "");
    if let Some(&hi) = cfg.services.iter().max() {
        let off = value(
            report,
            &format!("flow events off, tc path, N={hi}"),
            METRIC_RATE,
        );
        let on = value(
            report,
            &format!("flow events on, tc path, N={hi}"),
            METRIC_RATE,
        );
        let v = if off > 0.0 { on / off } else { 0.0 };
        report.goal_at_least(
            &format!("new connections/s with flow events on / off, N={hi}"),
            0.95,
            v,
            "",
        );
        for case in [Case::Tc, Case::Socket] {
            let name = format!("from_pod, {}, N={hi}", case.label());
            let ns = value(report, &name, "run time per packet");
            report.goal_at_most(&format!("{name}: per packet"), 200.0, ns, " ns");
        }
    }
}
