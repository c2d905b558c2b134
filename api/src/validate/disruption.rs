//! PodDisruptionBudget rules, worded as Kubernetes' own.

use crate::error::FieldError;
use crate::int_or_string::IntOrString;
use crate::kinds::disruption::PodDisruptionBudget;
use crate::path::FieldPath;

use super::workloads::label_selector;

pub(super) fn pod_disruption_budget(b: &PodDisruptionBudget, errs: &mut Vec<FieldError>) {
    let spec = FieldPath::new("spec");
    let s = &b.spec;
    if s.min_available.is_some() && s.max_unavailable.is_some() {
        errs.push(FieldError::invalid(
            &spec,
            "",
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for (field, v) in [
        ("minAvailable", &s.min_available),
        ("maxUnavailable", &s.max_unavailable),
    ] {
        let Some(v) = v else { continue };
        let p = spec.field(field);
        match v {
            IntOrString::Int(n) if *n < 0 => {
                errs.push(FieldError::invalid(&p, n, "must be greater than or equal to 0"));
            }
            IntOrString::String(text) => match v.percent() {
                None => errs.push(FieldError::invalid(
                    &p,
                    text,
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%')",
                )),
                Some(pc) if !(0..=100).contains(&pc) => {
                    errs.push(FieldError::invalid(&p, text, "must not be greater than 100%"));
                }
                Some(_) => {}
            },
            IntOrString::Int(_) => {}
        }
    }
    if let Some(sel) = &s.selector {
        label_selector(sel, &spec.field("selector"), errs);
    }
    if let Some(policy) = &s.unhealthy_pod_eviction_policy {
        let allowed = ["IfHealthyBudget", "AlwaysAllow"];
        if !allowed.contains(&policy.as_str()) {
            errs.push(FieldError::not_supported(
                &spec.field("unhealthyPodEvictionPolicy"),
                policy,
                &allowed,
            ));
        }
    }
}
