//! Services (with the addresses of their Endpoints object) and Endpoints.

use jotasu_api::kinds::service::{EndpointAddress, ServiceType};
use jotasu_api::{Endpoints, IntOrString, Service};

use super::writer::{NONE, Writer};
use crate::table::{endpoints_of_port, format_labels, service_type};

/// A Service; `endpoints` is its Endpoints object, if there is one.
pub fn service(s: &Service, endpoints: Option<&Endpoints>) -> String {
    let mut w = Writer::default();
    w.name(&s.metadata);
    w.labels_annotations(&s.metadata);
    w.field(0, "Selector", format_labels(&s.spec.selector));
    w.field(0, "Type", service_type(s.spec.type_()));
    let ip = s.spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty());
    w.field(0, "IP", ip.unwrap_or(NONE));
    if !s.spec.external_ips.is_empty() {
        w.field(0, "External IPs", s.spec.external_ips.join(","));
    }
    if s.spec.type_() == ServiceType::ExternalName {
        let name = s.spec.external_name.as_deref().filter(|n| !n.is_empty());
        w.field(0, "External Name", name.unwrap_or(NONE));
    }
    for p in &s.spec.ports {
        let name = p
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or("<unset>");
        let protocol = p.protocol.unwrap_or_default();
        w.field(0, "Port", format!("{name}\t{}/{protocol}", p.port));
        let target = match &p.target_port {
            Some(IntOrString::String(t)) => t.clone(),
            Some(IntOrString::Int(t)) => t.to_string(),
            None => p.port.to_string(),
        };
        w.field(0, "TargetPort", format!("{target}/{protocol}"));
        if let Some(node_port) = p.node_port.filter(|n| *n > 0) {
            w.field(0, "NodePort", format!("{name}\t{node_port}/{protocol}"));
        }
        let addresses = endpoints.map_or_else(
            || NONE.to_owned(),
            |e| endpoints_of_port(e, Some(p.name.as_deref().unwrap_or(""))),
        );
        w.field(0, "Endpoints", addresses);
    }
    let affinity = s.spec.session_affinity.unwrap_or_default();
    w.field(0, "Session Affinity", format!("{affinity:?}"));
    if let Some(policy) = s.spec.external_traffic_policy {
        w.field(0, "External Traffic Policy", format!("{policy:?}"));
    }
    w.finish()
}

fn ips(addresses: &[EndpointAddress]) -> String {
    if addresses.is_empty() {
        return NONE.to_owned();
    }
    addresses
        .iter()
        .map(|a| a.ip.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// An Endpoints object: each subset's ready and not-ready addresses and ports.
pub fn endpoints(e: &Endpoints) -> String {
    let mut w = Writer::default();
    w.name(&e.metadata);
    w.labels_annotations(&e.metadata);
    w.line(0, "Subsets:");
    for subset in &e.subsets {
        w.field(1, "Addresses", ips(&subset.addresses));
        w.field(1, "NotReadyAddresses", ips(&subset.not_ready_addresses));
        if subset.ports.is_empty() {
            w.field(1, "Ports", NONE);
        } else {
            w.line(1, "Ports:");
            let rows: Vec<Vec<String>> = subset
                .ports
                .iter()
                .map(|p| {
                    vec![
                        p.name.clone().unwrap_or_else(|| "<unset>".into()),
                        p.port.to_string(),
                        p.protocol.unwrap_or_default().to_string(),
                    ]
                })
                .collect();
            w.table(2, &["Name", "Port", "Protocol"], &rows);
        }
        w.blank();
    }
    w.finish()
}

/// An EndpointSlice's page: address type, ports, each endpoint with its
/// conditions, node and pod.
pub fn endpoint_slice(e: &jotasu_api::EndpointSlice) -> String {
    let mut w = Writer::default();
    w.name(&e.metadata);
    w.labels_annotations(&e.metadata);
    w.field(0, "AddressType", &e.address_type);
    if e.ports.is_empty() {
        w.field(0, "Ports", NONE);
    } else {
        w.line(0, "Ports:");
        let rows: Vec<Vec<String>> = e
            .ports
            .iter()
            .map(|p| {
                vec![
                    p.name.clone().unwrap_or_else(|| "<unset>".into()),
                    p.port.map_or_else(|| "<unset>".into(), |n| n.to_string()),
                    p.protocol.unwrap_or_default().to_string(),
                ]
            })
            .collect();
        w.table(1, &["Name", "Port", "Protocol"], &rows);
    }
    w.line(0, "Endpoints:");
    for end in &e.endpoints {
        w.line(1, format!("- Addresses:  {}", end.addresses.join(",")));
        let c = &end.conditions;
        let flag = |v: Option<bool>| v.map_or_else(|| "<unset>".to_owned(), |b| b.to_string());
        w.field(2, "Conditions", "");
        w.field(3, "Ready", flag(c.ready));
        w.field(3, "Serving", flag(c.serving));
        w.field(3, "Terminating", flag(c.terminating));
        w.field(2, "Hostname", end.hostname.as_deref().unwrap_or(NONE));
        if let Some(r) = &end.target_ref {
            w.field(
                2,
                "TargetRef",
                format!(
                    "{}/{}",
                    r.kind.as_deref().unwrap_or(""),
                    r.name.as_deref().unwrap_or("")
                ),
            );
        }
        w.field(2, "NodeName", end.node_name.as_deref().unwrap_or(NONE));
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn service_with_endpoints() {
        let s: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "nginx", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.12", "selector": {"app": "nginx"},
                     "sessionAffinity": "ClientIP",
                     "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30080}]}
        }))
        .unwrap();
        let e: Endpoints = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "nginx", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "10.244.1.5"}, {"ip": "10.244.2.6"}],
                         "ports": [{"name": "http", "port": 80}]}]
        }))
        .unwrap();
        let text = service(&s, Some(&e));
        for want in [
            "Selector:          app=nginx\n",
            "Type:              NodePort\n",
            "IP:                10.96.0.12\n",
            "Port:              http  80/TCP\n",
            "TargetPort:        http/TCP\n",
            "NodePort:          http  30080/TCP\n",
            "Endpoints:         10.244.1.5:80,10.244.2.6:80\n",
            "Session Affinity:  ClientIP\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(service(&s, None).contains("Endpoints:         <none>\n"));
        let text = endpoints(&e);
        assert!(
            text.contains("  Addresses:          10.244.1.5,10.244.2.6\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "    Name  Port  Protocol\n    ----  ----  --------\n    http  80    TCP\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn external_name_service() {
        let s: Service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "db.example.test"}
        }))
        .unwrap();
        let text = service(&s, None);
        for want in [
            "Type:              ExternalName\n",
            "IP:                <none>\n",
            "External Name:     db.example.test\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
