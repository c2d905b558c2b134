//! CHECK: the attachment is still as ADD left it. Every difference found is
//! reported in one error (code 103), so an operator sees all of them at once.

use super::{
    Ctx,
    config::{GATEWAY, host_ifname},
    datapath_err,
    netlink::{Netlink, fmt_mac},
};
use crate::spec::{CniError, Code};

/// Runs CHECK.
pub fn check(ctx: &Ctx<'_>) -> Result<(), CniError> {
    let inv = ctx.inv;
    let prev = ctx.conf.prev_result()?.ok_or_else(|| {
        CniError::new(
            Code::InvalidConfig,
            "CHECK needs prevResult (the result of ADD)",
        )
    })?;
    let ip = prev.ipv4().ok_or_else(|| {
        CniError::new(
            Code::InvalidConfig,
            "prevResult has no IPv4 address to check",
        )
    })?;
    let netns = ctx.netns()?;
    let pod_nl = Netlink::in_netns(netns)?;
    let host = host_ifname(&inv.container_id, &inv.ifname);
    let mut wrong: Vec<String> = Vec::new();

    let pod = pod_nl.link(&inv.ifname)?;
    match &pod {
        None => wrong.push(format!("{} is missing in {}", inv.ifname, netns.display())),
        Some(l) => {
            if !l.up {
                wrong.push(format!("{} is down", inv.ifname));
            }
            if !pod_nl.addresses(l.index)?.contains(&(ip, 32)) {
                wrong.push(format!("{} lacks {ip}/32", inv.ifname));
            }
            let routes = pod_nl.routes(l.index)?;
            if !routes
                .iter()
                .any(|r| r.prefix == 0 && r.gateway == Some(GATEWAY))
            {
                wrong.push(format!("no default route via {GATEWAY} on {}", inv.ifname));
            }
            let expected = prev
                .interfaces
                .iter()
                .find(|i| i.name == inv.ifname && !i.sandbox.is_empty());
            if let Some(e) = expected
                && !e.mac.is_empty()
                && e.mac != fmt_mac(&l.mac)
            {
                wrong.push(format!(
                    "{} has MAC {} (ADD gave {})",
                    inv.ifname,
                    fmt_mac(&l.mac),
                    e.mac
                ));
            }
        }
    }

    let node_nl = Netlink::node()?;
    let host_link = node_nl.link(&host)?;
    let dp = ctx.datapath()?;
    match &host_link {
        None => wrong.push(format!("host veth {host} is missing")),
        Some(h) => {
            if !h.up {
                wrong.push(format!("host veth {host} is down"));
            }
            if !node_nl
                .routes(h.index)?
                .iter()
                .any(|r| r.dst == ip && r.prefix == 32)
            {
                wrong.push(format!("the node has no route to {ip} via {host}"));
            }
            match dp.pod_interface_hook(&host).map_err(datapath_err(&host))? {
                None => wrong.push(format!("from_pod is not attached to {host}")),
                Some(h) if h != ctx.cfg.tc_hook => wrong.push(format!(
                    "from_pod runs on {host} as a {h} attachment, not {} as configured",
                    ctx.cfg.tc_hook
                )),
                Some(_) => {}
            }
        }
    }
    let endpoint = dp
        .endpoints()
        .map_err(datapath_err(&host))?
        .into_iter()
        .find(|(e, _)| *e == ip)
        .map(|(_, ep)| ep);
    match (endpoint, &host_link, &pod) {
        (None, _, _) => wrong.push(format!("{ip} is not in the node's endpoint map")),
        (Some(ep), Some(h), Some(p))
            if ep.ifindex != h.index || ep.pod_mac != p.mac || ep.host_mac != h.mac =>
        {
            wrong.push(format!(
                "the endpoint entry of {ip} does not match {host} and {}",
                inv.ifname
            ));
        }
        _ => {}
    }
    let pool = ctx.pool()?;
    match pool.recorded(inv)? {
        Some(recorded) if recorded != ip => wrong.push(format!(
            "IPAM records {recorded} for this attachment, not {ip}"
        )),
        None if matches!(pool, super::pool::Pool::Builtin(_)) => {
            wrong.push(format!("IPAM has no allocation for this attachment ({ip})"));
        }
        _ => {}
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(CniError::new(
            Code::CheckFailed,
            format!(
                "attachment {}/{} is not as ADD left it: {}",
                inv.container_id,
                inv.ifname,
                wrong.join("; ")
            ),
        ))
    }
}
