//! The node's VXLAN device, over rtnetlink: one device in external
//! (collect_md) mode, so the tc programs choose each packet's remote node
//! through its tunnel key instead of the device's forwarding table.
//!
//! Made once at start-up and kept across agent restarts; a device of that
//! name made another way (not external, another port) is replaced.

use futures::TryStreamExt as _;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkUnspec, LinkVxlan};

/// How the node's VXLAN device is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    /// The device's name.
    pub name: String,
    /// The UDP port VXLAN uses on the underlay.
    pub port: u16,
    /// The device's MTU (the underlay's minus 50 bytes of encapsulation).
    pub mtu: u32,
}

/// What failed while setting the device up.
#[derive(Debug, thiserror::Error)]
pub enum VxlanError {
    /// A netlink request failed.
    #[error("{action} VXLAN device {name}: {source}; is the vxlan kernel module available?")]
    Netlink {
        /// What was being done.
        action: &'static str,
        /// The device.
        name: String,
        /// The kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },
    /// Opening a netlink socket failed.
    #[error("opening rtnetlink: {0}")]
    Connect(#[source] std::io::Error),
    /// The device vanished between creation and lookup.
    #[error("VXLAN device {0} is missing right after it was created")]
    Vanished(String),
}

/// Whether `m` is a VXLAN device in external mode on `port`.
fn is_wanted(m: &LinkMessage, port: u16) -> bool {
    let infos = m.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(i) => Some(i),
        _ => None,
    });
    let Some(infos) = infos else { return false };
    let is_vxlan = infos
        .iter()
        .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Vxlan)));
    let data = infos.iter().find_map(|i| match i {
        LinkInfo::Data(InfoData::Vxlan(d)) => Some(d),
        _ => None,
    });
    is_vxlan
        && data.is_some_and(|d| {
            d.contains(&InfoVxlan::CollectMetadata(true)) && d.contains(&InfoVxlan::Port(port))
        })
}

async fn find(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, VxlanError> {
    let found = handle
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_next()
        .await;
    match found {
        Ok(m) => Ok(m),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(source) => Err(VxlanError::Netlink {
            action: "reading",
            name: name.to_owned(),
            source,
        }),
    }
}

/// Makes sure the device exists as `spec` says and is up, in the calling
/// thread's network namespace. Returns its ifindex.
pub async fn ensure(spec: &VxlanSpec) -> Result<u32, VxlanError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(VxlanError::Connect)?;
    let task = tokio::spawn(conn);
    let result = ensure_with(&handle, spec).await;
    task.abort();
    result
}

async fn ensure_with(handle: &Handle, spec: &VxlanSpec) -> Result<u32, VxlanError> {
    let err = |action| {
        let name = spec.name.clone();
        move |source| VxlanError::Netlink {
            action,
            name,
            source,
        }
    };
    if let Some(m) = find(handle, &spec.name).await? {
        if is_wanted(&m, spec.port) {
            let msg = LinkUnspec::new_with_index(m.header.index)
                .mtu(spec.mtu)
                .up()
                .build();
            handle
                .link()
                .set(msg)
                .execute()
                .await
                .map_err(err("setting up"))?;
            return Ok(m.header.index);
        }
        tracing::warn!(name = %spec.name, "replacing a device that is not an external-mode VXLAN device on the overlay port");
        handle
            .link()
            .del(m.header.index)
            .execute()
            .await
            .map_err(err("deleting"))?;
    }
    // External mode: no VNI, no remote, no learning; the tunnel key says all.
    let msg = LinkVxlan::new(&spec.name, 0)
        .collect_metadata(true)
        .learning(false)
        .port(spec.port)
        .mtu(spec.mtu)
        .up()
        .build();
    handle
        .link()
        .add(msg)
        .execute()
        .await
        .map_err(err("creating"))?;
    let m = find(handle, &spec.name)
        .await?
        .ok_or_else(|| VxlanError::Vanished(spec.name.clone()))?;
    Ok(m.header.index)
}
