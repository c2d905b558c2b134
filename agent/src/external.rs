//! The frontends a node serves to clients outside the cluster, beside
//! every Service's cluster IP: a NodePort or LoadBalancer Service's node
//! ports on this node's address, its external IPs, and the host ports of
//! this node's pods. All are ordinary data-plane services marked external
//! ([`Reach`]); `from_underlay` balances them.
//!
//! `externalTrafficPolicy: Cluster` balances over every endpoint and SNATs
//! the client to the node; `Local` keeps the client's address and balances
//! over this node's endpoints only (none: the node refuses). A host port
//! forwards to its one pod, the client's address kept.

use std::net::{Ipv4Addr, SocketAddrV4};

use jotasu_api::kinds::pod::Protocol as ApiProtocol;
use jotasu_api::kinds::pod_status::PodPhase;
use jotasu_api::kinds::service::TrafficPolicy;
use jotasu_api::{Endpoints, Pod, Service};
use jotasu_ebpf::{Frontend, Protocol, Reach};

/// This node, as its external frontends need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The node's name (endpoints on it are local).
    pub name: String,
    /// The node's underlay address: node ports and host ports live on it.
    pub ip: Ipv4Addr,
}

/// The data-plane protocol of an API protocol (SCTP is not balanced).
pub fn protocol(p: Option<ApiProtocol>) -> Option<Protocol> {
    match p.unwrap_or_default() {
        ApiProtocol::Tcp => Some(Protocol::Tcp),
        ApiProtocol::Udp => Some(Protocol::Udp),
        ApiProtocol::Sctp => None,
    }
}

/// The reach of a Service's cluster IP: session affinity only.
pub fn cluster_reach(svc: &Service) -> Reach {
    Reach {
        affinity_timeout_s: svc.spec.affinity_timeout().unwrap_or(0),
        ..Reach::default()
    }
}

/// The reach of a Service's external frontends.
fn external_reach(svc: &Service) -> Reach {
    Reach {
        external: true,
        snat: svc.spec.external_traffic_policy != Some(TrafficPolicy::Local),
        affinity_timeout_s: svc.spec.affinity_timeout().unwrap_or(0),
    }
}

/// Of a service port's backends (`all`, with the node each runs on), the
/// ones an external frontend balances over: all of them under `Cluster`,
/// this node's under `Local`.
pub fn external_backends(
    svc: &Service,
    all: &[(SocketAddrV4, Option<String>)],
    host: &Host,
) -> Vec<SocketAddrV4> {
    let local = svc.spec.external_traffic_policy == Some(TrafficPolicy::Local);
    all.iter()
        .filter(|(_, node)| !local || node.as_deref() == Some(host.name.as_str()))
        .map(|(b, _)| *b)
        .collect()
}

/// The external frontends of service port `index` of `svc`: its node port
/// on the node's address and its port on every external IP.
pub fn frontends_of(svc: &Service, index: usize, host: &Host) -> Vec<Frontend> {
    let Some(port) = svc.spec.ports.get(index) else {
        return Vec::new();
    };
    let Some(proto) = protocol(port.protocol) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if svc.spec.has_node_ports()
        && let Some(np) = port.node_port.and_then(|np| u16::try_from(np).ok())
        && np != 0
    {
        out.push(Frontend {
            vip: host.ip,
            port: np,
            protocol: proto,
        });
    }
    if let Ok(p) = u16::try_from(port.port) {
        for ip in &svc.spec.external_ips {
            if let Ok(vip) = ip.parse::<Ipv4Addr>() {
                out.push(Frontend {
                    vip,
                    port: p,
                    protocol: proto,
                });
            }
        }
    }
    out
}

/// The external services of one Service's port: each frontend of
/// [`frontends_of`] with [`external_backends`].
pub fn services_of(
    svc: &Service,
    index: usize,
    backends: &[(SocketAddrV4, Option<String>)],
    host: &Host,
) -> Vec<jotasu_ebpf::Service> {
    let reach = external_reach(svc);
    let chosen = external_backends(svc, backends, host);
    frontends_of(svc, index, host)
        .into_iter()
        .map(|f| jotasu_ebpf::Service::new(f, chosen.iter().copied()).with_reach(reach))
        .collect()
}

/// The host ports of this node's pods: the node's address and the host
/// port forward to the pod's address and container port, the client's
/// address kept. Pods without an address, or finished, have none.
pub fn host_ports<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    host: &Host,
) -> Vec<jotasu_ebpf::Service> {
    let mut out = Vec::new();
    for pod in pods {
        let status = pod.status.as_ref();
        if matches!(
            status.and_then(|s| s.phase),
            Some(PodPhase::Succeeded | PodPhase::Failed)
        ) {
            continue;
        }
        let Some(ip) = status
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        for port in pod_ports(pod) {
            let (Some(hp), Some(proto), Ok(target)) = (
                port.host_port
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p != 0),
                protocol(port.protocol),
                u16::try_from(port.container_port),
            ) else {
                continue;
            };
            let frontend = Frontend {
                vip: host.ip,
                port: hp,
                protocol: proto,
            };
            let reach = Reach {
                external: true,
                ..Reach::default()
            };
            out.push(
                jotasu_ebpf::Service::new(frontend, [SocketAddrV4::new(ip, target)])
                    .with_reach(reach),
            );
        }
    }
    out
}

fn pod_ports(pod: &Pod) -> impl Iterator<Item = &jotasu_api::kinds::pod::ContainerPort> {
    pod.spec
        .init_containers
        .iter()
        .chain(&pod.spec.containers)
        .flat_map(|c| &c.ports)
}

/// Whether a pod declares a host port (its changes reprogram the services).
pub fn has_host_ports(pod: &Pod) -> bool {
    pod_ports(pod).any(|p| p.host_port.is_some_and(|hp| hp != 0))
}

/// The backends of a service port with the node each runs on, from the
/// Endpoints subsets that carry a port of the same name and protocol.
pub fn backends_with_nodes(
    port_name: Option<&String>,
    proto: Protocol,
    endpoints: Option<&Endpoints>,
) -> Vec<(SocketAddrV4, Option<String>)> {
    let mut out: Vec<(SocketAddrV4, Option<String>)> = endpoints
        .into_iter()
        .flat_map(|e| &e.subsets)
        .flat_map(|subset| {
            let target = subset
                .ports
                .iter()
                .find(|ep| ep.name.as_ref() == port_name && protocol(ep.protocol) == Some(proto))
                .and_then(|ep| u16::try_from(ep.port).ok());
            subset.addresses.iter().filter_map(move |a| {
                Some((
                    SocketAddrV4::new(a.ip.parse().ok()?, target?),
                    a.node_name.clone(),
                ))
            })
        })
        .collect();
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0);
    out
}
