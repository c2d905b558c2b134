//! Addresses the API server hands out when an object is created without
//! one: a Service's cluster IP from the service CIDR, a Node's pod CIDR
//! from the cluster CIDR. What is in use is read from the objects
//! themselves (a freed address is simply no longer in any object), and a
//! range key per kind, written in the same transaction as the objects,
//! serializes allocators: two applies that pick at once conflict and the
//! loser picks again.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use jotasu_api::kinds::service::ServiceType;
use jotasu_api::{Kind, Object};

use super::error::ApiServerError;

/// The address ranges the API server allocates from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ranges {
    /// Service cluster IPs (default 10.96.0.0/16).
    pub service_cidr: Ipv4Network,
    /// Pod addresses of the whole cluster (default 10.244.0.0/16).
    pub cluster_cidr: Ipv4Network,
    /// The prefix length of each node's pod CIDR (default 24).
    pub node_prefix: u8,
}

/// A network known at compile time (a bad literal fails the build).
const fn network(addr: Ipv4Addr, prefix: u8) -> Ipv4Network {
    match Ipv4Network::new_checked(addr, prefix) {
        Some(n) => n,
        None => panic!("not a network"),
    }
}

/// The default service CIDR.
pub const SERVICE_CIDR: Ipv4Network = network(Ipv4Addr::new(10, 96, 0, 0), 16);
/// The default cluster (pod) CIDR.
pub const CLUSTER_CIDR: Ipv4Network = network(Ipv4Addr::new(10, 244, 0, 0), 16);

impl Default for Ranges {
    fn default() -> Self {
        Self {
            service_cidr: SERVICE_CIDR,
            cluster_cidr: CLUSTER_CIDR,
            node_prefix: 24,
        }
    }
}

/// The key that serializes allocations of `kind`'s addresses.
pub fn range_key(kind: Kind) -> Vec<u8> {
    format!("/registry/ranges/{}", kind.plural()).into_bytes()
}

/// Whether `kind` has an address the server allocates.
pub fn allocates(kind: Kind) -> bool {
    matches!(kind, Kind::Service | Kind::Node)
}

/// The address the object holds (a Service's cluster IP, a Node's pod CIDR).
pub fn held(object: &Object) -> Option<String> {
    match object {
        Object::Service(s) => s
            .spec
            .cluster_ip
            .clone()
            .filter(|ip| !ip.is_empty() && ip != "None"),
        Object::Node(n) => n.spec.pod_cidr.clone().filter(|c| !c.is_empty()),
        _ => None,
    }
}

/// Whether the object asks for an address to be allocated (an
/// ExternalName Service never does: its name is an alias, it has no IP).
pub fn wants(object: &Object) -> bool {
    match object {
        Object::Service(s) => {
            s.spec.type_() != ServiceType::ExternalName
                && s.spec.cluster_ip.as_deref().is_none_or(str::is_empty)
        }
        Object::Node(n) => n.spec.pod_cidr.as_deref().is_none_or(str::is_empty),
        _ => false,
    }
}

/// The addresses of the service CIDR never handed out on their own: the
/// network address, the first address (the API's own, in Kubernetes) and
/// the tenth (cluster DNS), which a Service may still ask for by name.
fn reserved(cidr: Ipv4Network) -> [Ipv4Addr; 3] {
    let base = u32::from(cidr.network());
    [
        cidr.network(),
        Ipv4Addr::from(base.wrapping_add(1)),
        Ipv4Addr::from(base.wrapping_add(10)),
    ]
}

/// The cluster DNS address of a service CIDR: its tenth address, as
/// Kubernetes reserves it (10.96.0.10 by default).
pub fn dns_ip(cidr: Ipv4Network) -> Ipv4Addr {
    reserved(cidr)[2]
}

/// The lowest free cluster IP.
pub fn pick_ip(cidr: Ipv4Network, used: &HashSet<String>) -> Option<Ipv4Addr> {
    let reserved = reserved(cidr);
    cidr.iter()
        .filter(|ip| *ip != cidr.broadcast() && !reserved.contains(ip))
        .find(|ip| !used.contains(&ip.to_string()))
}

/// The lowest free node subnet of `prefix` bits in `cluster`.
pub fn pick_subnet(
    cluster: Ipv4Network,
    prefix: u8,
    used: &HashSet<String>,
) -> Option<Ipv4Network> {
    if prefix < cluster.prefix() || prefix > 30 {
        return None;
    }
    let step = 1u64 << (32 - u32::from(prefix));
    let count = 1u64 << (u32::from(prefix) - u32::from(cluster.prefix()));
    let base = u64::from(u32::from(cluster.network()));
    let taken: Vec<Ipv4Network> = used.iter().filter_map(|u| u.parse().ok()).collect();
    (0..count)
        .filter_map(|i| u32::try_from(base + i * step).ok())
        .filter_map(|a| Ipv4Network::new(Ipv4Addr::from(a), prefix).ok())
        .find(|n| !taken.iter().any(|t| overlap(*t, *n)))
}

/// Whether two networks share an address.
pub fn overlap(a: Ipv4Network, b: Ipv4Network) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

/// Checks an address the user gave: in range and not held by another object.
pub fn check_given(
    object: &Object,
    ranges: &Ranges,
    used_by_others: &HashSet<String>,
) -> Result<(), ApiServerError> {
    let Some(given) = held(object) else {
        return Ok(());
    };
    let r = object.object_ref();
    match object {
        Object::Service(_) => {
            let in_range = given
                .parse::<Ipv4Addr>()
                .is_ok_and(|ip| ranges.service_cidr.contains(ip));
            if !in_range {
                return Err(ApiServerError::Invalid(format!(
                    "{r}: spec.clusterIP: Invalid value: {given:?}: provided IP is not in the valid range. The range of valid IPs is {}",
                    ranges.service_cidr
                )));
            }
            if used_by_others.contains(&given) {
                return Err(ApiServerError::Invalid(format!(
                    "{r}: spec.clusterIP: Invalid value: {given:?}: provided IP is already allocated"
                )));
            }
        }
        Object::Node(_) => {
            let inside = given.parse::<Ipv4Network>().ok().filter(|n| {
                n.network() == n.ip()
                    && n.prefix() >= ranges.cluster_cidr.prefix()
                    && ranges.cluster_cidr.contains(n.network())
            });
            let Some(net) = inside else {
                return Err(ApiServerError::Invalid(format!(
                    "{r}: spec.podCIDR: Invalid value: {given:?}: must be a network inside the cluster CIDR {}",
                    ranges.cluster_cidr
                )));
            };
            if let Some(other) = used_by_others
                .iter()
                .find(|o| o.parse::<Ipv4Network>().is_ok_and(|o| overlap(o, net)))
            {
                return Err(ApiServerError::Invalid(format!(
                    "{r}: spec.podCIDR: Invalid value: {given:?}: overlaps {other}, allocated to another node"
                )));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Gives the object its address; an error when the range is full.
pub fn assign(
    object: &mut Object,
    ranges: &Ranges,
    used: &HashSet<String>,
) -> Result<(), ApiServerError> {
    let r = object.object_ref();
    match object {
        Object::Service(s) => {
            let ip = pick_ip(ranges.service_cidr, used).ok_or_else(|| {
                ApiServerError::Invalid(format!(
                    "{r}: spec.clusterIP: Internal error: failed to allocate a serviceIP: range is full ({})",
                    ranges.service_cidr
                ))
            })?;
            s.spec.cluster_ip = Some(ip.to_string());
            s.spec.cluster_ips = vec![ip.to_string()];
        }
        Object::Node(n) => {
            let net =
                pick_subnet(ranges.cluster_cidr, ranges.node_prefix, used).ok_or_else(|| {
                    ApiServerError::Invalid(format!(
                        "{r}: spec.podCIDR: no /{} left in the cluster CIDR {}",
                        ranges.node_prefix, ranges.cluster_cidr
                    ))
                })?;
            n.spec.pod_cidr = Some(net.to_string());
            n.spec.pod_cidrs = vec![net.to_string()];
        }
        _ => {}
    }
    Ok(())
}

/// The node ports Services are given from (Kubernetes' default range).
pub const NODE_PORTS: std::ops::RangeInclusive<i32> = jotasu_api::validate::NODE_PORT_RANGE;

/// The size of the range's lower band, kept for ports users ask for by
/// number (Kubernetes' static band: `min(max(16, size / 32), 128)`).
fn static_band() -> i32 {
    let size = NODE_PORTS.end() - NODE_PORTS.start() + 1;
    (size / 32).clamp(16, 128)
}

/// The order node ports are handed out in when none is asked for: the
/// upper band first, the static band only when the upper one is full, so a
/// manifest that names a low port (30000, 30001…) rarely finds it taken
/// (Kubernetes does the same, picking at random within each band).
fn dynamic_order() -> impl Iterator<Item = i32> {
    let split = NODE_PORTS.start() + static_band();
    (split..=*NODE_PORTS.end()).chain(*NODE_PORTS.start()..split)
}

/// The node ports a Service holds.
pub fn node_ports(object: &Object) -> Vec<i32> {
    match object {
        Object::Service(s) => s
            .spec
            .ports
            .iter()
            .filter_map(|p| p.node_port)
            .filter(|np| *np != 0)
            .collect(),
        _ => Vec::new(),
    }
}

/// Checks the node ports a Service brings against those other Services
/// hold, then gives each port of a NodePort or LoadBalancer Service that
/// has none the lowest free one. Returns whether it assigned any.
pub fn assign_node_ports(object: &mut Object, used: &HashSet<i32>) -> Result<bool, ApiServerError> {
    let r = object.object_ref();
    let Object::Service(s) = object else {
        return Ok(false);
    };
    for (i, p) in s.spec.ports.iter().enumerate() {
        if let Some(np) = p.node_port.filter(|np| *np != 0 && used.contains(np)) {
            return Err(ApiServerError::Invalid(format!(
                "{r}: spec.ports[{i}].nodePort: Invalid value: {np}: provided port is already allocated"
            )));
        }
    }
    if !s.spec.has_node_ports() {
        return Ok(false);
    }
    let mut taken: HashSet<i32> = used.clone();
    taken.extend(s.spec.ports.iter().filter_map(|p| p.node_port));
    let mut assigned = false;
    for p in &mut s.spec.ports {
        if p.node_port.is_some_and(|np| np != 0) {
            continue;
        }
        let np = dynamic_order().find(|np| !taken.contains(np)).ok_or_else(|| {
            ApiServerError::Invalid(format!(
                "{r}: spec.ports: Internal error: failed to allocate a nodePort: range is full ({}-{})",
                NODE_PORTS.start(),
                NODE_PORTS.end()
            ))
        })?;
        taken.insert(np);
        p.node_port = Some(np);
        assigned = true;
    }
    Ok(assigned)
}

/// Refuses an apply that changes an address already assigned.
pub fn check_immutable(new: &Object, old: &Object) -> Result<(), ApiServerError> {
    match (held(new), held(old)) {
        (Some(n), Some(o)) if n != o => {
            let field = match new.kind() {
                Kind::Node => "spec.podCIDR",
                _ => "spec.clusterIP",
            };
            Err(ApiServerError::Invalid(format!(
                "{}: {field}: Invalid value: {n:?}: field is immutable",
                new.object_ref()
            )))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ports_come_from_the_upper_band_first() {
        use jotasu_api::kinds::service::{Service, ServicePort, ServiceType};
        let svc = |ports: &[Option<i32>]| {
            let mut s = Service::default();
            s.metadata.name = Some("web".into());
            s.metadata.namespace = Some("default".into());
            s.spec.type_ = Some(ServiceType::NodePort);
            s.spec.ports = ports
                .iter()
                .enumerate()
                .map(|(i, np)| ServicePort {
                    name: Some(format!("p{i}")),
                    port: 80 + i as i32,
                    node_port: *np,
                    ..ServicePort::default()
                })
                .collect();
            Object::Service(s)
        };
        // 2,768 ports: the static band is 30000-30085.
        assert_eq!(static_band(), 86);
        let mut o = svc(&[None, Some(30000), None]);
        assert!(assign_node_ports(&mut o, &HashSet::new()).unwrap());
        assert_eq!(node_ports(&o), [30086, 30000, 30087]);
        // Taken: refused with Kubernetes' words; free: kept.
        let used: HashSet<i32> = [30000].into();
        let e = assign_node_ports(&mut svc(&[Some(30000)]), &used).unwrap_err();
        assert!(
            e.to_string().contains(
                "spec.ports[0].nodePort: Invalid value: 30000: provided port is already allocated"
            ),
            "{e}"
        );
        // The upper band full: the static band's free ports are used.
        let upper: HashSet<i32> = (30086..=32767).chain([30000]).collect();
        let mut o = svc(&[None]);
        assign_node_ports(&mut o, &upper).unwrap();
        assert_eq!(node_ports(&o), [30001]);
        let all: HashSet<i32> = NODE_PORTS.collect();
        let e = assign_node_ports(&mut svc(&[None]), &all).unwrap_err();
        assert!(e.to_string().contains("range is full"), "{e}");
    }

    #[test]
    fn picks_the_lowest_free_address() {
        let r = Ranges::default();
        let mut used = HashSet::new();
        assert_eq!(
            pick_ip(r.service_cidr, &used),
            Some(Ipv4Addr::new(10, 96, 0, 2))
        );
        used.insert("10.96.0.2".to_owned());
        used.insert("10.96.0.3".to_owned());
        assert_eq!(
            pick_ip(r.service_cidr, &used),
            Some(Ipv4Addr::new(10, 96, 0, 4))
        );
        let tiny: Ipv4Network = "10.96.0.0/29".parse().unwrap();
        let full: HashSet<String> = (2..7).map(|i| format!("10.96.0.{i}")).collect();
        assert_eq!(
            pick_ip(tiny, &full),
            None,
            ".10 is outside, .7 broadcast, .0/.1 reserved"
        );
    }

    #[test]
    fn picks_node_subnets() {
        let r = Ranges::default();
        let mut used = HashSet::new();
        let first = pick_subnet(r.cluster_cidr, 24, &used).unwrap();
        assert_eq!(first.to_string(), "10.244.0.0/24");
        used.insert(first.to_string());
        assert_eq!(
            pick_subnet(r.cluster_cidr, 24, &used).unwrap().to_string(),
            "10.244.1.0/24"
        );
        assert_eq!(pick_subnet(r.cluster_cidr, 8, &used), None);
    }

    #[test]
    fn given_addresses_are_checked() {
        let r = Ranges::default();
        let svc = |ip: &str| -> Object {
            serde_json::from_value(serde_json::json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "s", "namespace": "default"},
                "spec": {"clusterIP": ip, "ports": [{"port": 80}]}}))
            .unwrap()
        };
        let used: HashSet<String> = ["10.96.0.5".to_owned()].into();
        assert!(check_given(&svc("10.96.0.10"), &r, &used).is_ok());
        let e = check_given(&svc("10.96.0.5"), &r, &used)
            .unwrap_err()
            .to_string();
        assert!(e.contains("provided IP is already allocated"), "{e}");
        let e = check_given(&svc("10.0.0.1"), &r, &used)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not in the valid range"), "{e}");
        assert!(check_given(&svc("None"), &r, &used).is_ok());
        assert!(wants(&svc("")));
        assert!(!wants(&svc("None")));
        let alias: Object = serde_json::from_value(serde_json::json!({"apiVersion": "v1",
            "kind": "Service", "metadata": {"name": "db", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "db.example.test"}}))
        .unwrap();
        assert!(!wants(&alias), "an ExternalName Service gets no cluster IP");
        assert_eq!(held(&alias), None);
        let e = check_immutable(&svc("10.96.0.7"), &svc("10.96.0.5"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("field is immutable"), "{e}");
    }

    #[test]
    fn given_pod_cidrs_stay_inside_the_cluster_and_apart() {
        let r = Ranges::default();
        let node = |cidr: &str| -> Object {
            serde_json::from_value(serde_json::json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "n"}, "spec": {"podCIDR": cidr}}))
            .unwrap()
        };
        let used: HashSet<String> = ["10.244.1.0/24".to_owned()].into();
        assert!(check_given(&node("10.244.2.0/24"), &r, &used).is_ok());
        for (cidr, why) in [
            ("0.0.0.0/0", "inside the cluster CIDR"),
            ("10.0.0.0/8", "inside the cluster CIDR"),
            ("10.245.0.0/24", "inside the cluster CIDR"),
            ("10.244.2.1/24", "inside the cluster CIDR"),
            ("10.244.1.0/24", "overlaps 10.244.1.0/24"),
            ("10.244.0.0/23", "overlaps 10.244.1.0/24"),
            ("10.244.1.128/25", "overlaps 10.244.1.0/24"),
        ] {
            let e = check_given(&node(cidr), &r, &used).unwrap_err().to_string();
            assert!(e.contains(why), "{cidr}: {e}");
        }
        let wide: HashSet<String> = ["10.244.0.0/23".to_owned()].into();
        assert_eq!(
            pick_subnet(r.cluster_cidr, 24, &wide).map(|n| n.to_string()),
            Some("10.244.2.0/24".to_owned()),
            "a subnet overlapping a wider one is not picked"
        );
    }
}
