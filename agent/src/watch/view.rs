//! The node's view of the cluster, as its one watch stream fills it: its
//! Pods, every Service, EndpointSlice (gathered into one Endpoints per
//! Service for the data plane and DNS) and Node, the ConfigMaps and
//! Secrets its Pods reference. Pure: events in, state out; the stream (`stream.rs`)
//! feeds it and says which consumers to wake.

use std::collections::{BTreeMap, BTreeSet};

use jotasu_api::client::EventType;
use jotasu_api::{ConfigMap, EndpointSlice, Endpoints, Kind, Node, Object, Pod, Secret, Service};

use super::slices;

/// Namespace and name.
pub type Key = (String, String);

/// What the agent knows of the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// Pods bound to this node.
    pub pods: BTreeMap<Key, Pod>,
    /// Every Service.
    pub services: BTreeMap<Key, Service>,
    /// Every Service's endpoints, gathered from its slices (`addresses`:
    /// the backends new flows may go to, see `slices.rs`).
    pub endpoints: BTreeMap<Key, Endpoints>,
    /// Per Service, the addresses of its terminating endpoints (none: absent).
    pub terminating: BTreeMap<Key, BTreeSet<String>>,
    /// Every EndpointSlice.
    pub endpoint_slices: BTreeMap<Key, EndpointSlice>,
    /// Every Node, by name.
    pub nodes: BTreeMap<String, Node>,
    /// ConfigMaps this node's Pods reference.
    pub config_maps: BTreeMap<Key, ConfigMap>,
    /// Secrets this node's Pods reference.
    pub secrets: BTreeMap<Key, Secret>,
    /// The store revision the view covers: every change to what the node
    /// follows up to it is in the view (the last event applied, or the
    /// oldest of a relist's lists).
    pub revision: i64,
    /// The revision of the newest change to Services or EndpointSlices the
    /// view holds. Every node follows all of those, so a node whose view
    /// covers this revision has seen the same endpoints.
    pub services_revision: i64,
}

/// The kinds the agent follows, in the order it lists them.
pub const KINDS: [Kind; 6] = [
    Kind::Node,
    Kind::ConfigMap,
    Kind::Secret,
    Kind::Service,
    Kind::EndpointSlice,
    Kind::Pod,
];

/// Which consumers a change concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Touched {
    /// Pods, ConfigMaps or Secrets: the pod manager.
    pub pods: bool,
    /// Services or Endpoints: the data plane.
    pub services: bool,
    /// Nodes.
    pub nodes: bool,
}

impl Touched {
    /// Everything (after a relist).
    pub const ALL: Self = Self {
        pods: true,
        services: true,
        nodes: true,
    };

    /// Merges two.
    pub fn or(self, o: Self) -> Self {
        Self {
            pods: self.pods || o.pods,
            services: self.services || o.services,
            nodes: self.nodes || o.nodes,
        }
    }
}

fn key(o: &Object) -> Key {
    (
        o.metadata().namespace.clone().unwrap_or_default(),
        o.metadata().name().to_owned(),
    )
}

fn put<T>(map: &mut BTreeMap<Key, T>, k: Key, v: Option<T>) {
    match v {
        Some(v) => map.insert(k, v),
        None => map.remove(&k),
    };
}

impl ClusterView {
    /// Applies one change (`Deleted` removes the object); returns what it touched.
    pub fn apply(&mut self, kind: EventType, object: Object) -> Touched {
        let k = key(&object);
        let deleted = kind == EventType::Deleted;
        match object {
            Object::Pod(p) => {
                // A pod's host ports are data-plane frontends.
                let services = crate::external::has_host_ports(&p)
                    || self
                        .pods
                        .get(&k)
                        .is_some_and(crate::external::has_host_ports);
                put(&mut self.pods, k, (!deleted).then_some(p));
                Touched {
                    pods: true,
                    services,
                    ..Touched::default()
                }
            }
            Object::Service(s) => {
                put(&mut self.services, k, (!deleted).then_some(s));
                Touched {
                    services: true,
                    ..Touched::default()
                }
            }
            Object::EndpointSlice(e) => {
                let service = slices::service_of(&e).map(str::to_owned);
                put(
                    &mut self.endpoint_slices,
                    k.clone(),
                    (!deleted).then_some(e),
                );
                if let Some(service) = service {
                    self.gather(&k.0, &service);
                }
                Touched {
                    services: true,
                    ..Touched::default()
                }
            }
            Object::ConfigMap(c) => {
                put(&mut self.config_maps, k, (!deleted).then_some(c));
                Touched {
                    pods: true,
                    ..Touched::default()
                }
            }
            Object::Secret(s) => {
                put(&mut self.secrets, k, (!deleted).then_some(s));
                Touched {
                    pods: true,
                    ..Touched::default()
                }
            }
            Object::Node(n) => {
                if deleted {
                    self.nodes.remove(&k.1);
                } else {
                    self.nodes.insert(k.1, n);
                }
                Touched {
                    nodes: true,
                    ..Touched::default()
                }
            }
            _ => Touched::default(),
        }
    }

    /// Applies one change of the watch at `revision` ([`Self::apply`]), and
    /// notes the revision the view now reflects.
    pub fn apply_at(&mut self, kind: EventType, object: Object, revision: i64) -> Touched {
        let touched = self.apply(kind, object);
        self.revision = self.revision.max(revision);
        if touched.services {
            self.services_revision = self.services_revision.max(revision);
        }
        touched
    }

    /// Recomputes Service `namespace/name`'s endpoints from its slices.
    fn gather(&mut self, namespace: &str, name: &str) {
        let of_service = self
            .endpoint_slices
            .range((namespace.to_owned(), String::new())..)
            .take_while(|((ns, _), _)| ns == namespace)
            .map(|(_, s)| s)
            .filter(|s| slices::service_of(s) == Some(name));
        let gathered = slices::gather(namespace, name, of_service);
        let key = (namespace.to_owned(), name.to_owned());
        if gathered.terminating.is_empty() || !any_slice(&self.endpoint_slices, namespace, name) {
            self.terminating.remove(&key);
        } else {
            self.terminating.insert(key.clone(), gathered.terminating);
        }
        if any_slice(&self.endpoint_slices, namespace, name) {
            self.endpoints.insert(key, gathered.endpoints);
        } else {
            self.endpoints.remove(&key);
        }
    }

    /// Whether any slice lists pod `uid`'s address `ip`, in any condition.
    pub fn lists(&self, ip: &str, uid: &str) -> bool {
        self.endpoint_slices
            .values()
            .any(|s| slices::lists(s, ip, uid))
    }

    /// Whether any slice still offers pod `uid`'s address `ip` to new
    /// flows (lists it, and not as terminating).
    pub fn offers(&self, ip: &str, uid: &str) -> bool {
        self.endpoint_slices
            .values()
            .any(|s| slices::offers(s, ip, uid))
    }

    /// Replaces everything of `kind` with a fresh list.
    pub fn replace(&mut self, kind: Kind, items: Vec<Object>) {
        match kind {
            Kind::Pod => self.pods.clear(),
            Kind::Service => self.services.clear(),
            Kind::EndpointSlice => {
                self.endpoint_slices.clear();
                self.endpoints.clear();
                self.terminating.clear();
            }
            Kind::ConfigMap => self.config_maps.clear(),
            Kind::Secret => self.secrets.clear(),
            Kind::Node => self.nodes.clear(),
            _ => return,
        }
        for o in items {
            self.apply(EventType::Added, o);
        }
    }
}

/// Whether Service `namespace/name` has a slice.
fn any_slice(slices: &BTreeMap<Key, EndpointSlice>, namespace: &str, name: &str) -> bool {
    slices
        .range((namespace.to_owned(), String::new())..)
        .take_while(|((ns, _), _)| ns == namespace)
        .any(|(_, s)| slices::service_of(s) == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Object {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        Object::Pod(p)
    }

    #[test]
    fn events_and_relists_shape_the_view() {
        let mut v = ClusterView::default();
        let t = v.apply(EventType::Added, pod("a"));
        assert!(t.pods && !t.services);
        v.apply(EventType::Added, pod("b"));
        v.apply(EventType::Deleted, pod("a"));
        assert_eq!(
            v.pods.keys().map(|k| k.1.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        v.replace(Kind::Pod, vec![pod("c")]);
        assert_eq!(
            v.pods.keys().map(|k| k.1.as_str()).collect::<Vec<_>>(),
            ["c"]
        );
        let mut s = Service::default();
        s.metadata.name = Some("s".into());
        assert!(v.apply(EventType::Modified, Object::Service(s)).services);
    }
}
