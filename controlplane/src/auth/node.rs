//! The node authorizer and NodeRestriction, as Kubernetes has them: an
//! agent (`system:node:<name>` in `system:nodes`) may read Services,
//! Endpoints, EndpointSlices and Nodes; read its own Pods and the ConfigMaps and Secrets
//! they reference (a list or watch of those only through its node scope);
//! read the PersistentVolumeClaims its Pods reference, the PersistentVolumes
//! bound to those claims, and list the PersistentVolumes pinned to it (its
//! local volumes, through its node scope);
//! write its own Node (never its podCIDR) and the status of its own Pods;
//! delete its own Pods once they stopped; renew its own certificate.
//! Nothing else. The decisions are pure functions of the request and of
//! facts the caller reads from the store ([`Facts`]).

use std::net::Ipv4Addr;

use ipnetwork::Ipv4Network;
use jotasu_api::{Node, Object};

use super::attributes::{Attributes, Decision, verbs};

/// What a decision about a request needs to know from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Nothing: the request alone decides.
    Nothing,
    /// The node the named Pod is bound to.
    PodNode {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// Whether a Pod bound to the node references the named ConfigMap,
    /// Secret or PersistentVolumeClaim.
    Referenced,
    /// Whether the named PersistentVolume is pinned to the node or bound to
    /// a claim a Pod bound to the node references.
    Volume {
        /// The volume's name.
        name: String,
    },
}

/// What the store says about the object a request names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The node the named Pod is bound to (`None`: no such pod, or unbound).
    pub pod_node: Option<String>,
    /// Whether a Pod of the node references the named ConfigMap, Secret or
    /// claim (for a PersistentVolume: it is pinned to the node, or bound to
    /// such a claim).
    pub referenced: bool,
}

/// What `decide` needs read for `attributes`.
pub fn needs(attributes: &Attributes) -> Need {
    let named = attributes.name.is_some();
    match (attributes.resource.as_str(), named) {
        ("pods", true) if attributes.verb != verbs::CREATE => Need::PodNode {
            namespace: attributes.namespace.clone().unwrap_or_default(),
            name: attributes.name.clone().unwrap_or_default(),
        },
        ("configmaps" | "secrets" | "persistentvolumeclaims", true)
            if attributes.verb == verbs::GET =>
        {
            Need::Referenced
        }
        ("persistentvolumes", true) if attributes.verb == verbs::GET => Need::Volume {
            name: attributes.name.clone().unwrap_or_default(),
        },
        _ => Need::Nothing,
    }
}

fn reading(verb: &str) -> bool {
    matches!(verb, verbs::GET | verbs::LIST | verbs::WATCH)
}

fn writing(verb: &str) -> bool {
    matches!(verb, verbs::CREATE | verbs::UPDATE | verbs::PATCH)
}

/// The node authorizer's decision for node `node` asking `attributes`.
/// `scope` is the node scope a list or watch asked for
/// (`ListRequest.node`); `facts` what [`needs`] asked to be read.
pub fn decide(node: &str, attributes: &Attributes, scope: Option<&str>, facts: &Facts) -> Decision {
    let a = attributes;
    let verb = a.verb.as_str();
    let mine = |what: &str| Decision::Allow(format!("node authorizer: {what} of node {node:?}"));
    let deny = |why: String| Decision::Deny(why);
    if a.api_group == "discovery.k8s.io" && a.resource == "endpointslices" && reading(verb) {
        return Decision::Allow("node authorizer: nodes read EndpointSlices".into());
    }
    if !a.api_group.is_empty() && a.resource != "certificatesigningrequests" {
        return Decision::NoOpinion("not something a node does".into());
    }
    match (a.resource.as_str(), a.subresource.as_str()) {
        ("services" | "endpoints", "") if reading(verb) => {
            Decision::Allow("node authorizer: nodes read Services and Endpoints".into())
        }
        ("nodes", "") if reading(verb) => {
            Decision::Allow("node authorizer: nodes read Nodes".into())
        }
        ("nodes", "" | "status") if writing(verb) => match a.name.as_deref() {
            Some(n) if n == node => mine("the Node"),
            _ => deny(format!("a node may change only its own Node ({node:?})")),
        },
        ("pods", "") if matches!(verb, verbs::LIST | verbs::WATCH) => match scope {
            Some(s) if s == node => mine("the pods"),
            _ => deny(format!(
                "a node may list and watch only the pods bound to it (node scope {node:?})"
            )),
        },
        ("configmaps" | "secrets", "") if matches!(verb, verbs::LIST | verbs::WATCH) => match scope
        {
            Some(s) if s == node => mine("the pods' references"),
            _ => deny(format!(
                "a node may list and watch only the {} its pods reference (node scope {node:?})",
                a.resource
            )),
        },
        ("configmaps" | "secrets", "") if verb == verbs::GET => {
            if facts.referenced {
                mine("a pod's reference")
            } else {
                deny(format!(
                    "no pod bound to node {node:?} references this object"
                ))
            }
        }
        ("persistentvolumeclaims", "") if verb == verbs::GET => {
            if facts.referenced {
                mine("a pod's claim")
            } else {
                deny(format!(
                    "no pod bound to node {node:?} references this PersistentVolumeClaim"
                ))
            }
        }
        ("persistentvolumes", "") if verb == verbs::GET => {
            if facts.referenced {
                mine("a volume")
            } else {
                deny(format!(
                    "this PersistentVolume is neither local to node {node:?} nor bound to a claim its pods reference"
                ))
            }
        }
        ("persistentvolumes", "") if verb == verbs::LIST => match scope {
            Some(s) if s == node => mine("the local volumes"),
            _ => deny(format!(
                "a node may list only the PersistentVolumes pinned to it (node scope {node:?})"
            )),
        },
        ("pods", "") if matches!(verb, verbs::GET | verbs::DELETE) => bound(node, facts, verb),
        ("pods", "status") if writing(verb) => bound(node, facts, verb),
        ("certificatesigningrequests", "") if verb == verbs::CREATE => match a.name.as_deref() {
            Some(n) if n == node => mine("the certificate"),
            _ => deny(format!(
                "a node may ask only for its own certificate ({node:?})"
            )),
        },
        _ => Decision::NoOpinion("not something a node does".into()),
    }
}

fn bound(node: &str, facts: &Facts, verb: &str) -> Decision {
    match facts.pod_node.as_deref() {
        Some(n) if n == node => {
            Decision::Allow(format!("node authorizer: a pod bound to node {node:?}"))
        }
        _ => Decision::Deny(format!(
            "a node may {verb} only pods bound to it ({node:?})"
        )),
    }
}

/// What NodeRestriction checks a node's write of a Node against.
#[derive(Debug, Clone, Copy)]
pub struct NodeRanges {
    /// The cluster's pod addresses.
    pub cluster_cidr: Ipv4Network,
    /// Services' cluster IPs.
    pub service_cidr: Ipv4Network,
}

/// NodeRestriction on a node's write of its own Node (`given`, over the
/// stored `existing`): the podCIDR is the control plane's to set, the
/// InternalIP must be a host address of the underlay that no other node
/// (`others`) uses. An error says what is refused.
pub fn restrict_node_write(
    given: &Node,
    existing: Option<&Node>,
    others: &[&Node],
    ranges: &NodeRanges,
) -> Result<(), String> {
    let name = given.metadata.name();
    let given_cidr = given.spec.pod_cidr.as_deref().filter(|c| !c.is_empty());
    let stored_cidr = existing.and_then(|n| n.spec.pod_cidr.as_deref().filter(|c| !c.is_empty()));
    if given_cidr.is_some() && given_cidr != stored_cidr {
        return Err(format!(
            "node {name:?} may not set its spec.podCIDR ({}): the control plane allocates it",
            given_cidr.unwrap_or_default()
        ));
    }
    for ip in internal_ips(given) {
        let Ok(addr) = ip.parse::<Ipv4Addr>() else {
            return Err(format!(
                "node {name:?}: status.addresses InternalIP {ip:?} is not an IPv4 address"
            ));
        };
        if addr.is_unspecified()
            || addr.is_loopback()
            || addr.is_multicast()
            || addr.is_broadcast()
            || addr.is_link_local()
            || ranges.cluster_cidr.contains(addr)
            || ranges.service_cidr.contains(addr)
        {
            return Err(format!(
                "node {name:?}: status.addresses InternalIP {ip} is not a host address of the underlay \
                 (not loopback, link-local, multicast, broadcast, or inside the pod range {} or the service range {})",
                ranges.cluster_cidr, ranges.service_cidr
            ));
        }
        if let Some(other) = others
            .iter()
            .find(|o| o.metadata.name() != name && internal_ips(o).any(|i| i == ip))
        {
            return Err(format!(
                "node {name:?}: status.addresses InternalIP {ip} is node {:?}'s",
                other.metadata.name()
            ));
        }
    }
    Ok(())
}

fn internal_ips(node: &Node) -> impl Iterator<Item = &str> {
    node.status
        .iter()
        .flat_map(|s| s.addresses.iter())
        .filter(|a| a.type_ == "InternalIP")
        .map(|a| a.address.as_str())
}

/// The Node of an object, if it is one.
pub fn as_node(object: &Object) -> Option<&Node> {
    match object {
        Object::Node(n) => Some(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::Kind;
    use jotasu_api::kinds::node::{NodeAddress, NodeStatus};

    fn attrs(verb: &str, kind: Kind, ns: Option<&str>, name: Option<&str>) -> Attributes {
        Attributes::of_kind(verb, kind, ns, name)
    }

    #[test]
    fn a_node_reads_what_its_pods_need_and_nothing_more() {
        let none = Facts::default();
        let n1 = |a: &Attributes, scope: Option<&str>, facts: &Facts| decide("n1", a, scope, facts);
        assert!(n1(&attrs("list", Kind::Service, None, None), None, &none).allowed());
        assert!(n1(&attrs("watch", Kind::Endpoints, None, None), None, &none).allowed());
        assert!(
            n1(
                &attrs("watch", Kind::EndpointSlice, None, None),
                None,
                &none
            )
            .allowed()
        );
        assert!(
            !n1(
                &attrs("create", Kind::EndpointSlice, Some("d"), None),
                None,
                &none
            )
            .allowed()
        );
        assert!(n1(&attrs("get", Kind::Node, None, Some("n2")), None, &none).allowed());
        assert!(n1(&attrs("list", Kind::Pod, None, None), Some("n1"), &none).allowed());
        assert!(matches!(
            n1(&attrs("list", Kind::Pod, None, None), None, &none),
            Decision::Deny(_)
        ));
        assert!(matches!(
            n1(&attrs("watch", Kind::Secret, None, None), Some("n2"), &none),
            Decision::Deny(_)
        ));
        assert!(n1(&attrs("watch", Kind::Secret, None, None), Some("n1"), &none).allowed());
        let referenced = Facts {
            referenced: true,
            ..Facts::default()
        };
        assert!(
            n1(
                &attrs("get", Kind::Secret, Some("d"), Some("s")),
                None,
                &referenced
            )
            .allowed()
        );
        assert!(matches!(
            n1(
                &attrs("get", Kind::Secret, Some("d"), Some("s")),
                None,
                &none
            ),
            Decision::Deny(_)
        ));
        let mine = Facts {
            pod_node: Some("n1".into()),
            ..Facts::default()
        };
        let theirs = Facts {
            pod_node: Some("n2".into()),
            ..Facts::default()
        };
        let status = attrs("update", Kind::Pod, Some("d"), Some("p")).on_subresource("status");
        assert!(n1(&status, None, &mine).allowed());
        assert!(matches!(n1(&status, None, &theirs), Decision::Deny(_)));
        assert!(matches!(n1(&status, None, &none), Decision::Deny(_)));
        assert!(
            n1(
                &attrs("delete", Kind::Pod, Some("d"), Some("p")),
                None,
                &mine
            )
            .allowed()
        );
        assert!(!n1(&attrs("create", Kind::Pod, Some("d"), None), None, &none).allowed());
        assert!(!n1(&attrs("list", Kind::Deployment, None, None), None, &none).allowed());
        assert!(
            !n1(
                &attrs("get", Kind::Pod, Some("d"), Some("p")).on_subresource("log"),
                None,
                &mine
            )
            .allowed()
        );
        assert!(
            !n1(
                &attrs("create", Kind::Pod, Some("d"), Some("p")).on_subresource("exec"),
                None,
                &mine
            )
            .allowed()
        );
        assert!(!n1(&attrs("delete", Kind::Node, None, Some("n1")), None, &none).allowed());
        assert!(
            !n1(
                &attrs("create", Kind::RoleBinding, Some("d"), None),
                None,
                &none
            )
            .allowed()
        );
        assert!(
            n1(
                &attrs("update", Kind::Node, None, Some("n1")).on_subresource("status"),
                None,
                &none
            )
            .allowed()
        );
        assert!(matches!(
            n1(&attrs("patch", Kind::Node, None, Some("n2")), None, &none),
            Decision::Deny(_)
        ));
        let csr = |name: &str| Attributes {
            verb: "create".into(),
            api_group: "certificates.k8s.io".into(),
            resource: "certificatesigningrequests".into(),
            name: Some(name.into()),
            ..Attributes::default()
        };
        assert!(n1(&csr("n1"), None, &none).allowed());
        assert!(matches!(n1(&csr("n2"), None, &none), Decision::Deny(_)));
    }

    #[test]
    fn a_node_reads_only_its_pods_claims_and_their_volumes() {
        let none = Facts::default();
        let referenced = Facts {
            referenced: true,
            ..Facts::default()
        };
        let n1 = |a: &Attributes, scope: Option<&str>, facts: &Facts| decide("n1", a, scope, facts);
        let claim = attrs("get", Kind::PersistentVolumeClaim, Some("d"), Some("data"));
        assert!(n1(&claim, None, &referenced).allowed());
        assert!(
            matches!(n1(&claim, None, &none), Decision::Deny(_)),
            "another node's pod's claim"
        );
        let volume = attrs("get", Kind::PersistentVolume, None, Some("pv1"));
        assert!(n1(&volume, None, &referenced).allowed());
        assert!(matches!(n1(&volume, None, &none), Decision::Deny(_)));
        let list = attrs("list", Kind::PersistentVolume, None, None);
        assert!(n1(&list, Some("n1"), &none).allowed());
        assert!(matches!(n1(&list, Some("n2"), &none), Decision::Deny(_)));
        assert!(matches!(n1(&list, None, &none), Decision::Deny(_)));
        for verb in ["list", "watch"] {
            assert!(
                !n1(
                    &attrs(verb, Kind::PersistentVolumeClaim, None, None),
                    Some("n1"),
                    &none
                )
                .allowed()
            );
        }
        assert!(
            !n1(
                &attrs("watch", Kind::PersistentVolume, None, None),
                Some("n1"),
                &none
            )
            .allowed()
        );
        for verb in ["create", "update", "delete"] {
            assert!(
                !n1(
                    &attrs(verb, Kind::PersistentVolume, None, Some("pv1")),
                    None,
                    &referenced
                )
                .allowed()
            );
            assert!(
                !n1(
                    &attrs(verb, Kind::PersistentVolumeClaim, Some("d"), Some("data")),
                    None,
                    &referenced
                )
                .allowed()
            );
        }
        assert!(
            !n1(
                &attrs("get", Kind::StorageClass, None, Some("standard")),
                None,
                &none
            )
            .allowed()
        );
        assert_eq!(needs(&claim), Need::Referenced);
        assert_eq!(needs(&volume), Need::Volume { name: "pv1".into() });
    }

    /// The control planes are published as the Endpoints
    /// `default/kubernetes`: an agent reads them to fail over (nodes read
    /// every Endpoints already, for their Services), but must never write
    /// them — a node that could would send the other agents, and every
    /// client, to a server of its choosing.
    #[test]
    fn a_node_reads_the_published_control_planes_but_never_writes_them() {
        let none = Facts::default();
        let n1 = |a: &Attributes| decide("n1", a, None, &none);
        let kubernetes = |verb| attrs(verb, Kind::Endpoints, Some("default"), Some("kubernetes"));
        assert!(n1(&kubernetes("get")).allowed());
        assert!(n1(&attrs("watch", Kind::Endpoints, Some("default"), None)).allowed());
        for verb in ["create", "update", "patch", "delete"] {
            assert!(!n1(&kubernetes(verb)).allowed(), "{verb}");
            assert!(
                !n1(&attrs(verb, Kind::Endpoints, Some("default"), Some("web"))).allowed(),
                "{verb} another Endpoints"
            );
        }
    }

    #[test]
    fn needs_follow_the_request() {
        assert_eq!(
            needs(&attrs("update", Kind::Pod, Some("d"), Some("p")).on_subresource("status")),
            Need::PodNode {
                namespace: "d".into(),
                name: "p".into()
            }
        );
        assert_eq!(
            needs(&attrs("get", Kind::ConfigMap, Some("d"), Some("c"))),
            Need::Referenced
        );
        assert_eq!(
            needs(&attrs("list", Kind::Pod, Some("d"), None)),
            Need::Nothing
        );
    }

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.spec.pod_cidr = cidr.map(str::to_owned);
        n.status = ip.map(|ip| NodeStatus {
            addresses: vec![NodeAddress {
                type_: "InternalIP".into(),
                address: ip.into(),
            }],
            ..NodeStatus::default()
        });
        n
    }

    #[test]
    fn node_restriction() {
        let ranges = NodeRanges {
            cluster_cidr: "10.244.0.0/16".parse().unwrap(),
            service_cidr: "10.96.0.0/16".parse().unwrap(),
        };
        let stored = node("n1", Some("10.244.1.0/24"), Some("192.168.7.2"));
        let other = node("n2", Some("10.244.2.0/24"), Some("192.168.7.3"));
        let check =
            |given: &Node| restrict_node_write(given, Some(&stored), &[&other, &stored], &ranges);
        assert!(check(&node("n1", None, Some("192.168.7.2"))).is_ok());
        assert!(check(&node("n1", Some("10.244.1.0/24"), Some("192.168.7.2"))).is_ok());
        let e = check(&node("n1", Some("0.0.0.0/0"), None)).unwrap_err();
        assert!(e.contains("may not set its spec.podCIDR"), "{e}");
        let e = restrict_node_write(&node("n3", Some("10.244.9.0/24"), None), None, &[], &ranges)
            .unwrap_err();
        assert!(e.contains("may not set its spec.podCIDR"), "{e}");
        for ip in [
            "127.0.0.1",
            "0.0.0.0",
            "10.244.1.7",
            "10.96.0.1",
            "224.0.0.1",
            "169.254.1.1",
            "nope",
        ] {
            assert!(check(&node("n1", None, Some(ip))).is_err(), "{ip}");
        }
        let e = check(&node("n1", None, Some("192.168.7.3"))).unwrap_err();
        assert!(e.contains("is node \"n2\"'s"), "{e}");
    }
}
