//! Metadata rules: names, namespaces, labels, annotations, owner references.

use std::collections::BTreeMap;

use crate::error::FieldError;
use crate::meta::ObjectMeta;
use crate::path::FieldPath;
use crate::validate::names;

/// Which syntax an object's name must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// DNS-1123 subdomain (most kinds).
    Dns1123Subdomain,
    /// DNS-1123 label (Namespace, whose name becomes a DNS label).
    Dns1123Label,
    /// DNS-1035 label (Service, whose name becomes a DNS label).
    Dns1035Label,
    /// A path segment (the RBAC kinds: `system:node` is a name).
    PathSegment,
}

pub(super) fn object_meta(
    meta: &ObjectMeta,
    namespaced: bool,
    rule: NameRule,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let check = match rule {
        NameRule::Dns1123Subdomain => names::dns1123_subdomain,
        NameRule::Dns1123Label => names::dns1123_label,
        NameRule::Dns1035Label => names::dns1035_label,
        NameRule::PathSegment => names::path_segment,
    };
    match (meta.name.as_deref(), meta.generate_name.as_deref()) {
        (Some(n), _) if !n.is_empty() => super::name(check, n, &path.field("name"), errs),
        (_, Some(g)) if !g.is_empty() => {
            // The generated suffix is 5 alphanumerics; the prefix may end in '-'.
            let sample = format!("{g}x");
            if let Err(e) = check(&sample) {
                errs.push(FieldError::invalid(&path.field("generateName"), g, e));
            }
        }
        _ => errs.push(FieldError::required(
            &path.field("name"),
            "name or generateName is required",
        )),
    }
    if namespaced {
        match meta.namespace.as_deref() {
            Some(ns) => super::name(names::dns1123_label, ns, &path.field("namespace"), errs),
            None => errs.push(FieldError::required(&path.field("namespace"), "")),
        }
    } else if meta.namespace.is_some() {
        errs.push(FieldError::forbidden(
            &path.field("namespace"),
            "not allowed on this cluster-scoped kind",
        ));
    }
    labels(&meta.labels, &path.field("labels"), errs);
    for key in meta.annotations.keys() {
        let p = path.field("annotations");
        if let Err(e) = names::qualified_name(&key.to_ascii_lowercase()) {
            errs.push(FieldError::invalid(&p, key, e));
        }
    }
    for (i, r) in meta.owner_references.iter().enumerate() {
        let p = path.field("ownerReferences").index(i);
        for (field, value) in [
            ("apiVersion", &r.api_version),
            ("kind", &r.kind),
            ("name", &r.name),
            ("uid", &r.uid),
        ] {
            if value.is_empty() {
                errs.push(FieldError::required(&p.field(field), ""));
            }
        }
    }
    if meta
        .owner_references
        .iter()
        .filter(|r| r.controller == Some(true))
        .count()
        > 1
    {
        errs.push(FieldError::invalid(
            &path.field("ownerReferences"),
            "controller",
            "only one reference can have Controller set to true",
        ));
    }
    if let Some(g) = meta.generation
        && g < 0
    {
        errs.push(FieldError::invalid(
            &path.field("generation"),
            g,
            "must be greater than or equal to 0",
        ));
    }
}

/// Label keys are qualified names; values are label values.
pub(super) fn labels(
    labels: &BTreeMap<String, String>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    for (k, v) in labels {
        if let Err(e) = names::qualified_name(k) {
            errs.push(FieldError::invalid(path, k, e));
        }
        if let Err(e) = names::label_value(v) {
            errs.push(FieldError::invalid(&path.key(k), v, e));
        }
    }
}
