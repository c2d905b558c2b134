//! GC and STATUS (CNI 1.1).
//!
//! GC releases whatever belongs to no attachment in
//! `cni.dev/valid-attachments`: addresses of the built-in allocator, host
//! veths named `jtc…`, pinned links and endpoint entries left by them.
use std::collections::HashSet;

use serde::Deserialize;

use super::{
    Ctx,
    add::datapath_err,
    config::{HOST_IF_PREFIX, host_ifname},
    netlink::Netlink,
    pool::Pool,
};
use crate::spec::{CniError, Code};

#[derive(Deserialize)]
struct ValidAttachment {
    #[serde(rename = "containerID")]
    container_id: String,
    ifname: String,
}

/// Runs GC.
pub fn gc(ctx: &Ctx<'_>) -> Result<(), CniError> {
    let valid: Vec<ValidAttachment> = match ctx.conf.raw.get("cni.dev/valid-attachments") {
        None => Vec::new(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            CniError::new(
                Code::InvalidConfig,
                format!("cni.dev/valid-attachments is invalid: {e}"),
            )
        })?,
    };
    let keep: HashSet<String> = valid
        .iter()
        .map(|a| host_ifname(&a.container_id, &a.ifname))
        .collect();
    let pairs: Vec<(String, String)> = valid
        .into_iter()
        .map(|a| (a.container_id, a.ifname))
        .collect();

    let node_nl = Netlink::node()?;
    let mut dp = ctx.datapath()?;
    let links = node_nl.links_with_prefix(HOST_IF_PREFIX)?;
    let mut gone_indexes = HashSet::new();
    for l in links.iter().filter(|l| !keep.contains(&l.name)) {
        tracing::info!(link = %l.name, "GC: deleting a veth of no valid attachment");
        node_nl.delete_link(&l.name)?;
        gone_indexes.insert(l.index);
    }
    let live: HashSet<u32> = links
        .iter()
        .filter(|l| keep.contains(&l.name))
        .map(|l| l.index)
        .collect();
    for ifname in dp.pod_interfaces().map_err(datapath_err("(all)"))? {
        if ifname.starts_with(HOST_IF_PREFIX) && !keep.contains(&ifname) {
            dp.detach_pod_interface(&ifname)
                .map_err(datapath_err(&ifname))?;
        }
    }
    for (ip, ep) in dp.endpoints().map_err(datapath_err("(all)"))? {
        let dead = gone_indexes.contains(&ep.ifindex)
            || (!live.contains(&ep.ifindex) && !index_exists(&node_nl, ep.ifindex, &links));
        if dead {
            tracing::info!(%ip, "GC: removing an endpoint of no valid attachment");
            dp.remove_endpoint(ip).map_err(datapath_err("(all)"))?;
        }
    }
    if let Pool::Builtin(a) = ctx.pool()? {
        for r in a.gc(&pairs)? {
            tracing::info!(ip = %r.ip, container = %r.container_id, "GC: released an address");
        }
    }
    Ok(())
}

/// Whether some link (of any name) still has `index`: an endpoint entry
/// pointing at a non-jotasu interface is not this plugin's to remove.
fn index_exists(nl: &Netlink, index: u32, jotasu_links: &[super::netlink::Link]) -> bool {
    if jotasu_links.iter().any(|l| l.index == index) {
        return true;
    }
    nl.links_with_prefix("")
        .is_ok_and(|all| all.iter().any(|l| l.index == index))
}

/// Runs STATUS: available when the data plane opens and, with the
/// built-in allocator, an address is free.
pub fn status(ctx: &Ctx<'_>) -> Result<(), CniError> {
    let unavailable = |msg: String, details: String| {
        Err(CniError::new(Code::NotAvailable, msg).with_details(details))
    };
    if let Err(e) = jotasu_ebpf::Datapath::open_in(&ctx.cfg.bpffs, &ctx.cfg.node) {
        return unavailable(
            format!("the data plane of node {:?} cannot be opened", ctx.cfg.node),
            super::add::error_chain(&e),
        );
    }
    if let Pool::Builtin(a) = ctx.pool()?
        && a.free()? == 0
    {
        return unavailable(
            format!("network {:?} has no free address", ctx.conf.name),
            String::new(),
        );
    }
    Ok(())
}
