//! The CNI benchmark: ADD and DEL latency of `jotasu-cni` (with each of its
//! two tc hooks) next to Debian's reference pair `bridge` + `host-local`, in
//! the same run on the same node.
//!
//! One node namespace holds the three networks; every pod gets its own
//! namespace. The plugins are invoked the way a runtime does it — through the CNI
//! runtime library, which starts the plugin binary, feeds it the config and
//! caches the result — and a sample is the whole call as the runtime sees it.
//! The node is prepared as a running cluster would have it: jotasu's data
//! plane is set up (the agent does that at start) and the bridge exists
//! (one unmeasured pod of each first). Then pods are added one at a time,
//! the networks taking turns (which goes first rotates), and deleted the
//! same way.
use std::time::{Duration, Instant};

use anyhow::Context as _;
use jotasu_cni::{runtime::Runtime, spec::NetConfList};
use jotasu_ebpf::Datapath;
use serde_json::json;

use super::{Report, client::Histogram};
use crate::{cni::CniNode, signals};

/// The benchmark's name (`target/bench/cni.json`).
pub const NAME: &str = "cni";
/// Most pods per network (each network is a /22).
pub const MAX_PODS: usize = 1000;
/// jotasu-cni with its default hook, the one the goals are about.
const JOTASU: &str = "jotasu-cni (tcHook filter)";
const JOTASU_TCX: &str = "jotasu-cni (tcHook tcx)";
const REFERENCE: &str = "bridge + host-local";

/// How the benchmark runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Pods per network.
    pub pods: usize,
}

/// One line on how the run was made, printed above the table.
pub fn describe(cfg: &Config) -> String {
    format!(
        "{} pods per network, added then deleted one at a time, the three networks taking turns \
         (which goes first rotates); each sample is one runtime call (plugin exec included)",
        cfg.pods
    )
}

/// ADD and DEL latencies of one network.
#[derive(Default)]
struct Samples {
    add: Histogram,
    del: Histogram,
}

/// The networks on one node, each with its pods' namespaces.
struct Bench {
    node: CniNode,
    networks: Vec<(&'static str, NetConfList)>,
}

impl Bench {
    fn new(pods: usize) -> anyhow::Result<Self> {
        let mut node = CniNode::new()?;
        // Every network speaks 1.0.0: Debian's reference plugins go no further.
        let jotasu = |hook: &str, subnet: &str| -> anyhow::Result<NetConfList> {
            let mut plugin = node.jotasu_plugin();
            plugin["tcHook"] = json!(hook);
            plugin["ipam"]["subnet"] = json!(subnet);
            // Each network its own name, so each has its own IPAM records.
            CniNode::named_conflist(&format!("pods-{hook}"), "1.0.0", vec![plugin])
        };
        let bridge = json!({
            "type": "bridge",
            "bridge": format!("{}br", node.name()),
            "isGateway": true,
            "ipMasq": false,
            "mtu": jotasu_cni::plugin::DEFAULT_MTU,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": "10.246.0.0/22"}]],
                "dataDir": node.state_dir().join("host-local"),
            },
        });
        let networks = vec![
            (JOTASU, jotasu("filter", "10.244.0.0/22")?),
            (JOTASU_TCX, jotasu("tcx", "10.245.0.0/22")?),
            (REFERENCE, node.conflist("1.0.0", vec![bridge])?),
        ];
        // The agent sets the node's data plane up before any pod arrives.
        node.node.run(|| Datapath::open(node.name()).map(drop))??;
        for _ in 0..networks.len() * (pods + 1) {
            node.pod_netns()?;
        }
        Ok(Self { node, networks })
    }

    /// Pod `i` of network `n`: its container id and namespace.
    fn attachment(&self, n: usize, i: usize) -> jotasu_cni::runtime::Attachment {
        let slot = self.networks.len() * i + n;
        let id = format!("{}-n{n}-{i}", self.node.name());
        CniNode::attachment(&id, &self.node.pods()[slot])
    }

    /// ADDs (or DELs) pod `i` of network `n`; how long the call took.
    fn call(&self, rt: &Runtime, n: usize, i: usize, add: bool) -> anyhow::Result<Duration> {
        let (name, list) = &self.networks[n];
        let att = self.attachment(n, i);
        let t = Instant::now();
        if add {
            rt.add(list, &att)
                .map(drop)
                .with_context(|| format!("{name}: ADD of {}", att.container_id))?;
        } else {
            rt.del(list, &att)
                .with_context(|| format!("{name}: DEL of {}", att.container_id))?;
        }
        Ok(t.elapsed())
    }

    /// Warms every network up with pod `pods` (unmeasured), then measures.
    fn measure(&self, pods: usize) -> anyhow::Result<Vec<Samples>> {
        let nets = self.networks.len();
        self.node.in_node(|rt| -> anyhow::Result<Vec<Samples>> {
            for add in [true, false] {
                for n in 0..nets {
                    self.call(rt, n, pods, add)?;
                }
            }
            let mut samples: Vec<Samples> = (0..nets).map(|_| Samples::default()).collect();
            for add in [true, false] {
                for i in 0..pods {
                    for k in 0..nets {
                        anyhow::ensure!(!signals::interrupted(), "interrupted");
                        let n = (i + k) % nets;
                        let took = self.call(rt, n, i, add)?;
                        let h = if add {
                            &mut samples[n].add
                        } else {
                            &mut samples[n].del
                        };
                        h.record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
                    }
                }
            }
            Ok(samples)
        })?
    }
}

/// Runs the benchmark. Everything it made is gone when it returns.
pub fn run(cfg: &Config) -> anyhow::Result<Report> {
    anyhow::ensure!(
        (1..=MAX_PODS).contains(&cfg.pods),
        "--pods must be between 1 and {MAX_PODS}, not {}",
        cfg.pods
    );
    let bench = Bench::new(cfg.pods)?;
    let samples = bench.measure(cfg.pods)?;
    // Every DEL must have left the node as it was.
    let left = bench.node.node_links("jtc")?;
    anyhow::ensure!(left.is_empty(), "jotasu-cni left veths behind: {left:?}");
    let mut report = Report::new(NAME);
    for ((name, _), s) in bench.networks.iter().zip(&samples) {
        for (verb, h) in [("ADD", &s.add), ("DEL", &s.del)] {
            for (q, label) in [(0.5, "p50"), (0.99, "p99"), (1.0, "max")] {
                report.row(name, &format!("{verb} {label}"), ms(h.quantile(q)), "ms");
            }
        }
    }
    goals(&mut report);
    Ok(report)
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The issue's goals, for jotasu-cni as configured by default.
fn goals(report: &mut Report) {
    let v = |case: &str, metric: &str| report.value(case, metric).unwrap_or(f64::NAN);
    let add_p99 = v(JOTASU, "ADD p99");
    let ratios = ["p50", "p99"].map(|q| {
        let metric = format!("ADD {q}");
        let r = v(JOTASU, &metric) / v(REFERENCE, &metric);
        (format!("{metric}, {JOTASU} / {REFERENCE}"), r)
    });
    report.goal_at_most(&format!("{JOTASU} ADD p99"), 20.0, add_p99, " ms");
    for (metric, r) in ratios {
        report.goal_at_most(&metric, 1.0, r, "");
    }
    // DEL has no goal: in every plugin it is the kernel tearing a veth down.
}
