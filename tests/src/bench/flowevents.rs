//! The cost of flow events in the data plane: `from_pod`'s time per packet
//! (BPF_PROG_TEST_RUN, timed by the kernel) with the events off and on, in
//! the same run and in alternating turns, on the paths that write them —
//! a new service flow (one record each; timed one packet per run, since a
//! repeated packet becomes a conntrack hit) and a drop (a spoofed source;
//! repeated in the kernel, the ring drained between turns so it never
//! fills) — and on a conntrack hit, which writes none (the control).
//! Per-backend counting is on in every case (it has no switch).
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use jotasu_ebpf::{FlowEventConfig, FlowReader, Frontend, Service};

use super::{Report, median};
use crate::packet::{HOST_MAC, POD_MAC, Packet, TCP_ACK, TCP_SYN};
use crate::tc_run::TcNode;

/// The benchmark's name (`target/bench/flowevents.json`).
pub const NAME: &str = "flowevents";
const METRIC: &str = "from_pod time";

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 5);
const NOBODY: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 200);

/// How the benchmark runs.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Turns per case and setting (off, on alternate).
    #[arg(long, default_value_t = 40)]
    pub turns: usize,
    /// New flows timed per turn (one packet per run).
    #[arg(long, default_value_t = 200)]
    pub flows: usize,
    /// Kernel repeats per drop and hit run (below the ring's ~4,600 records).
    #[arg(long, default_value_t = 4000)]
    pub repeat: u32,
}

/// One line on what the run does.
pub fn describe(cfg: &Config) -> String {
    format!(
        "flow events off vs on: from_pod per packet, {} turns each (new flows: {} per turn; drops and hits: {} kernel repeats)",
        cfg.turns, cfg.flows, cfg.repeat
    )
}

fn ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// Runs the benchmark.
pub fn run(cfg: &Config) -> anyhow::Result<Report> {
    let mut node = TcNode::new();
    let client_if = node.add_pod(CLIENT, POD_MAC, HOST_MAC).ifindex;
    let backends = (0..10u8).map(|i| SocketAddrV4::new(Ipv4Addr::new(10, 244, 2, 10 + i), 8080));
    node.dp
        .upsert_service(&Service::new(Frontend::tcp(VIP, 80), backends))?;
    let mut ring = FlowReader::open_dir(node.dp.pin_dir())?;
    let to_vip = SocketAddrV4::new(VIP, 80);
    let spoofed = Packet::tcp(SocketAddrV4::new(NOBODY, 40000), to_vip, TCP_SYN, 1, 0).to_bytes();
    // A tracked flow: its SYN opens it, its ACKs hit conntrack.
    let (rc, _) = node.run_on(
        client_if,
        &Packet::tcp(SocketAddrV4::new(CLIENT, 39999), to_vip, TCP_SYN, 1, 0).to_bytes(),
    );
    anyhow::ensure!(rc == 0, "the tracked flow's SYN was not balanced ({rc})");
    let hit = Packet::tcp(SocketAddrV4::new(CLIENT, 39999), to_vip, TCP_ACK, 2, 1).to_bytes();

    let settings = [
        ("off", FlowEventConfig::OFF),
        (
            "on",
            FlowEventConfig {
                max_per_cpu_s: 0,
                ..FlowEventConfig::default()
            },
        ),
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); 6];
    let mut sport: u16 = 1024;
    for _ in 0..cfg.turns {
        for (i, (_, setting)) in settings.iter().enumerate() {
            node.dp.flow_events_mut().set_config(*setting)?;
            let mut flows = Vec::with_capacity(cfg.flows);
            for _ in 0..cfg.flows {
                sport = if sport == u16::MAX { 1024 } else { sport + 1 };
                let syn = Packet::tcp(SocketAddrV4::new(CLIENT, sport), to_vip, TCP_SYN, 1, 0);
                let (_, d) = node.time_program("from_pod", client_if, &syn.to_bytes(), 1);
                flows.push(ns(d));
            }
            samples[i].push(median(flows));
            ring.drain(usize::MAX);
            let (_, d) = node.time_program("from_pod", client_if, &spoofed, cfg.repeat);
            samples[2 + i].push(ns(d));
            ring.drain(usize::MAX);
            let (_, d) = node.time_program("from_pod", client_if, &hit, cfg.repeat);
            samples[4 + i].push(ns(d));
        }
    }
    let lost = node.dp.flow_events().counters()?.lost;
    anyhow::ensure!(
        lost == 0,
        "the ring buffer filled ({lost} lost): lower --repeat"
    );
    let mut report = Report::new(NAME);
    let cases = [
        "new flow, events off",
        "new flow, events on",
        "drop, events off",
        "drop, events on",
        "conntrack hit, events off",
        "conntrack hit, events on",
    ];
    let medians: Vec<f64> = samples.into_iter().map(median).collect();
    for (case, v) in cases.iter().zip(&medians) {
        report.row(case, METRIC, *v, "ns");
    }
    report.goal_at_most("new-flow event cost", 200.0, medians[1] - medians[0], " ns");
    report.goal_at_most("drop event cost", 200.0, medians[3] - medians[2], " ns");
    report.goal_at_most(
        "conntrack hit cost of the switch",
        20.0,
        (medians[5] - medians[4]).abs(),
        " ns",
    );
    Ok(report)
}
