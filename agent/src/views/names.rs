//! Names for what the data plane holds as numbers: a frontend's Service
//! (`namespace/name:port`), an address's pod, a cgroup's pod, an underlay
//! address's node. Built from the agent's view (its pods, every Service,
//! every Endpoints with their target pods, every Node); pure.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use jotasu_ebpf::Frontend;

use crate::external::Host;
use crate::watch::ClusterView;

/// What names the view gives to the data plane's numbers.
#[derive(Debug, Clone, Default)]
pub struct Names {
    services: BTreeMap<Frontend, String>,
    pods: HashMap<Ipv4Addr, String>,
    pods_by_uid: HashMap<String, String>,
    nodes: HashMap<Ipv4Addr, String>,
}

/// `namespace/name`.
fn qualified(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

impl Names {
    /// The names `view` gives; `host` adds the node's external frontends
    /// (node ports, external IPs) to the Services'.
    pub fn of(view: &ClusterView, host: Option<&Host>) -> Self {
        let mut me = Self::default();
        for ((ns, name), svc) in &view.services {
            for s in crate::datapath::services_of(svc, None, host) {
                let port = svc
                    .spec
                    .ports
                    .iter()
                    .find(|p| {
                        i64::from(p.port) == i64::from(s.frontend.port)
                            || p.node_port.map(i64::from) == Some(i64::from(s.frontend.port))
                    })
                    .and_then(|p| p.name.clone())
                    .unwrap_or_else(|| s.frontend.port.to_string());
                me.services
                    .entry(s.frontend)
                    .or_insert_with(|| format!("{}:{port}", qualified(ns, name)));
            }
        }
        for e in view.endpoints.values() {
            for a in e.subsets.iter().flat_map(|s| &s.addresses) {
                let (Ok(ip), Some(t)) = (a.ip.parse::<Ipv4Addr>(), &a.target_ref) else {
                    continue;
                };
                if t.kind.as_deref().is_none_or(|k| k == "Pod")
                    && let (Some(ns), Some(name)) = (&t.namespace, &t.name)
                {
                    me.pods.insert(ip, qualified(ns, name));
                }
            }
        }
        for ((ns, name), pod) in &view.pods {
            let id = qualified(ns, name);
            if let Some(ip) = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
            {
                me.pods.insert(ip, id.clone());
            }
            if let Some(uid) = &pod.metadata.uid {
                me.pods_by_uid.insert(uid.clone(), id);
            }
        }
        for (name, node) in &view.nodes {
            if let Some(ip) = crate::overlay::tunnel_of(node).map(|(_, ip)| ip) {
                me.nodes.insert(ip, name.clone());
            }
        }
        me
    }

    /// The Service a frontend belongs to (`namespace/name:port`).
    pub fn service(&self, frontend: &Frontend) -> Option<&str> {
        self.services.get(frontend).map(String::as_str)
    }

    /// The frontends of Service `namespace/name` (every port).
    pub fn frontends_of(&self, namespace: &str, name: &str) -> Vec<Frontend> {
        let prefix = format!("{}:", qualified(namespace, name));
        self.services
            .iter()
            .filter(|(_, s)| s.starts_with(&prefix))
            .map(|(f, _)| *f)
            .collect()
    }

    /// The pod with address `ip` (`namespace/name`).
    pub fn pod(&self, ip: Ipv4Addr) -> Option<&str> {
        self.pods.get(&ip).map(String::as_str)
    }

    /// The pod with uid `uid` (this node's pods).
    pub fn pod_by_uid(&self, uid: &str) -> Option<&str> {
        self.pods_by_uid.get(uid).map(String::as_str)
    }

    /// The node with underlay address `ip`.
    pub fn node(&self, ip: Ipv4Addr) -> Option<&str> {
        self.nodes.get(&ip).map(String::as_str)
    }
}

/// `namespace/name`, or `name` in the default namespace, split.
pub fn split_ref(text: &str) -> (String, String) {
    match text.split_once('/') {
        Some((ns, name)) => (ns.to_owned(), name.to_owned()),
        None => (
            jotasu_api::meta::DEFAULT_NAMESPACE.to_owned(),
            text.to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::Object;

    fn view() -> ClusterView {
        let mut v = ClusterView::default();
        for json in [
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"namespace":"shop","name":"web"},
                "spec":{"clusterIP":"10.96.0.20","ports":[{"name":"http","port":80,"targetPort":8080}]}}"#,
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"namespace":"default","name":"db"},
                "spec":{"clusterIP":"10.96.0.30","ports":[{"port":5432,"protocol":"UDP"}]}}"#,
            r#"{"apiVersion":"v1","kind":"Endpoints","metadata":{"namespace":"shop","name":"web"},
                "subsets":[{"addresses":[{"ip":"10.244.2.7","targetRef":{"kind":"Pod","namespace":"shop","name":"web-1"}}],
                            "ports":[{"name":"http","port":8080}]}]}"#,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"namespace":"shop","name":"client","uid":"u-1"},
                "spec":{"containers":[{"name":"c","image":"busybox"}]},"status":{"podIP":"10.244.1.5"}}"#,
        ] {
            let o = Object::from_value(serde_json::from_str(json).expect(json)).expect(json);
            match o {
                // The view gathers Endpoints from slices; set them directly.
                Object::Endpoints(e) => {
                    v.endpoints.insert(("shop".into(), "web".into()), e);
                }
                o => {
                    v.apply(jotasu_api::client::EventType::Added, o);
                }
            }
        }
        v
    }

    #[test]
    fn frontends_pods_and_uids_get_names() {
        let n = Names::of(&view(), None);
        let web = Frontend::tcp("10.96.0.20".parse().unwrap(), 80);
        assert_eq!(n.service(&web), Some("shop/web:http"));
        let db = Frontend::udp("10.96.0.30".parse().unwrap(), 5432);
        assert_eq!(n.service(&db), Some("default/db:5432"));
        assert_eq!(
            n.service(&Frontend::tcp("10.96.0.30".parse().unwrap(), 5432)),
            None
        );
        assert_eq!(n.frontends_of("shop", "web"), [web]);
        assert_eq!(n.frontends_of("shop", "we"), []);
        assert_eq!(n.pod("10.244.2.7".parse().unwrap()), Some("shop/web-1"));
        assert_eq!(n.pod("10.244.1.5".parse().unwrap()), Some("shop/client"));
        assert_eq!(n.pod("10.244.9.9".parse().unwrap()), None);
        assert_eq!(n.pod_by_uid("u-1"), Some("shop/client"));
    }

    #[test]
    fn refs_default_their_namespace() {
        assert_eq!(split_ref("a/b"), ("a".into(), "b".into()));
        assert_eq!(split_ref("b"), ("default".into(), "b".into()));
    }
}
