//! Strategic merge patches, as kubectl and kustomize apply them: maps
//! merged key by key, `null` deletes a key, lists of objects merged by
//! Kubernetes' merge keys (containers by name, container ports by
//! containerPort, volumeMounts by mountPath, …) and replaced otherwise;
//! `$patch: delete` removes a map or a list element, `$patch: replace`
//! replaces a map or a whole list.

use serde_json::{Map, Value};

/// What merging did to the object as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The object was patched.
    Patched,
    /// The patch says `$patch: delete`: drop the object.
    Deleted,
}

/// The merge key of a list field (`field` below `parents`) of a `kind`.
fn merge_key(kind: &str, parents: &[String], field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "ownerReferences" => Some("uid"),
        "conditions" => Some("type"),
        "resizePolicy" => Some("resourceName"),
        "ports" if kind == "Service" && parents == ["spec"] => Some("port"),
        "ports" => Some("containerPort"),
        _ => None,
    }
}

fn directive(map: &Map<String, Value>) -> Option<&str> {
    map.get("$patch").and_then(Value::as_str)
}

fn is_directive_key(key: &str) -> bool {
    key == "$patch"
        || key == "$retainKeys"
        || key.starts_with("$setElementOrder/")
        || key.starts_with("$deleteFromPrimitiveList/")
}

/// A patch value as it lands where nothing was: directives and nulls dropped.
fn clean(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, v)| !is_directive_key(k) && !v.is_null())
                .map(|(k, v)| (k.clone(), clean(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter(|v| {
                    !matches!(v, Value::Object(m) if directive(m).is_some_and(|d| d == "delete"))
                })
                .map(clean)
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Applies `patch` to the object `target` of `kind`.
pub fn apply(target: &mut Value, patch: &Value, kind: &str) -> Outcome {
    let (Value::Object(t), Value::Object(p)) = (&mut *target, patch) else {
        *target = clean(patch);
        return Outcome::Patched;
    };
    match directive(p) {
        Some("delete") => Outcome::Deleted,
        Some("replace") => {
            *target = clean(patch);
            Outcome::Patched
        }
        _ => {
            merge_map(t, p, kind, &mut Vec::new());
            Outcome::Patched
        }
    }
}

fn merge_map(
    target: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    kind: &str,
    parents: &mut Vec<String>,
) {
    for (key, p) in patch {
        if is_directive_key(key) {
            continue;
        }
        if p.is_null() {
            target.remove(key);
            continue;
        }
        if let Value::Object(pm) = p {
            match directive(pm) {
                Some("delete") => {
                    target.remove(key);
                    continue;
                }
                Some("replace") => {
                    target.insert(key.clone(), clean(p));
                    continue;
                }
                _ => {}
            }
        }
        match (target.get_mut(key), p) {
            (Some(Value::Object(tm)), Value::Object(pm)) => {
                parents.push(key.clone());
                merge_map(tm, pm, kind, parents);
                parents.pop();
            }
            (Some(Value::Array(tl)), Value::Array(pl)) => {
                let merge_by = merge_key(kind, parents, key);
                parents.push(key.clone());
                merge_list(tl, pl, merge_by, kind, parents);
                parents.pop();
            }
            _ => {
                target.insert(key.clone(), clean(p));
            }
        }
    }
}

fn merge_list(
    target: &mut Vec<Value>,
    patch: &[Value],
    merge_by: Option<&str>,
    kind: &str,
    parents: &mut Vec<String>,
) {
    let replace = patch
        .iter()
        .any(|v| matches!(v, Value::Object(m) if directive(m) == Some("replace")));
    let Some(merge_by) = merge_by.filter(|_| !replace) else {
        *target = patch
            .iter()
            .filter(|v| !matches!(v, Value::Object(m) if directive(m).is_some()))
            .map(clean)
            .collect();
        return;
    };
    // As kustomize orders them: the patch's elements first (merged into
    // the object's where keys match), then the object's other elements.
    let mut rest: Vec<Option<Value>> = std::mem::take(target).into_iter().map(Some).collect();
    let mut merged = Vec::new();
    for p in patch {
        let Value::Object(pm) = p else {
            continue;
        };
        let Some(key) = pm.get(merge_by) else {
            continue;
        };
        let found = rest
            .iter()
            .position(|t| t.as_ref().and_then(|t| t.get(merge_by)) == Some(key));
        let existing = found.and_then(|at| rest[at].take());
        match (directive(pm), existing) {
            (Some("delete"), _) => {}
            (_, Some(mut t)) => {
                if let Value::Object(tm) = &mut t {
                    merge_map(tm, pm, kind, parents);
                }
                merged.push(t);
            }
            (_, None) => merged.push(clean(p)),
        }
    }
    merged.extend(rest.into_iter().flatten());
    *target = merged;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "app", "image": "a", "env": [{"name": "A", "value": "1"}],
             "ports": [{"containerPort": 80}]},
            {"name": "old", "image": "o"}
        ], "volumes": [{"name": "v", "emptyDir": {}}]}}}})
    }

    #[test]
    fn merges_by_keys() {
        let mut d = deployment();
        let patch = json!({"spec": {"replicas": null, "template": {"spec": {"containers": [
            {"name": "app", "env": [{"name": "B", "value": "2"}], "ports": [{"containerPort": 80, "name": "http"}]},
            {"name": "side", "image": "s"},
            {"name": "old", "$patch": "delete"}
        ]}}}});
        assert_eq!(apply(&mut d, &patch, "Deployment"), Outcome::Patched);
        let spec = &d["spec"]["template"]["spec"];
        assert!(d["spec"].get("replicas").is_none());
        assert_eq!(
            spec["containers"][0]["env"],
            json!([{"name": "B", "value": "2"}, {"name": "A", "value": "1"}])
        );
        assert_eq!(
            spec["containers"][0]["ports"],
            json!([{"containerPort": 80, "name": "http"}])
        );
        assert_eq!(spec["containers"][1], json!({"name": "side", "image": "s"}));
        assert_eq!(spec["containers"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn replace_and_delete_directives() {
        let mut d = deployment();
        let patch = json!({"spec": {"template": {"spec": {
            "volumes": [{"$patch": "replace"}, {"name": "w", "emptyDir": {}}],
            "containers": [{"name": "app", "env": [{"$patch": "replace"}]}]
        }}}});
        apply(&mut d, &patch, "Deployment");
        let spec = &d["spec"]["template"]["spec"];
        assert_eq!(spec["volumes"], json!([{"name": "w", "emptyDir": {}}]));
        assert_eq!(spec["containers"][0]["env"], json!([]));
        let mut d = deployment();
        apply(
            &mut d,
            &json!({"spec": {"template": {"$patch": "delete"}}}),
            "Deployment",
        );
        assert!(d["spec"].get("template").is_none());
        assert_eq!(
            apply(&mut d, &json!({"$patch": "delete"}), "Deployment"),
            Outcome::Deleted
        );
    }

    #[test]
    fn lists_without_keys_are_replaced() {
        let mut d = json!({"spec": {"ports": [{"port": 80}], "args": ["a", "b"]}});
        apply(
            &mut d,
            &json!({"spec": {"ports": [{"port": 81}], "args": ["c"]}}),
            "Service",
        );
        assert_eq!(
            d,
            json!({"spec": {"ports": [{"port": 81}, {"port": 80}], "args": ["c"]}})
        );
    }
}
