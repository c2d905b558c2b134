//! The datapath demo: one node, three backend pods and a client pod, each in
//! its own network namespace; a service VIP answered by jotasu's eBPF data
//! plane, round-robin. Prints which backend answered each request, then
//! removes everything it made.
use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context as _;
use clap::Parser;
use jotasu_ebpf::{Frontend, Service};
use jotasu_tests::{
    lab::{BACKEND_PORT, ClientPath, Lab},
    privilege, signals,
};

/// Run the jotasu datapath demo (needs root; everything stays in namespaces it creates).
#[derive(Parser)]
struct Cli {
    /// Requests per path.
    #[arg(long, default_value_t = 9)]
    requests: usize,
}

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    signals::install();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    anyhow::ensure!(
        privilege::require_root("jotasu-demo"),
        "the demo needs root"
    );

    println!("== jotasu datapath demo ==");
    let mut lab = Lab::new(3, &[BACKEND_PORT]).context("building the node")?;
    println!("node namespace {} with pods:", lab.node.ns.name());
    for p in &lab.node.pods {
        println!(
            "  {:<7} {:<12} netns {:<14} veth {}",
            p.name,
            p.ip,
            p.ns.name(),
            p.host_if
        );
    }
    println!(
        "eBPF: from_pod on every pod veth (TCX, pinned), socket programs on cgroup {}",
        lab.node.cgroup.path().display()
    );
    println!("pins: {}", lab.dp().pin_dir().display());

    signals::check()?;
    let svc = Service::new(Frontend::tcp(VIP, 80), lab.backends(3, BACKEND_PORT));
    lab.dp().upsert_service(&svc)?;
    let backends: Vec<String> = svc.backends.iter().map(ToString::to_string).collect();
    println!("service {} -> {}", svc.frontend, backends.join(", "));

    let to = SocketAddr::from((VIP, 80));
    for (path, how) in [
        (
            ClientPath::Tc,
            "tc path: packets DNATed on the client's veth",
        ),
        (
            ClientPath::Socket,
            "socket path: connect() rewritten in the node's cgroup",
        ),
    ] {
        signals::check()?;
        println!("\n{} requests from client to {to} — {how}:", cli.requests);
        for (i, line) in lab.connect(path, to, cli.requests, &[])?.iter().enumerate() {
            let backend = line.split(' ').next().unwrap_or(line);
            println!("  request {:>2} -> answered by {backend}", i + 1);
        }
    }

    let c = lab.dp().service_counters(&svc.frontend)?;
    println!(
        "\ncounters for {}: {} new flows at tc, {} at socket level, {} refused",
        svc.frontend, c.tc_new_flows, c.sock_new_flows, c.rejected
    );
    println!("removing the namespaces, links, pins and cgroup ...");
    drop(lab);
    println!("done.");
    Ok(())
}
