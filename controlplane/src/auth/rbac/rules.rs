//! Whether one `PolicyRule` allows a request, exactly as Kubernetes'
//! `rbac/v1` evaluation helpers decide it: verbs, API groups, resources
//! (with `*`, `resource/subresource` and `*/subresource`) and resource names.

use jotasu_api::PolicyRule;

use crate::auth::attributes::Attributes;

/// Matches anything in `verbs`, `apiGroups` and `resources`.
pub const ALL: &str = "*";

/// Whether `rule` allows `attributes`.
pub fn allows(rule: &PolicyRule, attributes: &Attributes) -> bool {
    verb_matches(rule, &attributes.verb)
        && api_group_matches(rule, &attributes.api_group)
        && resource_matches(rule, &attributes.resource, &attributes.subresource)
        && resource_name_matches(rule, attributes.name.as_deref())
}

/// `*` or the verb itself.
pub fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == ALL || v == verb)
}

/// `*` or the group itself (`""` is the core group).
pub fn api_group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().any(|g| g == ALL || g == group)
}

/// `*` (any resource and any subresource), `resource` (only the resource
/// itself), `resource/subresource`, or `*/subresource` (that subresource of
/// any resource). `pods/*` is not a pattern in Kubernetes: it names nothing
/// that exists, so it allows nothing.
pub fn resource_matches(rule: &PolicyRule, resource: &str, subresource: &str) -> bool {
    rule.resources.iter().any(|r| {
        r == ALL
            || names_combined(r, resource, subresource)
            || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource))
    })
}

/// Whether `rule_resource` is `resource` (no subresource) or
/// `resource/subresource`, without building the combined string.
fn names_combined(rule_resource: &str, resource: &str, subresource: &str) -> bool {
    if subresource.is_empty() {
        return rule_resource == resource;
    }
    rule_resource
        .strip_prefix(resource)
        .and_then(|rest| rest.strip_prefix('/'))
        == Some(subresource)
}

/// No `resourceNames` (any object), or the request names one of them: a
/// request without a name (list, watch, create, deletecollection) is not
/// allowed by a rule that lists names.
pub fn resource_name_matches(rule: &PolicyRule, name: Option<&str>) -> bool {
    rule.resource_names.is_empty()
        || name.is_some_and(|n| rule.resource_names.iter().any(|r| r == n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        PolicyRule {
            verbs: own(verbs),
            api_groups: own(groups),
            resources: own(resources),
            resource_names: own(names),
            non_resource_urls: Vec::new(),
        }
    }

    fn attrs(verb: &str, group: &str, resource: &str, sub: &str, name: Option<&str>) -> Attributes {
        Attributes {
            verb: verb.into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: sub.into(),
            namespace: Some("dev".into()),
            name: name.map(Into::into),
        }
    }

    #[test]
    fn resources_and_subresources() {
        let cases: &[(&[&str], &str, &str, bool)] = &[
            (&["*"], "pods", "", true),
            (&["*"], "pods", "log", true),
            (&["pods"], "pods", "", true),
            (&["pods"], "pods", "log", false),
            (&["pods/log"], "pods", "log", true),
            (&["pods/log"], "pods", "", false),
            (&["pods/log"], "pods", "exec", false),
            (&["pods/log"], "podsx", "log", false),
            (&["*/status"], "deployments", "status", true),
            (&["*/status"], "deployments", "", false),
            (&["*/status"], "pods", "statuses", false),
            (&["*/scale"], "deployments", "status", false),
            // Not a pattern in Kubernetes: only the literal resource `pods/*`.
            (&["pods/*"], "pods", "log", false),
            (&["pods/*"], "pods", "", false),
            (&["services", "pods/exec"], "pods", "exec", true),
        ];
        for (resources, resource, sub, want) in cases {
            let r = rule(&["get"], &[""], resources, &[]);
            assert_eq!(
                allows(&r, &attrs("get", "", resource, sub, None)),
                *want,
                "{resources:?} on {resource}/{sub}"
            );
        }
    }

    #[test]
    fn verbs_groups_and_names() {
        let r = rule(&["get", "list"], &["apps"], &["deployments"], &[]);
        assert!(allows(&r, &attrs("list", "apps", "deployments", "", None)));
        assert!(!allows(
            &r,
            &attrs("delete", "apps", "deployments", "", None)
        ));
        assert!(!allows(&r, &attrs("list", "", "deployments", "", None)));
        let any = rule(&["*"], &["*"], &["*"], &[]);
        assert!(allows(
            &any,
            &attrs("escalate", "rbac.authorization.k8s.io", "roles", "", None)
        ));
        let named = rule(&["get", "list", "update"], &[""], &["configmaps"], &["app"]);
        assert!(allows(
            &named,
            &attrs("get", "", "configmaps", "", Some("app"))
        ));
        assert!(allows(
            &named,
            &attrs("update", "", "configmaps", "", Some("app"))
        ));
        assert!(!allows(
            &named,
            &attrs("get", "", "configmaps", "", Some("other"))
        ));
        assert!(!allows(&named, &attrs("list", "", "configmaps", "", None)));
        let empty_groups = rule(&["get"], &[], &["pods"], &[]);
        assert!(!allows(&empty_groups, &attrs("get", "", "pods", "", None)));
    }
}
