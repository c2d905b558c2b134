//! The node's underlay interface: the one that holds the node's address,
//! where `from_underlay` serves clients outside the cluster. Replies to
//! those clients leave through it after a FIB lookup, which the kernel only
//! answers for an interface that forwards IPv4 (Kubernetes nodes forward:
//! `net.ipv4.ip_forward=1`); the agent turns forwarding on for it alone.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt as _;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::LinkAttribute;

/// What failed while finding the underlay interface.
#[derive(Debug, thiserror::Error)]
pub enum UnderlayError {
    /// A netlink request failed.
    #[error("{action}: {source}")]
    Netlink {
        /// What was being done.
        action: String,
        /// The kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },
    /// No interface holds the address.
    #[error(
        "no interface of the node's network namespace holds the node address {0}; check --node-ip"
    )]
    NotFound(Ipv4Addr),
    /// Opening the netlink socket failed.
    #[error("opening rtnetlink: {0}")]
    Connect(#[source] std::io::Error),
}

/// The name and index of the interface holding `addr`, in the calling
/// thread's network namespace.
pub async fn interface_of(addr: Ipv4Addr) -> Result<(String, u32), UnderlayError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(UnderlayError::Connect)?;
    let task = tokio::spawn(conn);
    let result = async {
        let addrs: Vec<_> = handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|source| UnderlayError::Netlink {
                action: "listing addresses".into(),
                source,
            })?;
        let index = addrs
            .iter()
            .find(|m| {
                m.attributes
                    .iter()
                    .any(|a| matches!(a, AddressAttribute::Address(IpAddr::V4(ip)) if *ip == addr))
            })
            .map(|m| m.header.index)
            .ok_or(UnderlayError::NotFound(addr))?;
        let link = handle
            .link()
            .get()
            .match_index(index)
            .execute()
            .try_next()
            .await
            .map_err(|source| UnderlayError::Netlink {
                action: format!("reading link {index}"),
                source,
            })?
            .ok_or(UnderlayError::NotFound(addr))?;
        let name = link
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            })
            .ok_or(UnderlayError::NotFound(addr))?;
        Ok((name, index))
    }
    .await;
    task.abort();
    result
}

/// Turns IPv4 forwarding on for interface `ifname` of the calling process's
/// network namespace (`net.ipv4.conf.<ifname>.forwarding`).
pub fn enable_forwarding(ifname: &str) -> std::io::Result<()> {
    if ifname.is_empty() || ifname.contains(['/', '.']) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{ifname:?} is not an interface name"),
        ));
    }
    let path = format!("/proc/sys/net/ipv4/conf/{ifname}/forwarding");
    if std::fs::read_to_string(&path)?.trim() == "1" {
        return Ok(());
    }
    std::fs::write(&path, "1")
}
