//! The Service environment variables the kubelet gives every container
//! (`enableServiceLinks`, on by default): `<NAME>_SERVICE_HOST`,
//! `<NAME>_SERVICE_PORT[_<PORT NAME>]` and the Docker-link variables
//! (`<NAME>_PORT`, `<NAME>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]`), for
//! the Services of the pod's namespace that have a cluster IP, and always
//! for `kubernetes` in `default`.

use std::collections::BTreeMap;

use jotasu_api::Service;
use jotasu_api::kinds::pod::Protocol;
use jotasu_api::meta::DEFAULT_NAMESPACE;

/// The Service always announced, from the `default` namespace.
const MASTER_SERVICE: &str = "kubernetes";

/// `my-svc` → `MY_SVC`.
fn env_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

fn cluster_ip(s: &Service) -> Option<&str> {
    s.spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
}

/// The variables for `services` seen from a pod in `namespace`, sorted by
/// Service name (the order carries no meaning: container variables come
/// first and win).
pub fn service_env<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    namespace: &str,
) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for s in services {
        let ns = s.metadata.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
        let name = s.metadata.name();
        if cluster_ip(s).is_none() || s.spec.ports.is_empty() || name.is_empty() {
            continue;
        }
        if ns == DEFAULT_NAMESPACE && name == MASTER_SERVICE {
            chosen.entry(name).or_insert(s);
        } else if ns == namespace {
            chosen.insert(name, s);
        }
    }
    let mut out = Vec::new();
    for (name, s) in chosen {
        let Some(ip) = cluster_ip(s) else { continue };
        let prefix = env_name(name);
        out.push((format!("{prefix}_SERVICE_HOST"), ip.to_owned()));
        let first = s.spec.ports[0].port.to_string();
        out.push((format!("{prefix}_SERVICE_PORT"), first));
        for p in &s.spec.ports {
            if let Some(pn) = p.name.as_deref().filter(|n| !n.is_empty()) {
                out.push((
                    format!("{prefix}_SERVICE_PORT_{}", env_name(pn)),
                    p.port.to_string(),
                ));
            }
        }
        for (i, p) in s.spec.ports.iter().enumerate() {
            let proto = p.protocol.unwrap_or(Protocol::Tcp).to_string();
            let lower = proto.to_lowercase();
            let url = format!("{lower}://{ip}:{}", p.port);
            if i == 0 {
                out.push((format!("{prefix}_PORT"), url.clone()));
            }
            let pp = format!("{prefix}_PORT_{}_{proto}", p.port);
            out.push((format!("{pp}_PROTO"), lower));
            out.push((format!("{pp}_PORT"), p.port.to_string()));
            out.push((format!("{pp}_ADDR"), ip.to_owned()));
            out.push((pp, url));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use jotasu_api::kinds::service::ServicePort;
    use jotasu_api::meta::ObjectMeta;

    use super::*;

    fn svc(
        ns: &str,
        name: &str,
        ip: Option<&str>,
        ports: &[(Option<&str>, i32, Option<Protocol>)],
    ) -> Service {
        let mut s = Service {
            metadata: ObjectMeta::named(name),
            ..Service::default()
        };
        s.metadata.namespace = Some(ns.into());
        s.spec.cluster_ip = ip.map(str::to_owned);
        s.spec.ports = ports
            .iter()
            .map(|(n, p, proto)| ServicePort {
                name: n.map(str::to_owned),
                port: *p,
                protocol: *proto,
                ..ServicePort::default()
            })
            .collect();
        s
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn kubelet_variables() {
        let services = [svc(
            "shop",
            "my-web",
            Some("10.96.0.20"),
            &[
                (Some("http"), 80, None),
                (Some("dns-udp"), 53, Some(Protocol::Udp)),
            ],
        )];
        let env = service_env(&services, "shop");
        let want = [
            ("MY_WEB_SERVICE_HOST", "10.96.0.20"),
            ("MY_WEB_SERVICE_PORT", "80"),
            ("MY_WEB_SERVICE_PORT_HTTP", "80"),
            ("MY_WEB_SERVICE_PORT_DNS_UDP", "53"),
            ("MY_WEB_PORT", "tcp://10.96.0.20:80"),
            ("MY_WEB_PORT_80_TCP", "tcp://10.96.0.20:80"),
            ("MY_WEB_PORT_80_TCP_PROTO", "tcp"),
            ("MY_WEB_PORT_80_TCP_PORT", "80"),
            ("MY_WEB_PORT_80_TCP_ADDR", "10.96.0.20"),
            ("MY_WEB_PORT_53_UDP", "udp://10.96.0.20:53"),
            ("MY_WEB_PORT_53_UDP_PROTO", "udp"),
        ];
        for (k, v) in want {
            assert_eq!(get(&env, k), Some(v), "{k}");
        }
        assert_eq!(env.len(), 4 + 1 + 4 * 2);
    }

    #[test]
    fn which_services() {
        let services = [
            svc(
                "default",
                "kubernetes",
                Some("10.96.0.1"),
                &[(Some("https"), 443, None)],
            ),
            svc(
                "other",
                "elsewhere",
                Some("10.96.0.30"),
                &[(None, 80, None)],
            ),
            svc("shop", "headless", Some("None"), &[(None, 80, None)]),
            svc("shop", "pending", Some(""), &[(None, 80, None)]),
            svc("shop", "noports", Some("10.96.0.40"), &[]),
            svc("shop", "db", Some("10.96.0.50"), &[(None, 5432, None)]),
        ];
        let env = service_env(&services, "shop");
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get(&env, "DB_SERVICE_PORT"), Some("5432"));
        for absent in [
            "ELSEWHERE_SERVICE_HOST",
            "HEADLESS_SERVICE_HOST",
            "PENDING_SERVICE_HOST",
            "NOPORTS_SERVICE_HOST",
        ] {
            assert_eq!(get(&env, absent), None, "{absent}");
        }
        // A pod in default sees its own namespace's services too.
        let env = service_env(&services, "default");
        assert_eq!(get(&env, "KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(get(&env, "DB_SERVICE_HOST"), None);
    }
}
