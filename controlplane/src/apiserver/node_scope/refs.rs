//! What a Pod needs from other objects: the ConfigMaps and Secrets its
//! containers' environment and its volumes name, and the node it is bound
//! to, read from stored JSON without decoding the whole object.

use std::collections::BTreeSet;

use jotasu_api::Pod;
use serde::Deserialize;

use crate::apiserver::error::{ApiResult, ApiServerError};

/// The ConfigMaps and Secrets a Pod uses, by name (in the Pod's namespace).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// ConfigMaps: `env[].valueFrom.configMapKeyRef`, `envFrom[].configMapRef`,
    /// `volumes[].configMap`, `volumes[].projected.sources[].configMap`.
    pub config_maps: BTreeSet<String>,
    /// Secrets: `imagePullSecrets`, `env[].valueFrom.secretKeyRef`, `envFrom[].secretRef`,
    /// `volumes[].secret`, `volumes[].projected.sources[].secret`.
    pub secrets: BTreeSet<String>,
}

/// The ConfigMaps and Secrets `pod` references, optional ones included
/// (an agent wants them when they appear). Empty names are left out.
pub fn references(pod: &Pod) -> References {
    let mut refs = References::default();
    let add = |set: &mut BTreeSet<String>, name: &str| {
        if !name.is_empty() {
            set.insert(name.to_owned());
        }
    };
    for container in pod.spec.init_containers.iter().chain(&pod.spec.containers) {
        for source in container.env.iter().filter_map(|e| e.value_from.as_ref()) {
            if let Some(r) = &source.config_map_key_ref {
                add(&mut refs.config_maps, &r.name);
            }
            if let Some(r) = &source.secret_key_ref {
                add(&mut refs.secrets, &r.name);
            }
        }
        for source in &container.env_from {
            if let Some(r) = &source.config_map_ref {
                add(&mut refs.config_maps, &r.name);
            }
            if let Some(r) = &source.secret_ref {
                add(&mut refs.secrets, &r.name);
            }
        }
    }
    for secret in &pod.spec.image_pull_secrets {
        add(&mut refs.secrets, &secret.name);
    }
    for volume in &pod.spec.volumes {
        if let Some(c) = &volume.config_map {
            add(&mut refs.config_maps, &c.name);
        }
        if let Some(s) = &volume.secret {
            add(&mut refs.secrets, &s.secret_name);
        }
        for source in volume.projected.iter().flat_map(|p| &p.sources) {
            if let Some(c) = &source.config_map {
                add(&mut refs.config_maps, &c.name);
            }
            if let Some(s) = &source.secret {
                add(&mut refs.secrets, &s.name);
            }
        }
    }
    refs
}

#[derive(Deserialize)]
struct NodeNameOnly {
    #[serde(default)]
    spec: SpecNodeName,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecNodeName {
    #[serde(default)]
    node_name: Option<String>,
}

/// Whether the Pod stored at `key` as `value` is bound to `node` (reads
/// only `spec.nodeName`).
pub fn bound_to(node: &str, key: &[u8], value: &[u8]) -> ApiResult<bool> {
    let pod: NodeNameOnly = serde_json::from_slice(value).map_err(|e| corrupt(key, e))?;
    Ok(pod.spec.node_name.as_deref() == Some(node))
}

/// Decodes a stored Pod.
pub fn decode_pod(key: &[u8], value: &[u8]) -> ApiResult<Pod> {
    serde_json::from_slice(value).map_err(|e| corrupt(key, e))
}

fn corrupt(key: &[u8], e: serde_json::Error) -> ApiServerError {
    ApiServerError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec
        }))
        .expect("a test pod")
    }

    fn names(set: &BTreeSet<String>) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    #[test]
    fn env_and_volumes_of_every_container() {
        let p = pod(json!({
            "containers": [
                {"name": "a", "image": "i", "env": [
                    {"name": "PLAIN", "value": "x"},
                    {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "a"}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "b", "optional": true}}}
                ]},
                {"name": "b", "image": "i", "env": [
                    {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "other", "key": "c"}}},
                    {"name": "D", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "d"}}}
                ]}
            ],
            "volumes": [
                {"name": "v1", "configMap": {"name": "files"}},
                {"name": "v2", "secret": {"secretName": "tls"}},
                {"name": "v3", "emptyDir": {}}
            ]
        }));
        let refs = references(&p);
        assert_eq!(names(&refs.config_maps), ["cfg", "files", "other"]);
        assert_eq!(names(&refs.secrets), ["creds", "tls"]);
    }

    #[test]
    fn env_from_init_containers_and_projected_volumes() {
        let p = pod(json!({
            "initContainers": [
                {"name": "i", "image": "i", "envFrom": [{"secretRef": {"name": "init-creds"}}]}
            ],
            "containers": [
                {"name": "a", "image": "i", "envFrom": [
                    {"configMapRef": {"name": "all"}, "prefix": "X_"},
                    {"secretRef": {"name": "creds", "optional": true}}
                ]}
            ],
            "volumes": [
                {"name": "v", "projected": {"sources": [
                    {"configMap": {"name": "proj"}},
                    {"secret": {"name": "proj-secret"}},
                    {"downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}}
                ]}}
            ]
        }));
        let refs = references(&p);
        assert_eq!(names(&refs.config_maps), ["all", "proj"]);
        assert_eq!(names(&refs.secrets), ["creds", "init-creds", "proj-secret"]);
    }

    #[test]
    fn a_pod_without_references() {
        let p = pod(json!({"containers": [{"name": "a", "image": "i"}]}));
        assert_eq!(references(&p), References::default());
    }

    #[test]
    fn node_name_from_stored_json() {
        let bound = br#"{"kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[],"nodeName":"n1"},"status":{"x":1}}"#;
        assert!(bound_to("n1", b"k", bound).expect("parses"));
        assert!(!bound_to("n2", b"k", bound).expect("parses"));
        let unbound = br#"{"kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[]}}"#;
        assert!(!bound_to("n1", b"k", unbound).expect("parses"));
        assert!(!bound_to("n1", b"k", br#"{"kind":"Pod"}"#).expect("parses"));
        assert!(matches!(
            bound_to("n1", b"k", b"garbage"),
            Err(ApiServerError::Corrupt { .. })
        ));
    }
}
