//! A Service's endpoints as the agent's consumers read them (one
//! `Endpoints`, subsets by port set), gathered from its EndpointSlices:
//! the agent follows slices, so one endpoint's change costs one slice on
//! the wire, and the data plane and DNS keep their one view per Service.

use std::collections::BTreeMap;

use jotasu_api::kinds::discovery::{EndpointSlicePort, SERVICE_NAME_LABEL};
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

/// The Endpoints of Service `name` in `namespace` from its slices (IPv4
/// ones; an endpoint is ready unless its `ready` condition says false).
pub fn endpoints<'a>(
    namespace: &str,
    name: &str,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Endpoints {
    let mut by_ports: BTreeMap<Vec<EndpointSlicePort>, EndpointSubset> = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let mut key = slice.ports.clone();
        key.sort();
        let subset = by_ports.entry(key).or_insert_with(|| EndpointSubset {
            ports: slice.ports.iter().filter_map(port).collect(),
            ..EndpointSubset::default()
        });
        for e in &slice.endpoints {
            for ip in &e.addresses {
                let address = EndpointAddress {
                    ip: ip.clone(),
                    hostname: e.hostname.clone(),
                    node_name: e.node_name.clone(),
                    target_ref: e.target_ref.clone(),
                };
                if e.conditions.is_ready() {
                    subset.addresses.push(address);
                } else {
                    subset.not_ready_addresses.push(address);
                }
            }
        }
    }
    let mut subsets: Vec<EndpointSubset> = by_ports
        .into_values()
        .filter(|s| !s.addresses.is_empty() || !s.not_ready_addresses.is_empty())
        .collect();
    for s in &mut subsets {
        s.addresses.sort_by(|a, b| a.ip.cmp(&b.ip));
        s.not_ready_addresses.sort_by(|a, b| a.ip.cmp(&b.ip));
    }
    Endpoints {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        subsets,
        ..Endpoints::default()
    }
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
        let e = endpoints("d", "web", [&a, &b, &c]);
        assert_eq!(e.subsets.len(), 2);
        let s = &e.subsets[0];
        assert_eq!(s.ports[0].port, 8080);
        let ips: Vec<&str> = s.addresses.iter().map(|a| a.ip.as_str()).collect();
        assert_eq!(ips, ["10.244.1.3", "10.244.2.2"]);
        assert_eq!(s.not_ready_addresses[0].ip, "10.244.1.2");
        assert_eq!(s.addresses[1].node_name.as_deref(), Some("n2"));
        assert_eq!(e.subsets[1].addresses[0].ip, "10.244.3.2");
        // No slices (or only empty ones): no subsets.
        let empty = slice("web-d", "web", 8080, json!([]));
        assert!(endpoints("d", "web", [&empty]).subsets.is_empty());
    }
}
