//! Roles (their rules, one line per resource) and bindings (the role and
//! the subjects), in kubectl's layout.

use jotasu_api::meta::ObjectMeta;
use jotasu_api::{PolicyRule, RoleRef, Subject};

use super::writer::Writer;

fn list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// A Role or ClusterRole: `Resources  Non-Resource URLs  Resource Names  Verbs`.
pub fn role(meta: &ObjectMeta, rules: &[PolicyRule]) -> String {
    let mut w = Writer::default();
    w.name(meta);
    w.labels_annotations(meta);
    w.line(0, "PolicyRule:");
    let mut rows = Vec::new();
    for rule in rules {
        let resources: Vec<String> = if rule.resources.is_empty() {
            vec![String::new()]
        } else {
            rule.resources
                .iter()
                .flat_map(|r| {
                    rule.api_groups.iter().map(move |g| {
                        if g.is_empty() {
                            r.clone()
                        } else {
                            format!("{r}.{g}")
                        }
                    })
                })
                .collect()
        };
        for resource in resources {
            rows.push(vec![
                resource,
                list(&rule.non_resource_urls),
                list(&rule.resource_names),
                list(&rule.verbs),
            ]);
        }
    }
    w.table(
        1,
        &["Resources", "Non-Resource URLs", "Resource Names", "Verbs"],
        &rows,
    );
    w.finish()
}

/// A RoleBinding or ClusterRoleBinding: its role and subjects.
pub fn binding(meta: &ObjectMeta, role: &RoleRef, subjects: &[Subject]) -> String {
    let mut w = Writer::default();
    w.name(meta);
    w.labels_annotations(meta);
    w.line(0, "Role:");
    w.field(1, "Kind", &role.kind);
    w.field(1, "Name", &role.name);
    w.line(0, "Subjects:");
    let rows: Vec<Vec<String>> = subjects
        .iter()
        .map(|s| {
            vec![
                s.kind.clone(),
                s.name.clone(),
                s.namespace.clone().unwrap_or_default(),
            ]
        })
        .collect();
    w.table(1, &["Kind", "Name", "Namespace"], &rows);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_lists_each_resource_with_its_verbs() {
        let meta = ObjectMeta {
            name: Some("pod-reader".into()),
            namespace: Some("dev".into()),
            ..ObjectMeta::default()
        };
        let rules = [PolicyRule {
            verbs: vec!["get".into(), "list".into()],
            api_groups: vec!["".into(), "apps".into()],
            resources: vec!["pods".into()],
            ..PolicyRule::default()
        }];
        let page = role(&meta, &rules);
        assert!(page.contains("PolicyRule:"), "{page}");
        assert!(page.contains("pods.apps"), "{page}");
        assert!(page.contains("[get list]"), "{page}");
    }

    #[test]
    fn a_binding_names_its_role_and_subjects() {
        let meta = ObjectMeta {
            name: Some("read".into()),
            ..ObjectMeta::default()
        };
        let role_ref = RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "view".into(),
        };
        let subjects = [Subject {
            kind: "User".into(),
            name: "alice".into(),
            ..Subject::default()
        }];
        let page = binding(&meta, &role_ref, &subjects);
        assert!(page.contains("Kind:  ClusterRole"), "{page}");
        assert!(page.contains("Name:  view"), "{page}");
        assert!(page.contains("alice"), "{page}");
    }
}
