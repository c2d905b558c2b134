//! [`Plan`]: the names and addresses of one local cluster, all derived from
//! its per-run prefix — the namespaces, the veth links to the underlay
//! bridge, the control-plane machines, the node names and their underlay
//! addresses. Pure, so the rules
//! (a link name fits the kernel's 15 characters, an address fits the /24)
//! are checked once here, and a cluster's leftovers can be found again from
//! the prefix alone ([`made_under`]).

use std::net::Ipv4Addr;

/// The underlay network the nodes and the control plane share (a /24).
pub const UNDERLAY: [u8; 3] = [192, 168, 77];

/// The longest interface name the kernel takes (`IFNAMSIZ` - 1).
pub const MAX_LINK_NAME: usize = 15;

/// The underlay address of the first node (`.10`); node `i` has `.10 + i`.
const FIRST_NODE_HOST: usize = 10;

/// The underlay address of the first control-plane machine (`.1`); machine
/// `i` has `.1 + i`, below the nodes' `.10`.
const FIRST_CONTROL_PLANE_HOST: usize = 1;

/// How many control-plane machines fit below the nodes' addresses.
pub const MAX_CONTROL_PLANES: usize = FIRST_NODE_HOST - FIRST_CONTROL_PLANE_HOST;

/// Why a plan cannot hold a node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The node's underlay link name would be longer than the kernel takes.
    #[error("node {index} of cluster {prefix}: link name {link:?} is longer than 15 characters")]
    LinkName {
        /// The cluster's prefix.
        prefix: String,
        /// The node's index.
        index: usize,
        /// The name that does not fit.
        link: String,
    },
    /// The node's address would fall outside the underlay /24.
    #[error("node {index} of cluster {prefix}: no underlay address left in 192.168.77.0/24")]
    Address {
        /// The cluster's prefix.
        prefix: String,
        /// The node's index.
        index: usize,
    },
    /// More control-plane machines than addresses below the nodes'.
    #[error(
        "control plane {index} of cluster {prefix}: at most {MAX_CONTROL_PLANES} control-plane machines (192.168.77.1-9)"
    )]
    ControlPlane {
        /// The cluster's prefix.
        prefix: String,
        /// The machine's index.
        index: usize,
    },
}

/// The names and addresses of the cluster whose names start with `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    prefix: String,
}

/// Node `index` of a [`Plan`]: its name (also its namespace, containerd
/// namespace, bpffs directory and cgroup `jotasu/<name>`), its uplink and
/// its underlay address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    /// The node's name.
    pub name: String,
    /// The veth end inside the node's namespace (its peer is `<uplink>b`,
    /// on the bridge).
    pub uplink: String,
    /// Its underlay address.
    pub ip: Ipv4Addr,
}

impl Plan {
    /// The plan of the cluster named by `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix every name starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The underlay namespace (it holds the bridge `br0`).
    pub fn underlay_netns(&self) -> String {
        format!("{}u", self.prefix)
    }

    /// The first control plane's namespace.
    pub fn control_plane_netns(&self) -> String {
        self.first_control_plane().name
    }

    /// The first control plane's uplink.
    pub fn control_plane_link(&self) -> String {
        self.first_control_plane().uplink
    }

    /// The first control plane's underlay address (`.1`).
    pub fn control_plane_ip(&self) -> Ipv4Addr {
        self.first_control_plane().ip
    }

    fn first_control_plane(&self) -> NodePlan {
        let [a, b, c] = UNDERLAY;
        NodePlan {
            name: format!("{}c0", self.prefix),
            uplink: format!("{}c0", self.prefix),
            ip: Ipv4Addr::new(a, b, c, 1),
        }
    }

    /// Control-plane machine `index`: its name is also its namespace and
    /// its uplink (`<prefix>c<index>`, the bridge end `<prefix>c<index>b`),
    /// its address `.1 + index`. It runs a control plane and, in a cluster
    /// on etcd, an etcd member.
    pub fn control_plane(&self, index: usize) -> Result<NodePlan, PlanError> {
        if index >= MAX_CONTROL_PLANES {
            return Err(PlanError::ControlPlane {
                prefix: self.prefix.clone(),
                index,
            });
        }
        let name = format!("{}c{index}", self.prefix);
        if name.len() + 1 > MAX_LINK_NAME {
            return Err(PlanError::LinkName {
                prefix: self.prefix.clone(),
                index,
                link: format!("{name}b"),
            });
        }
        let [a, b, c] = UNDERLAY;
        let host = u8::try_from(FIRST_CONTROL_PLANE_HOST + index).unwrap_or(u8::MAX);
        Ok(NodePlan {
            uplink: name.clone(),
            name,
            ip: Ipv4Addr::new(a, b, c, host),
        })
    }

    /// Node `index`.
    pub fn node(&self, index: usize) -> Result<NodePlan, PlanError> {
        let uplink = format!("{}v{index}", self.prefix);
        // The bridge end is `<uplink>b`: that one must fit.
        if uplink.len() + 1 > MAX_LINK_NAME {
            return Err(PlanError::LinkName {
                prefix: self.prefix.clone(),
                index,
                link: format!("{uplink}b"),
            });
        }
        let host = u8::try_from(FIRST_NODE_HOST + index)
            .ok()
            .filter(|h| *h < 255)
            .ok_or_else(|| PlanError::Address {
                prefix: self.prefix.clone(),
                index,
            })?;
        let [a, b, c] = UNDERLAY;
        Ok(NodePlan {
            name: format!("{}n{index}", self.prefix),
            uplink,
            ip: Ipv4Addr::new(a, b, c, host),
        })
    }

    /// Host `index` outside the cluster, on its underlay (a client of node
    /// ports and external IPs): its namespace and uplink are
    /// `<prefix>x<index>`, its address `.200 + index`.
    pub fn external_host(&self, index: usize) -> Result<NodePlan, PlanError> {
        let name = format!("{}x{index}", self.prefix);
        if name.len() + 1 > MAX_LINK_NAME {
            return Err(PlanError::LinkName {
                prefix: self.prefix.clone(),
                index,
                link: format!("{name}b"),
            });
        }
        let host = u8::try_from(200 + index)
            .ok()
            .filter(|h| *h < 255)
            .ok_or_else(|| PlanError::Address {
                prefix: self.prefix.clone(),
                index,
            })?;
        let [a, b, c] = UNDERLAY;
        Ok(NodePlan {
            uplink: name.clone(),
            name,
            ip: Ipv4Addr::new(a, b, c, host),
        })
    }

    /// Whether `name` (a namespace, node, link, directory…) belongs to this
    /// cluster.
    pub fn owns(&self, name: &str) -> bool {
        made_under(&self.prefix, name)
    }
}

/// Whether `name` was made under `prefix`: the prefix itself, or the prefix
/// followed by something that does not continue its number (`jt7x1n0` is
/// made under `jt7x1`, `jt7x12n0` is not).
pub fn made_under(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix)
        .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        let p = Plan::new("jt42x0");
        assert_eq!(p.underlay_netns(), "jt42x0u");
        assert_eq!(p.control_plane_netns(), "jt42x0c0");
        assert_eq!(p.control_plane_link(), "jt42x0c0");
        assert_eq!(p.control_plane_ip(), Ipv4Addr::new(192, 168, 77, 1));
        assert_eq!(p.control_plane(0).expect("machine 0").name, "jt42x0c0");
        let m = p.control_plane(2).expect("machine 2");
        assert_eq!(
            (m.name.as_str(), m.uplink.as_str()),
            ("jt42x0c2", "jt42x0c2")
        );
        assert_eq!(m.ip, Ipv4Addr::new(192, 168, 77, 3));
        let n = p.node(2).expect("node 2");
        assert_eq!(n.name, "jt42x0n2");
        assert_eq!(n.uplink, "jt42x0v2");
        assert_eq!(n.ip, Ipv4Addr::new(192, 168, 77, 12));
    }

    #[test]
    fn every_name_fits_the_kernel() {
        // The longest prefix `names::fresh_prefix` makes: 11 characters.
        let p = Plan::new("jt999999x99");
        for i in 0..100 {
            let n = p.node(i).expect("fits");
            assert!(n.uplink.len() < MAX_LINK_NAME, "{}", n.uplink);
        }
        assert!(p.control_plane_link().len() < MAX_LINK_NAME);
        for i in 0..MAX_CONTROL_PLANES {
            let m = p.control_plane(i).expect("fits");
            assert!(m.uplink.len() < MAX_LINK_NAME, "{}", m.uplink);
        }
        assert!(matches!(p.node(100), Err(PlanError::LinkName { .. })));
    }

    #[test]
    fn control_planes_stay_below_the_nodes() {
        let p = Plan::new("jt1x0");
        let last = p.control_plane(MAX_CONTROL_PLANES - 1).expect("last");
        assert!(last.ip < p.node(0).expect("node 0").ip);
        let e = p.control_plane(MAX_CONTROL_PLANES).expect_err("no room");
        assert!(e.to_string().contains("at most 9"), "{e}");
    }

    #[test]
    fn addresses_stay_in_the_underlay() {
        let p = Plan::new("a");
        assert_eq!(
            p.node(244).expect("last").ip,
            Ipv4Addr::new(192, 168, 77, 254)
        );
        let e = p.node(245).expect_err("no .255");
        assert!(e.to_string().contains("no underlay address"), "{e}");
    }

    #[test]
    fn ownership_follows_the_prefix() {
        let p = Plan::new("jt7x1");
        for mine in ["jt7x1", "jt7x1u", "jt7x1n0", "jt7x1n0-abc", "jt7x1-scratch"] {
            assert!(p.owns(mine), "{mine}");
        }
        for theirs in ["jt7x12", "jt7x12n0", "jt7x", "jt8x1n0", "xjt7x1"] {
            assert!(!p.owns(theirs), "{theirs}");
        }
    }
}
