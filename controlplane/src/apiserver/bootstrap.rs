//! The objects every cluster has from its first start, written (and
//! reconciled) at every start as kube-apiserver and kubeadm write theirs:
//! the namespaces `default`, `kube-system`, `kube-public` and
//! `kube-node-lease` (each with its `default` ServiceAccount), a Namespace
//! for any namespace objects are stored in without one (data written
//! before jotasu had Namespaces), the default RBAC roles and bindings, and
//! the default StorageClass `standard` (when missing), the cluster DNS Service
//! `kube-system/kube-dns` on the service CIDR's tenth address (which the
//! allocator never hands out by itself), the address pods' resolv.conf
//! names.

use std::collections::BTreeSet;

use jotasu_api::kinds::namespace::INITIAL;
use jotasu_api::{Kind, Object};
use serde_json::json;

use super::ApiServer;
use super::admit::Outcome;
use super::allocate::dns_ip;
use super::error::{ApiResult, ApiServerError};
use super::keys::{kind_prefix, split_key};
use crate::store::Store;

/// The cluster DNS Service's namespace and name.
pub const DNS_SERVICE: (&str, &str) = ("kube-system", "kube-dns");

/// The cluster DNS Service for a service CIDR: ports 53/UDP (`dns`) and
/// 53/TCP (`dns-tcp`), labelled as Kubernetes' is. Each node answers its
/// own pods on it.
pub fn dns_service(service_cidr: ipnetwork::Ipv4Network) -> ApiResult<Object> {
    let (namespace, name) = DNS_SERVICE;
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": name, "namespace": namespace,
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
        },
        "spec": {
            "clusterIP": dns_ip(service_cidr).to_string(),
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}
            ]
        }
    }))
    .map_err(|e| ApiServerError::Invalid(format!("the cluster DNS Service: {e}")))
}

/// A Namespace with just a name (the server defaults the rest).
pub fn namespace(name: &str) -> ApiResult<Object> {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
    }))
    .map_err(|e| ApiServerError::Invalid(format!("namespace {name}: {e}")))
}

/// The namespaces every cluster has, and those objects are stored in.
async fn namespaces_needed<S: Store>(server: &ApiServer<S>) -> ApiResult<BTreeSet<String>> {
    let mut names: BTreeSet<String> = INITIAL.iter().map(|n| (*n).to_owned()).collect();
    for kind in Kind::ALL.iter().filter(|k| k.namespaced()) {
        let range = server.store.range(&kind_prefix(*kind, None), None).await?;
        for kv in &range.kvs {
            if let Some((_, Some(ns), _)) = split_key(&kv.key) {
                names.insert(ns.to_owned());
            }
        }
    }
    Ok(names)
}

/// Writes the objects every cluster has; how many changed. A namespace
/// that exists is left as it is (even terminating).
pub async fn ensure<S: Store>(server: &ApiServer<S>) -> ApiResult<usize> {
    let mut objects = Vec::new();
    for name in namespaces_needed(server).await? {
        let r = super::lifecycle::namespace_ref(&name);
        if server.read(&r).await?.is_none() {
            objects.push(namespace(&name)?);
        }
    }
    objects.extend(crate::auth::rbac::bootstrap_policy());
    objects.extend(super::priority::system_classes());
    // The default StorageClass, unless it exists (a user may have changed it).
    let standard = super::storage::standard_class();
    if server.read(&standard.object_ref()).await?.is_none() {
        objects.push(standard);
    }
    objects.push(dns_service(server.ranges.service_cidr)?);
    let json = objects
        .iter()
        .map(|o| {
            serde_json::to_string(o).map_err(|e| {
                ApiServerError::Invalid(format!("{}: cannot encode: {e}", o.object_ref()))
            })
        })
        .collect::<ApiResult<Vec<String>>>()?;
    let applied = server.apply(&json, false).await?;
    Ok(applied
        .iter()
        .filter(|a| a.outcome != Outcome::Unchanged)
        .count())
}

/// A fresh API server on an embedded store in a temp dir, with what every
/// cluster has (for tests of admission through a real server).
#[cfg(test)]
pub(crate) async fn test_server() -> (tempfile::TempDir, ApiServer<crate::store::EmbeddedStore>) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = crate::store::EmbeddedStore::open(dir.path().join("db"), Default::default())
        .await
        .expect("the store opens");
    let (_, shutdown) = tokio::sync::watch::channel(false);
    let server = ApiServer::new(std::sync::Arc::new(store), shutdown);
    ensure(&server).await.expect("what every cluster has");
    (dir, server)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dns_service_sits_on_the_tenth_address() {
        let Object::Service(s) = dns_service("10.96.0.0/16".parse().unwrap()).unwrap() else {
            panic!("a Service")
        };
        assert_eq!(s.spec.cluster_ip.as_deref(), Some("10.96.0.10"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("kube-system"));
        assert_eq!(s.spec.ports.len(), 2);
        let Object::Service(s) = dns_service("10.100.0.0/24".parse().unwrap()).unwrap() else {
            panic!("a Service")
        };
        assert_eq!(s.spec.cluster_ip.as_deref(), Some("10.100.0.10"));
    }

    #[tokio::test]
    async fn every_cluster_has_its_namespaces_and_their_default_accounts() {
        use jotasu_api::ObjectRef;
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::EmbeddedStore::open(dir.path().join("db"), Default::default())
            .await
            .unwrap();
        let (_, shutdown) = tokio::sync::watch::channel(false);
        let server = ApiServer::new(Arc::new(store), shutdown);
        // Data from before Namespaces: a ConfigMap in "legacy", written raw.
        let key = super::super::keys::object_key(&ObjectRef {
            kind: Kind::ConfigMap,
            namespace: Some("legacy".into()),
            name: "c".into(),
        });
        let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"legacy"}}"#;
        server.store.put(&key, cm.as_bytes()).await.unwrap();
        assert!(ensure(&server).await.unwrap() > 0);
        for ns in [
            "default",
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "legacy",
        ] {
            let r = super::super::lifecycle::namespace_ref(ns);
            assert!(server.get(&r).await.is_ok(), "{ns}");
            let sa = ObjectRef {
                kind: Kind::ServiceAccount,
                namespace: Some(ns.into()),
                name: "default".into(),
            };
            assert!(server.get(&sa).await.is_ok(), "{ns}/default");
        }
        assert_eq!(
            ensure(&server).await.unwrap(),
            0,
            "a second start changes nothing"
        );
    }
}
