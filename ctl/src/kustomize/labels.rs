//! `labels`, `commonLabels` and `commonAnnotations`: maps written into
//! metadata and, by kustomize's field specs, into selectors and pod
//! templates.

use std::collections::BTreeMap;

use serde_json::Value;

use super::fieldspec::{FieldSpec, any, group_kind, kind, visit_maps};
use super::file::LabelSet;
use super::resource::Resource;

const METADATA_LABELS: FieldSpec = any("metadata/labels", true);

/// Pod (and job) templates' labels.
const TEMPLATE_LABELS: [FieldSpec; 8] = [
    FieldSpec {
        group: None,
        version: Some("v1"),
        kind: Some("ReplicationController"),
        path: "spec/template/metadata/labels",
        create: true,
    },
    kind("Deployment", "spec/template/metadata/labels", true),
    kind("ReplicaSet", "spec/template/metadata/labels", true),
    kind("DaemonSet", "spec/template/metadata/labels", true),
    group_kind("apps", "StatefulSet", "spec/template/metadata/labels", true),
    group_kind("batch", "Job", "spec/template/metadata/labels", true),
    group_kind("batch", "CronJob", "spec/jobTemplate/metadata/labels", true),
    group_kind(
        "batch",
        "CronJob",
        "spec/jobTemplate/spec/template/metadata/labels",
        true,
    ),
];

const AFFINITY: [&str; 5] = [
    "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
    "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
];

/// Selectors (kustomize's commonLabels field specs beyond templates).
fn selector_specs() -> Vec<FieldSpec> {
    let mut specs = vec![
        FieldSpec {
            group: None,
            version: Some("v1"),
            kind: Some("Service"),
            path: "spec/selector",
            create: true,
        },
        FieldSpec {
            group: None,
            version: Some("v1"),
            kind: Some("ReplicationController"),
            path: "spec/selector",
            create: true,
        },
        kind("Deployment", "spec/selector/matchLabels", true),
        kind("ReplicaSet", "spec/selector/matchLabels", true),
        kind("DaemonSet", "spec/selector/matchLabels", true),
        group_kind("apps", "StatefulSet", "spec/selector/matchLabels", true),
        group_kind(
            "apps",
            "StatefulSet",
            "spec/volumeClaimTemplates[]/metadata/labels",
            true,
        ),
        group_kind("batch", "Job", "spec/selector/matchLabels", false),
        group_kind(
            "batch",
            "CronJob",
            "spec/jobTemplate/spec/selector/matchLabels",
            false,
        ),
        group_kind(
            "policy",
            "PodDisruptionBudget",
            "spec/selector/matchLabels",
            false,
        ),
        group_kind(
            "networking.k8s.io",
            "NetworkPolicy",
            "spec/podSelector/matchLabels",
            false,
        ),
        group_kind(
            "networking.k8s.io",
            "NetworkPolicy",
            "spec/ingress/from/podSelector/matchLabels",
            false,
        ),
        group_kind(
            "networking.k8s.io",
            "NetworkPolicy",
            "spec/egress/to/podSelector/matchLabels",
            false,
        ),
    ];
    for workload in ["Deployment", "StatefulSet"] {
        for path in AFFINITY {
            specs.push(group_kind("apps", workload, path, false));
        }
    }
    specs
}

/// Where `commonLabels` (and `labels` with includeSelectors) go.
pub fn common_label_specs() -> Vec<FieldSpec> {
    let mut specs = vec![METADATA_LABELS];
    specs.extend(selector_specs());
    specs.extend(TEMPLATE_LABELS);
    specs
}

/// Where one `labels` entry goes.
pub fn label_set_specs(set: &LabelSet) -> Vec<FieldSpec> {
    if set.include_selectors {
        return common_label_specs();
    }
    let mut specs = vec![METADATA_LABELS];
    if set.include_templates {
        specs.extend(TEMPLATE_LABELS);
    }
    specs
}

/// Where `commonAnnotations` go.
pub fn annotation_specs() -> Vec<FieldSpec> {
    let template = "spec/template/metadata/annotations";
    vec![
        any("metadata/annotations", true),
        FieldSpec {
            group: None,
            version: Some("v1"),
            kind: Some("ReplicationController"),
            path: template,
            create: true,
        },
        kind("Deployment", template, true),
        kind("ReplicaSet", template, true),
        kind("DaemonSet", template, true),
        group_kind("apps", "StatefulSet", template, true),
        group_kind("batch", "Job", template, true),
        group_kind(
            "batch",
            "CronJob",
            "spec/jobTemplate/metadata/annotations",
            true,
        ),
        group_kind(
            "batch",
            "CronJob",
            "spec/jobTemplate/spec/template/metadata/annotations",
            true,
        ),
    ]
}

/// Writes `pairs` into every map the specs name (existing keys overwritten).
pub fn apply(resources: &mut [Resource], pairs: &BTreeMap<String, String>, specs: &[FieldSpec]) {
    if pairs.is_empty() {
        return;
    }
    for r in resources.iter_mut() {
        for spec in specs {
            if !spec.applies(r) {
                continue;
            }
            visit_maps(&mut r.value, &spec.keys(), spec.create, &mut |map| {
                for (k, v) in pairs {
                    map.insert(k.clone(), Value::String(v.clone()));
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Resource {
        Resource::new(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {}}}
        }))
    }

    fn pairs() -> BTreeMap<String, String> {
        BTreeMap::from([("env".to_owned(), "prod".to_owned())])
    }

    #[test]
    fn common_labels_reach_selectors_and_templates() {
        let mut rs = [deployment()];
        apply(&mut rs, &pairs(), &common_label_specs());
        let v = &rs[0].value;
        assert_eq!(v["metadata"]["labels"], json!({"env": "prod"}));
        assert_eq!(v["spec"]["selector"]["matchLabels"]["env"], "prod");
        assert_eq!(v["spec"]["template"]["metadata"]["labels"]["env"], "prod");
    }

    #[test]
    fn labels_without_selectors() {
        let set = LabelSet {
            pairs: pairs(),
            include_selectors: false,
            include_templates: true,
        };
        let mut rs = [deployment()];
        apply(&mut rs, &pairs(), &label_set_specs(&set));
        let v = &rs[0].value;
        assert_eq!(v["spec"]["selector"]["matchLabels"], json!({"app": "web"}));
        assert_eq!(v["spec"]["template"]["metadata"]["labels"]["env"], "prod");
        let plain = LabelSet {
            include_templates: false,
            ..set
        };
        let mut rs = [deployment()];
        apply(&mut rs, &pairs(), &label_set_specs(&plain));
        assert_eq!(
            rs[0].value["spec"]["template"]["metadata"]["labels"],
            json!({"app": "web"})
        );
    }

    #[test]
    fn annotations_on_templates() {
        let mut rs = [deployment()];
        apply(&mut rs, &pairs(), &annotation_specs());
        assert_eq!(
            rs[0].value["spec"]["template"]["metadata"]["annotations"],
            json!({"env": "prod"})
        );
    }
}
