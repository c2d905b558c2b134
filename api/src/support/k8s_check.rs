//! The object model checked against Kubernetes' own: every field that
//! Kubernetes (k8s-openapi's schemas, v1.35) defines for a served kind is
//! either decoded, refused by name, or dropped with a warning — never an
//! "unknown field". And every rule of the support tables names a field that
//! Kubernetes has and jotasu's types do not (a stale rule would hide a field
//! jotasu implements).

use serde_json::{Map, Value, json};

use crate::object::Kind;

/// One step of a field path in a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    Field(String),
    Item,
    Value,
}

/// A field of a kind and a sample value of its type.
#[derive(Debug, Clone)]
pub(super) struct SchemaField {
    pub steps: Vec<Step>,
    pub sample: Value,
}

impl SchemaField {
    /// `spec.containers[].ports[].name`, `metadata.labels.*`.
    pub fn display(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            match step {
                Step::Field(name) if out.is_empty() => out.push_str(name),
                Step::Field(name) => {
                    out.push('.');
                    out.push_str(name);
                }
                Step::Item => out.push_str("[]"),
                Step::Value => out.push_str(".*"),
            }
        }
        out
    }

    /// A manifest of `kind` (at `api_version`) with just this field set.
    pub fn manifest(&self, api_version: &str, kind: &str) -> Value {
        let mut root =
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "probe"}});
        insert(&mut root, &self.steps, self.sample.clone());
        root
    }
}

fn insert(at: &mut Value, steps: &[Step], leaf: Value) {
    let Some((first, rest)) = steps.split_first() else {
        *at = leaf;
        return;
    };
    let build = |rest: &[Step]| {
        let mut v = Value::Null;
        insert(&mut v, rest, leaf.clone());
        v
    };
    match first {
        Step::Field(name) => {
            if !at.is_object() {
                *at = Value::Object(Map::new());
            }
            let map = at.as_object_mut().expect("object");
            let child = map.entry(name.clone()).or_insert(Value::Null);
            insert(child, rest, leaf);
        }
        Step::Item => *at = Value::Array(vec![build(rest)]),
        Step::Value => *at = json!({ "key": build(rest) }),
    }
}

/// Every field path of the schema `T`, to depth 14, each with a sample.
pub(super) fn fields<T: schemars::JsonSchema>() -> Vec<SchemaField> {
    let schema = serde_json::to_value(schemars::schema_for!(T)).expect("schema as JSON");
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let mut out = Vec::new();
    walk(&schema, &defs, &mut Vec::new(), &mut Vec::new(), &mut out);
    out
}

fn resolve<'a>(node: &'a Value, defs: &'a Value) -> (&'a Value, Option<&'a str>) {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.trim_start_matches("#/$defs/");
            (defs.get(name).unwrap_or(&Value::Null), Some(name))
        }
        None => (node, None),
    }
}

fn sample(node: &Value) -> Value {
    let ty = match node.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string"),
        _ => "string",
    };
    match ty {
        "integer" => json!(1),
        "number" => json!(1.5),
        "boolean" => json!(true),
        "array" => json!([]),
        "object" => json!({}),
        _ => json!("x"),
    }
}

fn walk(
    node: &Value,
    defs: &Value,
    steps: &mut Vec<Step>,
    seen: &mut Vec<String>,
    out: &mut Vec<SchemaField>,
) {
    let (node, name) = resolve(node, defs);
    if let Some(name) = name {
        if seen.iter().any(|s| s == name) || steps.len() > 14 {
            return;
        }
        seen.push(name.to_owned());
    }
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (field, child) in props {
            steps.push(Step::Field(field.clone()));
            let (resolved, _) = resolve(child, defs);
            out.push(SchemaField {
                steps: steps.clone(),
                sample: sample(resolved),
            });
            walk(child, defs, steps, seen, out);
            steps.pop();
        }
    }
    if let Some(items) = node.get("items") {
        steps.push(Step::Item);
        walk(items, defs, steps, seen, out);
        steps.pop();
    }
    if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        steps.push(Step::Value);
        walk(values, defs, steps, seen, out);
        steps.pop();
    }
    if name.is_some() {
        seen.pop();
    }
}

/// The k8s-openapi schema fields of each served kind at each version.
pub(super) fn served() -> Vec<(Kind, &'static str, Vec<SchemaField>)> {
    use k8s_openapi::api::{
        apps, autoscaling, batch, coordination, core, discovery, policy, rbac, scheduling, storage,
    };
    vec![
        (Kind::Pod, "v1", fields::<core::v1::Pod>()),
        (
            Kind::Deployment,
            "apps/v1",
            fields::<apps::v1::Deployment>(),
        ),
        (
            Kind::ReplicaSet,
            "apps/v1",
            fields::<apps::v1::ReplicaSet>(),
        ),
        (Kind::DaemonSet, "apps/v1", fields::<apps::v1::DaemonSet>()),
        (
            Kind::PodDisruptionBudget,
            "policy/v1",
            fields::<policy::v1::PodDisruptionBudget>(),
        ),
        (
            Kind::StatefulSet,
            "apps/v1",
            fields::<apps::v1::StatefulSet>(),
        ),
        (
            Kind::ControllerRevision,
            "apps/v1",
            fields::<apps::v1::ControllerRevision>(),
        ),
        (Kind::Service, "v1", fields::<core::v1::Service>()),
        (Kind::Endpoints, "v1", fields::<core::v1::Endpoints>()),
        (
            Kind::EndpointSlice,
            "discovery.k8s.io/v1",
            fields::<discovery::v1::EndpointSlice>(),
        ),
        (Kind::ConfigMap, "v1", fields::<core::v1::ConfigMap>()),
        (Kind::LimitRange, "v1", fields::<core::v1::LimitRange>()),
        (
            Kind::ResourceQuota,
            "v1",
            fields::<core::v1::ResourceQuota>(),
        ),
        (Kind::Namespace, "v1", fields::<core::v1::Namespace>()),
        (
            Kind::ServiceAccount,
            "v1",
            fields::<core::v1::ServiceAccount>(),
        ),
        (Kind::Secret, "v1", fields::<core::v1::Secret>()),
        (
            Kind::HorizontalPodAutoscaler,
            "autoscaling/v2",
            fields::<autoscaling::v2::HorizontalPodAutoscaler>(),
        ),
        (
            Kind::HorizontalPodAutoscaler,
            "autoscaling/v1",
            fields::<autoscaling::v1::HorizontalPodAutoscaler>(),
        ),
        (Kind::Node, "v1", fields::<core::v1::Node>()),
        (Kind::Job, "batch/v1", fields::<batch::v1::Job>()),
        (Kind::CronJob, "batch/v1", fields::<batch::v1::CronJob>()),
        (
            Kind::PriorityClass,
            "scheduling.k8s.io/v1",
            fields::<scheduling::v1::PriorityClass>(),
        ),
        (
            Kind::PersistentVolume,
            "v1",
            fields::<core::v1::PersistentVolume>(),
        ),
        (
            Kind::PersistentVolumeClaim,
            "v1",
            fields::<core::v1::PersistentVolumeClaim>(),
        ),
        (
            Kind::StorageClass,
            "storage.k8s.io/v1",
            fields::<storage::v1::StorageClass>(),
        ),
        (
            Kind::Role,
            "rbac.authorization.k8s.io/v1",
            fields::<rbac::v1::Role>(),
        ),
        (
            Kind::ClusterRole,
            "rbac.authorization.k8s.io/v1",
            fields::<rbac::v1::ClusterRole>(),
        ),
        (
            Kind::RoleBinding,
            "rbac.authorization.k8s.io/v1",
            fields::<rbac::v1::RoleBinding>(),
        ),
        (
            Kind::ClusterRoleBinding,
            "rbac.authorization.k8s.io/v1",
            fields::<rbac::v1::ClusterRoleBinding>(),
        ),
        (
            Kind::Lease,
            "coordination.k8s.io/v1",
            fields::<coordination::v1::Lease>(),
        ),
    ]
}

fn is_system(f: &SchemaField) -> bool {
    matches!(f.steps.first(), Some(Step::Field(s)) if s == "status" || s == "apiVersion" || s == "kind")
}

#[test]
fn every_kubernetes_field_is_decoded_refused_or_warned_about() {
    use crate::manifest::load_manifest;
    use crate::{ErrorKind, ParseOptions};
    let mut unknown = Vec::new();
    let mut checked = 0;
    for (kind, version, fields) in served() {
        for f in fields.iter().filter(|f| !is_system(f)) {
            checked += 1;
            let text = f.manifest(version, kind.as_str()).to_string();
            if let Err(errors) = load_manifest("probe", &text, ParseOptions::user(None)) {
                let found: Vec<String> = errors
                    .0
                    .iter()
                    .filter(|e| e.kind == ErrorKind::UnknownField)
                    .map(ToString::to_string)
                    .collect();
                if !found.is_empty() {
                    unknown.push(format!("{kind} {}: {}", f.display(), found.join("; ")));
                }
            }
        }
    }
    assert!(checked > 4000, "only {checked} fields found in the schemas");
    assert!(
        unknown.is_empty(),
        "{} Kubernetes fields are unknown to jotasu (decode them, or give them a rule in support/rules.rs):\n{}",
        unknown.len(),
        unknown.join("\n")
    );
}

#[test]
fn every_rule_names_a_kubernetes_field_the_types_do_not_decode() {
    use crate::object::Object;
    let mut stale = Vec::new();
    for (kind, version, fields) in served() {
        if version != kind.api_version() {
            continue; // converted to the stored version first
        }
        for (prefix, rules) in super::scopes(kind) {
            for rule in *rules {
                let path = super::join_scope(prefix, rule.path);
                let Some(field) = fields.iter().find(|f| f.display() == path) else {
                    stale.push(format!("{kind} {path}: Kubernetes has no such field"));
                    continue;
                };
                let value = field.manifest(version, kind.as_str());
                match Object::decode_as(kind, &value) {
                    Err(e) if e.inner().to_string().starts_with("unknown field") => {}
                    Err(e) => stale.push(format!("{kind} {path}: decoded by the types ({e})")),
                    Ok(_) => stale.push(format!("{kind} {path}: decoded by the types")),
                }
            }
        }
    }
    assert!(stale.is_empty(), "stale rules:\n{}", stale.join("\n"));
}
