//! Data-plane sync: the node's Services and Endpoints become the eBPF
//! data plane's services (`jotasu_ebpf::Service`: VIP, port, protocol →
//! backends), programmed by diff whenever the view's services change. The
//! socket programs are attached to the node's cgroup subtree once.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use jotasu_api::kinds::service::ServiceType;
use jotasu_api::{Endpoints, Service};
use jotasu_ebpf::{Datapath, Frontend};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::external::{self, Host};
use crate::metrics::Metrics;
use crate::watch::{ClusterView, Key, SharedView};

/// The data plane, shared by the sync loop and the metrics scrape.
pub type SharedDatapath = Arc<Mutex<Datapath>>;

/// The services a Service and its Endpoints make: one per port on the
/// cluster IP, backends from every subset that carries a port of the same
/// name and protocol, ordered by address (so the round-robin order is
/// stable); with `host`, also the port's external frontends on this node
/// (node ports, external IPs; see [`crate::external`]). Headless services,
/// ExternalName ones (a DNS alias, no address) and those without a cluster
/// IP make none; SCTP is skipped.
pub fn services_of(
    svc: &Service,
    endpoints: Option<&Endpoints>,
    host: Option<&Host>,
) -> Vec<jotasu_ebpf::Service> {
    if svc.spec.type_() == ServiceType::ExternalName {
        return Vec::new();
    }
    let Some(vip) = svc
        .spec
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, port) in svc.spec.ports.iter().enumerate() {
        let (Some(proto), Ok(p)) = (external::protocol(port.protocol), u16::try_from(port.port))
        else {
            continue;
        };
        let with_nodes = external::backends_with_nodes(port.name.as_ref(), proto, endpoints);
        let backends: Vec<SocketAddrV4> = with_nodes.iter().map(|(b, _)| *b).collect();
        out.push(
            jotasu_ebpf::Service::new(
                Frontend {
                    vip,
                    port: p,
                    protocol: proto,
                },
                backends,
            )
            .with_reach(external::cluster_reach(svc)),
        );
        if let Some(host) = host {
            out.extend(external::services_of(svc, i, &with_nodes, host));
        }
    }
    out
}

/// The cluster DNS address and this node's resolver: the node answers
/// its own pods (no cross-node hop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalDns {
    /// The cluster DNS Service's address (10.96.0.10).
    pub vip: Ipv4Addr,
    /// This node's resolver.
    pub resolver: SocketAddrV4,
}

/// Everything the view asks the data plane to balance; the cluster DNS
/// address's port 53 (UDP and TCP) goes to this node's resolver alone.
/// With `host`, the node's external frontends too (a Service's frontend
/// wins over a pod's host port on the same address and port).
pub fn desired(
    view: &ClusterView,
    local_dns: Option<LocalDns>,
    host: Option<&Host>,
) -> Vec<jotasu_ebpf::Service> {
    let mut all: BTreeMap<Frontend, jotasu_ebpf::Service> = BTreeMap::new();
    if let Some(host) = host {
        for s in external::host_ports(view.pods.values(), host) {
            all.entry(s.frontend).or_insert(s);
        }
    }
    for (key, svc) in &view.services {
        let eps = view.endpoints.get::<Key>(key);
        for mut s in services_of(svc, eps, host) {
            if let Some(dns) = local_dns
                && s.frontend.vip == dns.vip
                && s.frontend.port == 53
            {
                s.backends = vec![dns.resolver];
            }
            all.insert(s.frontend, s);
        }
    }
    all.into_values().collect()
}

/// Opens (or sets up) the node's data plane, attaches the socket programs
/// to the node's cgroup (swapping in the programs this agent loaded when
/// they are attached already) and swaps them in on the running pods'
/// veths too, so that after an upgrade no hook runs the old version.
pub fn open(
    bpffs: &Path,
    node: &str,
    cgroup: &Path,
) -> Result<Datapath, jotasu_ebpf::DatapathError> {
    let mut dp = Datapath::open_in(bpffs, node)?;
    let attached = dp.attach_cgroup(cgroup)?;
    info!(%node, cgroup = %cgroup.display(), ?attached, "data plane open");
    // A pod whose veth cannot be swapped keeps the previous program, which
    // reads the same maps: worth a warning, not a failed start.
    match dp.pods_mut().replace_pod_programs() {
        Ok(ifs) => info!(pods = ifs.len(), "pod veths run this agent's programs"),
        Err(e) => {
            warn!(error = %e, "replacing the programs on pod veths failed; they keep the previous ones")
        }
    }
    Ok(dp)
}

/// Runs `pass` against the data plane at every bump of `changes`, until
/// `stop`, timing each pass as reconcile loop `name`. The first pass waits
/// for the first bump (the first list), so a restarted agent never clears
/// state that is still right; a failed pass is retried at the next change.
pub async fn reprogram_on_change(
    name: &'static str,
    datapath: SharedDatapath,
    view: SharedView,
    mut changes: watch::Receiver<u64>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
    mut pass: impl FnMut(&mut Datapath, &ClusterView) -> Result<(), jotasu_ebpf::DatapathError>,
) {
    loop {
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            () = crate::stopped(&mut stop) => return,
        }
        let started = Instant::now();
        let result = {
            let v = view.read().unwrap_or_else(PoisonError::into_inner);
            let mut dp = datapath.lock().unwrap_or_else(PoisonError::into_inner);
            pass(&mut dp, &v)
        };
        metrics.observe_reconcile(name, started.elapsed());
        if let Err(e) = result {
            warn!(loop_name = name, error = %e, "programming the data plane failed; retrying at the next change");
        }
    }
}

/// What a node adds to the Services' cluster IPs: its resolver behind the
/// cluster DNS address, and its external frontends.
#[derive(Debug, Clone, Default)]
pub struct NodeFrontends {
    /// The cluster DNS address answered by this node's resolver.
    pub local_dns: Option<LocalDns>,
    /// This node, for node ports, external IPs and host ports.
    pub host: Option<Host>,
}

/// Reprograms the services whenever the view's Services or Endpoints
/// change; after each pass that succeeds, `programmed` holds the revision
/// the programmed view covers (the heartbeat reports it, so a stopping pod
/// can wait until every node's data plane has seen it leave).
pub async fn sync_loop(
    datapath: SharedDatapath,
    view: SharedView,
    services: watch::Receiver<u64>,
    metrics: Arc<Metrics>,
    node: NodeFrontends,
    programmed: watch::Sender<Option<i64>>,
    stop: watch::Receiver<bool>,
) {
    let NodeFrontends { local_dns, host } = node;
    reprogram_on_change(
        "datapath",
        datapath,
        view,
        services,
        metrics,
        stop,
        |dp, v| {
            let s = dp.reconcile(&desired(v, local_dns, host.as_ref()))?;
            programmed.send_if_modified(|p| {
                let changed = *p != Some(v.revision);
                *p = Some(v.revision);
                changed
            });
            if s.added + s.updated + s.removed > 0 {
                debug!(
                    added = s.added,
                    updated = s.updated,
                    removed = s.removed,
                    "data plane programmed"
                );
            }
            Ok(())
        },
    )
    .await;
}

/// Whether `ip` is still a backend of any programmed service (a stopping
/// pod waits for this to turn false before its SIGTERM).
pub fn is_backend(datapath: &SharedDatapath, ip: Ipv4Addr) -> bool {
    let dp = datapath.lock().unwrap_or_else(PoisonError::into_inner);
    dp.services()
        .map(|all| {
            all.iter()
                .any(|s| s.service.backends.iter().any(|b| *b.ip() == ip))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use jotasu_api::IntOrString;
    use jotasu_api::kinds::service::{EndpointAddress, EndpointPort, EndpointSubset, ServicePort};

    use super::*;

    fn svc(ip: Option<&str>, ports: &[(Option<&str>, i32)]) -> Service {
        let mut s = Service::default();
        s.metadata.name = Some("web".into());
        s.spec.cluster_ip = ip.map(Into::into);
        s.spec.ports = ports
            .iter()
            .map(|(n, p)| ServicePort {
                name: n.map(Into::into),
                port: *p,
                target_port: Some(IntOrString::Int(8080)),
                ..ServicePort::default()
            })
            .collect();
        s
    }

    fn subset(ips: &[&str], ports: &[(Option<&str>, i32)]) -> EndpointSubset {
        EndpointSubset {
            addresses: ips
                .iter()
                .map(|ip| EndpointAddress {
                    ip: (*ip).into(),
                    ..EndpointAddress::default()
                })
                .collect(),
            not_ready_addresses: vec![EndpointAddress {
                ip: "10.244.0.99".into(),
                ..EndpointAddress::default()
            }],
            ports: ports
                .iter()
                .map(|(n, p)| EndpointPort {
                    name: n.map(Into::into),
                    port: *p,
                    ..EndpointPort::default()
                })
                .collect(),
        }
    }

    #[test]
    fn ports_match_by_name_and_backends_are_ordered() {
        let s = svc(
            Some("10.96.0.20"),
            &[(Some("http"), 80), (Some("admin"), 81)],
        );
        let e = Endpoints {
            subsets: vec![
                subset(
                    &["10.244.0.7", "10.244.0.3"],
                    &[(Some("http"), 8080), (Some("admin"), 9090)],
                ),
                subset(&["10.244.0.5"], &[(Some("http"), 8081)]),
            ],
            ..Endpoints::default()
        };
        let out = services_of(&s, Some(&e), None);
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].frontend,
            Frontend::tcp("10.96.0.20".parse().expect("ip"), 80)
        );
        let http: Vec<String> = out[0].backends.iter().map(ToString::to_string).collect();
        assert_eq!(
            http,
            ["10.244.0.3:8080", "10.244.0.5:8081", "10.244.0.7:8080"]
        );
        let admin: Vec<String> = out[1].backends.iter().map(ToString::to_string).collect();
        assert_eq!(admin, ["10.244.0.3:9090", "10.244.0.7:9090"]);
    }

    #[test]
    fn headless_external_and_unallocated_services_make_nothing() {
        assert!(services_of(&svc(Some("None"), &[(None, 80)]), None, None).is_empty());
        assert!(services_of(&svc(None, &[(None, 80)]), None, None).is_empty());
        // Even with an address left in the object, an alias is no VIP.
        let mut alias = svc(Some("10.96.0.22"), &[(None, 80)]);
        alias.spec.type_ = Some(ServiceType::ExternalName);
        alias.spec.external_name = Some("db.example.test".into());
        assert!(services_of(&alias, None, None).is_empty());
        let out = services_of(&svc(Some("10.96.0.21"), &[(None, 80)]), None, None);
        assert_eq!(out.len(), 1);
        assert!(out[0].backends.is_empty(), "no endpoints: the VIP refuses");
    }

    #[test]
    fn the_cluster_dns_address_goes_to_this_nodes_resolver_alone() {
        let mut view = ClusterView::default();
        view.services.insert(
            ("kube-system".into(), "kube-dns".into()),
            svc(
                Some("10.96.0.10"),
                &[(Some("dns"), 53), (Some("other"), 9153)],
            ),
        );
        view.services.insert(
            ("default".into(), "web".into()),
            svc(Some("10.96.0.21"), &[(None, 53)]),
        );
        let resolver = SocketAddrV4::new(Ipv4Addr::new(192, 168, 77, 10), 53);
        let dns = LocalDns {
            vip: Ipv4Addr::new(10, 96, 0, 10),
            resolver,
        };
        let all = desired(&view, Some(dns), None);
        let backends = |vip: [u8; 4], port: u16| {
            all.iter()
                .find(|s| s.frontend.vip == Ipv4Addr::from(vip) && s.frontend.port == port)
                .map(|s| s.backends.clone())
        };
        assert_eq!(backends([10, 96, 0, 10], 53), Some(vec![resolver]));
        assert_eq!(
            backends([10, 96, 0, 10], 9153),
            Some(vec![]),
            "other ports are as the Endpoints say"
        );
        assert_eq!(
            backends([10, 96, 0, 21], 53),
            Some(vec![]),
            "other Services' port 53 is theirs"
        );
        assert_eq!(
            desired(&view, None, None)
                .iter()
                .map(|s| s.backends.len())
                .sum::<usize>(),
            0
        );
    }
}
