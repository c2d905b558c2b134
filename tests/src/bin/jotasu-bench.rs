//! `jotasu-bench`: jotasu's benchmarks (DESIGN.md §9, docs/benchmarks.md).
//! Each prints a table and writes `target/bench/<NAME>.json`.
use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use jotasu_tests::{
    bench::{
        Report, client, cni, controlplane, datapath, dns, failover, fanout, flowevents, overlay,
        pods, scheduler, slices, traffic, watchers, workloads,
    },
    privilege, signals,
};

#[derive(Parser)]
#[command(about = "jotasu benchmarks: print a table and write target/bench/<NAME>.json")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Data plane: new connections/s and connect latency to a VIP among N
    /// services, and the time to program N services (needs root).
    ///
    /// For every N it builds a jotasu node and a plain node (kube-proxy-shaped
    /// iptables rules, no eBPF), each with a client pod and 10 backend pods,
    /// and measures: jotasu tc path, jotasu socket path, iptables, and direct
    /// pod IPs on each node. VIP cases target the service in the middle of
    /// the set. Writes target/bench/datapath.json; see docs/benchmarks.md.
    Datapath {
        /// Measured seconds per case, in total over its turns.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Measured seconds of one turn: cases take turns in a shuffled order.
        #[arg(long, default_value_t = 0.5)]
        turn: f64,
        /// Unmeasured warm-up seconds at the start of every turn.
        #[arg(long, default_value_t = 0.1)]
        warmup: f64,
        /// Service counts N to measure (each service has 10 backends).
        #[arg(long, value_delimiter = ',', default_values_t = [10, 1000, 10000])]
        services: Vec<usize>,
        /// Concurrent connection loops in the client pod.
        #[arg(long, default_value_t = 8)]
        threads: usize,
    },
    /// CNI plugin: ADD and DEL latency (p50, p99, max) of jotasu-cni, with
    /// each tc hook, next to Debian's bridge + host-local on the same node,
    /// the networks taking turns (needs root, /usr/lib/cni). Writes
    /// target/bench/cni.json.
    Cni {
        /// Pods per network.
        #[arg(long, default_value_t = 200)]
        pods: usize,
    },
    /// Control plane: apply latency and throughput, List of many Pods and
    /// watch fan-out, on the embedded store and on a throwaway etcd in the
    /// same run (no root needed; /usr/bin/etcd for the etcd half); and
    /// what authorization adds to apply and List, as a user over TLS,
    /// Node,RBAC against AlwaysAllow (--cases authz). Writes
    /// target/bench/controlplane.json.
    Controlplane(controlplane::Config),
    /// Scheduler: pods placed per second (100,000 pending pods on 5,000
    /// nodes; the goal is >= 10,000 pods/s) and no node overcommitted, in
    /// process on the embedded store; optionally a Deployment through every
    /// controller (--cases pods,deployment). Writes target/bench/scheduler.json.
    Scheduler(scheduler::Config),
    /// Workloads: completions/s of a 1,000-completion Job with parallelism
    /// 50 against 1,000 Deployment pods turning Ready; a 100-replica
    /// StatefulSet to all Ready in Parallel and OrderedReady mode against
    /// 100 Deployment pods; in the same run (in process, simulated nodes;
    /// no root needed). Writes target/bench/workloads.json.
    Workloads(workloads::Config),
    /// EndpointSlices against Endpoints: bytes the API sends to N nodes'
    /// watches for one endpoint's change of a 1,000-endpoint Service (goal:
    /// slices at most 20 % of Endpoints), in process, no root. Writes
    /// target/bench/endpointslices.json.
    Endpointslices(slices::Config),
    /// Pod start-up on a real node (control plane, containerd and
    /// jotasu-agent in namespaces): creation to Ready of each pod of a
    /// 30-replica Deployment (p50, p99; the goal is p99 <= 1 s), and the
    /// agent's RSS idle (goal <= 30 MiB) and with the pods (needs root).
    /// Writes target/bench/pods.json.
    Pods(pods::Config),
    /// Overlay: cross-node pod-to-pod TCP throughput (iperf3) and
    /// request/response rate (sockperf ping-pong) through jotasu's overlay
    /// on a real two-node cluster, against a flannel-style kernel VXLAN
    /// overlay built in the same run (goals: at least 95 % of its
    /// throughput and 100 % of its request rate; needs root, iperf3,
    /// sockperf). Writes target/bench/overlay.json.
    Overlay(overlay::Config),
    /// Cluster DNS on a real 3-node cluster: dnsperf from a pod at 10 and
    /// 10,000 Services through the kernel's fast path, the node's resolver
    /// and unbound serving the same names (goals: resolver >= unbound's
    /// rate, fast path >= 3x), the time from a Service's creation until
    /// every node answers it (p99 <= 1 s), and the DNS data's cost in the
    /// agent (<= 10 MiB); needs root, dnsperf, unbound. Writes
    /// target/bench/dns.json.
    Dns(dns::Config),
    /// Production traffic on a real two-node cluster, in one run: new
    /// connections/s and throughput from a host outside the cluster through
    /// a node port (Cluster and Local policy) against the pod's address
    /// (goal >= 95 %); a 30-replica rolling update under 500 requests/s
    /// (goal: 0 failed requests) and how long it took; from_pod's run time
    /// per packet at 10 and 10,000 Services (goal <= 200 ns); needs root,
    /// iperf3. Writes target/bench/traffic.json.
    Traffic(traffic::Config),
    /// The cost of flow events in from_pod (new flows, drops, conntrack
    /// hits), events off vs on in the same run; needs root. Writes
    /// target/bench/flowevents.json.
    Flowevents(flowevents::Config),
    /// Control-plane failover on a 3-member etcd cluster with three
    /// control planes: kill -9 of the leader to the new leader's first
    /// write, and API writes failed while a control plane or an etcd
    /// member is killed. Writes target/bench/failover.json.
    Failover(failover::Config),
    /// Fan-out at scale: N node-scoped watches and M Services; the time
    /// from one endpoint change until every node has it, and the control
    /// plane's RSS and CPU. Writes target/bench/fanout.json.
    Fanout(fanout::Config),
    /// The watch cache: etcd's write rate through the API with 0 API
    /// watchers against with 1,000 (goal >= 0.90), one control plane on a
    /// throwaway etcd, in the same run. Writes target/bench/watchers.json.
    Watchers(watchers::Config),
    /// Print the kube-proxy-shaped `iptables-restore` input that `datapath`
    /// loads into its plain node for N services.
    IptablesRules {
        /// Service count N.
        #[arg(long, default_value_t = 10)]
        services: usize,
    },
    /// The load client the benchmarks run inside a client pod: prints
    /// "ready", then per stdin line "<warmup s> <measured s>" one JSON result.
    #[command(hide = true)]
    Client {
        /// Addresses to connect to, rotating.
        #[arg(long, value_delimiter = ',', required = true)]
        to: Vec<SocketAddr>,
        /// Connection loops.
        #[arg(long, default_value_t = 4)]
        threads: usize,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Client { to, threads } => client::serve_turns(to, threads),
        Cmd::IptablesRules { services } => {
            print!("{}", datapath::iptables_input(services));
            Ok(())
        }
        Cmd::Datapath {
            seconds,
            turn,
            warmup,
            services,
            threads,
        } => {
            let cfg = datapath::Config {
                seconds,
                turn,
                warmup,
                services,
                threads,
            };
            measure(&datapath::describe(&cfg), || datapath::run(&cfg))
        }
        Cmd::Cni { pods } => {
            let cfg = cni::Config { pods };
            measure(&cni::describe(&cfg), || cni::run(&cfg))
        }
        Cmd::Controlplane(cfg) => {
            run_and_print(&controlplane::describe(&cfg), || controlplane::run(&cfg))
        }
        Cmd::Scheduler(cfg) => run_and_print(&scheduler::describe(&cfg), || scheduler::run(&cfg)),
        Cmd::Workloads(cfg) => run_and_print(&workloads::describe(&cfg), || workloads::run(&cfg)),
        Cmd::Endpointslices(cfg) => run_and_print(&slices::describe(&cfg), || slices::run(&cfg)),
        Cmd::Pods(cfg) => measure(&pods::describe(&cfg), || pods::run(&cfg)),
        Cmd::Overlay(cfg) => measure(&overlay::describe(&cfg), || overlay::run(&cfg)),
        Cmd::Dns(cfg) => measure(&dns::describe(&cfg), || dns::run(&cfg)),
        Cmd::Traffic(cfg) => measure(&traffic::describe(&cfg), || traffic::run(&cfg)),
        Cmd::Flowevents(cfg) => measure(&flowevents::describe(&cfg), || flowevents::run(&cfg)),
        Cmd::Failover(cfg) => run_and_print(&failover::describe(&cfg), || failover::run(&cfg)),
        Cmd::Fanout(cfg) => run_and_print(&fanout::describe(&cfg), || fanout::run(&cfg)),
        Cmd::Watchers(cfg) => run_and_print(&watchers::describe(&cfg), || watchers::run(&cfg)),
    }
}

/// Runs a benchmark as root, then prints its tables and writes its JSON.
/// Ctrl-C stops it; everything it made is removed as `run` returns.
fn measure(about: &str, run: impl FnOnce() -> anyhow::Result<Report>) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    anyhow::ensure!(unsafe { libc::geteuid() } == 0, "the benchmark needs root");
    privilege::ensure_bpffs()?;
    run_and_print(about, run)
}

/// Runs a benchmark (no privilege needed), then prints its tables and
/// writes its JSON. Ctrl-C stops it; what it made is removed as `run` returns.
fn run_and_print(about: &str, run: impl FnOnce() -> anyhow::Result<Report>) -> anyhow::Result<()> {
    signals::install();
    let report = match run() {
        Ok(report) => report,
        Err(_) if signals::interrupted() => {
            eprintln!("interrupted: everything this run made is removed");
            std::process::exit(130);
        }
        Err(e) => return Err(e),
    };
    println!("{about}");
    println!("{}", report.table());
    println!("{}", report.goals_table());
    println!("written to {}", report.write_json()?.display());
    Ok(())
}
