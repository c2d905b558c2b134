//! `jotactl datapath services|conntrack|tunnels|drops --node NODE`: a
//! node's eBPF data plane as its agent reads it from the maps (after
//! Cilium's `cilium bpf lb list`, `bpf ct list`, `bpf tunnel list` and
//! `cilium-dbg metrics`), through the control plane, which checks `get` on
//! `nodes/proxy`. Tables as kubectl aligns them, or `-o json`.

use clap::{Args, Subcommand, ValueEnum};
use jotasu_api::client::ClientError;
use jotasu_api::grpc::v1;
use serde_json::{Value, json};

use crate::cli::GlobalArgs;
use crate::connect;
use crate::report::CtlError;
use crate::tabwriter::{TABLE, align};

/// `jotactl datapath …`.
#[derive(Debug, Subcommand)]
pub enum DatapathCommand {
    /// Services and their backends, with the new flows each backend got
    /// (like `cilium bpf lb list`).
    #[command(visible_aliases = ["svc", "lb"])]
    Services(ViewArgs),
    /// Conntrack entries, filtered on the node (like `cilium bpf ct list`).
    #[command(visible_alias = "ct")]
    Conntrack(ConntrackArgs),
    /// The overlay's tunnels (remote pod CIDR → node) and known peers.
    #[command(visible_alias = "tunnel")]
    Tunnels(ViewArgs),
    /// Drops by reason, node-wide counters and flow event counters.
    #[command(visible_alias = "counters")]
    Drops(ViewArgs),
}

/// Output formats of the views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ViewOutput {
    /// JSON.
    Json,
}

/// What every view takes.
#[derive(Debug, Args)]
pub struct ViewArgs {
    /// The node whose data plane to read.
    #[arg(long, value_name = "NODE")]
    pub node: String,
    /// Output format (default: a table).
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<ViewOutput>,
}

/// `jotactl datapath conntrack`.
#[derive(Debug, Args)]
pub struct ConntrackArgs {
    /// The node and output.
    #[command(flatten)]
    pub view: ViewArgs,
    /// Only entries with this IPv4 address at either end or in a rewrite.
    #[arg(long, value_name = "IP")]
    pub address: Option<String>,
    /// Only entries with this port at either end or in a rewrite.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Only entries of this Service (NAME in the namespace, or NS/NAME).
    #[arg(long, value_name = "SERVICE")]
    pub service: Option<String>,
    /// Only this protocol.
    #[arg(long, value_name = "tcp|udp")]
    pub protocol: Option<String>,
    /// At most this many entries (the node caps it at 10000).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub limit: u32,
}

/// Runs `datapath …`.
pub async fn run(global: &GlobalArgs, command: &DatapathCommand) -> Result<(), CtlError> {
    let client = connect::connect(global).await?;
    let mut dp = client.datapath();
    let request = |node: &str| v1::DatapathRequest {
        node: node.to_owned(),
    };
    let (text, json) = match command {
        DatapathCommand::Services(a) => {
            let r = dp
                .services(request(&a.node))
                .await
                .map_err(ClientError::from)?
                .into_inner();
            (a.output, (services_table(&r), services_json(&r)))
        }
        DatapathCommand::Conntrack(a) => {
            let service = a.service.as_deref().map(|s| {
                if s.contains('/') {
                    s.to_owned()
                } else {
                    format!("{}/{s}", connect::namespace(global))
                }
            });
            let r = dp
                .conntrack(v1::ConntrackRequest {
                    node: a.view.node.clone(),
                    address: a.address.clone().unwrap_or_default(),
                    port: a.port.map_or(0, u32::from),
                    service: service.unwrap_or_default(),
                    protocol: a.protocol.clone().unwrap_or_default(),
                    limit: a.limit,
                })
                .await
                .map_err(ClientError::from)?
                .into_inner();
            if r.truncated && a.view.output.is_none() {
                eprintln!(
                    "showing {} of {} matching entries ({} in the table): raise --limit or filter",
                    r.entries.len(),
                    r.matched,
                    r.total
                );
            }
            (a.view.output, (conntrack_table(&r), conntrack_json(&r)))
        }
        DatapathCommand::Tunnels(a) => {
            let r = dp
                .tunnels(request(&a.node))
                .await
                .map_err(ClientError::from)?
                .into_inner();
            (a.output, (tunnels_table(&r), tunnels_json(&r)))
        }
        DatapathCommand::Drops(a) => {
            let r = dp
                .drops(request(&a.node))
                .await
                .map_err(ClientError::from)?
                .into_inner();
            (a.output, (counters_table(&r), counters_json(&r)))
        }
    }
    .pipe();
    match json {
        Some(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default()),
        None => print!("{text}"),
    }
    Ok(())
}

/// (format, (table, json)) → (table, json if asked).
trait Pipe {
    fn pipe(self) -> (String, Option<Value>);
}

impl Pipe for (Option<ViewOutput>, (String, Value)) {
    fn pipe(self) -> (String, Option<Value>) {
        let (format, (table, json)) = self;
        match format {
            Some(ViewOutput::Json) => (String::new(), Some(json)),
            None => (table, None),
        }
    }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

/// One line per backend; the service's columns on its first.
pub fn services_table(r: &v1::DatapathServices) -> String {
    let mut t = String::from("ID\tSERVICE\tFRONTEND\tFLAGS\tBACKEND\tPOD\tNEW FLOWS\tREJECTED\n");
    for s in &r.services {
        let head = format!(
            "{}\t{}\t{}/{}\t{}",
            s.id,
            or_none(&s.service),
            s.frontend,
            s.protocol,
            s.flags.join(",")
        );
        if s.backends.is_empty() {
            t.push_str(&format!("{head}\t<none>\t\t0\t{}\n", s.rejected));
            continue;
        }
        for (i, b) in s.backends.iter().enumerate() {
            let lead = if i == 0 {
                head.clone()
            } else {
                "\t\t\t".into()
            };
            let rejected = if i == 0 {
                s.rejected.to_string()
            } else {
                String::new()
            };
            t.push_str(&format!(
                "{lead}\t{}\t{}\t{}\t{rejected}\n",
                b.address,
                or_none(&b.pod),
                b.new_flows
            ));
        }
    }
    // Continuation lines end in empty cells: no trailing blanks.
    align(&t, TABLE)
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect()
}

fn services_json(r: &v1::DatapathServices) -> Value {
    json!({"services": r.services.iter().map(|s| json!({
        "id": s.id,
        "service": s.service,
        "frontend": s.frontend,
        "protocol": s.protocol,
        "flags": s.flags,
        "newFlows": {"tc": s.tc_new_flows, "socket": s.sock_new_flows},
        "rejected": s.rejected,
        "backends": s.backends.iter().map(|b| json!({
            "slot": b.slot, "address": b.address, "pod": b.pod, "newFlows": b.new_flows,
        })).collect::<Vec<_>>(),
    })).collect::<Vec<_>>()})
}

/// The entries, one per line.
pub fn conntrack_table(r: &v1::ConntrackList) -> String {
    let mut t = String::from("PROTO\tSOURCE\tDESTINATION\tDIR\tNAT\tPEER\tFLAGS\tSERVICE\n");
    for e in &r.entries {
        let mut flags = Vec::new();
        if e.external {
            flags.push("external");
        }
        if e.closing {
            flags.push("closing");
        }
        t.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            e.protocol,
            e.source,
            e.destination,
            e.direction,
            e.nat,
            or_none(&e.peer),
            or_none(&flags.join(",")),
            or_none(&e.service)
        ));
    }
    align(&t, TABLE)
}

fn conntrack_json(r: &v1::ConntrackList) -> Value {
    json!({
        "total": r.total,
        "matched": r.matched,
        "truncated": r.truncated,
        "entries": r.entries.iter().map(|e| json!({
            "protocol": e.protocol, "source": e.source, "destination": e.destination,
            "direction": e.direction, "nat": e.nat, "peer": e.peer,
            "closing": e.closing, "external": e.external, "service": e.service,
        })).collect::<Vec<_>>(),
    })
}

/// Tunnels, then the peers.
pub fn tunnels_table(r: &v1::TunnelList) -> String {
    let mut t = String::from("POD CIDR\tNODE IP\tNODE\n");
    for x in &r.tunnels {
        t.push_str(&format!(
            "{}\t{}\t{}\n",
            x.pod_cidr,
            x.node_ip,
            or_none(&x.node)
        ));
    }
    let mut out = align(&t, TABLE);
    out.push_str(&format!(
        "\nOverlay peers (VXLAN accepted from): {}\n",
        if r.peers.is_empty() {
            "<none>".to_owned()
        } else {
            r.peers.join(", ")
        }
    ));
    out
}

fn tunnels_json(r: &v1::TunnelList) -> Value {
    json!({
        "tunnels": r.tunnels.iter().map(|x| json!({
            "podCIDR": x.pod_cidr, "nodeIP": x.node_ip, "node": x.node,
        })).collect::<Vec<_>>(),
        "peers": r.peers,
    })
}

/// Drops by reason, then the node's counters and the flow events'.
pub fn counters_table(r: &v1::DatapathCounters) -> String {
    let mut t = String::from("REASON\tDROPS\tWHAT\n");
    for d in &r.drops {
        t.push_str(&format!("{}\t{}\t{}\n", d.reason, d.count, d.description));
    }
    let mut c = String::from("COUNTER\tVALUE\n");
    for n in &r.counters {
        c.push_str(&format!("{}\t{}\n", n.name, n.value));
    }
    for n in &r.flow_events {
        c.push_str(&format!("flow_events_{}\t{}\n", n.name, n.value));
    }
    format!("{}\n{}", align(&t, TABLE), align(&c, TABLE))
}

fn counters_json(r: &v1::DatapathCounters) -> Value {
    let named = |v: &[v1::NamedCount]| {
        v.iter()
            .map(|n| (n.name.clone(), json!(n.value)))
            .collect::<serde_json::Map<_, _>>()
    };
    json!({
        "drops": r.drops.iter().map(|d| (d.reason.clone(), json!(d.count))).collect::<serde_json::Map<_, _>>(),
        "counters": named(&r.counters),
        "flowEvents": named(&r.flow_events),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> v1::DatapathServices {
        v1::DatapathServices {
            services: vec![
                v1::DatapathService {
                    id: 1,
                    frontend: "10.96.0.20:80".into(),
                    protocol: "TCP".into(),
                    service: "shop/web:http".into(),
                    flags: vec!["ClusterIP".into()],
                    tc_new_flows: 2,
                    sock_new_flows: 3,
                    rejected: 0,
                    backends: vec![
                        v1::DatapathBackend {
                            slot: 0,
                            address: "10.244.1.5:8080".into(),
                            pod: "shop/web-1".into(),
                            new_flows: 3,
                        },
                        v1::DatapathBackend {
                            slot: 1,
                            address: "10.244.2.7:8080".into(),
                            pod: String::new(),
                            new_flows: 2,
                        },
                    ],
                },
                v1::DatapathService {
                    id: 2,
                    frontend: "10.96.0.30:80".into(),
                    protocol: "TCP".into(),
                    flags: vec!["ClusterIP".into()],
                    rejected: 4,
                    ..v1::DatapathService::default()
                },
            ],
        }
    }

    #[test]
    fn services_show_one_line_per_backend() {
        let text = services_table(&web());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("ID    SERVICE"), "{text}");
        assert!(lines.iter().all(|l| !l.ends_with(' ')), "{text}");
        assert!(lines[1].contains("shop/web:http") && lines[1].contains("10.244.1.5:8080"));
        let words = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(words(lines[1])[5..], ["shop/web-1", "3", "0"], "{text}");
        assert!(
            lines[2].trim_start().starts_with("10.244.2.7:8080"),
            "{text}"
        );
        assert!(lines[2].contains("<none>") && lines[2].trim_end().ends_with('2'));
        assert!(lines[3].contains("<none>") && lines[3].trim_end().ends_with('4'));
        let j = services_json(&web());
        assert_eq!(j["services"][0]["backends"][1]["newFlows"], 2);
        assert_eq!(j["services"][0]["newFlows"]["socket"], 3);
    }

    #[test]
    fn conntrack_and_counters_render() {
        let list = v1::ConntrackList {
            entries: vec![v1::ConntrackEntry {
                protocol: "TCP".into(),
                source: "10.244.1.5:40000".into(),
                destination: "10.96.0.20:80".into(),
                direction: "forward".into(),
                nat: "10.244.2.7:8080".into(),
                closing: true,
                service: "shop/web:http".into(),
                ..v1::ConntrackEntry::default()
            }],
            total: 10,
            matched: 1,
            truncated: false,
        };
        let t = conntrack_table(&list);
        assert!(t.lines().nth(1).unwrap().contains("forward"), "{t}");
        assert!(t.contains("closing") && t.contains("<none>"), "{t}");
        assert_eq!(conntrack_json(&list)["matched"], 1);
        let c = v1::DatapathCounters {
            drops: vec![v1::DropCount {
                reason: "no_backend".into(),
                count: 2,
                description: "refused".into(),
            }],
            counters: vec![v1::NamedCount {
                name: "packets".into(),
                value: 9,
            }],
            flow_events: vec![v1::NamedCount {
                name: "lost".into(),
                value: 0,
            }],
        };
        let t = counters_table(&c);
        assert!(t.contains("no_backend   2"), "{t}");
        assert!(t.contains("flow_events_lost"), "{t}");
        assert_eq!(counters_json(&c)["drops"]["no_backend"], 2);
        let tun = v1::TunnelList {
            tunnels: vec![v1::Tunnel {
                pod_cidr: "10.244.2.0/24".into(),
                node_ip: "10.0.0.3".into(),
                node: "n2".into(),
            }],
            peers: vec!["10.0.0.3".into()],
        };
        let t = tunnels_table(&tun);
        assert!(
            t.contains("10.244.2.0/24") && t.contains("peers (VXLAN accepted from): 10.0.0.3"),
            "{t}"
        );
    }
}
