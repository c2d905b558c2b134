//! The overlay between nodes: the node's VXLAN device is made and handed to
//! the data plane at start-up ([`setup`]), and the tunnel map follows the
//! Node list ([`sync_loop`]): every other node with a pod CIDR and an
//! InternalIP gets a tunnel; a node that leaves loses it. A node that is
//! NotReady keeps its tunnel (its pods may still answer); only deletion
//! removes it. The nodes the tunnels lead to are the overlay's known peers:
//! VXLAN from any other underlay address is dropped (`unknown_overlay_peer`).

use std::net::Ipv4Addr;
use std::sync::PoisonError;

use ipnetwork::Ipv4Network;
use jotasu_api::Node;
use jotasu_ebpf::Tunnels;
use tokio::sync::watch;
use tracing::info;

use crate::datapath::{SharedDatapath, reprogram_on_change};
use crate::metrics::Metrics;
use crate::network::vxlan::{self, VxlanSpec};
use crate::watch::{ClusterView, SharedView};

/// The VXLAN network identifier every node uses (flannel's, too).
pub const VNI: u32 = 1;
/// Bytes VXLAN adds to a packet on an IPv4 underlay.
pub const VXLAN_OVERHEAD: u32 = 50;

/// A node's pod CIDR and underlay address, if it has both.
pub fn tunnel_of(node: &Node) -> Option<(Ipv4Network, Ipv4Addr)> {
    let cidr: Ipv4Network = node.spec.pod_cidr.as_deref()?.parse().ok()?;
    let ip = node
        .status
        .as_ref()?
        .addresses
        .iter()
        .find(|a| a.type_ == "InternalIP")?
        .address
        .parse()
        .ok()?;
    Some((cidr, ip))
}

/// The tunnels node `me` needs: every other node's pod CIDR → its InternalIP.
pub fn desired(view: &ClusterView, me: &str) -> Tunnels {
    view.nodes
        .iter()
        .filter(|(name, _)| name.as_str() != me)
        .filter_map(|(_, n)| tunnel_of(n))
        .collect()
}

/// Makes the node's VXLAN device and attaches the data plane to it.
pub async fn setup(datapath: &SharedDatapath, spec: &VxlanSpec) -> anyhow::Result<()> {
    let ifindex = vxlan::ensure(spec).await?;
    let mut dp = datapath.lock().unwrap_or_else(PoisonError::into_inner);
    let attached = dp.overlay_mut().attach_device(&spec.name, ifindex, VNI)?;
    info!(device = %spec.name, ifindex, port = spec.port, mtu = spec.mtu, ?attached, "overlay device ready");
    Ok(())
}

/// Reprograms the tunnel map whenever the nodes change, until `stop`
/// (see [`crate::datapath::reprogram_on_change`]).
pub async fn sync_loop(
    datapath: SharedDatapath,
    view: SharedView,
    me: String,
    nodes: watch::Receiver<u64>,
    metrics: std::sync::Arc<Metrics>,
    stop: watch::Receiver<bool>,
) {
    reprogram_on_change("tunnels", datapath, view, nodes, metrics, stop, |dp, v| {
        let want = desired(v, &me);
        let s = dp.overlay_mut().reconcile_tunnels(&want)?;
        if s.added + s.changed + s.removed + s.peers_added + s.peers_removed > 0 {
            info!(
                added = s.added,
                changed = s.changed,
                removed = s.removed,
                tunnels = want.len(),
                peers_added = s.peers_added,
                peers_removed = s.peers_removed,
                "tunnels programmed"
            );
        }
        Ok(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use jotasu_api::kinds::node::{NodeAddress, NodeStatus};

    use super::*;

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.spec.pod_cidr = cidr.map(Into::into);
        n.status = Some(NodeStatus {
            addresses: ip
                .map(|ip| NodeAddress {
                    type_: "InternalIP".into(),
                    address: ip.into(),
                })
                .into_iter()
                .collect(),
            ..NodeStatus::default()
        });
        n
    }

    #[test]
    fn every_other_node_with_a_cidr_and_an_address_gets_a_tunnel() {
        let mut view = ClusterView::default();
        for n in [
            node("a", Some("10.244.0.0/24"), Some("192.168.77.10")),
            node("b", Some("10.244.1.0/24"), Some("192.168.77.11")),
            node("c", None, Some("192.168.77.12")),
            node("d", Some("10.244.3.0/24"), None),
            node("e", Some("not a cidr"), Some("192.168.77.14")),
            node("f", Some("10.244.5.0/24"), Some("192.168.77.15")),
        ] {
            view.nodes.insert(n.metadata.name().to_owned(), n);
        }
        let got: Vec<String> = desired(&view, "a")
            .into_iter()
            .map(|(c, ip)| format!("{c}>{ip}"))
            .collect();
        assert_eq!(
            got,
            ["10.244.1.0/24>192.168.77.11", "10.244.5.0/24>192.168.77.15"]
        );
    }
}
