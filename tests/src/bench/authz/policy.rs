//! The RBAC policy of the authz cases ([`Layout`]): RoleBindings laid out so
//! that every measured call of the bench user walks, in the subject index,
//! through bindings that name it but do not allow the call before reaching
//! the one that does, among others that the index must skip.
use anyhow::Context as _;
use jotasu_api::Object;
use serde_json::json;

/// The user whose client makes every measured call (not in `system:masters`).
pub const USER: &str = "bench";
/// Its group, named by the binding that allows its calls.
pub const GROUP: &str = "bench-team";
/// Where the measured Deployments and Pods live.
pub const NAMESPACE: &str = "bench-authz";
/// The RoleBinding (in [`NAMESPACE`], ClusterRole `edit` to [`GROUP`]) that
/// allows the measured calls. Its name sorts after every decoy's, so the
/// decoys are tried first.
pub const ALLOWING: &str = "team-edit";

/// How many RoleBindings of each sort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// RoleBindings in [`NAMESPACE`] naming [`USER`] or [`GROUP`], each
    /// granting a Role of its own whose rules almost allow the measured
    /// calls (right verbs, group and resource but other names; right verb
    /// and group but a subresource) and do not.
    pub decoys: usize,
    /// RoleBindings in [`NAMESPACE`] naming other users and groups only.
    pub strangers: usize,
    /// Namespaces `team-NNN`, each with one RoleBinding of ClusterRole
    /// `edit` to its team, its lead and [`GROUP`].
    pub teams: usize,
}

impl Layout {
    /// 1,000 RoleBindings, as the goal asks: 50 decoys, 49 strangers and the
    /// allowing one in the bench namespace, and 900 team namespaces.
    pub const DEFAULT: Self = Self {
        decoys: 50,
        strangers: 49,
        teams: 900,
    };

    /// How many RoleBindings [`Self::objects`] holds.
    pub fn role_bindings(&self) -> usize {
        self.decoys + self.strangers + 1 + self.teams
    }

    /// The namespaces (the bench's, the teams'), the decoys' Roles, then
    /// every RoleBinding.
    pub fn objects(&self) -> anyhow::Result<Vec<Object>> {
        let mut objects = Vec::with_capacity(1 + self.teams + self.decoys + self.role_bindings());
        objects.push(crate::objects::namespace(NAMESPACE)?);
        for t in 0..self.teams {
            objects.push(crate::objects::namespace(&team(t))?);
        }
        for i in 0..self.decoys {
            objects.push(decoy_role(i)?);
        }
        for i in 0..self.decoys {
            // Half name the user, half its group: both indexes are walked.
            let subjects = if i.is_multiple_of(2) {
                json!([group(GROUP), user(&format!("alice-{i:03}"))])
            } else {
                json!([user(USER), group(&format!("team-{i:03}"))])
            };
            let name = format!("decoy-{i:03}");
            objects.push(binding(NAMESPACE, &name, "Role", &name, subjects)?);
        }
        for i in 0..self.strangers {
            let subjects = json!([user(&format!("oncall-{i:03}")), group("sre")]);
            objects.push(binding(
                NAMESPACE,
                &format!("ops-{i:03}"),
                "ClusterRole",
                "admin",
                subjects,
            )?);
        }
        objects.push(binding(
            NAMESPACE,
            ALLOWING,
            "ClusterRole",
            "edit",
            json!([group(GROUP)]),
        )?);
        for t in 0..self.teams {
            let team = team(t);
            let subjects = json!([group(&team), user(&format!("lead-{t:03}")), group(GROUP)]);
            objects.push(binding(&team, ALLOWING, "ClusterRole", "edit", subjects)?);
        }
        Ok(objects)
    }
}

/// Team `t`'s namespace (and group).
fn team(t: usize) -> String {
    format!("team-{t:03}")
}

fn user(name: &str) -> serde_json::Value {
    json!({"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name})
}

fn group(name: &str) -> serde_json::Value {
    json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name})
}

fn object(value: serde_json::Value) -> anyhow::Result<Object> {
    serde_json::from_value(value).context("building an RBAC object")
}

/// A Role that allows patching a few named Deployments and reading Pods'
/// logs and status and ConfigMaps: nothing the bench measures.
fn decoy_role(i: usize) -> anyhow::Result<Object> {
    object(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": format!("decoy-{i:03}"), "namespace": NAMESPACE},
        "rules": [
            {
                "verbs": ["get", "list", "create", "patch", "update"],
                "apiGroups": ["apps"],
                "resources": ["deployments", "deployments/scale"],
                "resourceNames": [format!("legacy-{i:03}"), format!("legacy-{i:03}-canary")],
            },
            {
                "verbs": ["get", "list", "watch"],
                "apiGroups": [""],
                "resources": ["pods/log", "pods/status", "configmaps"],
            },
        ],
    }))
}

fn binding(
    namespace: &str,
    name: &str,
    role_kind: &str,
    role: &str,
    subjects: serde_json::Value,
) -> anyhow::Result<Object> {
    object(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": subjects,
    }))
}

#[cfg(test)]
mod tests {
    use jotasu_api::Kind;
    use jotasu_controlplane::auth::{
        Attributes, Decision, RbacSnapshot, UserInfo, attributes::verbs, bootstrap_policy,
    };

    use super::*;

    fn snapshot(objects: Vec<Object>) -> RbacSnapshot {
        RbacSnapshot::new(bootstrap_policy().into_iter().chain(objects))
    }

    fn apply() -> Attributes {
        Attributes::of_kind(
            verbs::CREATE,
            Kind::Deployment,
            Some(NAMESPACE),
            Some("r0-web-0000"),
        )
    }

    fn list() -> Attributes {
        Attributes::of_kind(verbs::LIST, Kind::Pod, Some(NAMESPACE), None)
    }

    #[test]
    fn the_default_layout_has_a_thousand_role_bindings_and_decoys_come_first() {
        let objects = Layout::DEFAULT.objects().expect("builds");
        let bindings: Vec<&Object> = objects
            .iter()
            .filter(|o| o.kind() == Kind::RoleBinding)
            .collect();
        assert_eq!(bindings.len(), 1000);
        assert_eq!(Layout::DEFAULT.role_bindings(), 1000);
        let in_bench: Vec<&str> = bindings
            .iter()
            .filter(|o| o.metadata().namespace.as_deref() == Some(NAMESPACE))
            .map(|o| o.metadata().name())
            .collect();
        assert_eq!(in_bench.len(), 100);
        for name in in_bench.iter().filter(|n| n.starts_with("decoy-")) {
            assert!(*name < ALLOWING, "{name} must sort before {ALLOWING}");
        }
    }

    #[test]
    fn only_the_allowing_binding_lets_the_bench_user_apply_and_list() {
        let bench = UserInfo::new(USER, [GROUP]);
        let expected = format!("RBAC: allowed by RoleBinding \"{ALLOWING}/{NAMESPACE}\"");
        let full = snapshot(Layout::DEFAULT.objects().expect("builds"));
        for attributes in [apply(), list()] {
            match full.authorize(&bench, &attributes) {
                Decision::Allow(why) => assert!(why.starts_with(&expected), "{why}"),
                other => panic!("{attributes:?}: {other:?}"),
            }
        }
        // Not everywhere: the bench user is no administrator.
        let everywhere = Attributes::of_kind(verbs::LIST, Kind::Pod, None, None);
        assert!(!full.authorize(&bench, &everywhere).allowed());
        // A decoy's other subject gets nothing measured either.
        let alice = UserInfo::new("alice-000", ["team-001"]);
        assert!(!full.authorize(&alice, &apply()).allowed());

        // Without the allowing binding, the decoys (which name the user and
        // its group) allow nothing: each measured call walks them all.
        let decoys_only: Vec<Object> = Layout::DEFAULT
            .objects()
            .expect("builds")
            .into_iter()
            .filter(|o| {
                !(o.metadata().name() == ALLOWING
                    && o.metadata().namespace.as_deref() == Some(NAMESPACE))
            })
            .collect();
        let without = snapshot(decoys_only);
        for attributes in [apply(), list()] {
            assert!(!without.authorize(&bench, &attributes).allowed());
        }
    }
}
