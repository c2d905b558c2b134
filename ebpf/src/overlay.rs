//! [`Overlay`]: a node's side of the pod overlay — the tunnel map (a remote
//! node's pod CIDR → that node's underlay address), the settings the tc
//! programs read (which device encapsulates, with which VNI), and
//! `from_overlay` on the node's VXLAN device (external / collect_md mode).
//!
//! `from_pod` sends a packet for a pod of another node into the overlay with
//! a tunnel key naming that node; the VXLAN device encapsulates it. On the
//! receiving node the device decapsulates and `from_overlay` delivers the
//! inner packet straight into the pod (after the reverse NAT of a service
//! reply whose flow the node balanced). Everything is pinned and keeps
//! working while the agent is down.
//!
//! The tunnel map is reconciled by diff ([`plan_tunnels`], free of kernel
//! access): new and moved CIDRs are written before stale ones are removed.
//! The known peers `from_overlay` accepts VXLAN from follow it
//! ([`crate::peers`]): added before the tunnels, removed after them.
use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use aya::{
    maps::{Array, Map, MapData, lpm_trie::Key, lpm_trie::LpmTrie},
    programs::SchedClassifier,
};
use ipnetwork::Ipv4Network;

use crate::{
    Attached, abi,
    error::DatapathError,
    maps::{is_missing, map_err},
    peers::{PeerMap, Peers, peers_of, plan_peers},
    tc::tcx,
};

/// Where the verified `from_overlay` program is pinned, in a node's pin directory.
pub(crate) const FROM_OVERLAY_PIN: &str = "progs/from_overlay";
/// The VXLAN device's TCX link pin, in the node's `links/`, is this and its name.
const LINK_PIN_PREFIX: &str = "from_overlay_";
const TUNNELS_PIN: &str = "tunnels";
const CONFIG_PIN: &str = "overlay";

/// The desired (or programmed) tunnels: remote pod CIDR → node underlay address.
pub type Tunnels = BTreeMap<Ipv4Network, Ipv4Addr>;

/// What a tunnel reconcile wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunnelSummary {
    /// CIDRs that were not programmed.
    pub added: usize,
    /// CIDRs that moved to another node address.
    pub changed: usize,
    /// CIDRs no longer wanted.
    pub removed: usize,
    /// Node addresses that became known peers.
    pub peers_added: usize,
    /// Node addresses no longer known.
    pub peers_removed: usize,
}

/// One write to the tunnel map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelOp {
    /// Insert or overwrite a CIDR's node.
    Put(Ipv4Network, Ipv4Addr),
    /// Remove a CIDR.
    Delete(Ipv4Network),
}

/// A CIDR with its host bits cleared (what an LPM key holds).
pub fn normalize(net: Ipv4Network) -> Ipv4Network {
    Ipv4Network::new(net.network(), net.prefix()).unwrap_or(net)
}

/// The writes that turn `current` into `desired`: puts first (a CIDR that
/// moved is overwritten in place, never missing), then deletes.
pub fn plan_tunnels(current: &Tunnels, desired: &Tunnels) -> (Vec<TunnelOp>, TunnelSummary) {
    let mut ops = Vec::new();
    let mut summary = TunnelSummary::default();
    for (net, node) in desired {
        let net = normalize(*net);
        match current.get(&net) {
            Some(have) if have == node => {}
            Some(_) => {
                summary.changed += 1;
                ops.push(TunnelOp::Put(net, *node));
            }
            None => {
                summary.added += 1;
                ops.push(TunnelOp::Put(net, *node));
            }
        }
    }
    let wanted: Tunnels = desired.iter().map(|(n, a)| (normalize(*n), *a)).collect();
    for net in current.keys() {
        if !wanted.contains_key(net) {
            summary.removed += 1;
            ops.push(TunnelOp::Delete(*net));
        }
    }
    (ops, summary)
}

fn key(net: Ipv4Network) -> Key<u32> {
    Key::new(u32::from(net.prefix()), u32::from(net.network()).to_be())
}

/// The overlay part of a node's data plane, opened from its pins.
pub struct Overlay {
    dir: PathBuf,
    from_overlay: SchedClassifier,
    tunnels: LpmTrie<MapData, u32, abi::TunnelValue>,
    config: Array<MapData, abi::OverlayConfig>,
    peers: PeerMap,
}

impl std::fmt::Debug for Overlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Overlay {
    /// Opens node `node`'s overlay under the bpffs mount `bpffs` from its
    /// pins (to read it: the data plane must have been set up).
    pub fn open_in(bpffs: &Path, node: &str) -> Result<Self, DatapathError> {
        Self::from_pins(&crate::datapath::node_dir(bpffs, node)?)
    }

    /// Opens the pins under the node directory `dir`.
    pub(crate) fn from_pins(dir: &Path) -> Result<Self, DatapathError> {
        let prog = dir.join(FROM_OVERLAY_PIN);
        let from_overlay =
            SchedClassifier::from_pin(&prog).map_err(|e| DatapathError::Program {
                action: "opening pinned",
                program: "from_overlay",
                target: prog.display().to_string(),
                source: Box::new(e),
            })?;
        let open = |name: &'static str| {
            MapData::from_pin(dir.join(name)).map_err(map_err("open pin of", name))
        };
        let tunnels = LpmTrie::try_from(Map::LpmTrie(open(TUNNELS_PIN)?))
            .map_err(map_err("type-check", TUNNELS_PIN))?;
        let config = Array::try_from(Map::Array(open(CONFIG_PIN)?))
            .map_err(map_err("type-check", CONFIG_PIN))?;
        Ok(Self {
            dir: dir.to_owned(),
            from_overlay,
            tunnels,
            config,
            peers: PeerMap::from_pins(dir)?,
        })
    }

    fn link_pin(&self, ifname: &str) -> PathBuf {
        self.dir
            .join("links")
            .join(format!("{LINK_PIN_PREFIX}{ifname}"))
    }

    /// Makes `ifname` (ifindex `ifindex`, a VXLAN device in external mode in
    /// the calling thread's namespace) the node's overlay device: attaches
    /// `from_overlay` to its ingress (a pinned TCX link), then points the
    /// encapsulation at it with VNI `vni`. Idempotent.
    ///
    /// Every node the tunnel map leads to is made a known peer first, so a
    /// `from_overlay` that checks peers never starts with fewer than the
    /// tunnels imply (a data plane pinned before peers existed keeps its
    /// traffic across the upgrade).
    pub fn attach_device(
        &mut self,
        ifname: &str,
        ifindex: u32,
        vni: u32,
    ) -> Result<Attached, DatapathError> {
        let implied = peers_of(&self.tunnels()?);
        let (missing, _) = plan_peers(&self.peers.read()?, &implied);
        for addr in missing {
            self.peers.put(addr)?;
        }
        let pin = self.link_pin(ifname);
        let outcome = tcx::attach(
            &mut self.from_overlay,
            "from_overlay",
            ifname,
            aya::programs::TcAttachType::Ingress,
            &pin,
        )?;
        self.config
            .set(0, abi::OverlayConfig { ifindex, vni }, 0)
            .map_err(map_err("write", CONFIG_PIN))?;
        tracing::debug!(ifname, ifindex, vni, ?outcome, "overlay device attached");
        Ok(outcome)
    }

    /// The programmed tunnels.
    pub fn tunnels(&self) -> Result<Tunnels, DatapathError> {
        let mut out = Tunnels::new();
        for entry in self.tunnels.iter() {
            let (k, v) = entry.map_err(map_err("iterate", TUNNELS_PIN))?;
            let addr = Ipv4Addr::from(u32::from_be(k.data()));
            let prefix = u8::try_from(k.prefix_len()).unwrap_or(32);
            if let Ok(net) = Ipv4Network::new(addr, prefix) {
                out.insert(net, Ipv4Addr::from(u32::from_be(v.node_ip)));
            }
        }
        Ok(out)
    }

    /// The known peers: node addresses `from_overlay` accepts VXLAN from.
    pub fn peers(&self) -> Result<Peers, DatapathError> {
        self.peers.read()
    }

    /// Makes the tunnel map exactly `desired`, and the known peers exactly
    /// the nodes it leads to, writing only the differences: new peers
    /// first, then the tunnels, then the peers no tunnel leads to any more.
    pub fn reconcile_tunnels(&mut self, desired: &Tunnels) -> Result<TunnelSummary, DatapathError> {
        let (ops, mut summary) = plan_tunnels(&self.tunnels()?, desired);
        let (new_peers, stale_peers) = plan_peers(&self.peers.read()?, &peers_of(desired));
        summary.peers_added = new_peers.len();
        summary.peers_removed = stale_peers.len();
        for addr in new_peers {
            self.peers.put(addr)?;
        }
        for op in ops {
            match op {
                TunnelOp::Put(net, node) => self
                    .tunnels
                    .insert(
                        &key(net),
                        abi::TunnelValue {
                            node_ip: u32::from(node).to_be(),
                        },
                        0,
                    )
                    .map_err(map_err("insert", TUNNELS_PIN))?,
                TunnelOp::Delete(net) => match self.tunnels.remove(&key(net)) {
                    Ok(()) => {}
                    Err(e) if is_missing(&e) => {}
                    Err(e) => return Err(map_err("remove", TUNNELS_PIN)(e)),
                },
            }
        }
        for addr in stale_peers {
            self.peers.delete(addr)?;
        }
        Ok(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Network {
        s.parse().expect("a CIDR")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("an address")
    }

    #[test]
    fn the_lpm_key_has_the_c_layout() {
        assert_eq!(
            std::mem::size_of::<Key<u32>>(),
            std::mem::size_of::<abi::TunnelKey>()
        );
    }

    #[test]
    fn plan_writes_only_the_difference_puts_before_deletes() {
        let current: Tunnels = [
            (net("10.244.1.0/24"), ip("192.168.77.11")),
            (net("10.244.2.0/24"), ip("192.168.77.12")),
            (net("10.244.3.0/24"), ip("192.168.77.13")),
        ]
        .into();
        let desired: Tunnels = [
            (net("10.244.1.0/24"), ip("192.168.77.11")),
            (net("10.244.3.0/24"), ip("192.168.77.20")),
            (net("10.244.4.0/24"), ip("192.168.77.14")),
        ]
        .into();
        let (ops, summary) = plan_tunnels(&current, &desired);
        assert_eq!(
            ops,
            [
                TunnelOp::Put(net("10.244.3.0/24"), ip("192.168.77.20")),
                TunnelOp::Put(net("10.244.4.0/24"), ip("192.168.77.14")),
                TunnelOp::Delete(net("10.244.2.0/24")),
            ]
        );
        assert_eq!(
            summary,
            TunnelSummary {
                added: 1,
                changed: 1,
                removed: 1,
                ..TunnelSummary::default()
            }
        );
        assert!(plan_tunnels(&desired, &desired).0.is_empty());
    }

    #[test]
    fn host_bits_are_cleared() {
        let desired: Tunnels = [(net("10.244.1.7/24"), ip("192.168.77.11"))].into();
        let current: Tunnels = [(net("10.244.1.0/24"), ip("192.168.77.11"))].into();
        assert!(plan_tunnels(&current, &desired).0.is_empty());
        let (ops, _) = plan_tunnels(&Tunnels::new(), &desired);
        assert_eq!(
            ops,
            [TunnelOp::Put(net("10.244.1.0/24"), ip("192.168.77.11"))]
        );
    }
}
