//! The endpoints of a Service as a pure function of the Service, the pods
//! of its namespace and the nodes' readiness, grouped as Kubernetes groups
//! them: every Service port is resolved per pod (a number, or a container
//! port looked up by name and protocol), and pods that resolve to the same
//! ports share a group ([`groups`]). Each endpoint carries the conditions
//! Kubernetes' EndpointSlice controller gives it: `serving` is the pod's
//! Ready condition (on a Ready node), `terminating` whether the pod is
//! being deleted, `ready` serving and not terminating. Pods that finished
//! (Succeeded, Failed) or have no address are left out.
//!
//! The v1 Endpoints ([`subsets`], [`desired`]) are the groups as Kubernetes'
//! Endpoints controller writes them: terminating pods left out (jotasu
//! refuses `publishNotReadyAddresses`), ready pods as `addresses`, the
//! rest `notReadyAddresses`; addresses sorted by IP. The EndpointSlices
//! ([`super::slices`]) keep terminating pods, with their conditions. A pod
//! whose `subdomain` names the Service (same namespace) and that sets a
//! `hostname` lends it to its address, which gives it a DNS name of its
//! own (`hostname.service.ns.svc.DOMAIN`).

use std::collections::BTreeMap;

use jotasu_api::kinds::pod::Protocol;
use jotasu_api::kinds::service::{
    EndpointAddress, EndpointPort, EndpointSubset, ServicePort, ServiceType,
};
use jotasu_api::meta::ObjectReference;
use jotasu_api::{Endpoints, IntOrString, Labels, ObjectMeta, Pod, Service};

use crate::runtime::status::{is_ready, is_terminating, node_of};

/// Whether the Service's endpoints are the controller's to manage (it
/// has a selector; without one they are managed by hand). An ExternalName
/// Service gets none, selector or not, as in Kubernetes (an alias has no
/// backends).
pub fn managed(service: &Service) -> bool {
    !service.spec.selector.is_empty() && service.spec.type_() != ServiceType::ExternalName
}

/// Whether `service` selects pods with `labels`.
pub fn selects(service: &Service, labels: &Labels) -> bool {
    managed(service)
        && service
            .spec
            .selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
}

/// The pod port a Service port reaches on `pod` (None: the pod has no
/// container port of that name and protocol).
pub fn resolve(port: &ServicePort, pod: &Pod) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            let protocol = port.protocol.unwrap_or_default();
            pod.spec
                .containers
                .iter()
                .flat_map(|c| &c.ports)
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.unwrap_or_default() == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// The hostname an endpoint of `service` gets from `pod`: the pod's
/// `hostname` when its `subdomain` is the Service's name in the same
/// namespace (Kubernetes' `ShouldSetHostname`).
pub fn hostname_for<'a>(service: &Service, pod: &'a Pod) -> Option<&'a str> {
    let hostname = pod.spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    let same_namespace = service.metadata.namespace == pod.metadata.namespace;
    let named = pod.spec.subdomain.is_some() && pod.spec.subdomain == service.metadata.name;
    (same_namespace && named).then_some(hostname)
}

fn address(service: &Service, pod: &Pod, ip: &str) -> EndpointAddress {
    let meta = &pod.metadata;
    EndpointAddress {
        ip: ip.to_owned(),
        hostname: hostname_for(service, pod).map(str::to_owned),
        node_name: node_of(pod).map(str::to_owned),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
            uid: meta.uid.clone(),
            ..ObjectReference::default()
        }),
    }
}

type PortKey = Vec<(Option<String>, i32, Protocol, Option<String>)>;

/// One pod's endpoint with its conditions (as an EndpointSlice states them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEndpoint {
    /// Its address (IP, hostname, node, the pod).
    pub address: EndpointAddress,
    /// Serving and not terminating: it should get new connections.
    pub ready: bool,
    /// The pod is Ready (on a Ready node), terminating or not.
    pub serving: bool,
    /// The pod is being deleted.
    pub terminating: bool,
}

impl PodEndpoint {
    /// An endpoint as hand-made Endpoints state it (mirrored into slices):
    /// ready or not, never terminating.
    pub fn listed(address: &EndpointAddress, ready: bool) -> Self {
        Self {
            address: address.clone(),
            ready,
            serving: ready,
            terminating: false,
        }
    }
}

/// Endpoints that share a set of ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Group {
    /// The ports, sorted.
    pub ports: Vec<EndpointPort>,
    /// The endpoints, sorted by address (then pod name).
    pub endpoints: Vec<PodEndpoint>,
}

impl Group {
    /// The endpoints a subset of hand-made Endpoints lists.
    pub fn of_subset(subset: &EndpointSubset) -> Self {
        let ready = subset
            .addresses
            .iter()
            .map(|a| PodEndpoint::listed(a, true));
        let not_ready = (subset.not_ready_addresses.iter()).map(|a| PodEndpoint::listed(a, false));
        Self {
            ports: subset.ports.clone(),
            endpoints: ready.chain(not_ready).collect(),
        }
    }
}

/// Whether a pod finished (Succeeded or Failed): it has no endpoint, even
/// while being deleted (Kubernetes' `ShouldPodBeInEndpoints`).
fn is_terminal(pod: &Pod) -> bool {
    use jotasu_api::kinds::pod_status::PodPhase;
    matches!(
        pod.status.as_ref().and_then(|s| s.phase),
        Some(PodPhase::Succeeded | PodPhase::Failed)
    )
}

/// The endpoint groups of `service` among `pods` (any pods: those it does
/// not select are skipped), terminating pods included; `node_ready` tells
/// whether a node is Ready.
pub fn groups(service: &Service, pods: &[&Pod], node_ready: impl Fn(&str) -> bool) -> Vec<Group> {
    let headless = service.spec.cluster_ip.as_deref() == Some("None");
    if service.spec.ports.is_empty() && !headless {
        return Vec::new();
    }
    let mut groups: BTreeMap<PortKey, Vec<PodEndpoint>> = BTreeMap::new();
    for &pod in pods {
        if !selects(service, &pod.metadata.labels) || is_terminal(pod) {
            continue;
        }
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        let mut ports: PortKey = service
            .spec
            .ports
            .iter()
            .filter_map(|p| {
                let number = resolve(p, pod)?;
                Some((
                    p.name.clone(),
                    number,
                    p.protocol.unwrap_or_default(),
                    p.app_protocol.clone(),
                ))
            })
            .collect();
        if ports.is_empty() && !service.spec.ports.is_empty() {
            continue;
        }
        ports.sort();
        let serving = is_ready(pod) && node_of(pod).is_some_and(&node_ready);
        let terminating = is_terminating(pod);
        groups.entry(ports).or_default().push(PodEndpoint {
            address: address(service, pod, ip),
            ready: serving && !terminating,
            serving,
            terminating,
        });
    }
    groups
        .into_iter()
        .map(|(ports, mut endpoints)| {
            endpoints.sort_by(|a, b| {
                let key = |e: &PodEndpoint| {
                    let name = e.address.target_ref.as_ref().and_then(|r| r.name.clone());
                    (e.address.ip.clone(), name)
                };
                key(a).cmp(&key(b))
            });
            Group {
                ports: ports
                    .into_iter()
                    .map(|(name, port, protocol, app_protocol)| EndpointPort {
                        name,
                        port,
                        protocol: Some(protocol),
                        app_protocol,
                    })
                    .collect(),
                endpoints,
            }
        })
        .collect()
}

/// The v1 subsets of endpoint groups: terminating endpoints left out,
/// ready ones as `addresses`, the rest `notReadyAddresses`; a group left
/// with no address makes no subset.
pub fn subsets_of(groups: &[Group]) -> Vec<EndpointSubset> {
    groups
        .iter()
        .filter_map(|g| {
            let (ready, not_ready): (Vec<&PodEndpoint>, Vec<&PodEndpoint>) = g
                .endpoints
                .iter()
                .filter(|e| !e.terminating)
                .partition(|e| e.ready);
            if ready.is_empty() && not_ready.is_empty() {
                return None;
            }
            let addresses =
                |list: Vec<&PodEndpoint>| list.into_iter().map(|e| e.address.clone()).collect();
            Some(EndpointSubset {
                addresses: addresses(ready),
                not_ready_addresses: addresses(not_ready),
                ports: g.ports.clone(),
            })
        })
        .collect()
}

/// The v1 subsets of `service` among `pods` ([`groups`], then [`subsets_of`]).
pub fn subsets(
    service: &Service,
    pods: &[&Pod],
    node_ready: impl Fn(&str) -> bool,
) -> Vec<EndpointSubset> {
    subsets_of(&groups(service, pods, node_ready))
}

/// The Endpoints object `service` should have, given its endpoint groups.
pub fn desired_of(service: &Service, groups: &[Group]) -> Endpoints {
    Endpoints {
        metadata: ObjectMeta {
            name: service.metadata.name.clone(),
            namespace: service.metadata.namespace.clone(),
            labels: service.metadata.labels.clone(),
            ..ObjectMeta::default()
        },
        subsets: subsets_of(groups),
        ..Endpoints::default()
    }
}

/// The Endpoints object `service` should have.
pub fn desired(service: &Service, pods: &[&Pod], node_ready: impl Fn(&str) -> bool) -> Endpoints {
    desired_of(service, &groups(service, pods, node_ready))
}

/// Whether `current` must be written to become `desired`.
pub fn differs(current: Option<&Endpoints>, desired: &Endpoints) -> bool {
    current.is_none_or(|c| {
        c.subsets != desired.subsets || c.metadata.labels != desired.metadata.labels
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::kinds::pod_status::{PodPhase, PodStatus};
    use jotasu_api::{Condition, Object, Time};

    fn service(ports: serde_json::Value) -> Service {
        let json = serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "ports": ports}});
        let mut o: Object = serde_json::from_value(json).expect("a Service");
        o.apply_defaults();
        match o {
            Object::Service(s) => s,
            _ => unreachable!(),
        }
    }

    /// A pod `name` on `node` with `ip`, ready or not, with named ports.
    fn pod(name: &str, node: &str, ip: &str, ready: bool, ports: &[(&str, i32)]) -> Pod {
        let containers: Vec<serde_json::Value> = ports
            .iter()
            .map(|(n, p)| serde_json::json!({"name": n, "containerPort": p}))
            .collect();
        let json = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                "labels": {"app": "web"}},
            "spec": {"nodeName": node,
                "containers": [{"name": "c", "image": "busybox:1", "ports": containers}]}});
        let mut o: Object = serde_json::from_value(json).expect("a Pod");
        o.apply_defaults();
        let Object::Pod(mut p) = o else {
            unreachable!()
        };
        p.status = Some(PodStatus {
            phase: Some(PodPhase::Running),
            pod_ip: Some(ip.into()),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: ready.into(),
                last_transition_time: Some(Time::from_unix_seconds(1)),
                ..Condition::default()
            }],
            ..PodStatus::default()
        });
        p
    }

    fn ips(list: &[EndpointAddress]) -> Vec<&str> {
        list.iter().map(|a| a.ip.as_str()).collect()
    }

    fn all_ready(_: &str) -> bool {
        true
    }

    #[test]
    fn ready_pods_with_an_ip_sorted_and_the_rest_not_ready() {
        let s = service(serde_json::json!([{"port": 80, "targetPort": 8080}]));
        let mut terminating = pod("t", "n1", "10.0.0.9", true, &[]);
        terminating.metadata.deletion_timestamp = Some(Time::from_unix_seconds(1));
        let mut no_ip = pod("x", "n1", "", true, &[]);
        no_ip.status.as_mut().expect("status").pod_ip = None;
        let mut other = pod("o", "n1", "10.0.0.8", true, &[]);
        other.metadata.labels.insert("app".into(), "db".into());
        let pods = [
            pod("b", "n1", "10.0.0.2", true, &[]),
            pod("a", "n2", "10.0.0.10", true, &[]),
            pod("c", "n1", "10.0.0.3", false, &[]),
            terminating,
            no_ip,
            other,
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let out = subsets(&s, &refs, all_ready);
        assert_eq!(out.len(), 1);
        assert_eq!(ips(&out[0].addresses), ["10.0.0.10", "10.0.0.2"]);
        assert_eq!(ips(&out[0].not_ready_addresses), ["10.0.0.3"]);
        assert_eq!(
            out[0].ports,
            [EndpointPort {
                name: None,
                port: 8080,
                protocol: Some(Protocol::Tcp),
                app_protocol: None,
            }]
        );
        let a = &out[0].addresses[0];
        assert_eq!(a.node_name.as_deref(), Some("n2"));
        let target = a.target_ref.as_ref().expect("target");
        assert_eq!(
            (
                target.kind.as_deref(),
                target.namespace.as_deref(),
                target.name.as_deref(),
                target.uid.as_deref()
            ),
            (Some("Pod"), Some("default"), Some("a"), Some("uid-a"))
        );
    }

    #[test]
    fn terminating_pods_keep_their_endpoint_with_kubernetes_conditions() {
        let s = service(serde_json::json!([{"port": 80}]));
        let terminating = |name: &str, ip: &str, ready: bool| {
            let mut p = pod(name, "n1", ip, ready, &[]);
            p.metadata.deletion_timestamp = Some(Time::from_unix_seconds(1));
            p
        };
        let mut finished = terminating("f", "10.0.0.6", false);
        finished.status.as_mut().expect("status").phase = Some(PodPhase::Succeeded);
        let pods = [
            pod("a", "n1", "10.0.0.2", true, &[]),
            terminating("b", "10.0.0.3", true),
            terminating("c", "10.0.0.4", false),
            pod("d", "n1", "10.0.0.5", false, &[]),
            finished,
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let g = groups(&s, &refs, all_ready);
        assert_eq!(g.len(), 1);
        let conditions: Vec<(&str, bool, bool, bool)> = g[0]
            .endpoints
            .iter()
            .map(|e| (e.address.ip.as_str(), e.ready, e.serving, e.terminating))
            .collect();
        assert_eq!(
            conditions,
            [
                ("10.0.0.2", true, true, false),
                ("10.0.0.3", false, true, true),
                ("10.0.0.4", false, false, true),
                ("10.0.0.5", false, false, false),
            ],
            "a finished pod has no endpoint, a terminating one is never ready"
        );
        // The v1 Endpoints leave terminating pods out.
        let out = subsets_of(&g);
        assert_eq!(ips(&out[0].addresses), ["10.0.0.2"]);
        assert_eq!(ips(&out[0].not_ready_addresses), ["10.0.0.5"]);
        // Only terminating pods: a group, but no subset.
        let only = [terminating("b", "10.0.0.3", true)];
        let refs: Vec<&Pod> = only.iter().collect();
        assert_eq!(groups(&s, &refs, all_ready)[0].endpoints.len(), 1);
        assert!(subsets(&s, &refs, all_ready).is_empty());
    }

    #[test]
    fn pods_on_a_node_that_is_not_ready_are_not_ready() {
        let s = service(serde_json::json!([{"port": 80}]));
        let pods = [
            pod("a", "good", "10.0.0.2", true, &[]),
            pod("b", "dead", "10.0.0.3", true, &[]),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let out = subsets(&s, &refs, |n| n == "good");
        assert_eq!(ips(&out[0].addresses), ["10.0.0.2"]);
        assert_eq!(ips(&out[0].not_ready_addresses), ["10.0.0.3"]);
        assert_eq!(out[0].ports[0].port, 80, "targetPort defaults to port");
    }

    #[test]
    fn named_ports_resolve_per_pod_and_split_subsets() {
        let s = service(serde_json::json!([
            {"name": "http", "port": 80, "targetPort": "http"},
            {"name": "metrics", "port": 9090, "targetPort": 9090}
        ]));
        let pods = [
            pod("a", "n1", "10.0.0.2", true, &[("http", 8080)]),
            pod("b", "n1", "10.0.0.3", true, &[("http", 8081)]),
            pod("c", "n1", "10.0.0.4", true, &[("http", 8080)]),
            pod("d", "n1", "10.0.0.5", true, &[("web", 8080)]),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let out = subsets(&s, &refs, all_ready);
        let summary: Vec<(Vec<i32>, Vec<&str>)> = out
            .iter()
            .map(|s| (s.ports.iter().map(|p| p.port).collect(), ips(&s.addresses)))
            .collect();
        assert_eq!(
            summary,
            [
                (vec![8080, 9090], vec!["10.0.0.2", "10.0.0.4"]),
                (vec![8081, 9090], vec!["10.0.0.3"]),
                (vec![9090], vec!["10.0.0.5"]),
            ]
        );
    }

    #[test]
    fn a_named_port_must_match_the_protocol_too() {
        let s = service(serde_json::json!([
            {"port": 53, "targetPort": "dns", "protocol": "UDP"}
        ]));
        let p = pod("a", "n1", "10.0.0.2", true, &[("dns", 5353)]);
        assert_eq!(resolve(&s.spec.ports[0], &p), None);
        assert!(subsets(&s, &[&p], all_ready).is_empty());
    }

    #[test]
    fn headless_without_ports_lists_addresses_and_portless_services_nothing() {
        let mut s = service(serde_json::json!([]));
        let p = pod("a", "n1", "10.0.0.2", true, &[]);
        assert!(subsets(&s, &[&p], all_ready).is_empty());
        s.spec.cluster_ip = Some("None".into());
        let out = subsets(&s, &[&p], all_ready);
        assert_eq!(ips(&out[0].addresses), ["10.0.0.2"]);
        assert!(out[0].ports.is_empty());
    }

    #[test]
    fn a_pod_in_the_services_subdomain_lends_its_hostname() {
        let mut s = service(serde_json::json!([{"port": 80}]));
        s.spec.cluster_ip = Some("None".into());
        let named = |hostname: Option<&str>, subdomain: Option<&str>| {
            let mut p = pod("a", "n1", "10.0.0.2", true, &[]);
            p.spec.hostname = hostname.map(str::to_owned);
            p.spec.subdomain = subdomain.map(str::to_owned);
            p
        };
        let hostnames = |p: &Pod| {
            let out = subsets(&s, &[p], all_ready);
            out[0].addresses[0].hostname.clone()
        };
        assert_eq!(
            hostnames(&named(Some("db-0"), Some("web"))).as_deref(),
            Some("db-0")
        );
        assert_eq!(hostnames(&named(Some("db-0"), Some("other"))), None);
        assert_eq!(hostnames(&named(Some("db-0"), None)), None);
        assert_eq!(hostnames(&named(None, Some("web"))), None);
        let mut elsewhere = named(Some("db-0"), Some("web"));
        elsewhere.metadata.namespace = Some("other".into());
        assert_eq!(hostname_for(&s, &elsewhere), None);
        // Not ready: the name still travels with the address.
        let mut unready = named(Some("db-0"), Some("web"));
        unready.status.as_mut().expect("status").conditions[0].status = false.into();
        let out = subsets(&s, &[&unready], all_ready);
        assert_eq!(
            out[0].not_ready_addresses[0].hostname.as_deref(),
            Some("db-0")
        );
    }

    #[test]
    fn desired_carries_the_service_labels_and_differs_only_on_change() {
        let s = service(serde_json::json!([{"port": 80}]));
        let p = pod("a", "n1", "10.0.0.2", true, &[]);
        let want = desired(&s, &[&p], all_ready);
        assert_eq!(want.metadata.name.as_deref(), Some("web"));
        assert_eq!(
            want.metadata.labels.get("team").map(String::as_str),
            Some("a")
        );
        assert!(differs(None, &want));
        let mut stored = want.clone();
        stored.metadata.resource_version = Some("7".into());
        stored.metadata.uid = Some("u".into());
        assert!(!differs(Some(&stored), &want));
        let empty = desired(&s, &[], all_ready);
        assert!(empty.subsets.is_empty());
        assert!(differs(Some(&stored), &empty));
        assert!(!managed(&Service::default()));
        let mut alias = s.clone();
        alias.spec.type_ = Some(ServiceType::ExternalName);
        alias.spec.external_name = Some("db.example.test".into());
        assert!(!managed(&alias), "an ExternalName Service has no endpoints");
    }
}
