//! Deployment, ReplicaSet and DaemonSet rules: selector against template labels,
//! replicas, strategies.

use crate::error::FieldError;
use crate::int_or_string::IntOrString;
use crate::kinds::pod::{PodTemplateSpec, RestartPolicy};
use crate::kinds::workloads::{
    DaemonSet, DaemonSetUpdateStrategyType, Deployment, DeploymentStrategyType, ReplicaSet,
    RollingUpdate,
};
use crate::path::FieldPath;
use crate::selector::{LabelSelector, SelectorOperator};
use crate::validate::{meta, names, non_negative, pod};

pub(super) fn deployment(d: &Deployment, errs: &mut Vec<FieldError>) {
    let spec = FieldPath::new("spec");
    let s = &d.spec;
    non_negative(s.replicas, &spec.field("replicas"), errs);
    selector_and_template(
        &s.selector,
        &s.template,
        &spec,
        "deployment and daemonset",
        errs,
    );
    non_negative(
        s.revision_history_limit,
        &spec.field("revisionHistoryLimit"),
        errs,
    );
    non_negative(s.min_ready_seconds, &spec.field("minReadySeconds"), errs);
    if let Some(pd) = s.progress_deadline_seconds {
        if pd < 1 {
            errs.push(FieldError::invalid(
                &spec.field("progressDeadlineSeconds"),
                pd,
                "must be greater than or equal to 1",
            ));
        } else if pd <= s.min_ready_seconds.unwrap_or(0) {
            errs.push(FieldError::invalid(
                &spec.field("progressDeadlineSeconds"),
                pd,
                "must be greater than minReadySeconds",
            ));
        }
    }
    if let Some(st) = &s.strategy {
        let sp = spec.field("strategy");
        match (st.type_.unwrap_or_default(), &st.rolling_update) {
            (DeploymentStrategyType::Recreate, Some(_)) => errs.push(FieldError::forbidden(
                &sp.field("rollingUpdate"),
                "may not be specified when strategy `type` is 'Recreate'",
            )),
            (DeploymentStrategyType::RollingUpdate, Some(ru)) => {
                rolling_update(ru, &sp.field("rollingUpdate"), errs)
            }
            _ => {}
        }
    }
}

pub(super) fn replica_set(r: &ReplicaSet, errs: &mut Vec<FieldError>) {
    let spec = FieldPath::new("spec");
    let s = &r.spec;
    non_negative(s.replicas, &spec.field("replicas"), errs);
    non_negative(s.min_ready_seconds, &spec.field("minReadySeconds"), errs);
    selector_and_template(
        &s.selector,
        &s.template,
        &spec,
        "deployment and daemonset",
        errs,
    );
}

pub(super) fn daemon_set(d: &DaemonSet, errs: &mut Vec<FieldError>) {
    let spec = FieldPath::new("spec");
    let s = &d.spec;
    selector_and_template(
        &s.selector,
        &s.template,
        &spec,
        "deployment and daemonset",
        errs,
    );
    non_negative(
        s.revision_history_limit,
        &spec.field("revisionHistoryLimit"),
        errs,
    );
    non_negative(s.min_ready_seconds, &spec.field("minReadySeconds"), errs);
    if let Some(st) = &s.update_strategy {
        let sp = spec.field("updateStrategy");
        match (st.type_.unwrap_or_default(), &st.rolling_update) {
            (DaemonSetUpdateStrategyType::OnDelete, Some(_)) => errs.push(FieldError::forbidden(
                &sp.field("rollingUpdate"),
                "may not be specified when strategy `type` is 'OnDelete'",
            )),
            (DaemonSetUpdateStrategyType::RollingUpdate, Some(ru)) => {
                rolling_update(ru, &sp.field("rollingUpdate"), errs)
            }
            _ => {}
        }
    }
}

/// A workload's selector matches its template's labels; the template is
/// a valid pod spec that restarts Always. `what` names the kind in the
/// refusal of an empty selector, as Kubernetes words it.
pub(super) fn selector_and_template(
    selector: &LabelSelector,
    template: &PodTemplateSpec,
    spec: &FieldPath,
    what: &str,
    errs: &mut Vec<FieldError>,
) {
    let sel = spec.field("selector");
    label_selector(selector, &sel, errs);
    let tmeta = spec.field("template").field("metadata");
    meta::labels(&template.metadata.labels, &tmeta.field("labels"), errs);
    if selector.is_empty() {
        errs.push(FieldError::invalid(
            &sel,
            "",
            format!("empty selector is invalid for {what}"),
        ));
    } else if !selector.matches(&template.metadata.labels) {
        errs.push(FieldError::invalid(
            &tmeta.field("labels"),
            labels_text(&template.metadata.labels),
            format!("`selector` does not match template `labels` (selector: {selector})"),
        ));
    }
    let pspec = spec.field("template").field("spec");
    pod::pod_spec(&template.spec, &pspec, errs);
    if let Some(rp) = template.spec.restart_policy
        && rp != RestartPolicy::Always
    {
        errs.push(FieldError::not_supported(
            &pspec.field("restartPolicy"),
            format!("{rp:?}"),
            &["Always"],
        ));
    }
}

pub(super) fn labels_text(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Rules of a label selector in object form.
pub(super) fn label_selector(s: &LabelSelector, path: &FieldPath, errs: &mut Vec<FieldError>) {
    meta::labels(&s.match_labels, &path.field("matchLabels"), errs);
    for (i, r) in s.match_expressions.iter().enumerate() {
        let p = path.field("matchExpressions").index(i);
        if let Err(e) = names::qualified_name(&r.key) {
            errs.push(FieldError::invalid(&p.field("key"), &r.key, e));
        }
        match r.operator {
            SelectorOperator::In | SelectorOperator::NotIn if r.values.is_empty() => {
                errs.push(FieldError::required(
                    &p.field("values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
            SelectorOperator::Exists | SelectorOperator::DoesNotExist if !r.values.is_empty() => {
                errs.push(FieldError::forbidden(
                    &p.field("values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
            _ => {}
        }
        for (j, v) in r.values.iter().enumerate() {
            if let Err(e) = names::label_value(v) {
                errs.push(FieldError::invalid(&p.field("values").index(j), v, e));
            }
        }
    }
}

/// maxSurge/maxUnavailable: a count ≥ 0 or a percent; not both zero.
pub(super) fn rolling_update(ru: &RollingUpdate, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let mut zero = 0;
    for (field, v) in [
        ("maxSurge", &ru.max_surge),
        ("maxUnavailable", &ru.max_unavailable),
    ] {
        let Some(v) = v else { continue };
        let p = path.field(field);
        match v {
            IntOrString::Int(n) if *n < 0 => {
                errs.push(FieldError::invalid(&p, n, "must be greater than or equal to 0"));
            }
            IntOrString::Int(n) => zero += usize::from(*n == 0),
            IntOrString::String(s) => match v.percent() {
                None => errs.push(FieldError::invalid(&p, s, "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%')")),
                Some(pc) if pc < 0 => errs.push(FieldError::invalid(&p, s, "must be greater than or equal to 0")),
                Some(pc) if field == "maxUnavailable" && pc > 100 => {
                    errs.push(FieldError::invalid(&p, s, "must not be greater than 100%"));
                }
                Some(pc) => zero += usize::from(pc == 0),
            },
        }
    }
    if zero == 2 {
        errs.push(FieldError::invalid(
            &path.field("maxUnavailable"),
            0,
            "may not be 0 when `maxSurge` is 0",
        ));
    }
}
