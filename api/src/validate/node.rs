//! Node rules (pod CIDR, taints, addresses) and PriorityClass rules.

use std::collections::BTreeSet;

use crate::error::FieldError;
use crate::kinds::node::Node;
use crate::path::FieldPath;
use crate::validate::{name, names};

pub(super) fn node(n: &Node, errs: &mut Vec<FieldError>) {
    let spec = FieldPath::new("spec");
    if let Some(cidr) = n.spec.pod_cidr.as_deref().filter(|c| !c.is_empty()) {
        name(names::ipv4_cidr, cidr, &spec.field("podCIDR"), errs);
    }
    super::service::single_stack(
        n.spec.pod_cidr.as_deref(),
        &n.spec.pod_cidrs,
        &spec.field("podCIDRs"),
        "podCIDR",
        errs,
    );
    let mut seen = BTreeSet::new();
    for (i, t) in n.spec.taints.iter().enumerate() {
        let tp = spec.field("taints").index(i);
        name(names::qualified_name, &t.key, &tp.field("key"), errs);
        if let Some(v) = &t.value {
            name(names::label_value, v, &tp.field("value"), errs);
        }
        if !seen.insert((t.key.as_str(), t.effect)) {
            errs.push(FieldError::duplicate(
                &tp,
                format!("{}:{:?}", t.key, t.effect),
            ));
        }
    }
    if let Some(status) = &n.status {
        for (i, a) in status.addresses.iter().enumerate() {
            let ap = FieldPath::new("status").field("addresses").index(i);
            if matches!(a.type_.as_str(), "InternalIP" | "ExternalIP") {
                name(names::ipv4, &a.address, &ap.field("address"), errs);
            }
        }
    }
}

/// A PriorityClass, as Kubernetes checks it: user classes at most one
/// billion and not named `system-…` (those are built in).
pub(super) fn priority_class(
    c: &crate::kinds::scheduling::PriorityClass,
    errs: &mut Vec<FieldError>,
) {
    use crate::kinds::scheduling::{HIGHEST_USER_PRIORITY, SYSTEM_CLASSES};
    let name = c.metadata.name();
    let system = SYSTEM_CLASSES.iter().find(|(n, _)| *n == name);
    match system {
        Some((_, value)) if c.value != *value => errs.push(FieldError::invalid(
            &FieldPath::new("value"),
            c.value,
            format!("the system class {name} has the value {value}"),
        )),
        Some(_) => {}
        None if name.starts_with("system-") => errs.push(FieldError::invalid(
            &FieldPath::new("metadata").field("name"),
            name,
            "priority class names with 'system-' prefix are reserved",
        )),
        None if c.value > HIGHEST_USER_PRIORITY => errs.push(FieldError::forbidden(
            &FieldPath::new("value"),
            format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
        )),
        None => {}
    }
    if let Some(p) = c.preemption_policy.as_deref()
        && !matches!(p, "PreemptLowerPriority" | "Never")
    {
        errs.push(FieldError::not_supported(
            &FieldPath::new("preemptionPolicy"),
            p,
            &["Never", "PreemptLowerPriority"],
        ));
    }
}

/// A Lease, as Kubernetes checks it: durations and transitions positive,
/// times well-formed.
pub(super) fn lease(l: &crate::kinds::coordination::Lease, errs: &mut Vec<FieldError>) {
    let spec = FieldPath::new("spec");
    if let Some(d) = l.spec.lease_duration_seconds
        && d <= 0
    {
        errs.push(FieldError::invalid(
            &spec.field("leaseDurationSeconds"),
            d,
            "must be greater than 0",
        ));
    }
    if let Some(t) = l.spec.lease_transitions
        && t < 0
    {
        errs.push(FieldError::invalid(
            &spec.field("leaseTransitions"),
            t,
            "must be greater than or equal to 0",
        ));
    }
    for (field, time) in [
        ("acquireTime", &l.spec.acquire_time),
        ("renewTime", &l.spec.renew_time),
    ] {
        if let Some(t) = time
            && t.unix_micros().is_none()
        {
            errs.push(FieldError::invalid(
                &spec.field(field),
                &t.0,
                "must be an RFC 3339 time, e.g. 2024-05-01T12:00:00.000000Z",
            ));
        }
    }
}
