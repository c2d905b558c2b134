//! GC and STATUS (CNI 1.1).
//!
//! GC releases whatever belongs to no attachment in
//! `cni.dev/valid-attachments`: addresses of the built-in allocator, host
//! veths named `jtc…`, pinned TCX links and endpoint entries left by them.
use std::collections::HashSet;

use serde::Deserialize;

use super::{
    Ctx,
    config::{HOST_IF_PREFIX, host_ifname},
    datapath_err,
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
    // Every interface that exists once the stale veths are gone: an endpoint
    // entry pointing at none of them is stale too (one pointing at a link
    // that is not jotasu's is left alone).
    let mut existing = HashSet::new();
    for l in node_nl.links()? {
        if l.name.starts_with(HOST_IF_PREFIX) && !keep.contains(&l.name) {
            tracing::info!(link = %l.name, "GC: deleting a veth of no valid attachment");
            node_nl.delete_link(&l.name)?;
        } else {
            existing.insert(l.index);
        }
    }
    for ifname in dp.tcx_pod_interfaces().map_err(datapath_err("(all)"))? {
        if ifname.starts_with(HOST_IF_PREFIX) && !keep.contains(&ifname) {
            dp.detach_pod_interface(&ifname)
                .map_err(datapath_err(&ifname))?;
        }
    }
    for (ip, ep) in dp.endpoints().map_err(datapath_err("(all)"))? {
        if !existing.contains(&ep.ifindex) {
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

/// Runs STATUS: available when the data plane opens and, with the
/// built-in allocator, an address is free.
pub fn status(ctx: &Ctx<'_>) -> Result<(), CniError> {
    if let Err(e) = ctx.datapath() {
        return Err(CniError {
            code: Code::NotAvailable,
            ..e
        });
    }
    if let Pool::Builtin(a) = ctx.pool()?
        && a.free()? == 0
    {
        return Err(CniError::new(
            Code::NotAvailable,
            format!("network {:?} has no free address", ctx.conf.name),
        ));
    }
    Ok(())
}
