//! A Service's endpoints as the agent's consumers read them (one
//! `Endpoints`, subsets by port set), gathered from its EndpointSlices:
//! the agent follows slices, so one endpoint's change costs one slice on
//! the wire, and the data plane and DNS keep their one view per Service.
//!
//! The gathered `addresses` are the backends new flows may go to, chosen
//! as kube-proxy chooses them ([`select`]): the ready endpoints; for a
//! Service port with no ready endpoint at all, its serving terminating
//! ones (Kubernetes' ProxyTerminatingEndpoints), so a Service whose every
//! pod is being replaced keeps answering while they drain. A terminating
//! endpoint otherwise gets no new flows; the flows it has keep their
//! translation in the data plane's conntrack (and connected sockets keep
//! the address they were given) until they end. Everything else is
//! `notReadyAddresses`.

use std::collections::{BTreeMap, BTreeSet};

use jotasu_api::kinds::discovery::{Endpoint, EndpointSlicePort, SERVICE_NAME_LABEL};
use jotasu_api::kinds::pod::Protocol;
use jotasu_api::kinds::service::{EndpointAddress, EndpointPort, EndpointSubset};
use jotasu_api::{EndpointSlice, Endpoints, ObjectMeta};

/// The Service a slice belongs to (`kubernetes.io/service-name`).
pub fn service_of(slice: &EndpointSlice) -> Option<&str> {
    slice
        .metadata
        .labels
        .get(SERVICE_NAME_LABEL)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
}

fn port(p: &EndpointSlicePort) -> Option<EndpointPort> {
    Some(EndpointPort {
        name: p.name.clone().filter(|n| !n.is_empty()),
        port: p.port?,
        protocol: p.protocol,
        app_protocol: p.app_protocol.clone(),
    })
}

/// One endpoint address with the conditions that choose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The address.
    pub address: EndpointAddress,
    /// `ready` (absent: true).
    pub ready: bool,
    /// `serving` (absent: as `ready`, which is what Kubernetes' consumers read).
    pub serving: bool,
    /// `terminating` (absent: false).
    pub terminating: bool,
}

impl Candidate {
    fn of(e: &Endpoint, ip: &str) -> Self {
        let c = &e.conditions;
        let ready = c.is_ready();
        Self {
            address: EndpointAddress {
                ip: ip.to_owned(),
                hostname: e.hostname.clone(),
                node_name: e.node_name.clone(),
                target_ref: e.target_ref.clone(),
            },
            ready,
            serving: c.serving.unwrap_or(ready),
            terminating: c.terminating.unwrap_or(false),
        }
    }
}

/// Endpoints sharing a port set, as the slices list them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortGroup {
    /// The ports.
    pub ports: Vec<EndpointPort>,
    /// The endpoints, sorted by address.
    pub candidates: Vec<Candidate>,
}

/// The endpoints of a Service's slices (IPv4 ones), by port set.
pub fn port_groups<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> Vec<PortGroup> {
    let mut by_ports: BTreeMap<Vec<EndpointSlicePort>, PortGroup> = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let mut key = slice.ports.clone();
        key.sort();
        let group = by_ports.entry(key).or_insert_with(|| PortGroup {
            ports: slice.ports.iter().filter_map(port).collect(),
            ..PortGroup::default()
        });
        for e in &slice.endpoints {
            for ip in &e.addresses {
                group.candidates.push(Candidate::of(e, ip));
            }
        }
    }
    by_ports
        .into_values()
        .filter(|g| !g.candidates.is_empty())
        .map(|mut g| {
            g.candidates.sort_by(|a, b| a.address.ip.cmp(&b.address.ip));
            g
        })
        .collect()
}

/// A Service port as consumers match it: name and protocol.
type PortId = (Option<String>, Protocol);

fn port_id(p: &EndpointPort) -> PortId {
    (p.name.clone(), p.protocol.unwrap_or_default())
}

/// Which endpoints get new flows, per port: the ready ones; where a port
/// (by name and protocol) has no ready endpoint in any group, its serving
/// terminating ones. A group whose ports only partly fall back is split:
/// the fallback ports get a subset of their own, so each port's backends
/// are exactly its own choice.
pub fn select(groups: &[PortGroup]) -> Vec<EndpointSubset> {
    let with_ready: BTreeSet<PortId> = groups
        .iter()
        .filter(|g| g.candidates.iter().any(|c| c.ready))
        .flat_map(|g| g.ports.iter().map(port_id))
        .collect();
    let mut out = Vec::new();
    for g in groups {
        let (ready, rest): (Vec<&Candidate>, Vec<&Candidate>) =
            g.candidates.iter().partition(|c| c.ready);
        let fallback_ports: Vec<EndpointPort> = g
            .ports
            .iter()
            .filter(|p| !with_ready.contains(&port_id(p)))
            .cloned()
            .collect();
        let fallback: Vec<EndpointAddress> = rest
            .iter()
            .filter(|c| c.serving && c.terminating)
            .map(|c| c.address.clone())
            .collect();
        let addresses = |list: &[&Candidate]| list.iter().map(|c| c.address.clone()).collect();
        if fallback_ports.is_empty() || fallback.is_empty() {
            out.push(EndpointSubset {
                addresses: addresses(&ready),
                not_ready_addresses: addresses(&rest),
                ports: g.ports.clone(),
            });
        } else if fallback_ports.len() == g.ports.len() {
            let promoted: Vec<&Candidate> = rest
                .iter()
                .copied()
                .filter(|c| !(c.serving && c.terminating))
                .collect();
            out.push(EndpointSubset {
                addresses: fallback,
                not_ready_addresses: addresses(&promoted),
                ports: g.ports.clone(),
            });
        } else {
            out.push(EndpointSubset {
                addresses: addresses(&ready),
                not_ready_addresses: addresses(&rest),
                ports: g.ports.clone(),
            });
            out.push(EndpointSubset {
                addresses: fallback,
                not_ready_addresses: Vec::new(),
                ports: fallback_ports,
            });
        }
    }
    out
}

/// A Service's endpoints as the agent keeps them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Gathered {
    /// The subsets: `addresses` are the backends new flows may go to ([`select`]).
    pub endpoints: Endpoints,
    /// The addresses of terminating endpoints (never handed out by DNS).
    pub terminating: BTreeSet<String>,
}

/// The endpoints of Service `name` in `namespace` from its slices.
pub fn gather<'a>(
    namespace: &str,
    name: &str,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Gathered {
    let groups = port_groups(slices);
    let terminating = groups
        .iter()
        .flat_map(|g| &g.candidates)
        .filter(|c| c.terminating)
        .map(|c| c.address.ip.clone())
        .collect();
    Gathered {
        endpoints: Endpoints {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..ObjectMeta::default()
            },
            subsets: select(&groups),
            ..Endpoints::default()
        },
        terminating,
    }
}

/// The endpoints of `slice` for pod `uid`'s address `ip` (an endpoint that
/// names another pod is another pod's, even at the same address).
fn endpoints_of<'a>(
    slice: &'a EndpointSlice,
    ip: &'a str,
    uid: &'a str,
) -> impl Iterator<Item = &'a Endpoint> {
    slice.endpoints.iter().filter(move |e| {
        e.addresses.iter().any(|a| a == ip)
            && e.target_ref
                .as_ref()
                .and_then(|r| r.uid.as_deref())
                .is_none_or(|u| u == uid)
    })
}

/// Whether a slice lists pod `uid`'s address `ip`, in any condition.
pub fn lists(slice: &EndpointSlice, ip: &str, uid: &str) -> bool {
    endpoints_of(slice, ip, uid).next().is_some()
}

/// Whether a slice still offers pod `uid`'s address `ip` to new flows: it
/// lists it and not as terminating. A stopping pod waits until no slice does.
pub fn offers(slice: &EndpointSlice, ip: &str, uid: &str) -> bool {
    endpoints_of(slice, ip, uid).any(|e| !e.conditions.terminating.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(name: &str, service: &str, port: i32, endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name, "namespace": "d", "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": endpoints,
        }))
        .expect("slice")
    }

    fn endpoints<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> Endpoints {
        gather("d", "web", slices).endpoints
    }

    fn ips(list: &[EndpointAddress]) -> Vec<&str> {
        list.iter().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn slices_of_one_service_merge_by_port_set() {
        let a = slice(
            "web-a",
            "web",
            8080,
            json!([{"addresses": ["10.244.1.3"], "conditions": {"ready": true}},
            {"addresses": ["10.244.1.2"], "conditions": {"ready": false}}]),
        );
        let b = slice(
            "web-b",
            "web",
            8080,
            json!([{"addresses": ["10.244.2.2"], "nodeName": "n2"}]),
        );
        let c = slice("web-c", "web", 9090, json!([{"addresses": ["10.244.3.2"]}]));
        assert_eq!(service_of(&a), Some("web"));
        let e = endpoints([&a, &b, &c]);
        assert_eq!(e.subsets.len(), 2);
        let s = &e.subsets[0];
        assert_eq!(s.ports[0].port, 8080);
        assert_eq!(ips(&s.addresses), ["10.244.1.3", "10.244.2.2"]);
        assert_eq!(s.not_ready_addresses[0].ip, "10.244.1.2");
        assert_eq!(s.addresses[1].node_name.as_deref(), Some("n2"));
        assert_eq!(e.subsets[1].addresses[0].ip, "10.244.3.2");
        // No slices (or only empty ones): no subsets.
        let empty = slice("web-d", "web", 8080, json!([]));
        assert!(endpoints([&empty]).subsets.is_empty());
    }

    #[test]
    fn terminating_endpoints_get_no_new_flows_while_a_ready_one_exists() {
        let a = slice(
            "web-a",
            "web",
            8080,
            json!([
                {"addresses": ["10.244.1.2"], "conditions": {"ready": true, "serving": true, "terminating": false}},
                {"addresses": ["10.244.1.3"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.244.1.4"], "conditions": {"ready": false, "serving": false, "terminating": true}}
            ]),
        );
        let g = gather("d", "web", [&a]);
        let s = &g.endpoints.subsets[0];
        assert_eq!(ips(&s.addresses), ["10.244.1.2"]);
        assert_eq!(ips(&s.not_ready_addresses), ["10.244.1.3", "10.244.1.4"]);
        assert_eq!(
            g.terminating.iter().map(String::as_str).collect::<Vec<_>>(),
            ["10.244.1.3", "10.244.1.4"]
        );
    }

    #[test]
    fn when_every_endpoint_terminates_the_serving_ones_take_new_flows() {
        let a = slice(
            "web-a",
            "web",
            8080,
            json!([
                {"addresses": ["10.244.1.3"], "conditions": {"ready": false, "serving": true, "terminating": true}},
                {"addresses": ["10.244.1.4"], "conditions": {"ready": false, "serving": false, "terminating": true}},
                {"addresses": ["10.244.1.5"], "conditions": {"ready": false, "serving": false, "terminating": false}}
            ]),
        );
        let s = &endpoints([&a]).subsets[0];
        assert_eq!(ips(&s.addresses), ["10.244.1.3"]);
        assert_eq!(ips(&s.not_ready_addresses), ["10.244.1.4", "10.244.1.5"]);
        // Ready elsewhere for the same port: no fallback.
        let b = slice(
            "web-b",
            "web",
            8081,
            json!([{"addresses": ["10.244.2.2"], "conditions": {"ready": true}}]),
        );
        let e = endpoints([&a, &b]);
        let backends: Vec<&str> = e.subsets.iter().flat_map(|s| ips(&s.addresses)).collect();
        assert_eq!(backends, ["10.244.2.2"]);
    }

    #[test]
    fn a_port_falls_back_alone_when_its_group_shares_ports() {
        // Group A serves http and admin (all terminating), group B serves
        // http (ready): admin falls back to A's serving endpoints, http
        // stays on B.
        let mut a = slice(
            "web-a",
            "web",
            8080,
            json!([{"addresses": ["10.244.1.3"], "conditions": {"ready": false, "serving": true, "terminating": true}}]),
        );
        a.ports.push(EndpointSlicePort {
            name: Some("admin".into()),
            protocol: Some(Protocol::Tcp),
            port: Some(9090),
            app_protocol: None,
        });
        let b = slice(
            "web-b",
            "web",
            8081,
            json!([{"addresses": ["10.244.2.2"], "conditions": {"ready": true}}]),
        );
        let e = endpoints([&a, &b]);
        let backends = |name: &str| -> Vec<(String, i32)> {
            e.subsets
                .iter()
                .filter_map(|s| {
                    let p = s.ports.iter().find(|p| p.name.as_deref() == Some(name))?;
                    Some(s.addresses.iter().map(move |a| (a.ip.clone(), p.port)))
                })
                .flatten()
                .collect()
        };
        assert_eq!(backends("http"), [("10.244.2.2".to_owned(), 8081)]);
        assert_eq!(backends("admin"), [("10.244.1.3".to_owned(), 9090)]);
    }

    #[test]
    fn a_slice_offers_an_address_until_it_shows_it_terminating() {
        let live = slice(
            "web-a",
            "web",
            8080,
            json!([{"addresses": ["10.244.1.3"], "conditions": {"ready": false},
                    "targetRef": {"kind": "Pod", "name": "p", "uid": "u1"}}]),
        );
        assert!(
            offers(&live, "10.244.1.3", "u1"),
            "not ready is still listed"
        );
        assert!(
            !offers(&live, "10.244.1.3", "u2"),
            "another pod's old address"
        );
        assert!(!offers(&live, "10.244.1.4", "u1"));
        let going = slice(
            "web-a",
            "web",
            8080,
            json!([{"addresses": ["10.244.1.3"], "conditions": {"ready": false, "terminating": true}}]),
        );
        assert!(!offers(&going, "10.244.1.3", "u1"));
        assert!(lists(&going, "10.244.1.3", "u1") && lists(&live, "10.244.1.3", "u1"));
        assert!(!lists(&live, "10.244.1.3", "u2"));
    }
}
