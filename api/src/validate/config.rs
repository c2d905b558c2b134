//! ConfigMap and Secret rules: keys.

use crate::error::FieldError;
use crate::kinds::config::{ConfigMap, Secret};
use crate::path::FieldPath;
use crate::validate::names;

pub(super) fn config_map(c: &ConfigMap, errs: &mut Vec<FieldError>) {
    keys(c.data.keys(), &FieldPath::new("data"), errs);
    keys(c.binary_data.keys(), &FieldPath::new("binaryData"), errs);
    for k in c.binary_data.keys().filter(|k| c.data.contains_key(*k)) {
        errs.push(FieldError::invalid(
            &FieldPath::new("binaryData"),
            k,
            "duplicate of key present in data",
        ));
    }
}

pub(super) fn secret(s: &Secret, errs: &mut Vec<FieldError>) {
    keys(s.data.keys(), &FieldPath::new("data"), errs);
    keys(s.string_data.keys(), &FieldPath::new("stringData"), errs);
    let ty = s
        .type_
        .as_deref()
        .unwrap_or(crate::kinds::config::SECRET_TYPE_OPAQUE);
    let required: &[&str] = match ty {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/basic-auth" => &[],
        _ => &[],
    };
    for key in required {
        if !s.data.contains_key(*key) && !s.string_data.contains_key(*key) {
            errs.push(FieldError::required(
                &FieldPath::new("data").key(key),
                &format!("secrets of type {ty} need it"),
            ));
        }
    }
}

fn keys<'a>(keys: impl Iterator<Item = &'a String>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    for k in keys {
        if let Err(e) = names::config_key(k) {
            errs.push(FieldError::invalid(path, k, e));
        }
    }
}

/// A LimitRange, as Kubernetes checks it: known types; min ≤ defaultRequest
/// ≤ default ≤ max; ratios at least 1.
pub(super) fn limit_range(l: &crate::kinds::limits::LimitRange, errs: &mut Vec<FieldError>) {
    for (i, item) in l.spec.limits.iter().enumerate() {
        let p = FieldPath::new("spec").field("limits").index(i);
        if !matches!(
            item.type_.as_str(),
            "Container" | "Pod" | "PersistentVolumeClaim"
        ) {
            errs.push(FieldError::not_supported(
                &p.field("type"),
                &item.type_,
                &["Container", "Pod", "PersistentVolumeClaim"],
            ));
        }
        let pairs = [
            ("min", &item.min, "defaultRequest", &item.default_request),
            (
                "defaultRequest",
                &item.default_request,
                "default",
                &item.default,
            ),
            ("default", &item.default, "max", &item.max),
            ("min", &item.min, "max", &item.max),
        ];
        for (low_name, low, high_name, high) in pairs {
            for (r, lo) in low {
                if let Some(hi) = high.get(r)
                    && lo.nanos() > hi.nanos()
                {
                    errs.push(FieldError::invalid(
                        &p.field(low_name).key(r),
                        lo,
                        format!("{low_name} value {lo} is greater than {high_name} value {hi}"),
                    ));
                }
            }
        }
        for (r, q) in &item.max_limit_request_ratio {
            if q.nanos() < 1_000_000_000 {
                errs.push(FieldError::invalid(
                    &p.field("maxLimitRequestRatio").key(r),
                    q,
                    "ratio must be greater than or equal to 1",
                ));
            }
        }
    }
}

/// A ResourceQuota: amounts not negative; scopes known, not
/// conflicting, and applied only to resources they can count; selector
/// requirements well formed — each refusal as Kubernetes words it.
pub(super) fn resource_quota(q: &crate::kinds::limits::ResourceQuota, errs: &mut Vec<FieldError>) {
    use crate::kinds::limits::QUOTA_SCOPES;
    let spec = FieldPath::new("spec");
    for (r, amount) in &q.spec.hard {
        if amount.is_negative() {
            errs.push(FieldError::invalid(
                &spec.field("hard").key(r),
                amount,
                "must be greater than or equal to 0",
            ));
        }
    }
    let mut scopes: Vec<&str> = Vec::new();
    for (i, scope) in q.spec.scopes.iter().enumerate() {
        if QUOTA_SCOPES.contains(&scope.as_str()) {
            scopes.push(scope);
        } else {
            errs.push(FieldError::not_supported(
                &spec.field("scopes").index(i),
                scope,
                &QUOTA_SCOPES,
            ));
        }
    }
    let selector = spec.field("scopeSelector").field("matchExpressions");
    let expressions = q
        .spec
        .scope_selector
        .iter()
        .flat_map(|s| &s.match_expressions);
    for (i, r) in expressions.enumerate() {
        let path = selector.index(i);
        if !QUOTA_SCOPES.contains(&r.scope_name.as_str()) {
            errs.push(FieldError::not_supported(
                &path.field("scopeName"),
                &r.scope_name,
                &QUOTA_SCOPES,
            ));
            continue;
        }
        scopes.push(&r.scope_name);
        let operators = ["In", "NotIn", "Exists", "DoesNotExist"];
        if !operators.contains(&r.operator.as_str()) {
            errs.push(FieldError::not_supported(
                &path.field("operator"),
                &r.operator,
                &operators,
            ));
            continue;
        }
        if r.scope_name != "PriorityClass" && r.operator != "Exists" {
            errs.push(FieldError::invalid(
                &path.field("operator"),
                &r.operator,
                "must be 'Exist' when scope is any of ResourceQuotaScopeTerminating, ResourceQuotaScopeNotTerminating, ResourceQuotaScopeBestEffort, ResourceQuotaScopeNotBestEffort or ResourceQuotaScopeCrossNamespacePodAffinity",
            ));
        }
        match (r.operator.as_str(), r.values.is_empty()) {
            ("In" | "NotIn", true) => errs.push(FieldError::required(
                &path.field("values"),
                "must be at least one value when `operator` is 'In' or 'NotIn' for scope selector",
            )),
            ("Exists" | "DoesNotExist", false) => errs.push(FieldError::invalid(
                &path.field("values"),
                r.values.join(","),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist' for scope selector",
            )),
            _ => {}
        }
    }
    for (a, b) in [
        ("Terminating", "NotTerminating"),
        ("BestEffort", "NotBestEffort"),
    ] {
        if scopes.contains(&a) && scopes.contains(&b) {
            errs.push(FieldError::invalid(
                &spec.field("scopes"),
                format!("[{a} {b}]"),
                "conflicting scopes",
            ));
        }
    }
    // What a scoped quota may count: pods, and for scopes other than
    // BestEffort and CrossNamespacePodAffinity their compute resources.
    let compute = [
        "cpu",
        "memory",
        "requests.cpu",
        "requests.memory",
        "limits.cpu",
        "limits.memory",
    ];
    for r in q.spec.hard.keys() {
        let pods = r == "pods" || r == "count/pods";
        let only_pods = scopes
            .iter()
            .any(|s| matches!(*s, "BestEffort" | "CrossNamespacePodAffinity"));
        let fits = pods || (!only_pods && compute.contains(&r.as_str()));
        if !scopes.is_empty() && !fits {
            errs.push(FieldError::invalid(
                &spec.field("hard").key(r),
                r,
                "unsupported scope applied to resource",
            ));
        }
    }
}
