//! ADD: a veth pair, the pod's address and routes, the tc program on the
//! host side and the pod in the node's endpoint map.
use std::net::Ipv4Addr;

use ipnetwork::{IpNetwork, Ipv4Network};
use jotasu_ebpf::Endpoint;

use super::{
    Ctx,
    config::{DEFAULT_ROUTE, GATEWAY, host_ifname},
    datapath_err,
    netlink::{Netlink, fmt_mac},
};
use crate::spec::{CniError, CniResult, Code, Interface, IpConfig, Route};

/// Runs ADD. On failure everything made so far is undone (the address too)
/// before the error is returned, so a failed ADD leaves nothing behind.
pub fn add(ctx: &Ctx<'_>) -> Result<CniResult, CniError> {
    let netns = ctx.netns()?;
    // Fail on a missing namespace (code 3) before taking an address.
    let pod_nl = Netlink::in_netns(netns)?;
    let pool = ctx.pool()?;
    let ip = pool.assign(ctx.inv, ctx.stdin)?;
    match wire(ctx, &pod_nl, ip) {
        Ok(r) => Ok(r),
        Err(e) => {
            tracing::warn!(container = %ctx.inv.container_id, error = %e, "ADD failed; undoing it");
            if let Err(undo) = super::del::teardown(ctx, &[ip]) {
                tracing::warn!(error = %undo, "undoing a failed ADD");
            }
            if let Err(undo) = pool.release(ctx.inv, ctx.stdin) {
                tracing::warn!(error = %undo, "releasing the address of a failed ADD");
            }
            Err(e)
        }
    }
}

fn wire(ctx: &Ctx<'_>, pod_nl: &Netlink, ip: Ipv4Addr) -> Result<CniResult, CniError> {
    let inv = ctx.inv;
    let netns = ctx.netns()?;
    let host = host_ifname(&inv.container_id, &inv.ifname);
    let node_nl = Netlink::node()?;
    // A retried ADD (the first one killed midway) starts afresh.
    node_nl.delete_link(&host)?;
    if pod_nl.link(&inv.ifname)?.is_some() {
        return Err(CniError::new(
            Code::Netlink,
            format!(
                "interface {} already exists in {}",
                inv.ifname,
                netns.display()
            ),
        ));
    }
    let mtu = ctx.cfg.mtu();
    node_nl.add_veth(&host, &inv.ifname, netns, mtu)?;
    let host_link = node_nl.link(&host)?.ok_or_else(|| {
        CniError::new(
            Code::Netlink,
            format!("veth {host} vanished after creation"),
        )
    })?;
    let pod_link = pod_nl.link(&inv.ifname)?.ok_or_else(|| {
        CniError::new(
            Code::Netlink,
            format!(
                "{} vanished from {} after creation",
                inv.ifname,
                netns.display()
            ),
        )
    })?;

    // The pod: its /32, up, the link-local gateway on-link and answered
    // statically with the host side's MAC, and the default route through it.
    if let Some(lo) = pod_nl.link("lo")? {
        pod_nl.set_up(lo.index)?;
    }
    pod_nl.add_address(pod_link.index, ip, 32)?;
    pod_nl.set_up(pod_link.index)?;
    pod_nl.add_route(pod_link.index, GATEWAY, 32, None)?;
    pod_nl.add_route(pod_link.index, Ipv4Addr::UNSPECIFIED, 0, Some(GATEWAY))?;
    pod_nl.add_neighbour(pod_link.index, GATEWAY, host_link.mac)?;

    // The node: the host side up, a /32 route and a static neighbour to the pod.
    node_nl.set_up(host_link.index)?;
    node_nl.add_route(host_link.index, ip, 32, None)?;
    node_nl.add_neighbour(host_link.index, ip, pod_link.mac)?;

    // The data plane: the pod in the endpoint map, then from_pod on the host
    // side. In this order from_pod never sees the pod before its entry,
    // which it needs to admit the pod's packets (it drops any other source).
    let mut dp = ctx.datapath()?;
    dp.upsert_endpoint(
        ip,
        Endpoint {
            ifindex: host_link.index,
            pod_mac: pod_link.mac,
            host_mac: host_link.mac,
        },
    )
    .map_err(datapath_err(&host))?;
    dp.attach_pod_interface(&host, ctx.cfg.tc_hook)
        .map_err(datapath_err(&host))?;

    Ok(CniResult {
        cni_version: String::new(),
        interfaces: vec![
            Interface {
                name: host,
                mac: fmt_mac(&host_link.mac),
                mtu: Some(mtu),
                sandbox: String::new(),
            },
            Interface {
                name: inv.ifname.clone(),
                mac: fmt_mac(&pod_link.mac),
                mtu: Some(mtu),
                sandbox: netns.display().to_string(),
            },
        ],
        ips: vec![IpConfig {
            address: IpNetwork::V4(Ipv4Network::from(ip)),
            gateway: Some(GATEWAY.into()),
            interface: Some(1),
        }],
        routes: vec![Route {
            dst: IpNetwork::V4(DEFAULT_ROUTE),
            gw: Some(GATEWAY.into()),
        }],
        dns: ctx.cfg.dns(&ctx.conf)?,
    })
}
