//! Name references: after prefixes, suffixes and content hashes changed
//! names, every field that names another object (a ConfigMap in `env`,
//! `envFrom` and volumes, a Secret, a ServiceAccount, a Service, an HPA's
//! scale target, a RoleBinding's role and subjects, …) is rewritten to
//! the object's new name — kustomize's nameReference transformer.

use serde_json::Value;

use super::KustomizeError;
use super::fieldspec::visit_values;
use super::resource::Resource;
use super::transformers::cluster_scoped;

const WORKLOADS: [&str; 6] = [
    "Deployment",
    "ReplicaSet",
    "DaemonSet",
    "StatefulSet",
    "Job",
    "ReplicationController",
];

/// Where a kind keeps its pod spec.
fn pod_spec(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("spec"),
        "PodTemplate" => Some("template/spec"),
        "CronJob" => Some("spec/jobTemplate/spec/template/spec"),
        k if WORKLOADS.contains(&k) => Some("spec/template/spec"),
        _ => None,
    }
}

/// The paths in a pod spec that name an object of `referral`.
fn pod_paths(referral: &str) -> &'static [&'static str] {
    match referral {
        "ConfigMap" => &[
            "volumes/configMap/name",
            "containers/env/valueFrom/configMapKeyRef/name",
            "initContainers/env/valueFrom/configMapKeyRef/name",
            "containers/envFrom/configMapRef/name",
            "initContainers/envFrom/configMapRef/name",
            "volumes/projected/sources/configMap/name",
        ],
        "Secret" => &[
            "volumes/secret/secretName",
            "containers/env/valueFrom/secretKeyRef/name",
            "initContainers/env/valueFrom/secretKeyRef/name",
            "containers/envFrom/secretRef/name",
            "initContainers/envFrom/secretRef/name",
            "imagePullSecrets/name",
            "volumes/projected/sources/secret/name",
        ],
        "ServiceAccount" => &["serviceAccountName"],
        "PersistentVolumeClaim" => &["volumes/persistentVolumeClaim/claimName"],
        "PriorityClass" => &["priorityClassName"],
        _ => &[],
    }
}

/// Every (path) in an object of kind `referrer` naming an object of kind `referral`.
fn paths(referral: &str, referrer: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(spec) = pod_spec(referrer) {
        // kustomize's tables leave out a few pairs.
        let skipped = match referral {
            "ConfigMap" | "Secret" => referrer == "ReplicationController",
            "ServiceAccount" | "PersistentVolumeClaim" | "PriorityClass" => {
                matches!(referrer, "ReplicaSet" | "PodTemplate")
            }
            _ => false,
        };
        if !skipped {
            out.extend(pod_paths(referral).iter().map(|p| format!("{spec}/{p}")));
        }
    }
    let extra: &[&str] = match (referral, referrer) {
        (
            "Deployment" | "ReplicaSet" | "StatefulSet" | "ReplicationController",
            "HorizontalPodAutoscaler",
        ) => &["spec/scaleTargetRef/name"],
        ("ConfigMap" | "Secret", "Role" | "ClusterRole") => &["rules/resourceNames"],
        ("Secret", "ServiceAccount") => &["imagePullSecrets/name"],
        ("Secret", "Ingress") => &["spec/tls/secretName"],
        ("Service", "StatefulSet") => &["spec/serviceName"],
        ("Service", "Ingress") => &[
            "spec/rules/http/paths/backend/serviceName",
            "spec/backend/serviceName",
            "spec/rules/http/paths/backend/service/name",
            "spec/defaultBackend/service/name",
        ],
        ("Service", "APIService") => &["spec/service/name"],
        ("Role", "RoleBinding") | ("ClusterRole", "RoleBinding" | "ClusterRoleBinding") => {
            &["roleRef/name"]
        }
        ("PersistentVolume", "PersistentVolumeClaim") => &["spec/volumeName"],
        ("StorageClass", "PersistentVolume" | "PersistentVolumeClaim") => {
            &["spec/storageClassName"]
        }
        ("StorageClass", "StatefulSet") => &["spec/volumeClaimTemplates/spec/storageClassName"],
        ("IngressClass", "Ingress") => &["spec/ingressClassName"],
        _ => &[],
    };
    out.extend(extra.iter().map(|p| (*p).to_owned()));
    out
}

const REFERRALS: [&str; 15] = [
    "ConfigMap",
    "Secret",
    "ServiceAccount",
    "PersistentVolumeClaim",
    "PriorityClass",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "ReplicationController",
    "Service",
    "Role",
    "ClusterRole",
    "PersistentVolume",
    "StorageClass",
    "IngressClass",
];

/// An object as a possible referral.
#[derive(Debug)]
struct Candidate {
    kind: String,
    group: String,
    namespace: String,
    original_namespace: String,
    name: String,
    previous: Vec<String>,
}

impl Candidate {
    fn of(r: &Resource) -> Self {
        Self {
            kind: r.kind().to_owned(),
            group: r.group().to_owned(),
            namespace: r.namespace().to_owned(),
            original_namespace: r.original_namespace().to_owned(),
            name: r.name().to_owned(),
            previous: r.history.iter().map(|(_, n)| n.clone()).collect(),
        }
    }

    fn cluster_scoped(&self) -> bool {
        cluster_scoped(&self.kind)
    }
}

/// kustomize's effective namespace: `default` for none.
fn effective(ns: &str) -> &str {
    if ns.is_empty() { "default" } else { ns }
}

/// The referrer, as the sieves see it.
#[derive(Debug)]
struct Referrer {
    kind: String,
    namespace: String,
    /// A RoleBinding's subjects' namespaces.
    subject_namespaces: Vec<String>,
}

impl Referrer {
    fn of(r: &Resource) -> Self {
        let subject_namespaces = if r.kind() == "RoleBinding" {
            r.value
                .get("subjects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|s| s.get("namespace").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        } else {
            Vec::new()
        };
        Self {
            kind: r.kind().to_owned(),
            namespace: r.namespace().to_owned(),
            subject_namespaces,
        }
    }

    fn cluster_scoped(&self) -> bool {
        cluster_scoped(&self.kind)
    }

    /// kustomize's SubsetThatCouldBeReferencedByResource.
    fn could_refer_to(&self, c: &Candidate) -> bool {
        self.cluster_scoped()
            || c.cluster_scoped()
            || effective(&c.namespace) == effective(&self.namespace)
            || self
                .subject_namespaces
                .iter()
                .any(|ns| effective(ns) == effective(&c.namespace))
    }
}

/// kustomize's selectReferral: the one candidate of kind `referral`
/// (group `group` when given) once called `old`, seen from `referrer`.
fn select<'a>(
    candidates: &[&'a Candidate],
    referral: &str,
    group: Option<&str>,
    old: &str,
    referrer: &Referrer,
) -> Result<Option<&'a Candidate>, String> {
    let found: Vec<&Candidate> = candidates
        .iter()
        .copied()
        .filter(|c| c.previous.iter().any(|n| n == old))
        .filter(|c| c.kind == referral && group.is_none_or(|g| g == c.group))
        .filter(|c| {
            referrer.cluster_scoped()
                || c.cluster_scoped()
                || c.kind == "ServiceAccount"
                || effective(&c.namespace) == effective(&referrer.namespace)
        })
        .collect();
    match found.as_slice() {
        [] => Ok(None),
        [one, rest @ ..] if rest.iter().all(|c| c.name == one.name) => Ok(Some(one)),
        several => Err(format!(
            "{referral} \"{old}\" could be any of {}; give them different names",
            several
                .iter()
                .map(|c| format!("{}/{}", effective(&c.namespace), c.name))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The group a referral kind is matched with (rbac kinds only, as kustomize).
fn referral_group(referral: &str) -> Option<&'static str> {
    match referral {
        "Role" | "ClusterRole" => Some("rbac.authorization.k8s.io"),
        _ => None,
    }
}

/// Rewrites every reference to a renamed object.
pub fn fix(resources: &mut [Resource], file: &std::path::Path) -> Result<(), KustomizeError> {
    let all: Vec<Candidate> = resources.iter().map(Candidate::of).collect();
    if all.iter().all(|c| c.previous.is_empty()) {
        return Ok(());
    }
    let mut problem = None;
    for r in resources.iter_mut() {
        let referrer = Referrer::of(r);
        let subset: Vec<&Candidate> = all.iter().filter(|c| referrer.could_refer_to(c)).collect();
        for referral in REFERRALS {
            let group = referral_group(referral);
            for path in paths(referral, &referrer.kind) {
                let keys: Vec<&str> = path.split('/').collect();
                let Some((last, parent)) = keys.split_last() else {
                    continue;
                };
                visit_values(&mut r.value, parent, &mut |holder| {
                    let mut fix_one = |holder: &mut Value| {
                        let Some(map) = holder.as_object_mut() else {
                            return;
                        };
                        // scaleTargetRef, roleRef: only if they name this kind.
                        if map
                            .get("kind")
                            .and_then(Value::as_str)
                            .is_some_and(|k| k != referral)
                        {
                            return;
                        }
                        let Some(value) = map.get_mut(*last) else {
                            return;
                        };
                        let names: Vec<&mut Value> = match value {
                            Value::Array(items) => items.iter_mut().collect(),
                            v => vec![v],
                        };
                        for v in names {
                            let Some(old) = v.as_str() else {
                                continue;
                            };
                            match select(&subset, referral, group, old, &referrer) {
                                Ok(Some(c)) => *v = Value::String(c.name.clone()),
                                Ok(None) => {}
                                Err(e) => problem = Some(e),
                            }
                        }
                    };
                    match holder {
                        Value::Array(items) => items.iter_mut().for_each(&mut fix_one),
                        other => fix_one(other),
                    }
                });
            }
        }
        if matches!(referrer.kind.as_str(), "RoleBinding" | "ClusterRoleBinding")
            && let Err(e) = fix_subjects(r, &subset, &referrer)
        {
            problem = Some(e);
        }
    }
    match problem {
        Some(message) => Err(KustomizeError::invalid(file, "(name references)", message)),
        None => Ok(()),
    }
}

/// A binding's subjects, as kustomize treats them: each is looked up as a
/// ServiceAccount (whatever its kind says); a subject naming a namespace
/// looks among the objects first put in that namespace if there are any,
/// else among those now in it; a match gets the account's new name and
/// namespace.
fn fix_subjects(
    r: &mut Resource,
    subset: &[&Candidate],
    referrer: &Referrer,
) -> Result<(), String> {
    let Some(subjects) = r.value.get_mut("subjects").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    for s in subjects.iter_mut().filter_map(Value::as_object_mut) {
        let Some(name) = s.get("name").and_then(Value::as_str).map(str::to_owned) else {
            continue;
        };
        let pool: Vec<&Candidate> = match s.get("namespace").and_then(Value::as_str) {
            None => subset.to_vec(),
            Some(ns) => {
                let by_original: Vec<&Candidate> = subset
                    .iter()
                    .copied()
                    .filter(|c| {
                        !c.cluster_scoped() && effective(&c.original_namespace) == effective(ns)
                    })
                    .collect();
                if by_original.is_empty() {
                    subset
                        .iter()
                        .copied()
                        .filter(|c| !c.cluster_scoped() && effective(&c.namespace) == effective(ns))
                        .collect()
                } else {
                    by_original
                }
            }
        };
        let Some(c) = select(&pool, "ServiceAccount", None, &name, referrer)? else {
            continue;
        };
        s.insert("name".into(), Value::String(c.name.clone()));
        if !c.namespace.is_empty() {
            s.insert("namespace".into(), Value::String(c.namespace.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renamed_config_map_and_role() {
        let mut cm = Resource::new(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}}),
        );
        cm.set_name("p-cfg-abc".into());
        let mut role = Resource::new(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"}}),
        );
        role.set_name("p-r".into());
        let mut sa = Resource::new(
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}}),
        );
        sa.set_name("p-sa".into());
        let deploy = Resource::new(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"serviceAccountName": "sa", "containers": [
                {"name": "c", "envFrom": [{"configMapRef": {"name": "cfg"}}],
                 "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}},
                         {"name": "Y", "valueFrom": {"secretKeyRef": {"name": "cfg", "key": "k"}}}]}],
                "volumes": [{"name": "v", "configMap": {"name": "cfg"}}]}}}}),
        );
        let binding = Resource::new(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "r", "apiGroup": "rbac.authorization.k8s.io"},
            "subjects": [{"kind": "ServiceAccount", "name": "sa"}]}),
        );
        let mut rs = vec![cm, role, sa, deploy, binding];
        crate::kustomize::transformers::namespace(&mut rs, "prod");
        fix(&mut rs, std::path::Path::new("k.yaml")).unwrap();
        let spec = &rs[3].value["spec"]["template"]["spec"];
        assert_eq!(spec["serviceAccountName"], "p-sa");
        assert_eq!(
            spec["containers"][0]["envFrom"][0]["configMapRef"]["name"],
            "p-cfg-abc"
        );
        assert_eq!(
            spec["containers"][0]["env"][0]["valueFrom"]["configMapKeyRef"]["name"],
            "p-cfg-abc"
        );
        assert_eq!(
            spec["containers"][0]["env"][1]["valueFrom"]["secretKeyRef"]["name"],
            "cfg"
        );
        assert_eq!(spec["volumes"][0]["configMap"]["name"], "p-cfg-abc");
        assert_eq!(rs[4].value["roleRef"]["name"], "p-r");
        assert_eq!(
            rs[4].value["subjects"][0],
            json!({"kind": "ServiceAccount", "name": "p-sa", "namespace": "prod"})
        );
    }
}
