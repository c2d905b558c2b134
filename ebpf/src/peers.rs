//! The overlay's known peers: the underlay addresses `from_overlay` accepts
//! VXLAN from (`overlay_peers` in `bpf/source.h`). They are the nodes the
//! tunnel map leads to ([`peers_of`]), and [`crate::Overlay`] keeps both maps
//! together by diff ([`plan_peers`], free of kernel access): a new peer is
//! known before a tunnel leads to it, a peer is forgotten only after the
//! last tunnel to it is gone.
use std::{collections::BTreeSet, net::Ipv4Addr, path::Path};

use aya::maps::{HashMap, Map, MapData};

use crate::{
    error::DatapathError,
    maps::{is_missing, map_err},
    overlay::Tunnels,
};

const PEERS_PIN: &str = "overlay_peers";

/// Underlay addresses of the known nodes.
pub type Peers = BTreeSet<Ipv4Addr>;

/// The peers a tunnel map implies: every node address it leads to.
pub fn peers_of(tunnels: &Tunnels) -> Peers {
    tunnels.values().copied().collect()
}

/// The writes that turn `current` into `desired`: the peers to add, and
/// the peers to remove (after the tunnels are written).
pub fn plan_peers(current: &Peers, desired: &Peers) -> (Vec<Ipv4Addr>, Vec<Ipv4Addr>) {
    (
        desired.difference(current).copied().collect(),
        current.difference(desired).copied().collect(),
    )
}

/// The `overlay_peers` map of a node, opened from its pin.
pub(crate) struct PeerMap {
    map: HashMap<MapData, u32, u32>,
}

impl PeerMap {
    pub(crate) fn from_pins(dir: &Path) -> Result<Self, DatapathError> {
        let data =
            MapData::from_pin(dir.join(PEERS_PIN)).map_err(map_err("open pin of", PEERS_PIN))?;
        let map =
            HashMap::try_from(Map::HashMap(data)).map_err(map_err("type-check", PEERS_PIN))?;
        Ok(Self { map })
    }

    pub(crate) fn read(&self) -> Result<Peers, DatapathError> {
        self.map
            .keys()
            .map(|k| k.map(|k| Ipv4Addr::from(u32::from_be(k))))
            .collect::<Result<_, _>>()
            .map_err(map_err("iterate", PEERS_PIN))
    }

    pub(crate) fn put(&mut self, addr: Ipv4Addr) -> Result<(), DatapathError> {
        self.map
            .insert(u32::from(addr).to_be(), 1, 0)
            .map_err(map_err("insert", PEERS_PIN))
    }

    pub(crate) fn delete(&mut self, addr: Ipv4Addr) -> Result<(), DatapathError> {
        match self.map.remove(&u32::from(addr).to_be()) {
            Err(e) if !is_missing(&e) => Err(map_err("remove", PEERS_PIN)(e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("an address")
    }

    #[test]
    fn peers_are_the_nodes_tunnels_lead_to_once_each() {
        let tunnels: Tunnels = [
            ("10.244.1.0/24".parse().unwrap(), ip("192.168.77.11")),
            ("10.244.2.0/24".parse().unwrap(), ip("192.168.77.12")),
            ("10.244.9.0/24".parse().unwrap(), ip("192.168.77.12")),
        ]
        .into();
        assert_eq!(
            peers_of(&tunnels),
            Peers::from([ip("192.168.77.11"), ip("192.168.77.12")])
        );
        assert!(peers_of(&Tunnels::new()).is_empty());
    }

    #[test]
    fn plan_adds_the_new_and_removes_the_gone() {
        let current = Peers::from([ip("192.168.77.11"), ip("192.168.77.12")]);
        let desired = Peers::from([ip("192.168.77.12"), ip("192.168.77.20")]);
        assert_eq!(
            plan_peers(&current, &desired),
            (vec![ip("192.168.77.20")], vec![ip("192.168.77.11")])
        );
        assert_eq!(plan_peers(&desired, &desired), (vec![], vec![]));
    }
}
