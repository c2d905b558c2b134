//! Downward API rules: the pod fields (`fieldRef`) and container resources
//! (`resourceFieldRef`) an env var or a volume file may name, with
//! Kubernetes' lists and messages.

use crate::error::FieldError;
use crate::kinds::env::{ObjectFieldSelector, ResourceFieldSelector};
use crate::path::FieldPath;
use crate::validate::names;

/// The field paths an env var may name (besides `metadata.labels['k']`
/// and `metadata.annotations['k']`).
pub const ENV_FIELD_PATHS: [&str; 11] = [
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The field paths a volume file may name (besides the subscripted ones).
pub const VOLUME_FIELD_PATHS: [&str; 5] = [
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];

/// The resources `resourceFieldRef` may name.
pub const RESOURCES: [&str; 6] = [
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// `metadata.labels['k']` → (`metadata.labels`, `k`).
pub fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let (base, rest) = path.split_once("['")?;
    let key = rest.strip_suffix("']")?;
    Some((base, key))
}

/// A `fieldRef`; `env` says which list applies (env's or volumes').
pub(super) fn field_ref(
    sel: &ObjectFieldSelector,
    env: bool,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    if let Some(v) = sel.api_version.as_deref().filter(|v| *v != "v1") {
        errs.push(FieldError::not_supported(
            &path.field("apiVersion"),
            v,
            &["v1"],
        ));
    }
    let fp = path.field("fieldPath");
    if sel.field_path.is_empty() {
        errs.push(FieldError::required(&fp, ""));
        return;
    }
    if let Some((base, key)) = split_subscript(&sel.field_path) {
        if matches!(base, "metadata.labels" | "metadata.annotations") {
            if let Err(e) = names::qualified_name(&key.to_ascii_lowercase()) {
                errs.push(FieldError::invalid(&fp, key, e));
            }
            return;
        }
        errs.push(FieldError::invalid(
            &fp,
            &sel.field_path,
            "does not support subscript",
        ));
        return;
    }
    let allowed: &[&str] = if env {
        &ENV_FIELD_PATHS
    } else {
        &VOLUME_FIELD_PATHS
    };
    let whole_map = matches!(
        sel.field_path.as_str(),
        "metadata.labels" | "metadata.annotations"
    );
    if !allowed.contains(&sel.field_path.as_str()) || (env && whole_map) {
        let shown: Vec<&str> = allowed
            .iter()
            .copied()
            .filter(|p| !env || !matches!(*p, "metadata.labels" | "metadata.annotations"))
            .collect();
        errs.push(FieldError::not_supported(&fp, &sel.field_path, &shown));
    }
}

/// A `resourceFieldRef`; in a volume file `containerName` is required.
pub(super) fn resource_field_ref(
    sel: &ResourceFieldSelector,
    in_volume: bool,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    if in_volume && sel.container_name.as_deref().is_none_or(str::is_empty) {
        errs.push(FieldError::required(&path.field("containerName"), ""));
    }
    let rp = path.field("resource");
    if sel.resource.is_empty() {
        errs.push(FieldError::required(&rp, ""));
        return;
    }
    if !RESOURCES.contains(&sel.resource.as_str()) {
        errs.push(FieldError::not_supported(&rp, &sel.resource, &RESOURCES));
        return;
    }
    let Some(divisor) = &sel.divisor else { return };
    let dp = path.field("divisor");
    if sel.resource.ends_with(".cpu") {
        if !["1m", "1"].contains(&divisor.as_str()) {
            errs.push(FieldError::invalid(
                &dp,
                divisor,
                "only divisor's values 1m and 1 are supported with the cpu resource",
            ));
        }
    } else if !MEMORY_DIVISORS.contains(&divisor.as_str()) {
        errs.push(FieldError::invalid(
            &dp,
            divisor,
            "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource",
        ));
    }
}

/// The divisors Kubernetes accepts for memory and ephemeral storage.
const MEMORY_DIVISORS: [&str; 13] = [
    "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
];
