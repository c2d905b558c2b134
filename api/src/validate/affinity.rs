//! Affinity and topology spread rules, in Kubernetes' words.

use std::collections::BTreeSet;

use crate::error::FieldError;
use crate::kinds::affinity::{
    Affinity, NodeSelectorOperator, NodeSelectorRequirement, NodeSelectorTerm, PodAffinity,
    PodAffinityTerm, TopologySpreadConstraint, UnsatisfiableConstraintAction,
};
use crate::path::FieldPath;
use crate::validate::names;
use crate::validate::workloads::label_selector;

pub(super) fn affinity(a: &Affinity, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if let Some(n) = &a.node_affinity {
        let p = path.field("nodeAffinity");
        if let Some(required) = &n.required_during_scheduling_ignored_during_execution {
            let rp = p
                .field("requiredDuringSchedulingIgnoredDuringExecution")
                .field("nodeSelectorTerms");
            if required.node_selector_terms.is_empty() {
                errs.push(FieldError::required(
                    &rp,
                    "must have at least one node selector term",
                ));
            }
            for (i, t) in required.node_selector_terms.iter().enumerate() {
                node_selector_term(t, &rp.index(i), errs);
            }
        }
        for (i, t) in n
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            let tp = p
                .field("preferredDuringSchedulingIgnoredDuringExecution")
                .index(i);
            weight(t.weight, &tp.field("weight"), errs);
            node_selector_term(&t.preference, &tp.field("preference"), errs);
        }
    }
    if let Some(pa) = &a.pod_affinity {
        pod_affinity(pa, &path.field("podAffinity"), errs);
    }
    if let Some(pa) = &a.pod_anti_affinity {
        pod_affinity(pa, &path.field("podAntiAffinity"), errs);
    }
}

fn weight(w: i32, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if !(1..=100).contains(&w) {
        errs.push(FieldError::invalid(path, w, "must be in the range 1-100"));
    }
}

pub(super) fn node_selector_term(
    t: &NodeSelectorTerm,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    for (i, r) in t.match_expressions.iter().enumerate() {
        let p = path.field("matchExpressions").index(i);
        if let Err(e) = names::qualified_name(&r.key) {
            errs.push(FieldError::invalid(&p.field("key"), &r.key, e));
        }
        requirement_values(r, &p, errs);
    }
    for (i, r) in t.match_fields.iter().enumerate() {
        let p = path.field("matchFields").index(i);
        if r.key != "metadata.name" {
            errs.push(FieldError::invalid(
                &p.field("key"),
                &r.key,
                "not a valid field selector key",
            ));
        }
        if !matches!(
            r.operator,
            NodeSelectorOperator::In | NodeSelectorOperator::NotIn
        ) {
            errs.push(FieldError::invalid(
                &p.field("operator"),
                format!("{:?}", r.operator),
                "not a valid selector operator",
            ));
        } else if r.values.len() != 1 {
            errs.push(FieldError::required(
                &p.field("values"),
                "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
            ));
        }
    }
}

fn requirement_values(r: &NodeSelectorRequirement, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let vp = path.field("values");
    match r.operator {
        NodeSelectorOperator::In | NodeSelectorOperator::NotIn if r.values.is_empty() => {
            errs.push(FieldError::required(
                &vp,
                "must be specified when `operator` is 'In' or 'NotIn'",
            ));
        }
        NodeSelectorOperator::Exists | NodeSelectorOperator::DoesNotExist
            if !r.values.is_empty() =>
        {
            errs.push(FieldError::forbidden(
                &vp,
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ));
        }
        NodeSelectorOperator::Gt | NodeSelectorOperator::Lt => {
            if r.values.len() != 1 {
                errs.push(FieldError::required(
                    &vp,
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                ));
            } else if r.values[0].parse::<i64>().is_err() {
                errs.push(FieldError::invalid(
                    &vp.index(0),
                    &r.values[0],
                    "must be an integer",
                ));
            }
        }
        _ => {}
    }
}

fn pod_affinity(a: &PodAffinity, path: &FieldPath, errs: &mut Vec<FieldError>) {
    for (i, t) in a
        .required_during_scheduling_ignored_during_execution
        .iter()
        .enumerate()
    {
        let p = path
            .field("requiredDuringSchedulingIgnoredDuringExecution")
            .index(i);
        pod_affinity_term(t, &p, errs);
    }
    for (i, t) in a
        .preferred_during_scheduling_ignored_during_execution
        .iter()
        .enumerate()
    {
        let p = path
            .field("preferredDuringSchedulingIgnoredDuringExecution")
            .index(i);
        weight(t.weight, &p.field("weight"), errs);
        pod_affinity_term(&t.pod_affinity_term, &p.field("podAffinityTerm"), errs);
    }
}

fn pod_affinity_term(t: &PodAffinityTerm, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let tk = path.field("topologyKey");
    if t.topology_key.is_empty() {
        errs.push(FieldError::required(&tk, "can not be empty"));
    } else if let Err(e) = names::qualified_name(&t.topology_key) {
        errs.push(FieldError::invalid(&tk, &t.topology_key, e));
    }
    if let Some(s) = &t.label_selector {
        label_selector(s, &path.field("labelSelector"), errs);
    }
    if let Some(s) = t.namespace_selector.as_ref().filter(|s| !s.is_empty()) {
        errs.push(FieldError::forbidden(
            &path.field("namespaceSelector"),
            format!(
                "jotasu does not support namespace selectors with terms yet ({} terms given); list the namespaces under `namespaces`, or use `{{}}` for every namespace",
                s.match_labels.len() + s.match_expressions.len()
            ),
        ));
    }
    for (i, ns) in t.namespaces.iter().enumerate() {
        if let Err(e) = names::dns1123_label(ns) {
            errs.push(FieldError::invalid(
                &path.field("namespaces").index(i),
                ns,
                e,
            ));
        }
    }
    label_keys(
        &t.match_label_keys,
        t.label_selector.as_ref(),
        &path.field("matchLabelKeys"),
        errs,
    );
    label_keys(
        &t.mismatch_label_keys,
        t.label_selector.as_ref(),
        &path.field("mismatchLabelKeys"),
        errs,
    );
    if t.label_selector.is_none()
        && (!t.match_label_keys.is_empty() || !t.mismatch_label_keys.is_empty())
    {
        errs.push(FieldError::forbidden(
            &path.field("matchLabelKeys"),
            "must not be specified when labelSelector is not set",
        ));
    }
}

/// Keys taken from the incoming pod: qualified names, not also in the selector.
fn label_keys(
    keys: &[String],
    selector: Option<&crate::selector::LabelSelector>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    for (i, k) in keys.iter().enumerate() {
        let p = path.index(i);
        if let Err(e) = names::qualified_name(k) {
            errs.push(FieldError::invalid(&p, k, e));
        }
        let in_selector = selector.is_some_and(|s| {
            s.match_labels.contains_key(k) || s.match_expressions.iter().any(|r| &r.key == k)
        });
        if in_selector {
            errs.push(FieldError::invalid(
                &p,
                k,
                "exists in both matchLabelKeys and labelSelector",
            ));
        }
    }
}

pub(super) fn spread(
    constraints: &[TopologySpreadConstraint],
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let mut seen = BTreeSet::new();
    for (i, c) in constraints.iter().enumerate() {
        let p = path.index(i);
        if c.max_skew <= 0 {
            errs.push(FieldError::invalid(
                &p.field("maxSkew"),
                c.max_skew,
                "must be greater than zero",
            ));
        }
        let tk = p.field("topologyKey");
        if c.topology_key.is_empty() {
            errs.push(FieldError::required(&tk, "can not be empty"));
        } else if let Err(e) = names::qualified_name(&c.topology_key) {
            errs.push(FieldError::invalid(&tk, &c.topology_key, e));
        }
        if let Some(min) = c.min_domains {
            if min <= 0 {
                errs.push(FieldError::invalid(
                    &p.field("minDomains"),
                    min,
                    "must be greater than zero",
                ));
            } else if c.when_unsatisfiable != UnsatisfiableConstraintAction::DoNotSchedule {
                errs.push(FieldError::invalid(
                    &p.field("minDomains"),
                    min,
                    "can only use minDomains if whenUnsatisfiable=DoNotSchedule",
                ));
            }
        }
        if let Some(s) = &c.label_selector {
            label_selector(s, &p.field("labelSelector"), errs);
        }
        label_keys(
            &c.match_label_keys,
            c.label_selector.as_ref(),
            &p.field("matchLabelKeys"),
            errs,
        );
        if !seen.insert((c.topology_key.as_str(), c.when_unsatisfiable)) {
            errs.push(FieldError::duplicate(
                &p,
                format!("{{{}, {:?}}}", c.topology_key, c.when_unsatisfiable),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ParseOptions;
    use crate::manifest::load_manifest;

    fn errors(spec: &str) -> String {
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers: [{{name: c, image: busybox}}]\n{spec}"
        );
        match load_manifest("pod.yaml", &text, ParseOptions::default()) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn valid_rules_pass() {
        let ok = errors(
            "  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions: [{key: disk, operator: In, values: [ssd]}, {key: cores, operator: Gt, values: ['4']}]
      preferredDuringSchedulingIgnoredDuringExecution:
      - {weight: 10, preference: {matchFields: [{key: metadata.name, operator: In, values: [n1]}]}}
    podAntiAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - {labelSelector: {matchLabels: {app: web}}, topologyKey: kubernetes.io/hostname, matchLabelKeys: [pod-template-hash]}
  topologySpreadConstraints:
  - {maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: DoNotSchedule, minDomains: 2, labelSelector: {matchLabels: {app: web}}}
",
        );
        assert_eq!(ok, "");
    }

    #[test]
    fn broken_rules_are_named() {
        let e = errors(
            "  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: []}
      preferredDuringSchedulingIgnoredDuringExecution:
      - {weight: 0, preference: {matchExpressions: [{key: a, operator: Exists, values: [x]}, {key: b, operator: Lt, values: [x]}]}}
    podAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - {labelSelector: {matchLabels: {app: web}}, topologyKey: '', namespaceSelector: {matchLabels: {team: a}}}
  topologySpreadConstraints:
  - {maxSkew: 0, topologyKey: zone, whenUnsatisfiable: ScheduleAnyway, minDomains: 2}
  - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: web}}, matchLabelKeys: [app]}
",
        );
        let want = [
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: Required value: must have at least one node selector term",
            "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: \"0\": must be in the range 1-100",
            "preference.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            "preference.matchExpressions[1].values[0]: Invalid value: \"x\": must be an integer",
            "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Required value: can not be empty",
            "namespaceSelector: Forbidden: jotasu does not support namespace selectors with terms yet",
            "spec.topologySpreadConstraints[0].maxSkew: Invalid value: \"0\": must be greater than zero",
            "spec.topologySpreadConstraints[0].minDomains: Invalid value: \"2\": can only use minDomains if whenUnsatisfiable=DoNotSchedule",
            "spec.topologySpreadConstraints[1].matchLabelKeys[0]: Invalid value: \"app\": exists in both matchLabelKeys and labelSelector",
            "spec.topologySpreadConstraints[1]: Duplicate value: \"{zone, ScheduleAnyway}\"",
        ];
        for w in want {
            assert!(e.contains(w), "missing {w:?} in\n{e}");
        }
    }
}
