//! The kernel side of a pod's interface, over rtnetlink: the veth pair, the
//! pod's address, routes and gateway neighbour, and the node's route and
//! neighbour back to the pod. One [`Netlink`] talks to the node namespace
//! (the plugin's own); [`Netlink::in_netns`] gives one for a pod's.
use std::{
    fs::File,
    net::{IpAddr, Ipv4Addr},
    os::fd::AsRawFd as _,
    path::Path,
};

use futures::TryStreamExt as _;
use rtnetlink::{
    Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
    packet_route::{
        address::AddressAttribute,
        link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkMessage},
        neighbour::NeighbourState,
        route::{RouteAddress, RouteAttribute, RouteScope},
    },
};

use crate::spec::{CniError, Code};

/// A link as the plugin needs to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Its name.
    pub name: String,
    /// Its ifindex in its namespace.
    pub index: u32,
    /// Its MAC.
    pub mac: [u8; 6],
    /// Its MTU.
    pub mtu: u32,
    /// Whether it is administratively up.
    pub up: bool,
}

/// An IPv4 route's destination and gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route4 {
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Destination prefix length.
    pub prefix: u8,
    /// Gateway, if any.
    pub gateway: Option<Ipv4Addr>,
}

/// An rtnetlink connection to one network namespace.
#[derive(Debug)]
pub struct Netlink {
    rt: tokio::runtime::Runtime,
    handle: Handle,
}

fn nl_err(what: String) -> impl FnOnce(rtnetlink::Error) -> CniError {
    move |e| CniError::new(Code::Netlink, what).with_details(e)
}

fn is_errno(e: &rtnetlink::Error, errno: i32) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -errno)
}

impl Netlink {
    /// A connection to the calling thread's namespace (the node's).
    pub fn node() -> Result<Self, CniError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CniError::new(Code::Io, "starting the netlink runtime").with_details(e))?;
        let handle = {
            let _guard = rt.enter();
            let (conn, handle, _) = rtnetlink::new_connection()
                .map_err(|e| CniError::new(Code::Netlink, "opening rtnetlink").with_details(e))?;
            rt.spawn(conn);
            handle
        };
        Ok(Self { rt, handle })
    }

    /// A connection to the namespace at `netns` (a `/run/netns/NAME` or
    /// `/proc/PID/ns/net` path). The socket is made on a thread that entered
    /// the namespace, so the calling thread never changes namespace.
    /// A missing namespace is error 3 (container unknown).
    pub fn in_netns(netns: &Path) -> Result<Self, CniError> {
        let file = open_netns(netns)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CniError::new(Code::Io, "starting the netlink runtime").with_details(e))?;
        let rt_handle = rt.handle().clone();
        let made = std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
                    CniError::new(
                        Code::UnknownContainer,
                        format!("entering network namespace {}", netns.display()),
                    )
                    .with_details(e)
                })?;
                let _guard = rt_handle.enter();
                rtnetlink::new_connection().map_err(|e| {
                    CniError::new(Code::Netlink, "opening rtnetlink in the container")
                        .with_details(e)
                })
            })
            .join()
            .map_err(|_| CniError::new(Code::Netlink, "the netlink thread panicked"))?
        })?;
        let (conn, handle, _) = made;
        rt.spawn(conn);
        Ok(Self { rt, handle })
    }

    /// The link called `name`, if it exists.
    pub fn link(&self, name: &str) -> Result<Option<Link>, CniError> {
        let h = self.handle.clone();
        let res = self.rt.block_on(async move {
            h.link()
                .get()
                .match_name(name.to_owned())
                .execute()
                .try_next()
                .await
        });
        match res {
            Ok(Some(m)) => Ok(Some(link_of(&m))),
            Ok(None) => Ok(None),
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
            Err(e) => Err(nl_err(format!("reading link {name}"))(e)),
        }
    }

    /// Every link of the namespace.
    pub fn links(&self) -> Result<Vec<Link>, CniError> {
        let h = self.handle.clone();
        let all: Vec<LinkMessage> = self
            .rt
            .block_on(async move { h.link().get().execute().try_collect().await })
            .map_err(nl_err("listing links".into()))?;
        Ok(all.iter().map(link_of).collect())
    }

    /// Creates veth `host` here with its peer created directly in `peer_ns`
    /// as `peer` (it never appears in this namespace), both with `mtu`.
    pub fn add_veth(
        &self,
        host: &str,
        peer: &str,
        peer_ns: &Path,
        mtu: u32,
    ) -> Result<(), CniError> {
        let ns = open_netns(peer_ns)?;
        let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_owned())
            .mtu(mtu)
            .setns_by_fd(ns.as_raw_fd())
            .build();
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(host.to_owned())
            .mtu(mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        let h = self.handle.clone();
        self.rt
            .block_on(async move { h.link().add(msg).execute().await })
            .map_err(nl_err(format!(
                "creating veth {host} with peer {peer} in {}",
                peer_ns.display()
            )))
    }

    /// Deletes link `name`. Returns whether it existed.
    pub fn delete_link(&self, name: &str) -> Result<bool, CniError> {
        let Some(link) = self.link(name)? else {
            return Ok(false);
        };
        let h = self.handle.clone();
        match self
            .rt
            .block_on(async move { h.link().del(link.index).execute().await })
        {
            Ok(()) => Ok(true),
            Err(e) if is_errno(&e, libc::ENODEV) => Ok(false),
            Err(e) => Err(nl_err(format!("deleting link {name}"))(e)),
        }
    }

    /// Sets link `index` up.
    pub fn set_up(&self, index: u32) -> Result<(), CniError> {
        let h = self.handle.clone();
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.rt
            .block_on(async move { h.link().set(msg).execute().await })
            .map_err(nl_err(format!("setting link {index} up")))
    }

    /// Adds `ip/prefix` to link `index`.
    pub fn add_address(&self, index: u32, ip: Ipv4Addr, prefix: u8) -> Result<(), CniError> {
        let h = self.handle.clone();
        self.rt
            .block_on(async move {
                h.address()
                    .add(index, IpAddr::V4(ip), prefix)
                    .execute()
                    .await
            })
            .map_err(nl_err(format!("adding {ip}/{prefix} to link {index}")))
    }

    /// The IPv4 addresses on link `index`, with prefix lengths.
    pub fn addresses(&self, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, CniError> {
        let h = self.handle.clone();
        let msgs: Vec<_> = self
            .rt
            .block_on(async move {
                h.address()
                    .get()
                    .set_link_index_filter(index)
                    .execute()
                    .try_collect()
                    .await
            })
            .map_err(nl_err(format!("listing addresses of link {index}")))?;
        Ok(msgs
            .iter()
            .flat_map(|m| {
                m.attributes.iter().filter_map(move |a| match a {
                    AddressAttribute::Address(IpAddr::V4(ip)) => Some((*ip, m.header.prefix_len)),
                    _ => None,
                })
            })
            .collect())
    }

    /// Adds a route to `dst/prefix` out of link `index`, through `gateway`
    /// or, without one, on-link (scope link).
    pub fn add_route(
        &self,
        index: u32,
        dst: Ipv4Addr,
        prefix: u8,
        gateway: Option<Ipv4Addr>,
    ) -> Result<(), CniError> {
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dst, prefix)
            .output_interface(index);
        b = match gateway {
            Some(gw) => b.gateway(gw),
            None => b.scope(RouteScope::Link),
        };
        let msg = b.build();
        let h = self.handle.clone();
        self.rt
            .block_on(async move { h.route().add(msg).execute().await })
            .map_err(nl_err(format!(
                "adding route {dst}/{prefix} via {gateway:?} on link {index}"
            )))
    }

    /// The IPv4 routes of the main table out of link `index`.
    pub fn routes(&self, index: u32) -> Result<Vec<Route4>, CniError> {
        let h = self.handle.clone();
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let msgs: Vec<_> = self
            .rt
            .block_on(async move { h.route().get(query).execute().try_collect().await })
            .map_err(nl_err("listing routes".into()))?;
        Ok(msgs
            .iter()
            .filter(|m| {
                m.attributes
                    .iter()
                    .any(|a| matches!(a, RouteAttribute::Oif(i) if *i == index))
            })
            .map(|m| {
                let addr = |want_dst: bool| {
                    m.attributes.iter().find_map(|a| match (a, want_dst) {
                        (RouteAttribute::Destination(RouteAddress::Inet(ip)), true)
                        | (RouteAttribute::Gateway(RouteAddress::Inet(ip)), false) => Some(*ip),
                        _ => None,
                    })
                };
                Route4 {
                    dst: addr(true).unwrap_or(Ipv4Addr::UNSPECIFIED),
                    prefix: m.header.destination_prefix_length,
                    gateway: addr(false),
                }
            })
            .collect())
    }

    /// A permanent neighbour entry `ip` → `mac` on link `index`.
    pub fn add_neighbour(&self, index: u32, ip: Ipv4Addr, mac: [u8; 6]) -> Result<(), CniError> {
        let h = self.handle.clone();
        self.rt
            .block_on(async move {
                h.neighbours()
                    .add(index, IpAddr::V4(ip))
                    .link_layer_address(&mac)
                    .state(NeighbourState::Permanent)
                    .replace()
                    .execute()
                    .await
            })
            .map_err(nl_err(format!("adding neighbour {ip} on link {index}")))
    }
}

fn open_netns(netns: &Path) -> Result<File, CniError> {
    File::open(netns).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            Code::UnknownContainer
        } else {
            Code::Io
        };
        CniError::new(
            code,
            format!("network namespace {} cannot be opened", netns.display()),
        )
        .with_details(e)
    })
}

fn link_of(m: &LinkMessage) -> Link {
    let mut l = Link {
        name: String::new(),
        index: m.header.index,
        mac: [0; 6],
        mtu: 0,
        up: m.header.flags.contains(LinkFlags::Up),
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name.clone_from(n),
            LinkAttribute::Address(a) if a.len() == 6 => l.mac.copy_from_slice(a),
            LinkAttribute::Mtu(m) => l.mtu = *m,
            _ => {}
        }
    }
    l
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
