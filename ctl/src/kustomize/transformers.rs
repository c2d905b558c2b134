//! The simple transformers: `namespace`, `namePrefix`/`nameSuffix`,
//! `images`, `replicas`.

use std::path::Path;

use serde_json::Value;

use super::KustomizeError;
use super::file::{Image, Replicas};
use super::resource::Resource;

/// Kinds that live in no namespace (any other kind is namespaced, as
/// kustomize assumes).
const CLUSTER_SCOPED: [&str; 22] = [
    "Namespace",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PriorityClass",
    "IngressClass",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
    "RuntimeClass",
    "PodSecurityPolicy",
    "ComponentStatus",
    "CertificateSigningRequest",
    "ClusterIssuer",
];

/// Whether objects of `kind` live in no namespace.
pub fn cluster_scoped(kind: &str) -> bool {
    CLUSTER_SCOPED.contains(&kind)
}

/// `namespace`: every namespaced object moves there; RoleBindings'
/// ServiceAccount subjects in the old namespace of the objects follow.
pub fn namespace(resources: &mut [Resource], namespace: &str) {
    for r in resources.iter_mut() {
        if cluster_scoped(r.kind()) {
            continue;
        }
        r.set_namespace(namespace.to_owned());
    }
    for r in resources.iter_mut() {
        if !matches!(r.kind(), "RoleBinding" | "ClusterRoleBinding") {
            continue;
        }
        let Some(subjects) = r.value.get_mut("subjects").and_then(Value::as_array_mut) else {
            continue;
        };
        for s in subjects {
            let is_default = s.get("name").and_then(Value::as_str) == Some("default");
            if is_default && let Some(s) = s.as_object_mut() {
                s.insert("namespace".into(), Value::String(namespace.to_owned()));
            }
        }
    }
}

/// Whether `namePrefix`/`nameSuffix` leave objects of `kind` alone.
fn keeps_name(kind: &str) -> bool {
    matches!(
        kind,
        "CustomResourceDefinition" | "APIService" | "Namespace"
    )
}

/// `namePrefix` and `nameSuffix`.
pub fn prefix_suffix(resources: &mut [Resource], prefix: &str, suffix: &str) {
    if prefix.is_empty() && suffix.is_empty() {
        return;
    }
    for r in resources.iter_mut() {
        if keeps_name(r.kind()) {
            continue;
        }
        let name = format!("{prefix}{}{suffix}", r.name());
        r.set_name(name);
    }
}

/// An image reference split into name and the rest (`:tag`, `@digest`).
fn split_image(image: &str) -> (&str, &str) {
    if let Some(at) = image.find('@') {
        let (name, _) = image.split_at(at);
        // name:tag@digest: the tag goes with the digest.
        return match tag_start(name) {
            Some(colon) => image.split_at(colon),
            None => image.split_at(at),
        };
    }
    match tag_start(image) {
        Some(colon) => image.split_at(colon),
        None => (image, ""),
    }
}

/// Where `:tag` starts (a colon after the last slash: not a registry port).
fn tag_start(name: &str) -> Option<usize> {
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    name[last_slash..].rfind(':').map(|i| i + last_slash)
}

/// The image `current` becomes under `rule`, or None when it does not match.
pub fn rewrite_image(current: &str, rule: &Image) -> Option<String> {
    let (name, rest) = split_image(current);
    if name != rule.name {
        return None;
    }
    let name = rule.new_name.as_deref().unwrap_or(name);
    let rest = match (&rule.digest, &rule.new_tag) {
        (Some(digest), _) if !digest.is_empty() => format!("@{digest}"),
        (_, Some(tag)) if !tag.is_empty() => format!(":{tag}"),
        _ => rest.to_owned(),
    };
    Some(format!("{name}{rest}"))
}

/// `images`: every `image` of every `containers` and `initContainers`
/// list, wherever it is in an object.
pub fn images(resources: &mut [Resource], rules: &[Image]) {
    if rules.is_empty() {
        return;
    }
    for r in resources.iter_mut() {
        rewrite_images(&mut r.value, rules);
    }
}

fn rewrite_images(value: &mut Value, rules: &[Image]) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if matches!(key.as_str(), "containers" | "initContainers")
                    && let Value::Array(containers) = child
                {
                    for c in containers.iter_mut() {
                        let Some(image) = c.get_mut("image") else {
                            continue;
                        };
                        let Some(current) = image.as_str() else {
                            continue;
                        };
                        if let Some(new) =
                            rules.iter().find_map(|rule| rewrite_image(current, rule))
                        {
                            *image = Value::String(new);
                        }
                    }
                }
                rewrite_images(child, rules);
            }
        }
        Value::Array(items) => {
            for item in items {
                rewrite_images(item, rules);
            }
        }
        _ => {}
    }
}

/// `replicas`: `spec.replicas` of the Deployments, ReplicaSets,
/// ReplicationControllers and StatefulSets of that name (as first named
/// or now); a name that matches none is an error, as in kustomize.
pub fn replicas(
    resources: &mut [Resource],
    rules: &[Replicas],
    file: &Path,
) -> Result<(), KustomizeError> {
    for (i, rule) in rules.iter().enumerate() {
        let mut found = false;
        for r in resources.iter_mut() {
            let scalable = matches!(
                r.kind(),
                "Deployment" | "ReplicaSet" | "ReplicationController" | "StatefulSet"
            );
            if !scalable || !r.answers_to(&rule.name) {
                continue;
            }
            found = true;
            if let Some(object) = r.value.as_object_mut() {
                let spec = object
                    .entry("spec")
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Some(spec) = spec.as_object_mut() {
                    spec.insert("replicas".into(), Value::from(rule.count));
                }
            }
        }
        if !found {
            return Err(KustomizeError::invalid(
                file,
                format!("replicas[{i}].name"),
                format!(
                    "no Deployment, ReplicaSet, ReplicationController or StatefulSet is named \"{}\"",
                    rule.name
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(name: &str, new_name: Option<&str>, tag: Option<&str>, digest: Option<&str>) -> Image {
        Image {
            name: name.into(),
            new_name: new_name.map(Into::into),
            new_tag: tag.map(Into::into),
            digest: digest.map(Into::into),
        }
    }

    #[test]
    fn image_rules() {
        let r = rule("nginx", Some("reg:5000/nginx"), Some("1.27"), None);
        assert_eq!(
            rewrite_image("nginx:1.0", &r).as_deref(),
            Some("reg:5000/nginx:1.27")
        );
        assert_eq!(
            rewrite_image("nginx", &r).as_deref(),
            Some("reg:5000/nginx:1.27")
        );
        assert_eq!(rewrite_image("nginxx:1.0", &r), None);
        let d = rule("reg:5000/app", None, None, Some("sha256:ab"));
        assert_eq!(
            rewrite_image("reg:5000/app:v1", &d).as_deref(),
            Some("reg:5000/app@sha256:ab")
        );
        let keep = rule("app", Some("other"), None, None);
        assert_eq!(
            rewrite_image("app@sha256:cd", &keep).as_deref(),
            Some("other@sha256:cd")
        );
    }

    #[test]
    fn images_in_init_containers() {
        let mut rs = [Resource::new(
            json!({"kind": "Deployment", "spec": {"template": {"spec": {
            "initContainers": [{"name": "i", "image": "busybox"}],
            "containers": [{"name": "c", "image": "nginx:1"}]}}}}),
        )];
        images(
            &mut rs,
            &[
                rule("busybox", None, Some("1.36"), None),
                rule("nginx", None, Some("2"), None),
            ],
        );
        let spec = &rs[0].value["spec"]["template"]["spec"];
        assert_eq!(spec["initContainers"][0]["image"], "busybox:1.36");
        assert_eq!(spec["containers"][0]["image"], "nginx:2");
    }

    #[test]
    fn namespace_and_names() {
        let mut rs = [
            Resource::new(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
            ),
            Resource::new(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}),
            ),
        ];
        namespace(&mut rs, "prod");
        prefix_suffix(&mut rs, "p-", "-s");
        assert_eq!(
            rs[0].value["metadata"],
            json!({"name": "p-c-s", "namespace": "prod"})
        );
        assert_eq!(rs[0].history[0], (String::new(), "c".to_owned()));
        assert!(rs[0].answers_to("c"));
        assert_eq!(rs[1].value["metadata"], json!({"name": "n"}));
    }

    #[test]
    fn replicas_by_old_name() {
        let mut rs = [Resource::new(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}}),
        )];
        prefix_suffix(&mut rs, "p-", "");
        let file = Path::new("k.yaml");
        replicas(
            &mut rs,
            &[Replicas {
                name: "web".into(),
                count: 3,
            }],
            file,
        )
        .unwrap();
        assert_eq!(rs[0].value["spec"]["replicas"], 3);
        let e = replicas(
            &mut rs,
            &[Replicas {
                name: "db".into(),
                count: 1,
            }],
            file,
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("k.yaml: replicas[0].name: "),
            "{e}"
        );
    }
}
