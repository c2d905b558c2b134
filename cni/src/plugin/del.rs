//! DEL: idempotent — a missing namespace, veth, endpoint or address is
//! success. Everything is found from the attachment alone (the host veth's
//! name is derived from it), so DEL works without a cached result too.
use std::net::Ipv4Addr;

use super::{Ctx, config::host_ifname, datapath_err, netlink::Netlink};
use crate::spec::CniError;

/// Runs DEL.
pub fn del(ctx: &Ctx<'_>) -> Result<(), CniError> {
    let pool = ctx.pool()?;
    let mut ips: Vec<Ipv4Addr> = ctx
        .conf
        .prev_result()
        .ok()
        .flatten()
        .and_then(|r| r.ipv4())
        .into_iter()
        .collect();
    ips.extend(pool.recorded(ctx.inv)?);
    teardown(ctx, &ips)?;
    pool.release(ctx.inv, ctx.stdin)?;
    Ok(())
}

/// Removes the attachment's endpoint entries (those for `ips`, and any
/// pointing at its veth), the veth (its pod end goes with it) and the
/// attachment of `from_pod`.
pub fn teardown(ctx: &Ctx<'_>, ips: &[Ipv4Addr]) -> Result<(), CniError> {
    let host = host_ifname(&ctx.inv.container_id, &ctx.inv.ifname);
    let node_nl = Netlink::node()?;
    let index = node_nl.link(&host)?.map(|l| l.index);
    let mut dp = ctx.datapath()?;
    let mut stale: Vec<Ipv4Addr> = ips.to_vec();
    if let Some(index) = index {
        let eps = dp.endpoints().map_err(datapath_err(&host))?;
        stale.extend(
            eps.iter()
                .filter(|(_, ep)| ep.ifindex == index)
                .map(|(ip, _)| *ip),
        );
    }
    for ip in stale {
        dp.remove_endpoint(ip).map_err(datapath_err(&host))?;
    }
    // The interface first: its tc filter goes with it, and a TCX link is
    // cheap to unpin once its interface is gone.
    node_nl.delete_link(&host)?;
    dp.detach_pod_interface(&host)
        .map_err(datapath_err(&host))?;
    Ok(())
}
