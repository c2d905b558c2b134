//! Services (`NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE`, wide:
//! `SELECTOR`) and Endpoints (`NAME ENDPOINTS AGE`).

use jotasu_api::kinds::service::{ServicePort, ServiceType};
use jotasu_api::{Endpoints, Service};

use super::{NONE, format_labels, join_or_none};

pub(super) const SERVICE_COLUMNS: &[&str] =
    &["TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"];
pub(super) const SERVICE_WIDE: &[&str] = &["SELECTOR"];
pub(super) const ENDPOINTS_COLUMNS: &[&str] = &["ENDPOINTS", "AGE"];
/// `get endpointslices` columns after NAME, as kubectl's.
pub(super) const SLICE_COLUMNS: &[&str] = &["ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"];

/// How many endpoints the table lists before `+ N more...`.
const MAX_ENDPOINTS: usize = 3;

/// `ClusterIP`, `NodePort`, `LoadBalancer` or `ExternalName`.
pub fn type_name(t: ServiceType) -> &'static str {
    match t {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
        ServiceType::ExternalName => "ExternalName",
    }
}

/// The EXTERNAL-IP column, as kubectl shows it: an ExternalName Service's
/// external name; a LoadBalancer's ingress addresses and external IPs,
/// `<pending>` until it has one; other Services' external IPs; `<none>`.
fn external_ip(s: &Service) -> String {
    let external = s.spec.external_ips.iter().map(String::as_str);
    match (s.spec.type_(), s.spec.external_name.as_deref()) {
        (ServiceType::ExternalName, Some(name)) if !name.is_empty() => name.to_owned(),
        (ServiceType::LoadBalancer, _) => {
            let ingress = s.status.as_ref().and_then(|st| st.load_balancer.as_ref());
            let addresses: Vec<&str> = ingress
                .into_iter()
                .flat_map(|lb| &lb.ingress)
                .filter_map(|i| i.ip.as_deref().or(i.hostname.as_deref()))
                .chain(external)
                .collect();
            if addresses.is_empty() {
                "<pending>".to_owned()
            } else {
                addresses.join(",")
            }
        }
        (ServiceType::ExternalName, _) => NONE.to_owned(),
        _ => join_or_none(external.map(str::to_owned), ","),
    }
}

/// `80/TCP`, or `80:30080/TCP` with a node port.
pub fn port_text(p: &ServicePort) -> String {
    let protocol = p.protocol.unwrap_or_default();
    match p.node_port.filter(|n| *n > 0) {
        Some(node) => format!("{}:{node}/{protocol}", p.port),
        None => format!("{}/{protocol}", p.port),
    }
}

pub(super) fn service_row(s: &Service, age: String) -> Vec<String> {
    vec![
        type_name(s.spec.type_()).to_owned(),
        s.spec
            .cluster_ip
            .clone()
            .filter(|ip| !ip.is_empty())
            .unwrap_or_else(|| NONE.into()),
        external_ip(s),
        join_or_none(s.spec.ports.iter().map(port_text), ","),
        age,
    ]
}

pub(super) fn service_wide(s: &Service) -> Vec<String> {
    vec![format_labels(&s.spec.selector)]
}

/// Ready `ip:port` pairs, at most three, then `+ N more...`; `<none>`.
pub fn endpoints_text(e: &Endpoints) -> String {
    endpoints_of_port(e, None)
}

/// Like [`endpoints_text`], only the ports named `port` (unnamed: `""`).
pub fn endpoints_of_port(e: &Endpoints, port: Option<&str>) -> String {
    let mut all = Vec::new();
    for subset in &e.subsets {
        if subset.ports.is_empty() {
            all.extend(subset.addresses.iter().map(|a| a.ip.clone()));
            continue;
        }
        let wanted = |p: &&jotasu_api::kinds::service::EndpointPort| {
            port.is_none_or(|name| p.name.as_deref().unwrap_or("") == name)
        };
        for port in subset.ports.iter().filter(wanted) {
            for a in &subset.addresses {
                all.push(if a.ip.contains(':') {
                    format!("[{}]:{}", a.ip, port.port)
                } else {
                    format!("{}:{}", a.ip, port.port)
                });
            }
        }
    }
    if all.len() > MAX_ENDPOINTS {
        let more = all.len() - MAX_ENDPOINTS;
        all.truncate(MAX_ENDPOINTS);
        format!("{} + {more} more...", all.join(","))
    } else {
        join_or_none(all, ",")
    }
}

/// An EndpointSlice's row: its ports' numbers (`<unset>` without), its
/// addresses (at most three, then `+ N more...`).
pub(super) fn slice_row(e: &jotasu_api::EndpointSlice, age: String) -> Vec<String> {
    let ports: Vec<String> = e
        .ports
        .iter()
        .map(|p| {
            p.port
                .map_or_else(|| "<unset>".to_owned(), |n| n.to_string())
        })
        .collect();
    let mut addresses: Vec<String> = e
        .endpoints
        .iter()
        .flat_map(|end| end.addresses.iter().cloned())
        .collect();
    let more = addresses.len().saturating_sub(MAX_ENDPOINTS);
    addresses.truncate(MAX_ENDPOINTS);
    let mut endpoints = join_or_none(addresses, ",");
    if more > 0 {
        endpoints = format!("{endpoints} + {more} more...");
    }
    vec![
        e.address_type.clone(),
        if ports.is_empty() {
            "<unset>".to_owned()
        } else {
            ports.join(",")
        },
        endpoints,
        age,
    ]
}

pub(super) fn endpoints_row(e: &Endpoints, age: String) -> Vec<String> {
    vec![endpoints_text(e), age]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{CREATED, NOW, object};
    use super::super::{TableOptions, render};
    use super::*;
    use jotasu_api::Kind;
    use serde_json::json;

    #[test]
    fn service_columns() {
        let s = object(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "nginx", "creationTimestamp": CREATED},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.12", "selector": {"app": "nginx"},
                     "ports": [{"name": "http", "port": 80, "nodePort": 30080},
                               {"name": "dns", "port": 53, "protocol": "UDP"}]}
        }));
        let opts = TableOptions {
            wide: true,
            now: NOW,
            ..TableOptions::default()
        };
        assert_eq!(
            render(Kind::Service, &[s], &opts),
            "NAME    TYPE       CLUSTER-IP   EXTERNAL-IP   PORT(S)               AGE   SELECTOR\n\
             nginx   NodePort   10.96.0.12   <none>        80:30080/TCP,53/UDP   5s    app=nginx\n"
        );
    }

    #[test]
    fn an_external_name_service_shows_its_name_and_no_cluster_ip() {
        let s = object(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "db", "creationTimestamp": CREATED},
            "spec": {"type": "ExternalName", "externalName": "db.example.test"}
        }));
        let opts = TableOptions {
            now: NOW,
            ..TableOptions::default()
        };
        assert_eq!(
            render(Kind::Service, &[s], &opts),
            "NAME   TYPE           CLUSTER-IP   EXTERNAL-IP       PORT(S)   AGE\n\
             db     ExternalName   <none>       db.example.test   <none>    5s\n"
        );
    }

    #[test]
    fn a_load_balancer_is_pending_until_it_has_an_address() {
        let lb = |status: serde_json::Value| {
            object(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "creationTimestamp": CREATED},
                "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.20",
                         "ports": [{"port": 80, "nodePort": 31000}]},
                "status": status
            }))
        };
        let opts = TableOptions {
            now: NOW,
            ..TableOptions::default()
        };
        assert_eq!(
            render(Kind::Service, &[lb(json!({}))], &opts),
            "NAME   TYPE           CLUSTER-IP   EXTERNAL-IP   PORT(S)        AGE\n\
             web    LoadBalancer   10.96.0.20   <pending>     80:31000/TCP   5s\n"
        );
        let given = lb(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}));
        assert!(render(Kind::Service, &[given], &opts).contains(" 192.0.2.7 "));
    }

    #[test]
    fn external_ips_show_as_kubectl_shows_them() {
        let s = object(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "creationTimestamp": CREATED},
            "spec": {"clusterIP": "10.96.0.21", "externalIPs": ["192.0.2.10", "192.0.2.11"],
                     "ports": [{"port": 80}]}
        }));
        let opts = TableOptions {
            now: NOW,
            ..TableOptions::default()
        };
        assert_eq!(
            render(Kind::Service, &[s], &opts),
            "NAME   TYPE        CLUSTER-IP   EXTERNAL-IP             PORT(S)   AGE\n\
             web    ClusterIP   10.96.0.21   192.0.2.10,192.0.2.11   80/TCP    5s\n"
        );
    }

    #[test]
    fn slice_columns() {
        let slice = object(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc12", "creationTimestamp": CREATED},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [{"addresses": ["10.244.1.2"]}, {"addresses": ["10.244.1.3"]},
                          {"addresses": ["10.244.2.2"]}, {"addresses": ["10.244.2.3"]}]
        }));
        let opts = TableOptions {
            now: NOW,
            ..TableOptions::default()
        };
        assert_eq!(
            render(Kind::EndpointSlice, &[slice], &opts),
            "NAME        ADDRESSTYPE   PORTS   ENDPOINTS                                      AGE\n\
             web-abc12   IPv4          8080    10.244.1.2,10.244.1.3,10.244.2.2 + 1 more...   5s\n"
        );
    }

    #[test]
    fn endpoints_column() {
        let e = |subsets: serde_json::Value| -> Endpoints {
            Endpoints::try_from(object(json!({
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "web"}, "subsets": subsets
            })))
            .unwrap()
        };
        assert_eq!(endpoints_text(&e(json!([]))), "<none>");
        assert_eq!(
            endpoints_text(&e(json!([{"addresses": [{"ip": "10.244.1.5"}],
                "notReadyAddresses": [{"ip": "10.244.2.7"}], "ports": [{"port": 6379}]}]))),
            "10.244.1.5:6379"
        );
        assert_eq!(
            endpoints_text(&e(json!([{"addresses": [
                {"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}, {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}],
                "ports": [{"port": 80}, {"port": 443}]}]))),
            "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 5 more..."
        );
    }
}
