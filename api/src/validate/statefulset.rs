//! StatefulSet and ControllerRevision rules, worded as Kubernetes' own
//! validation words them.

use crate::error::FieldError;
use crate::int_or_string::IntOrString;
use crate::kinds::statefulset::{ControllerRevision, StatefulSet, StatefulSetUpdateStrategyType};
use crate::path::FieldPath;
use crate::validate::{names, non_negative};

use super::workloads::selector_and_template;

pub(super) fn stateful_set(d: &StatefulSet, errs: &mut Vec<FieldError>) {
    let spec = FieldPath::new("spec");
    let s = &d.spec;
    non_negative(s.replicas, &spec.field("replicas"), errs);
    // The pods mount their claims as volumes named after the templates.
    let mut template = s.template.clone();
    for t in &s.volume_claim_templates {
        let name = t.metadata.name();
        if !template.spec.volumes.iter().any(|v| v.name == name) {
            template
                .spec
                .volumes
                .push(crate::kinds::volumes::Volume::claim(name, name));
        }
    }
    selector_and_template(&s.selector, &template, &spec, "statefulset", errs);
    non_negative(
        s.revision_history_limit,
        &spec.field("revisionHistoryLimit"),
        errs,
    );
    non_negative(s.min_ready_seconds, &spec.field("minReadySeconds"), errs);
    if let Some(o) = &s.ordinals {
        non_negative(Some(o.start), &spec.field("ordinals").field("start"), errs);
    }
    if let Some(name) = s.service_name.as_deref().filter(|n| !n.is_empty())
        && let Err(e) = names::dns1123_label(name)
    {
        errs.push(FieldError::invalid(&spec.field("serviceName"), name, e));
    }
    if let Some(st) = &s.update_strategy {
        let sp = spec.field("updateStrategy");
        match (st.type_.unwrap_or_default(), &st.rolling_update) {
            (StatefulSetUpdateStrategyType::OnDelete, Some(_)) => {
                errs.push(FieldError::invalid(
                    &sp.field("rollingUpdate"),
                    "",
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
            (StatefulSetUpdateStrategyType::RollingUpdate, Some(ru)) => {
                let rp = sp.field("rollingUpdate");
                non_negative(ru.partition, &rp.field("partition"), errs);
                if let Some(mu) = &ru.max_unavailable {
                    max_unavailable(mu, &rp.field("maxUnavailable"), errs);
                }
            }
            _ => {}
        }
    }
    if let Some(p) = &s.persistent_volume_claim_retention_policy {
        let pp = spec.field("persistentVolumeClaimRetentionPolicy");
        for (field, v) in [
            ("whenDeleted", &p.when_deleted),
            ("whenScaled", &p.when_scaled),
        ] {
            if let Some(v) = v
                && v != "Retain"
                && v != "Delete"
            {
                errs.push(FieldError::not_supported(
                    &pp.field(field),
                    v,
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    let templates = spec.field("volumeClaimTemplates");
    let mut seen = std::collections::BTreeSet::new();
    for (i, t) in s.volume_claim_templates.iter().enumerate() {
        let path = templates.index(i);
        let name = t.metadata.name();
        if name.is_empty() {
            errs.push(FieldError::required(
                &path.field("metadata").field("name"),
                "name or generateName is required",
            ));
        } else if let Err(e) = names::dns1123_subdomain(name) {
            errs.push(FieldError::invalid(
                &path.field("metadata").field("name"),
                name,
                e,
            ));
        } else if !seen.insert(name.to_owned()) {
            errs.push(FieldError::duplicate(
                &path.field("metadata").field("name"),
                name,
            ));
        }
        super::storage::claim_spec(&t.spec, &path.field("spec"), errs);
    }
}

/// A count > 0 or a percent in 1–100 %.
fn max_unavailable(v: &IntOrString, path: &FieldPath, errs: &mut Vec<FieldError>) {
    match v {
        IntOrString::Int(n) if *n < 1 => {
            errs.push(FieldError::invalid(path, n, "must be greater than 0"));
        }
        IntOrString::String(s) => match v.percent() {
            None => errs.push(FieldError::invalid(
                path,
                s,
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%')",
            )),
            Some(pc) if !(1..=100).contains(&pc) => {
                errs.push(FieldError::invalid(path, s, "must be between 1% and 100%"));
            }
            Some(_) => {}
        },
        IntOrString::Int(_) => {}
    }
}

pub(super) fn controller_revision(r: &ControllerRevision, errs: &mut Vec<FieldError>) {
    non_negative(Some(r.revision), &FieldPath::new("revision"), errs);
    if !r.data.is_object() {
        errs.push(FieldError::required(
            &FieldPath::new("data"),
            "must be an object: the state the revision restores",
        ));
    }
}
