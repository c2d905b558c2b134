//! [`Underlay`]: traffic from outside the cluster — `from_underlay` on the
//! node's underlay interface and the node's own address (`host_config`),
//! which external flows under `externalTrafficPolicy: Cluster` are SNATed to.
//!
//! Node ports, external IPs and host ports are ordinary entries of the
//! services map marked [`crate::service::Reach::external`]; `from_underlay`
//! balances only those, tracks each flow in the shared conntrack table and
//! sends the replies back out of the underlay. The program is a tc (TCX)
//! ingress program rather than XDP: it needs the socket buffer's helpers
//! (`bpf_redirect_peer` into a pod, tunnel keys for the overlay,
//! `bpf_redirect_neigh`) that the pod and overlay paths already use, and the
//! underlay of a node is a veth here, where XDP gains nothing over tc.
use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
};

use aya::{
    maps::{Array, Map, MapData},
    programs::{SchedClassifier, TcAttachType},
};

use crate::{Attached, abi, error::DatapathError, maps::map_err, tc::tcx};

/// Where the verified `from_underlay` program is pinned, in a node's pin directory.
pub(crate) const FROM_UNDERLAY_PIN: &str = "progs/from_underlay";
/// The underlay interface's TCX link pin, in the node's `links/`, is this and its name.
const LINK_PIN_PREFIX: &str = "from_underlay_";
const HOST_PIN: &str = "host_config";

/// The external-traffic part of a node's data plane, opened from its pins.
pub struct Underlay {
    dir: PathBuf,
    from_underlay: SchedClassifier,
    host: Array<MapData, abi::HostConfig>,
}

impl std::fmt::Debug for Underlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Underlay")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Underlay {
    /// Opens the pins under the node directory `dir`.
    pub(crate) fn from_pins(dir: &Path) -> Result<Self, DatapathError> {
        let prog = dir.join(FROM_UNDERLAY_PIN);
        let from_underlay =
            SchedClassifier::from_pin(&prog).map_err(|e| DatapathError::Program {
                action: "opening pinned",
                program: "from_underlay",
                target: prog.display().to_string(),
                source: Box::new(e),
            })?;
        let map =
            MapData::from_pin(dir.join(HOST_PIN)).map_err(map_err("open pin of", HOST_PIN))?;
        let host = Array::try_from(Map::Array(map)).map_err(map_err("type-check", HOST_PIN))?;
        Ok(Self {
            dir: dir.to_owned(),
            from_underlay,
            host,
        })
    }

    fn link_pin(&self, ifname: &str) -> PathBuf {
        self.dir
            .join("links")
            .join(format!("{LINK_PIN_PREFIX}{ifname}"))
    }

    /// Makes `ifname` (ifindex `ifindex`, in the calling thread's
    /// namespace, forwarding IPv4) the node's underlay: records `addr` as
    /// the node's address (what external flows are SNATed to) and the
    /// interface their replies leave by, then attaches `from_underlay` to
    /// its ingress (a pinned TCX link; an attached one is replaced
    /// atomically). Idempotent.
    pub fn attach(
        &mut self,
        ifname: &str,
        ifindex: u32,
        addr: Ipv4Addr,
    ) -> Result<Attached, DatapathError> {
        self.host
            .set(
                0,
                abi::HostConfig {
                    addr: u32::from(addr).to_be(),
                    ifindex,
                },
                0,
            )
            .map_err(map_err("write", HOST_PIN))?;
        let pin = self.link_pin(ifname);
        let outcome = tcx::attach(
            &mut self.from_underlay,
            "from_underlay",
            ifname,
            TcAttachType::Ingress,
            &pin,
        )?;
        tracing::debug!(ifname, %addr, ?outcome, "underlay attached");
        Ok(outcome)
    }

    /// The node address external flows are SNATed to (None: not set yet).
    pub fn address(&self) -> Result<Option<Ipv4Addr>, DatapathError> {
        let v = self.host.get(&0, 0).map_err(map_err("read", HOST_PIN))?;
        Ok((v.addr != 0).then(|| Ipv4Addr::from(u32::from_be(v.addr))))
    }

    /// The underlay interface's ifindex (None: not attached yet).
    pub fn ifindex(&self) -> Result<Option<u32>, DatapathError> {
        let v = self.host.get(&0, 0).map_err(map_err("read", HOST_PIN))?;
        Ok((v.ifindex != 0).then_some(v.ifindex))
    }
}
