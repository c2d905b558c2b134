//! A node on one machine: a node network namespace and pod namespaces wired to
//! it by veth pairs, as the CNI plugin will wire them.
//!
//! ```text
//!   pod ns: eth0 10.244.0.N/32, default via 169.254.1.1 (static neighbour)
//!     │ veth
//!   node ns: <prefix>h<i>, route 10.244.0.N/32, static neighbour, ip_forward
//! ```
//! Nothing is added to the root namespace; dropping the [`Node`] deletes it all.
use std::net::Ipv4Addr;

use anyhow::Context as _;

use crate::{cgroup::Cgroup, names, netns::NetNs};

/// The link-local gateway every pod routes through (answered statically).
pub const GATEWAY: &str = "169.254.1.1";

/// A pod namespace and its veth.
#[derive(Debug)]
pub struct Pod {
    /// A readable name (`pod1`, `client`, ...), also what echo servers answer.
    pub name: String,
    /// The pod's namespace.
    pub ns: NetNs,
    /// The pod's address.
    pub ip: Ipv4Addr,
    /// Host side of the veth, in the node namespace.
    pub host_if: String,
    /// ifindex of `host_if` in the node namespace.
    pub host_ifindex: u32,
    /// MAC of `host_if`.
    pub host_mac: [u8; 6],
    /// MAC of the pod's eth0.
    pub pod_mac: [u8; 6],
}

impl Pod {
    /// The endpoint entry the data plane needs to deliver to this pod.
    pub fn endpoint(&self) -> jotasu_ebpf::Endpoint {
        jotasu_ebpf::Endpoint {
            ifindex: self.host_ifindex,
            pod_mac: self.pod_mac,
            host_mac: self.host_mac,
        }
    }
}

/// A node namespace with its pods and a cgroup for its processes.
/// Field order is drop order: pods (and their veths) go before the node.
#[derive(Debug)]
pub struct Node {
    /// The per-run prefix of every name below; also the node's data-plane name.
    pub prefix: String,
    /// The pods, in creation order.
    pub pods: Vec<Pod>,
    /// The node's cgroup (`jotasu/<prefix>`), for the socket programs.
    pub cgroup: Cgroup,
    /// The node's namespace.
    pub ns: NetNs,
}

impl Node {
    /// A node namespace that forwards between its pods.
    pub fn new() -> anyhow::Result<Self> {
        let prefix = names::fresh_prefix();
        let ns = NetNs::new(&format!("{prefix}node"))?;
        ns.sysctl("net.ipv4.ip_forward", "1")?;
        ns.sysctl("net.ipv4.conf.all.rp_filter", "0")?;
        ns.sysctl("net.ipv4.conf.default.rp_filter", "0")?;
        let cgroup = Cgroup::new(&prefix)?;
        Ok(Self {
            prefix,
            pods: Vec::new(),
            cgroup,
            ns,
        })
    }

    /// The node's name for the data plane (its bpffs directory).
    pub fn name(&self) -> &str {
        &self.prefix
    }

    /// Adds a pod namespace `name` with address `ip`, wired to the node.
    pub fn add_pod(&mut self, name: &str, ip: Ipv4Addr) -> anyhow::Result<&Pod> {
        let i = self.pods.len();
        let ns = NetNs::new(&format!("{}p{i}", self.prefix))?;
        let host_if = format!("{}h{i}", self.prefix);
        crate::netns::veth_pair(&self.ns, &host_if, &ns, "eth0")?;
        let ip_s = ip.to_string();
        let host_mac = mac_of(&self.ns, &host_if)?;
        let pod_mac = mac_of(&ns, "eth0")?;
        ns.ip(&["addr", "add", &format!("{ip_s}/32"), "dev", "eth0"])?;
        ns.ip(&["link", "set", "eth0", "up"])?;
        ns.ip(&["route", "add", GATEWAY, "dev", "eth0", "scope", "link"])?;
        ns.ip(&["route", "add", "default", "via", GATEWAY, "dev", "eth0"])?;
        ns.ip(&[
            "neigh",
            "add",
            GATEWAY,
            "lladdr",
            &fmt_mac(&host_mac),
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])?;
        self.ns.ip(&["link", "set", &host_if, "up"])?;
        self.ns
            .ip(&["route", "add", &format!("{ip_s}/32"), "dev", &host_if])?;
        self.ns.ip(&[
            "neigh",
            "add",
            &ip_s,
            "lladdr",
            &fmt_mac(&pod_mac),
            "dev",
            &host_if,
            "nud",
            "permanent",
        ])?;
        let host_ifindex = ifindex_of(&self.ns, &host_if)?;
        self.pods.push(Pod {
            name: name.to_owned(),
            ns,
            ip,
            host_if,
            host_ifindex,
            host_mac,
            pod_mac,
        });
        self.pods.last().context("just pushed")
    }

    /// The pod called `name`.
    pub fn pod(&self, name: &str) -> anyhow::Result<&Pod> {
        self.pods
            .iter()
            .find(|p| p.name == name)
            .with_context(|| format!("no pod {name}"))
    }
}

fn link_json(ns: &NetNs, ifname: &str) -> anyhow::Result<serde_json::Value> {
    let out = ns.ip(&["-j", "link", "show", "dev", ifname])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    v.get(0)
        .cloned()
        .with_context(|| format!("{ifname} not found in {}", ns.name()))
}

fn mac_of(ns: &NetNs, ifname: &str) -> anyhow::Result<[u8; 6]> {
    let v = link_json(ns, ifname)?;
    let s = v["address"].as_str().context("link has no address")?;
    parse_mac(s)
}

fn ifindex_of(ns: &NetNs, ifname: &str) -> anyhow::Result<u32> {
    let v = link_json(ns, ifname)?;
    Ok(u32::try_from(
        v["ifindex"].as_u64().context("link has no ifindex")?,
    )?)
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> anyhow::Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    let parts: Vec<&str> = s.split(':').collect();
    anyhow::ensure!(parts.len() == 6, "bad MAC {s:?}");
    for (b, p) in mac.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).with_context(|| format!("bad MAC {s:?}"))?;
    }
    Ok(mac)
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
