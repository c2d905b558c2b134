//! Cluster DNS (`jotasu-bench dns`) on a real 3-node cluster: Debian's
//! `dnsperf` in a pod's network namespace on node 0 asks for Service names
//! at 10 and at N (10,000) Services, through the kernel's fast path, through
//! the node's resolver (the fast path's frontends taken away for the run)
//! and through Debian's `unbound` serving the same names as local data on
//! the same node — the same load tool, the same client, the same run. Per
//! target: the saturated rate (queries/s) and the latency at a fixed rate
//! (p50/p99 from dnsperf's per-query report). Also: the fast path's kernel
//! time per packet (BPF run-time statistics), the time from a Service's
//! creation until every node's resolver answers it, and the DNS data's cost
//! in the agent (its RSS at N Services with and without its resolver).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use jotasu_api::{Kind, Object};
use jotasu_ebpf::{DEFAULT_BPFFS, DnsFastPath};

use super::client::Histogram;
use super::overlay::running_pod;
use super::pods::rss_mib;
use super::{Report, median};
use crate::cluster::{AgentNode, ClusterOptions, LocalCluster};
use crate::e2e::{agent_metrics, sample};
use crate::jotactl::Ctl;
use crate::netns::enter;
use crate::process::Spawned;

/// How the benchmark runs.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Services of the large case.
    #[arg(long, default_value_t = 10_000)]
    pub services: usize,
    /// Seconds of each saturated dnsperf run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// The fixed rate (queries/s) of the latency runs.
    #[arg(long, default_value_t = 5_000)]
    pub latency_qps: u64,
    /// Services timed from creation to resolvable on every node.
    #[arg(long, default_value_t = 50)]
    pub probes: usize,
}

/// One line on what the run does.
pub fn describe(cfg: &Config) -> String {
    format!(
        "cluster DNS: dnsperf from a pod on a 3-node cluster, at 10 and {} Services, through the kernel's fast path, the node's resolver and unbound ({} s saturated, latency at {} queries/s); {} Services timed to resolvable on every node; the agent's RSS with and without its resolver",
        cfg.services, cfg.seconds, cfg.latency_qps, cfg.probes
    )
}

const CLIENT: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: dns-bench-client}
spec:
  nodeSelector: {kubernetes.io/hostname: NODE0}
  terminationGracePeriodSeconds: 0
  containers:
  - {name: main, image: jotasu.local/busybox:latest, command: ["sleep", "3600"]}
"#;

/// Where unbound listens on node 0 (the resolver has port 53).
const UNBOUND_PORT: u16 = 5353;

fn service(name: &str) -> anyhow::Result<Object> {
    Ok(Object::Service(serde_json::from_value(
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"namespace": "default", "name": name},
            "spec": {"ports": [{"name": "http", "port": 80}]},
        }),
    )?))
}

fn fqdn(name: &str) -> String {
    format!("{name}.default.svc.cluster.local")
}

/// Creates Services `bench-<i>` for i in `range`, 500 per call.
async fn create_services(
    client: &jotasu_api::client::Client,
    range: std::ops::Range<usize>,
) -> anyhow::Result<()> {
    let all: Vec<usize> = range.collect();
    for chunk in all.chunks(500) {
        let objects = chunk
            .iter()
            .map(|i| service(&format!("bench-{i:05}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        client.apply(&objects, false).await?;
    }
    Ok(())
}

/// The `bench-*` Services' names and cluster IPs.
async fn bench_services(
    client: &jotasu_api::client::Client,
) -> anyhow::Result<Vec<(String, Ipv4Addr)>> {
    let list = client.list(Kind::Service, Some("default"), "").await?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|o| match o {
            Object::Service(s) => {
                let name = s.metadata.name.clone()?;
                let ip = s.spec.cluster_ip.as_deref()?.parse().ok()?;
                name.starts_with("bench-").then_some((name, ip))
            }
            _ => None,
        })
        .collect())
}

fn fast_names(node: &AgentNode) -> f64 {
    agent_metrics(node)
        .ok()
        .and_then(|m| sample(&m, "jotasu_agent_dns_fast_path_names"))
        .unwrap_or(0.0)
}

/// Waits until node `node`'s fast path holds at least `n` names.
async fn until_names(node: &AgentNode, n: usize, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while fast_names(node) < n as f64 {
        if Instant::now() > deadline {
            bail!(
                "node {} programmed {} of {n} names in {limit:?}",
                node.name(),
                fast_names(node)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// A dnsperf query file: each name once, in a scrambled order.
fn query_file(dir: &Path, names: &[(String, Ipv4Addr)]) -> anyhow::Result<PathBuf> {
    let mut order: Vec<usize> = (0..names.len()).collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..order.len()).rev() {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        order.swap(i, (x >> 33) as usize % (i + 1));
    }
    let mut text = String::new();
    for i in order {
        let _ = writeln!(text, "{} A", fqdn(&names[i].0));
    }
    let path = dir.join(format!("queries-{}.txt", names.len()));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// What a saturated dnsperf run measured.
#[derive(Debug, Clone, Copy)]
struct Rate {
    qps: f64,
    lost: f64,
    /// dnsperf's CPU time over the run's wall time, in cores: near the
    /// machine's core count, the load tool is what saturates.
    client_cores: f64,
}

/// CPU seconds of this process's waited-for children so far.
fn children_cpu() -> f64 {
    // SAFETY: getrusage writes into a zeroed struct we own.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn dnsperf(
    netns: &str,
    to: SocketAddrV4,
    queries: &Path,
    extra: &[&str],
) -> anyhow::Result<String> {
    let mut cmd = enter(netns, "dnsperf");
    cmd.args(["-s", &to.ip().to_string(), "-p", &to.port().to_string()])
        .arg("-d")
        .arg(queries)
        .args(extra);
    let out = cmd
        .output()
        .with_context(|| format!("running {cmd:?}: run scripts/bootstrap.sh for dnsperf"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "dnsperf failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

/// The figure after `label` in dnsperf's statistics.
fn stat(out: &str, label: &str) -> Option<f64> {
    let line = out.lines().find(|l| l.trim_start().starts_with(label))?;
    line[line.find(':')? + 1..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn saturated(netns: &str, to: SocketAddrV4, queries: &Path, seconds: u64) -> anyhow::Result<Rate> {
    let secs = seconds.to_string();
    let (cpu, started) = (children_cpu(), Instant::now());
    let out = dnsperf(
        netns,
        to,
        queries,
        &["-l", &secs, "-c", "8", "-T", "2", "-q", "500"],
    )?;
    let qps = stat(&out, "Queries per second").context("no rate in dnsperf's output")?;
    let lost = stat(&out, "Queries lost").unwrap_or(0.0);
    let client_cores = (children_cpu() - cpu) / started.elapsed().as_secs_f64();
    Ok(Rate {
        qps,
        lost,
        client_cores,
    })
}

/// p50 and p99 latency in ms at `qps`, from dnsperf's per-query lines
/// (`> NOERROR name A 0.000123`); fails on any answer but NOERROR.
fn latency(netns: &str, to: SocketAddrV4, queries: &Path, qps: u64) -> anyhow::Result<(f64, f64)> {
    let rate = qps.to_string();
    let out = dnsperf(netns, to, queries, &["-l", "5", "-Q", &rate, "-v"])?;
    let mut h = Histogram::default();
    for line in out.lines().filter_map(|l| l.strip_prefix("> ")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() != Some(&"NOERROR") {
            bail!("dnsperf got {line:?} from {to}");
        }
        let secs: f64 = fields
            .last()
            .and_then(|v| v.parse().ok())
            .context("no latency")?;
        h.record((secs * 1e9) as u64);
    }
    if h.count() == 0 {
        bail!("no answers from {to}");
    }
    let ms = |ns: u64| ns as f64 / 1e6;
    Ok((ms(h.quantile(0.5)), ms(h.quantile(0.99))))
}

/// unbound serving `names` as local data on `addr` in node 0's namespace.
fn unbound(
    node: &AgentNode,
    dir: &Path,
    addr: SocketAddrV4,
    names: &[(String, Ipv4Addr)],
) -> anyhow::Result<Spawned> {
    let dir = dir.join(format!("unbound-{}", names.len()));
    std::fs::create_dir_all(&dir)?;
    let mut conf = format!(
        "server:\n  interface: {}@{}\n  do-daemonize: no\n  chroot: \"\"\n  username: \"\"\n  pidfile: \"\"\n  directory: \"{}\"\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  num-threads: 2\n  so-reuseport: yes\n  access-control: 0.0.0.0/0 refuse\n  access-control: 10.0.0.0/8 allow\n  do-not-query-localhost: yes\n  local-zone: \"cluster.local.\" static\n",
        addr.ip(),
        addr.port(),
        dir.display()
    );
    for (name, ip) in names {
        let _ = writeln!(conf, "  local-data: \"{}. 5 IN A {ip}\"", fqdn(name));
    }
    conf.push_str("remote-control:\n  control-enable: no\n");
    let path = dir.join("unbound.conf");
    std::fs::write(&path, conf)?;
    let mut cmd = enter(node.netns().name(), "unbound");
    cmd.arg("-d").arg("-c").arg(&path);
    let server = Spawned::start(cmd).context("run scripts/bootstrap.sh for unbound")?;
    // Ready once it answers (from the node itself: refused, but answered).
    let probe = fqdn(&names[0].0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while ask(node, addr, &probe, 0).is_none() {
        if Instant::now() > deadline {
            bail!("unbound did not answer on {addr} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(server)
}

/// One A query for `name` to `to` from node `node`'s namespace: the reply's
/// (rcode, answer count), if any came within 50 ms.
fn ask(node: &AgentNode, to: SocketAddrV4, name: &str, id: u16) -> Option<(u8, u16)> {
    let mut question = crate::dns::wire::wire_name(name);
    question.extend_from_slice(&[0, 1, 0, 1]);
    let q = crate::dns::wire::query_bytes(id, 1, &question);
    node.netns()
        .run(move || {
            let s = UdpSocket::bind("0.0.0.0:0").ok()?;
            s.set_read_timeout(Some(Duration::from_millis(50))).ok()?;
            s.send_to(&q, to).ok()?;
            let mut buf = [0u8; 512];
            let n = s.recv(&mut buf).ok()?;
            (n >= 12).then(|| (buf[3] & 0x0f, u16::from_be_bytes([buf[6], buf[7]])))
        })
        .ok()
        .flatten()
}

/// The pinned from_pod's (run time ns, run count), through bpftool.
fn prog_stats(node: &str) -> anyhow::Result<(f64, f64)> {
    let pin = Path::new(DEFAULT_BPFFS)
        .join("jotasu")
        .join(node)
        .join("progs/from_pod");
    let out = Command::new("bpftool")
        .args(["-j", "prog", "show", "pinned"])
        .arg(&pin)
        .output()
        .context("running bpftool")?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("bpftool on {}", pin.display()))?;
    Ok((
        v["run_time_ns"].as_f64().unwrap_or(0.0),
        v["run_cnt"].as_f64().unwrap_or(0.0),
    ))
}

/// Turns the kernel's BPF run-time statistics on until dropped.
struct BpfStats(String);

impl BpfStats {
    const PATH: &'static str = "/proc/sys/kernel/bpf_stats_enabled";
    fn on() -> anyhow::Result<Self> {
        let old = std::fs::read_to_string(Self::PATH).context("reading bpf_stats_enabled")?;
        std::fs::write(Self::PATH, "1").context("enabling BPF statistics")?;
        Ok(Self(old.trim().to_owned()))
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, &self.0);
    }
}

/// The three targets, measured one after the other on the same names.
fn round(
    report: &mut Report,
    cfg: &Config,
    cluster: &LocalCluster,
    netns: &str,
    dir: &Path,
    names: &[(String, Ipv4Addr)],
) -> anyhow::Result<()> {
    let node = &cluster.nodes()[0];
    let resolver = SocketAddrV4::new(node.ip(), 53);
    let queries = query_file(dir, names)?;
    let n = names.len();
    let mut fast = DnsFastPath::open_in(Path::new(DEFAULT_BPFFS), node.name())?;
    let frontends = fast.frontends()?;
    if frontends.is_empty() {
        bail!("the fast path of {} has no frontends", node.name());
    }

    // The kernel.
    let stats = BpfStats::on()?;
    let before = (fast.counters()?, prog_stats(node.name())?);
    let kernel = saturated(netns, resolver, &queries, cfg.seconds)?;
    let after = (fast.counters()?, prog_stats(node.name())?);
    drop(stats);
    let answered = after.0.answered - before.0.answered;
    let per_packet_ns = (after.1.0 - before.1.0) / (after.1.1 - before.1.1).max(1.0);
    let (k50, k99) = latency(netns, resolver, &queries, cfg.latency_qps)?;
    let case = format!("{n} Services, kernel fast path");
    report.row(&case, "rate", kernel.qps, "queries/s");
    report.row(&case, "p50 at fixed rate", k50, "ms");
    report.row(&case, "p99 at fixed rate", k99, "ms");
    report.row(&case, "lost", kernel.lost, "queries");
    report.row(&case, "dnsperf CPU", kernel.client_cores, "cores");
    report.row(&case, "answered in the kernel", answered as f64, "queries");
    report.row(&case, "from_pod run time per packet", per_packet_ns, "ns");

    // The resolver: the fast path's frontends taken away for the run.
    fast.set_frontends(&[])?;
    let measured = saturated(netns, resolver, &queries, cfg.seconds)
        .and_then(|rate| Ok((rate, latency(netns, resolver, &queries, cfg.latency_qps)?)));
    fast.set_frontends(&frontends)?;
    let (res, (r50, r99)) = measured?;
    let case = format!("{n} Services, node resolver");
    report.row(&case, "rate", res.qps, "queries/s");
    report.row(&case, "p50 at fixed rate", r50, "ms");
    report.row(&case, "p99 at fixed rate", r99, "ms");
    report.row(&case, "lost", res.lost, "queries");
    report.row(&case, "dnsperf CPU", res.client_cores, "cores");

    // unbound, on the same node, with the same names.
    let addr = SocketAddrV4::new(node.ip(), UNBOUND_PORT);
    let server = unbound(node, dir, addr, names)?;
    let ub = saturated(netns, addr, &queries, cfg.seconds)?;
    let (u50, u99) = latency(netns, addr, &queries, cfg.latency_qps)?;
    drop(server);
    let case = format!("{n} Services, unbound (local data)");
    report.row(&case, "rate", ub.qps, "queries/s");
    report.row(&case, "p50 at fixed rate", u50, "ms");
    report.row(&case, "p99 at fixed rate", u99, "ms");
    report.row(&case, "lost", ub.lost, "queries");
    report.row(&case, "dnsperf CPU", ub.client_cores, "cores");

    report.goal_at_least(
        &format!("resolver / unbound rate, {n} Services"),
        1.0,
        res.qps / ub.qps,
        "",
    );
    report.goal_at_least(
        &format!("fast path / unbound rate, {n} Services"),
        3.0,
        kernel.qps / ub.qps,
        "",
    );
    Ok(())
}

/// Creates `probes` Services one at a time; for each, the time from the
/// create call until each node's resolver answers its name.
async fn resolvable(
    report: &mut Report,
    cluster: &LocalCluster,
    client: &jotasu_api::client::Client,
    probes: usize,
) -> anyhow::Result<()> {
    let mut h = Histogram::default();
    let mut worst = Duration::ZERO;
    for i in 0..probes {
        let name = format!("probe-{i:03}");
        let start = Instant::now();
        client.apply(&[service(&name)?], false).await?;
        let took = tokio::task::block_in_place(|| {
            std::thread::scope(|s| {
                let waits: Vec<_> = cluster
                    .nodes()
                    .iter()
                    .map(|node| {
                        let name = fqdn(&name);
                        s.spawn(move || {
                            let to = SocketAddrV4::new(node.ip(), 53);
                            let deadline = start + Duration::from_secs(30);
                            let mut id = 0u16;
                            loop {
                                id = id.wrapping_add(1);
                                if let Some((0, n)) = ask(node, to, &name, id)
                                    && n > 0
                                {
                                    return Some(start.elapsed());
                                }
                                if Instant::now() > deadline {
                                    return None;
                                }
                                std::thread::sleep(Duration::from_millis(5));
                            }
                        })
                    })
                    .collect();
                waits
                    .into_iter()
                    .map(|w| w.join().ok().flatten())
                    .collect::<Option<Vec<Duration>>>()
            })
        })
        .with_context(|| format!("{name} was not resolvable on every node within 30 s"))?;
        for t in took {
            worst = worst.max(t);
            h.record(u64::try_from(t.as_nanos()).unwrap_or(u64::MAX));
        }
    }
    let ms = |ns: u64| ns as f64 / 1e6;
    let case = format!("{probes} new Services × {} nodes", cluster.nodes().len());
    let p99 = ms(h.quantile(0.99));
    report.row(
        &case,
        "creation to resolvable p50",
        ms(h.quantile(0.5)),
        "ms",
    );
    report.row(&case, "creation to resolvable p99", p99, "ms");
    report.row(
        &case,
        "creation to resolvable max",
        worst.as_secs_f64() * 1e3,
        "ms",
    );
    report.goal_at_most(
        "creation to resolvable on every node, p99",
        1000.0,
        p99,
        " ms",
    );
    Ok(())
}

/// The agent of node 0 restarted with `extra` flags: its RSS once it has
/// programmed every Service (and, with its resolver, every name).
async fn settled_rss(
    cluster: &mut LocalCluster,
    extra: &[String],
    names: Option<usize>,
) -> anyhow::Result<f64> {
    cluster.node_mut(0).restart_agent_with(extra)?;
    let node = &cluster.nodes()[0];
    let pid = node.agent_pid().context("the agent is not running")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while agent_metrics(node).is_err() {
        if Instant::now() > deadline {
            bail!("the restarted agent did not serve /metrics within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Some(n) = names {
        until_names(node, n, Duration::from_secs(120)).await?;
    }
    // The first list, the data plane's reconcile and the index settle.
    tokio::time::sleep(Duration::from_secs(10)).await;
    rss_mib(pid)
}

/// Runs the benchmark.
pub fn run(cfg: &Config) -> anyhow::Result<Report> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(measure(cfg))
}

async fn measure(cfg: &Config) -> anyhow::Result<Report> {
    let mut cluster = LocalCluster::start(ClusterOptions {
        quiet: std::env::var_os("JOTASU_LOG").is_none(),
        ..ClusterOptions::spreading(3)
    })
    .await?;
    cluster.import_demo_image()?;
    let dir = cluster.dir().join("dns-bench");
    std::fs::create_dir_all(&dir)?;
    let yaml = CLIENT.replace("NODE0", cluster.nodes()[0].name());
    let out = Ctl::new().pipe(&cluster.server(), &["apply", "-f", "-"], &yaml);
    if out.code != 0 {
        bail!("apply failed: {}", out.stderr);
    }
    let (netns, _) = running_pod(&cluster, "dns-bench-client").await?;
    let client = cluster.client().await?;
    let node0 = &cluster.nodes()[0];
    until_names(node0, 1, Duration::from_secs(60)).await?;
    let base = fast_names(node0) as usize;

    let mut report = Report::new("dns");
    let small = 10.min(cfg.services);
    create_services(&client, 0..small).await?;
    until_names(node0, base + small, Duration::from_secs(60)).await?;
    let names = bench_services(&client).await?;
    round(&mut report, cfg, &cluster, &netns, &dir, &names)?;

    let created = Instant::now();
    create_services(&client, small..cfg.services).await?;
    until_names(node0, base + cfg.services, Duration::from_secs(300)).await?;
    report.row(
        &format!("{} Services", cfg.services),
        "created to all names in node 0's kernel",
        created.elapsed().as_secs_f64(),
        "s",
    );
    let names = bench_services(&client).await?;
    round(&mut report, cfg, &cluster, &netns, &dir, &names)?;

    resolvable(&mut report, &cluster, &client, cfg.probes).await?;

    // The RSS of a fresh agent swings by several MiB with the allocator's
    // luck: three restarts each way, alternating, and the medians.
    let total = base + cfg.services + cfg.probes;
    let (mut withouts, mut withs) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        withouts.push(settled_rss(&mut cluster, &["--dns-port=0".into()], None).await?);
        withs.push(settled_rss(&mut cluster, &[], Some(total)).await?);
    }
    let (without, with) = (median(withouts), median(withs));
    let case = format!("jotasu-agent, {} Services", cfg.services + cfg.probes);
    report.row(
        &case,
        "RSS without its resolver (median of 3)",
        without,
        "MiB",
    );
    report.row(&case, "RSS with its resolver (median of 3)", with, "MiB");
    report.row(&case, "DNS data", with - without, "MiB");
    report.goal_at_most("DNS data in the agent", 10.0, with - without, " MiB");
    drop(cluster);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dnsperf_statistics_are_read() {
        let out = "Statistics:\n\n  Queries sent:         411984\n  Queries completed:    411982 (100.00%)\n  Queries lost:         2 (0.00%)\n\n  Queries per second:   137137.352388\n";
        assert_eq!(stat(out, "Queries per second"), Some(137_137.352_388));
        assert_eq!(stat(out, "Queries lost"), Some(2.0));
        assert_eq!(stat(out, "Average Latency"), None);
    }
}
