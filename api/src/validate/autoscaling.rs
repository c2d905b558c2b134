//! HorizontalPodAutoscaler rules: replica bounds, target, metrics, behavior.

use crate::error::FieldError;
use crate::kinds::hpa::{
    HorizontalPodAutoscaler, HpaScalingRules, MetricSourceType, MetricTargetType,
};
use crate::path::FieldPath;
use crate::validate::{name, names};

pub(super) fn hpa(h: &HorizontalPodAutoscaler, errs: &mut Vec<FieldError>) {
    let spec = FieldPath::new("spec");
    let s = &h.spec;
    let target = spec.field("scaleTargetRef");
    if s.scale_target_ref.kind.is_empty() {
        errs.push(FieldError::required(&target.field("kind"), ""));
    } else if s.scale_target_ref.kind != "Deployment" {
        errs.push(FieldError::not_supported(
            &target.field("kind"),
            &s.scale_target_ref.kind,
            &["Deployment"],
        ));
    }
    if let Some(v) = s
        .scale_target_ref
        .api_version
        .as_deref()
        .filter(|v| *v != "apps/v1")
    {
        errs.push(FieldError::not_supported(
            &target.field("apiVersion"),
            v,
            &["apps/v1"],
        ));
    }
    if s.scale_target_ref.name.is_empty() {
        errs.push(FieldError::required(&target.field("name"), ""));
    } else {
        name(
            names::dns1123_subdomain,
            &s.scale_target_ref.name,
            &target.field("name"),
            errs,
        );
    }
    let min = s.min_replicas.unwrap_or(1);
    if min < 1 {
        errs.push(FieldError::invalid(
            &spec.field("minReplicas"),
            min,
            "must be greater than or equal to 1",
        ));
    }
    if s.max_replicas < min.max(1) {
        errs.push(FieldError::invalid(
            &spec.field("maxReplicas"),
            s.max_replicas,
            format!("must be greater than or equal to `minReplicas` ({min}) and at least 1"),
        ));
    }
    for (i, m) in s.metrics.iter().enumerate() {
        let mp = spec.field("metrics").index(i);
        if m.type_ != MetricSourceType::Resource {
            errs.push(FieldError::forbidden(
                &mp.field("type"),
                format!(
                    "jotasu does not support {:?} metrics: only Resource metrics (cpu, memory) are served",
                    m.type_
                ),
            ));
            continue;
        }
        let Some(r) = &m.resource else {
            errs.push(FieldError::required(
                &mp.field("resource"),
                "must populate information for the given metric source",
            ));
            continue;
        };
        let rp = mp.field("resource");
        if !matches!(r.name.as_str(), "cpu" | "memory") {
            errs.push(FieldError::not_supported(
                &rp.field("name"),
                &r.name,
                &["cpu", "memory"],
            ));
        }
        let tp = rp.field("target");
        let t = &r.target;
        match t.type_ {
            MetricTargetType::Utilization => match t.average_utilization {
                None => errs.push(FieldError::required(
                    &tp.field("averageUtilization"),
                    "when `type` is 'Utilization'",
                )),
                Some(u) if u < 1 => {
                    errs.push(FieldError::invalid(
                        &tp.field("averageUtilization"),
                        u,
                        "must be greater than 0",
                    ));
                }
                Some(_) => {}
            },
            MetricTargetType::AverageValue => match &t.average_value {
                None => errs.push(FieldError::required(
                    &tp.field("averageValue"),
                    "when `type` is 'AverageValue'",
                )),
                Some(q) if q.nanos() <= 0 => {
                    errs.push(FieldError::invalid(
                        &tp.field("averageValue"),
                        q,
                        "must be positive",
                    ));
                }
                Some(_) => {}
            },
            MetricTargetType::Value => errs.push(FieldError::not_supported(
                &tp.field("type"),
                "Value",
                &["Utilization", "AverageValue"],
            )),
        }
    }
    if let Some(b) = &s.behavior {
        let bp = spec.field("behavior");
        for (field, rules) in [("scaleUp", &b.scale_up), ("scaleDown", &b.scale_down)] {
            if let Some(r) = rules {
                scaling_rules(r, &bp.field(field), errs);
            }
        }
    }
}

fn scaling_rules(r: &HpaScalingRules, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if let Some(w) = r.stabilization_window_seconds
        && !(0..=3600).contains(&w)
    {
        errs.push(FieldError::invalid(
            &path.field("stabilizationWindowSeconds"),
            w,
            "must be between 0 and 3600",
        ));
    }
    for (i, p) in r.policies.iter().enumerate() {
        let pp = path.field("policies").index(i);
        if p.value <= 0 {
            errs.push(FieldError::invalid(
                &pp.field("value"),
                p.value,
                "must be greater than zero",
            ));
        }
        if !(1..=1800).contains(&p.period_seconds) {
            errs.push(FieldError::invalid(
                &pp.field("periodSeconds"),
                p.period_seconds,
                "must be between 1 and 1800",
            ));
        }
    }
}
