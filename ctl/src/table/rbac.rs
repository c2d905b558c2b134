//! The RBAC kinds as kubectl lists them: roles `NAME CREATED AT`, bindings
//! `NAME ROLE AGE` (wide: `USERS GROUPS SERVICEACCOUNTS`).

use jotasu_api::meta::Time;
use jotasu_api::{RoleRef, Subject};

use super::NONE;

pub(super) const ROLE_COLUMNS: &[&str] = &["CREATED AT"];
pub(super) const BINDING_COLUMNS: &[&str] = &["ROLE", "AGE"];
pub(super) const BINDING_WIDE: &[&str] = &["USERS", "GROUPS", "SERVICEACCOUNTS"];

pub(super) fn role_row(created: Option<&Time>) -> Vec<String> {
    vec![created.map_or_else(|| NONE.to_owned(), |t| t.0.clone())]
}

pub(super) fn binding_row(role: &RoleRef, age: String) -> Vec<String> {
    vec![format!("{}/{}", role.kind, role.name), age]
}

pub(super) fn binding_wide(subjects: &[Subject]) -> Vec<String> {
    let of = |kind: &str| {
        let names: Vec<String> = subjects
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| match (&s.namespace, kind) {
                (Some(ns), "ServiceAccount") => format!("{ns}/{}", s.name),
                _ => s.name.clone(),
            })
            .collect();
        if names.is_empty() {
            String::new()
        } else {
            names.join(", ")
        }
    };
    vec![of("User"), of("Group"), of("ServiceAccount")]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{CREATED, NOW, object};
    use super::super::{TableOptions, render};
    use jotasu_api::Kind;
    use serde_json::json;

    #[test]
    fn bindings_show_their_role_and_subjects() {
        let b = object(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "read", "namespace": "dev", "creationTimestamp": CREATED},
            "subjects": [
                {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
                {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"}
            ],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}
        }));
        let opts = TableOptions {
            now: NOW,
            wide: true,
            ..TableOptions::default()
        };
        assert_eq!(
            render(Kind::RoleBinding, &[b], &opts),
            "NAME   ROLE               AGE   USERS   GROUPS   SERVICEACCOUNTS\n\
             read   ClusterRole/view   5s    alice   devs     \n"
        );
    }

    #[test]
    fn roles_show_when_they_were_made() {
        let r = object(json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "view", "creationTimestamp": CREATED},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]
        }));
        let opts = TableOptions {
            now: NOW,
            ..TableOptions::default()
        };
        assert_eq!(
            render(Kind::ClusterRole, &[r], &opts),
            format!("NAME   CREATED AT\nview   {CREATED}\n")
        );
    }
}
