//! RBAC rules: rules name verbs and what they apply to, bindings name a
//! role of a kind they may bind and subjects of known kinds.

use crate::error::FieldError;
use crate::kinds::rbac::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RBAC_GROUP, Role, RoleBinding, RoleRef, Subject,
};
use crate::path::FieldPath;

pub(super) fn role(r: &Role, errs: &mut Vec<FieldError>) {
    rules(&r.rules, true, errs);
}

pub(super) fn cluster_role(r: &ClusterRole, errs: &mut Vec<FieldError>) {
    rules(&r.rules, false, errs);
}

pub(super) fn role_binding(b: &RoleBinding, errs: &mut Vec<FieldError>) {
    role_ref(&b.role_ref, &["Role", "ClusterRole"], errs);
    subjects(&b.subjects, errs);
}

pub(super) fn cluster_role_binding(b: &ClusterRoleBinding, errs: &mut Vec<FieldError>) {
    role_ref(&b.role_ref, &["ClusterRole"], errs);
    subjects(&b.subjects, errs);
}

fn rules(rules: &[PolicyRule], namespaced: bool, errs: &mut Vec<FieldError>) {
    for (i, rule) in rules.iter().enumerate() {
        let path = FieldPath::new("rules").index(i);
        if rule.verbs.is_empty() {
            errs.push(FieldError::required(
                &path.field("verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = !rule.non_resource_urls.is_empty();
        if urls && namespaced {
            errs.push(FieldError::invalid(
                &path.field("nonResourceURLs"),
                rule.non_resource_urls.join(","),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if urls && (!rule.api_groups.is_empty() || !rule.resources.is_empty()) {
            errs.push(FieldError::invalid(
                &path.field("nonResourceURLs"),
                rule.non_resource_urls.join(","),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        if !urls {
            if rule.api_groups.is_empty() {
                errs.push(FieldError::required(
                    &path.field("apiGroups"),
                    "resource rules must supply at least one api group",
                ));
            }
            if rule.resources.is_empty() {
                errs.push(FieldError::required(
                    &path.field("resources"),
                    "resource rules must supply at least one resource",
                ));
            }
        }
    }
}

fn role_ref(r: &RoleRef, kinds: &[&str], errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("roleRef");
    if r.api_group != RBAC_GROUP {
        errs.push(FieldError::not_supported(
            &path.field("apiGroup"),
            &r.api_group,
            &[RBAC_GROUP],
        ));
    }
    if !kinds.contains(&r.kind.as_str()) {
        errs.push(FieldError::not_supported(
            &path.field("kind"),
            &r.kind,
            kinds,
        ));
    }
    if r.name.is_empty() {
        errs.push(FieldError::required(&path.field("name"), ""));
    }
}

fn subjects(subjects: &[Subject], errs: &mut Vec<FieldError>) {
    for (i, s) in subjects.iter().enumerate() {
        let path = FieldPath::new("subjects").index(i);
        if s.name.is_empty() {
            errs.push(FieldError::required(&path.field("name"), ""));
        }
        match s.kind.as_str() {
            "User" | "Group" => {
                if let Some(g) = s.api_group.as_deref().filter(|g| *g != RBAC_GROUP) {
                    errs.push(FieldError::not_supported(
                        &path.field("apiGroup"),
                        g,
                        &[RBAC_GROUP],
                    ));
                }
            }
            "ServiceAccount" => {
                if s.namespace.as_deref().is_none_or(str::is_empty) {
                    errs.push(FieldError::required(&path.field("namespace"), ""));
                }
            }
            other => errs.push(FieldError::not_supported(
                &path.field("kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}
