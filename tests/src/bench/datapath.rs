//! The data-plane benchmark: new-connection rate and connect latency to one
//! service VIP among N services, through jotasu's tc path, jotasu's socket
//! path and a kube-proxy-shaped iptables rule set, all in the same run; and
//! the time to program N services into jotasu's maps against
//! `iptables-restore` of the same services.
//!
//! For every N there are two worlds, each its own node namespace so neither
//! taxes the other: a jotasu node ([`Lab`], services on 10.96/16) and a plain
//! node ([`PlainNode`], no eBPF, the rules in its nat table, services on
//! 10.97/16), each with a client pod and 10 backend pods. Every service is
//! VIP:80 → the 10 backends; the measured ones sit in the middle of the set.
//! All nodes are built and programmed first, and every case gets its own
//! long-lived load client; then the cases run in short turns, every round in
//! a new shuffled order, so the drift of a noisy machine spreads over every
//! case alike, and the spread of the turns gives each rate a confidence
//! interval. Every case has its own backend port ([`case`]), so no two cases
//! share a 4-tuple (no TIME_WAIT or conntrack state carries over).
pub(crate) mod case;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use jotasu_ebpf::Frontend;

use self::case::{BACKENDS, CASES, Case, IDLE_PORT, MIN_SERVICES, SERVICE_PORT, service_set};
use super::{
    Report,
    client::{LoadResult, Turns},
    kube_proxy,
    world::{self, PlainNode, TurnClient},
};
use crate::{lab::Lab, signals};

/// The benchmark's name (`target/bench/datapath.json`).
pub const NAME: &str = "datapath";
const METRIC_RATE: &str = "new connections";
const METRIC_PROGRAM: &str = "program all services";

/// How the benchmark runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Measured seconds per case, in total over its turns.
    pub seconds: f64,
    /// Measured seconds of one turn.
    pub turn: f64,
    /// Unmeasured seconds at the start of every turn.
    pub warmup: f64,
    /// The service counts N.
    pub services: Vec<usize>,
    /// Connection loops in the client.
    pub threads: usize,
}

/// The `iptables-restore` input the plain node loads for `n` services.
pub fn iptables_input(n: usize) -> String {
    kube_proxy::restore_input(&service_set(n, &[Case::Iptables, Case::IptablesLast]))
}

/// The two nodes of one N, a load client per case and what they measured.
/// Field order is drop order: the clients leave before the nodes.
struct Block {
    n: usize,
    clients: Vec<TurnClient>,
    turns: [Turns; CASES.len()],
    lab: Lab,
    plain: PlainNode,
}

impl Block {
    /// Both nodes with `n` services programmed; the programming times go to `report`.
    fn new(n: usize, cfg: &Config, exe: &Path, report: &mut Report) -> anyhow::Result<Self> {
        let ports = |jotasu: bool| -> Vec<u16> {
            let cases = CASES
                .iter()
                .filter(|c| c.on_jotasu_node() == jotasu)
                .map(|c| c.port());
            std::iter::once(IDLE_PORT).chain(cases).collect()
        };
        eprintln!("N={n}: building a jotasu node and a plain node, {BACKENDS} backends each");
        let mut me = Self {
            n,
            clients: Vec::new(),
            turns: Default::default(),
            lab: Lab::new(BACKENDS, &ports(true))?,
            plain: PlainNode::new(BACKENDS, &ports(false))?,
        };
        world::tune_client(&me.lab.client().ns)?;
        world::tune_client(&me.plain.client().ns)?;
        for case in CASES {
            let (ns, cgroup) = match case {
                Case::Socket => (&me.lab.client().ns, Some(&me.lab.node.cgroup)),
                c if c.on_jotasu_node() => (&me.lab.client().ns, None),
                _ => (&me.plain.client().ns, None),
            };
            let client = TurnClient::spawn(exe, ns, cgroup, &case.targets(n), cfg.threads)?;
            me.clients.push(client);
        }
        let took = me.program_jotasu()?;
        eprintln!("N={n}: programmed jotasu's maps in {took:.3} s");
        report.row(
            &format!("jotasu maps (reconcile), N={n}"),
            METRIC_PROGRAM,
            took,
            "s",
        );
        signals::check()?;
        let took = me.program_iptables()?;
        eprintln!("N={n}: iptables-restore took {took:.3} s");
        report.row(
            &format!("iptables-restore, N={n}"),
            METRIC_PROGRAM,
            took,
            "s",
        );
        Ok(me)
    }

    /// Times `reconcile` of all services into the new node's empty maps.
    fn program_jotasu(&mut self) -> anyhow::Result<f64> {
        let services = service_set(self.n, &[Case::Tc, Case::Socket]);
        let begin = Instant::now();
        let summary = self.lab.dp().reconcile(&services)?;
        let took = begin.elapsed().as_secs_f64();
        anyhow::ensure!(
            summary.added == self.n,
            "reconcile did {summary:?}, expected {} added",
            self.n
        );
        Ok(took)
    }

    /// Times `iptables-restore` of all services into the new node's empty nat table.
    fn program_iptables(&self) -> anyhow::Result<f64> {
        let input = iptables_input(self.n);
        let begin = Instant::now();
        self.plain.iptables_restore(&input)?;
        let took = begin.elapsed().as_secs_f64();
        let loaded = self
            .plain
            .iptables(&["-t", "nat", "-S", "KUBE-SERVICES"])?
            .lines()
            .count();
        anyhow::ensure!(
            loaded == self.n + 2,
            "KUBE-SERVICES has {loaded} lines, expected {}",
            self.n + 2
        );
        // A kube-proxy node keeps TIME_WAIT conntrack entries for 120 s; at
        // these rates that can fill the table (nf_conntrack_max) and drop
        // SYNs. Expiring them sooner only helps the baseline.
        self.plain
            .node
            .ns
            .sysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait", "10")?;
        Ok(took)
    }

    /// One turn of `case`, added to its tally.
    fn turn(&mut self, cfg: &Config, case: Case) -> anyhow::Result<LoadResult> {
        let warmup = Duration::from_secs_f64(cfg.warmup);
        let r = self.clients[case as usize].turn(warmup, Duration::from_secs_f64(cfg.turn))?;
        self.turns[case as usize].add(&r);
        self.check_counters(case)?;
        Ok(r)
    }

    /// Checks that a VIP case on the jotasu node was balanced by the path it
    /// claims to measure (the service's counters count every new flow).
    fn check_counters(&mut self, case: Case) -> anyhow::Result<()> {
        let Some(i) = case.service_index(self.n).filter(|_| case.on_jotasu_node()) else {
            return Ok(());
        };
        let c = self
            .lab
            .dp()
            .service_counters(&Frontend::tcp(case.vip(i), SERVICE_PORT))?;
        let (mine, other) = match case {
            Case::Tc => (c.tc_new_flows, c.sock_new_flows),
            _ => (c.sock_new_flows, c.tc_new_flows),
        };
        let done = self.turns[case as usize].total.connections();
        anyhow::ensure!(
            mine >= done && other == 0,
            "{}: the service's counters ({c:?}) do not show its {done} connections",
            case.name(self.n),
        );
        Ok(())
    }
}

/// One paragraph on what a run with `cfg` measures, for the output.
pub fn describe(cfg: &Config) -> String {
    format!(
        "Each service: VIP:{SERVICE_PORT} -> {BACKENDS} backend pods. VIP cases connect to the \
         service in the middle of the N (index N/2, socket path N/2+1), or the last one; direct cases rotate over \
         the {BACKENDS} pod IPs. Client: {} threads of connect -> request -> reply -> close; \
         {} s measured per case in {} s turns (+{} s warm-up), cases shuffled every round.",
        cfg.threads, cfg.seconds, cfg.turn, cfg.warmup
    )
}

/// Runs the benchmark and returns its report.
pub fn run(cfg: &Config) -> anyhow::Result<Report> {
    let mut ns = cfg.services.clone();
    ns.sort_unstable();
    ns.dedup();
    anyhow::ensure!(
        !ns.is_empty() && ns[0] >= MIN_SERVICES,
        "--services needs counts of at least {MIN_SERVICES}"
    );
    anyhow::ensure!(ns[ns.len() - 1] < 60_000, "at most 59999 services");
    anyhow::ensure!(
        cfg.turn > 0.0 && cfg.seconds >= cfg.turn && cfg.threads > 0,
        "nothing to measure"
    );
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut report = Report::new(NAME);
    let mut blocks = Vec::new();
    for &n in &ns {
        signals::check()?;
        blocks.push(Block::new(n, cfg, &exe, &mut report)?);
    }
    let rounds = (cfg.seconds / cfg.turn).round() as u64;
    let turns: Vec<(usize, Case)> = (0..blocks.len())
        .flat_map(|b| CASES.map(|c| (b, c)))
        .collect();
    let started = Instant::now();
    for round in 1..=rounds {
        for k in shuffled(turns.len(), round) {
            signals::check()?;
            let (b, case) = turns[k];
            let r = blocks[b].turn(cfg, case)?;
            tracing::debug!(
                t = started.elapsed().as_secs_f64(),
                n = blocks[b].n,
                case = case.label(),
                rate = r.rate(),
                "turn"
            );
            if let Some(f) = r.first_failure {
                eprintln!(
                    "N={}, {}: {} connections failed, first: {f}",
                    blocks[b].n,
                    case.label(),
                    r.failures
                );
            }
        }
        eprintln!(
            "round {round}/{rounds} done ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
    for b in &blocks {
        for case in CASES {
            record(&mut report, &case.name(b.n), &b.turns[case as usize]);
        }
    }
    goals(&mut report, ns[0], ns[ns.len() - 1]);
    Ok(report)
}

/// A permutation of `0..len`, different for every `seed` (xorshift64, Fisher–Yates).
pub(crate) fn shuffled(len: usize, seed: u64) -> Vec<usize> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v: Vec<usize> = (0..len).collect();
    for i in (1..len).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

fn record(report: &mut Report, case: &str, t: &Turns) {
    report.row(case, METRIC_RATE, t.total.rate(), "conn/s");
    report.row(case, "rate ±95% CI", t.rate_ci95(), "conn/s");
    report.row(case, "connect p50", t.total.connect_us(0.50), "µs");
    report.row(case, "connect p99", t.total.connect_us(0.99), "µs");
    report.row(case, "failed", t.total.failures as f64, "conn");
}

/// The goals, between the smallest (`lo`) and largest (`hi`) N.
fn goals(report: &mut Report, lo: usize, hi: usize) {
    let rate = |r: &Report, c: Case, n: usize| r.value(&c.name(n), METRIC_RATE).unwrap_or(0.0);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    for path in [Case::Tc, Case::Socket] {
        if lo != hi {
            let v = ratio(rate(report, path, hi), rate(report, path, lo));
            report.goal_at_least(
                &format!("{}: rate at N={hi} / at N={lo}", path.label()),
                0.95,
                v,
                "",
            );
        }
        for iptables in [Case::Iptables, Case::IptablesLast] {
            let v = ratio(rate(report, path, hi), rate(report, iptables, hi));
            report.goal_at_least(
                &format!("{} / {} rate, N={hi}", path.label(), iptables.label()),
                4.0,
                v,
                "",
            );
        }
    }
    let program = report.value(&format!("jotasu maps (reconcile), N={hi}"), METRIC_PROGRAM);
    let metric = format!("program N={hi} services into jotasu's maps");
    report.goal_at_most(&metric, 0.5, program.unwrap_or(f64::INFINITY), " s");
    let v = ratio(
        rate(report, Case::Socket, hi),
        rate(report, Case::DirectJotasu, hi),
    );
    report.goal_at_least(
        &format!("socket path / direct pod IP rate, N={hi}"),
        0.97,
        v,
        "",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_round_is_a_permutation_in_its_own_order() {
        let a = shuffled(15, 1);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..15).collect::<Vec<_>>());
        assert_ne!(a, shuffled(15, 2));
        assert_eq!(a, shuffled(15, 1));
    }
}
