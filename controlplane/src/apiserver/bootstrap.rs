//! The objects every cluster has from its first start, written (and
//! reconciled) at every start as kube-apiserver and kubeadm write theirs:
//! the default RBAC roles and bindings, and the cluster DNS Service
//! `kube-system/kube-dns` on the service CIDR's tenth address (which the
//! allocator never hands out by itself), the address pods' resolv.conf
//! names.

use jotasu_api::Object;
use serde_json::json;

use super::ApiServer;
use super::admit::Outcome;
use super::allocate::dns_ip;
use super::error::{ApiResult, ApiServerError};
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

/// Writes the objects every cluster has; how many changed.
pub async fn ensure<S: Store>(server: &ApiServer<S>) -> ApiResult<usize> {
    let mut objects = crate::auth::rbac::bootstrap_policy();
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
}
