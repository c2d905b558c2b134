//! A flannel-style overlay between two nodes, built with kernel devices
//! only — the baseline the overlay benchmark measures jotasu against.
//!
//! As flannel's `vxlan` backend wires a node: a Linux bridge `cni0` holding
//! the pods' veths (gateway `10.244.N.1`), a VXLAN device `flannel.1` (VNI
//! 1, UDP 8472, no learning, address `10.244.N.0/32`), and for every other
//! node a route `10.244.R.0/24 via 10.244.R.0 onlink`, a permanent neighbour
//! entry for that gateway (the remote VTEP's MAC) and a forwarding-database
//! entry sending that MAC to the remote node's underlay address. The nodes
//! sit on their own underlay bridge; everything lives in namespaces named
//! with the run's prefix and goes away on drop.

use std::net::Ipv4Addr;

use anyhow::Context as _;

use crate::cmd;
use crate::netns::{NetNs, veth_pair, veth_to_bridge};

/// MTU of the pods' interfaces and the VXLAN devices (1500 less 50).
pub const MTU: &str = "1450";

/// One node with one pod. Field order is drop order: the pod goes first.
#[derive(Debug)]
struct Node {
    pod: NetNs,
    ns: NetNs,
    underlay_ip: Ipv4Addr,
    pod_ip: Ipv4Addr,
}

/// Two nodes with a pod each, connected flannel-style.
#[derive(Debug)]
pub struct FlannelPair {
    nodes: Vec<Node>,
    _underlay: NetNs,
}

fn bridge(ns: &NetNs, args: &[&str]) -> anyhow::Result<String> {
    let mut full = vec!["-n", ns.name()];
    full.extend_from_slice(args);
    Ok(cmd::run(std::process::Command::new("bridge").args(&full))?)
}

fn mac_of(ns: &NetNs, dev: &str) -> anyhow::Result<String> {
    let out = ns.ip(&["-o", "link", "show", dev])?;
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .map(str::to_owned)
        .with_context(|| format!("no MAC for {dev} in {}", ns.name()))
}

impl FlannelPair {
    /// Builds the two nodes under `prefix` (at most 11 characters).
    pub fn build(prefix: &str) -> anyhow::Result<Self> {
        let underlay = NetNs::new(&format!("{prefix}fu"))?;
        underlay.ip(&["link", "add", "br0", "type", "bridge"])?;
        underlay.ip(&["link", "set", "br0", "up"])?;
        let mut nodes = Vec::new();
        for i in 0..2u8 {
            let ns = NetNs::new(&format!("{prefix}f{i}"))?;
            let pod = NetNs::new(&format!("{prefix}fp{i}"))?;
            let underlay_ip = Ipv4Addr::new(192, 168, 78, 10 + i);
            let pod_ip = Ipv4Addr::new(10, 244, i, 2);
            // Underlay uplink.
            let up = format!("{prefix}fv{i}");
            veth_to_bridge(&underlay, &ns, &up, underlay_ip)?;
            ns.sysctl("net.ipv4.ip_forward", "1")?;
            // cni0 and flannel.1.
            ns.ip(&["link", "add", "cni0", "type", "bridge"])?;
            ns.ip(&["addr", "add", &format!("10.244.{i}.1/24"), "dev", "cni0"])?;
            ns.ip(&["link", "set", "cni0", "mtu", MTU, "up"])?;
            ns.ip(&[
                "link",
                "add",
                "flannel.1",
                "type",
                "vxlan",
                "id",
                "1",
                "local",
                &underlay_ip.to_string(),
                "dev",
                &up,
                "dstport",
                "8472",
                "nolearning",
            ])?;
            ns.ip(&[
                "addr",
                "add",
                &format!("10.244.{i}.0/32"),
                "dev",
                "flannel.1",
            ])?;
            ns.ip(&["link", "set", "flannel.1", "mtu", MTU, "up"])?;
            // The pod on cni0.
            let host = format!("{prefix}fh{i}");
            veth_pair(&ns, &host, &pod, "eth0")?;
            ns.ip(&["link", "set", &host, "master", "cni0", "mtu", MTU, "up"])?;
            pod.ip(&["addr", "add", &format!("{pod_ip}/24"), "dev", "eth0"])?;
            pod.ip(&["link", "set", "eth0", "mtu", MTU, "up"])?;
            pod.ip(&["route", "add", "default", "via", &format!("10.244.{i}.1")])?;
            nodes.push(Node {
                pod,
                ns,
                underlay_ip,
                pod_ip,
            });
        }
        // What flanneld programs for each remote node.
        for (i, node) in nodes.iter().enumerate() {
            for (r, remote) in nodes.iter().enumerate() {
                if r == i {
                    continue;
                }
                let vtep_mac = mac_of(&remote.ns, "flannel.1")?;
                let gw = format!("10.244.{r}.0");
                node.ns.ip(&[
                    "neigh",
                    "replace",
                    &gw,
                    "lladdr",
                    &vtep_mac,
                    "dev",
                    "flannel.1",
                    "nud",
                    "permanent",
                ])?;
                bridge(
                    &node.ns,
                    &[
                        "fdb",
                        "append",
                        &vtep_mac,
                        "dev",
                        "flannel.1",
                        "dst",
                        &remote.underlay_ip.to_string(),
                    ],
                )?;
                node.ns.ip(&[
                    "route",
                    "add",
                    &format!("10.244.{r}.0/24"),
                    "via",
                    &gw,
                    "dev",
                    "flannel.1",
                    "onlink",
                ])?;
            }
        }
        Ok(Self {
            nodes,
            _underlay: underlay,
        })
    }

    /// The client pod's namespace (on node 0).
    pub fn client_netns(&self) -> String {
        self.nodes[0].pod.name().to_owned()
    }

    /// The server pod's namespace (on node 1).
    pub fn server_netns(&self) -> String {
        self.nodes[1].pod.name().to_owned()
    }

    /// The server pod's address.
    pub fn server_ip(&self) -> Ipv4Addr {
        self.nodes[1].pod_ip
    }
}
