//! The default ClusterRoles and ClusterRoleBindings a control plane writes
//! at start, as Kubernetes' bootstrap policy writes them, restricted to the
//! resources jotasu serves: `cluster-admin` (bound to `system:masters`);
//! the user-facing `admin`, `edit` and `view`, aggregated from
//! `system:aggregate-to-*` as in Kubernetes (so manifests that add rules
//! with `rbac.authorization.k8s.io/aggregate-to-*` labels extend them);
//! `system:basic-user` (bound to `system:authenticated`); and
//! `system:node-bootstrapper` (bound to `system:bootstrappers`); and
//! `jotasu:datapath-viewer` (`get` on `nodes/proxy`: `jotactl datapath …`
//! and `jotactl flows`; bound to nobody — `cluster-admin` has it through
//! `*`, and an operator binds it to the network team, as Kubernetes'
//! `system:kubelet-api-admin`). Nodes are authorized by the node
//! authorizer, not by a binding here.

use jotasu_api::kinds::rbac::{AggregationRule, RBAC_GROUP};
use jotasu_api::{
    ClusterRole, ClusterRoleBinding, LabelSelector, Labels, Object, ObjectMeta, PolicyRule,
    RoleRef, Subject,
};

use super::rules::ALL;
use super::snapshot::GROUP;
use crate::auth::attributes::{AUTHENTICATED, BOOTSTRAPPERS, MASTERS};

/// The label Kubernetes puts on its default roles and bindings.
pub const BOOTSTRAPPING_LABEL: &str = "kubernetes.io/bootstrapping";
/// Its value.
pub const RBAC_DEFAULTS: &str = "rbac-defaults";
/// The annotation that lets a control plane reconcile a default object.
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";
/// Labels a ClusterRole whose rules `admin` takes.
pub const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
/// Labels a ClusterRole whose rules `edit` (and so `admin`) takes.
pub const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
/// Labels a ClusterRole whose rules `view` (and so `edit`, `admin`) takes.
pub const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

/// The ClusterRole (and binding) of `system:masters`.
pub const CLUSTER_ADMIN: &str = "cluster-admin";
/// The ClusterRole (and binding) of bootstrap tokens.
pub const NODE_BOOTSTRAPPER: &str = "system:node-bootstrapper";
/// The ClusterRole that reads nodes' data planes (`jotactl datapath`,
/// `jotactl flows`), bound to nobody by default.
pub const DATAPATH_VIEWER: &str = "jotasu:datapath-viewer";
/// The ClusterRole (and binding) every authenticated user has.
pub const BASIC_USER: &str = "system:basic-user";

const CORE: &str = "";
const APPS: &str = "apps";
const AUTOSCALING: &str = "autoscaling";
const POLICY: &str = "policy";
const BATCH: &str = "batch";
const AUTHORIZATION: &str = "authorization.k8s.io";
const AUTHENTICATION: &str = "authentication.k8s.io";
const CERTIFICATES: &str = "certificates.k8s.io";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

fn rule(verbs: &[&[&str]], groups: &[&str], resources: &[&str]) -> PolicyRule {
    let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
    PolicyRule {
        verbs: verbs
            .iter()
            .flat_map(|v| v.iter())
            .map(|s| (*s).to_owned())
            .collect(),
        api_groups: own(groups),
        resources: own(resources),
        ..PolicyRule::default()
    }
}

/// `view`'s own rules: reading what is not an escalation (no Secrets, no
/// exec). Kubernetes' list also names replicationcontrollers, events,
/// replicationcontrollers and more, which jotasu does not serve.
fn view_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &[READ],
            &[CORE],
            &[
                "pods",
                "services",
                "services/status",
                "endpoints",
                "configmaps",
                "serviceaccounts",
                "limitranges",
                "resourcequotas",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
            ],
        ),
        rule(&[READ], &[CORE], &["namespaces", "namespaces/status"]),
        rule(&[READ], &[CORE], &["pods/status", "pods/log"]),
        rule(
            &[READ],
            &[APPS],
            &[
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/status",
                "deployments/scale",
                "replicasets",
                "replicasets/status",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/status",
                "statefulsets/scale",
                "controllerrevisions",
            ],
        ),
        rule(
            &[READ],
            &[AUTOSCALING],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
        ),
        rule(
            &[READ],
            &[BATCH],
            &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
        ),
        rule(&[READ], &["discovery.k8s.io"], &["endpointslices"]),
        rule(
            &[READ],
            &[POLICY],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
        ),
    ]
}

/// `edit`'s own rules: reading Secrets and exec, writing workloads,
/// Services, ConfigMaps, Secrets and ServiceAccounts. Not status, not
/// Endpoints (since Kubernetes 1.22), not roles and bindings, not
/// Namespaces (only `cluster-admin` writes those).
fn edit_rules() -> Vec<PolicyRule> {
    vec![
        rule(&[READ], &[CORE], &["pods/exec", "secrets"]),
        rule(&[WRITE], &[CORE], &["pods", "pods/exec"]),
        rule(
            &[WRITE],
            &[CORE],
            &[
                "services",
                "configmaps",
                "secrets",
                "serviceaccounts",
                "persistentvolumeclaims",
            ],
        ),
        rule(
            &[WRITE],
            &[APPS],
            &[
                "daemonsets",
                "deployments",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
        ),
        rule(&[WRITE], &[AUTOSCALING], &["horizontalpodautoscalers"]),
        rule(&[WRITE], &[POLICY], &["poddisruptionbudgets"]),
        rule(&[&["create"]], &[CORE], &["pods/eviction"]),
        rule(&[WRITE], &[BATCH], &["cronjobs", "jobs"]),
    ]
}

/// `admin`'s own rules: granting access within the namespace.
fn admin_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &[&["create"]],
            &[AUTHORIZATION],
            &["localsubjectaccessreviews"],
        ),
        rule(&[READ, WRITE], &[RBAC_GROUP], &["roles", "rolebindings"]),
    ]
}

fn meta(name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    let mut meta = ObjectMeta::named(name);
    meta.labels
        .insert(BOOTSTRAPPING_LABEL.into(), RBAC_DEFAULTS.into());
    for (k, v) in labels {
        meta.labels.insert((*k).into(), (*v).into());
    }
    meta.annotations
        .insert(AUTOUPDATE_ANNOTATION.into(), "true".into());
    meta
}

fn cluster_role(name: &str, labels: &[(&str, &str)], rules: Vec<PolicyRule>) -> Object {
    Object::ClusterRole(ClusterRole {
        metadata: meta(name, labels),
        rules,
        ..ClusterRole::default()
    })
}

fn aggregated(name: &str, labels: &[(&str, &str)], selects: &str) -> Object {
    let selector = LabelSelector::from_labels(&Labels::from([(selects.into(), "true".into())]));
    Object::ClusterRole(ClusterRole {
        metadata: meta(name, labels),
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: vec![selector],
        }),
        ..ClusterRole::default()
    })
}

fn binding_to_group(name: &str, group: &str) -> Object {
    Object::ClusterRoleBinding(ClusterRoleBinding {
        metadata: meta(name, &[]),
        subjects: vec![Subject {
            kind: GROUP.into(),
            api_group: Some(RBAC_GROUP.into()),
            name: group.into(),
            namespace: None,
        }],
        role_ref: RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: "ClusterRole".into(),
            name: name.into(),
        },
        ..ClusterRoleBinding::default()
    })
}

/// The default ClusterRoles and ClusterRoleBindings written at start.
pub fn bootstrap_policy() -> Vec<Object> {
    vec![
        cluster_role(
            CLUSTER_ADMIN,
            &[],
            vec![
                rule(&[&[ALL]], &[ALL], &[ALL]),
                PolicyRule {
                    verbs: vec![ALL.into()],
                    non_resource_urls: vec![ALL.into()],
                    ..PolicyRule::default()
                },
            ],
        ),
        aggregated("admin", &[], AGGREGATE_TO_ADMIN),
        aggregated("edit", &[(AGGREGATE_TO_ADMIN, "true")], AGGREGATE_TO_EDIT),
        aggregated("view", &[(AGGREGATE_TO_EDIT, "true")], AGGREGATE_TO_VIEW),
        cluster_role(
            "system:aggregate-to-admin",
            &[(AGGREGATE_TO_ADMIN, "true")],
            admin_rules(),
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[(AGGREGATE_TO_EDIT, "true")],
            edit_rules(),
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[(AGGREGATE_TO_VIEW, "true")],
            view_rules(),
        ),
        cluster_role(
            BASIC_USER,
            &[],
            vec![
                rule(
                    &[&["create"]],
                    &[AUTHORIZATION],
                    &["selfsubjectaccessreviews"],
                ),
                rule(&[&["create"]], &[AUTHENTICATION], &["selfsubjectreviews"]),
            ],
        ),
        cluster_role(
            NODE_BOOTSTRAPPER,
            &[],
            vec![rule(
                &[&["create"]],
                &[CERTIFICATES],
                &["certificatesigningrequests"],
            )],
        ),
        cluster_role(
            DATAPATH_VIEWER,
            &[],
            vec![
                rule(&[&["get"]], &[CORE], &["nodes/proxy"]),
                rule(&[READ], &[CORE], &["nodes"]),
            ],
        ),
        binding_to_group(CLUSTER_ADMIN, MASTERS),
        binding_to_group(BASIC_USER, AUTHENTICATED),
        binding_to_group(NODE_BOOTSTRAPPER, BOOTSTRAPPERS),
    ]
}

#[cfg(test)]
mod tests {
    use jotasu_api::Kind;

    use super::*;

    /// Resources served through RPCs rather than stored kinds.
    const REVIEWS: &[(&str, &str)] = &[
        (AUTHORIZATION, "selfsubjectaccessreviews"),
        (AUTHORIZATION, "localsubjectaccessreviews"),
        (AUTHENTICATION, "selfsubjectreviews"),
        (CERTIFICATES, "certificatesigningrequests"),
    ];

    /// Whether jotasu serves `resource` (maybe `resource/subresource`) in `group`.
    fn served(group: &str, resource: &str) -> bool {
        if resource == ALL || REVIEWS.contains(&(group, resource)) {
            return true;
        }
        let (plural, sub) = resource.split_once('/').unwrap_or((resource, ""));
        let Some(kind) = Kind::ALL.iter().copied().find(|k| k.plural() == plural) else {
            return false;
        };
        kind.group() == group
            && match sub {
                "" => true,
                "status" => kind.has_status(),
                "log" | "exec" | "eviction" => kind == Kind::Pod,
                "proxy" => kind == Kind::Node,
                "scale" => matches!(
                    kind,
                    Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet
                ),
                _ => false,
            }
    }

    #[test]
    fn every_resource_named_is_served_and_every_object_valid() {
        for object in bootstrap_policy() {
            assert!(
                jotasu_api::validate::validate(&object).is_empty(),
                "{}",
                object.name()
            );
            assert_eq!(
                object
                    .metadata()
                    .labels
                    .get(BOOTSTRAPPING_LABEL)
                    .map(String::as_str),
                Some(RBAC_DEFAULTS)
            );
            let Object::ClusterRole(role) = object else {
                continue;
            };
            for rule in &role.rules {
                for group in &rule.api_groups {
                    for resource in &rule.resources {
                        assert!(
                            group == ALL || served(group, resource),
                            "{}: {resource} in {group:?}",
                            role.metadata.name()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn bindings_name_roles_that_exist_and_never_nodes() {
        let policy = bootstrap_policy();
        let roles: Vec<&str> = policy
            .iter()
            .filter(|o| o.kind() == Kind::ClusterRole)
            .map(Object::name)
            .collect();
        for object in &policy {
            if let Object::ClusterRoleBinding(b) = object {
                assert!(
                    roles.contains(&b.role_ref.name.as_str()),
                    "{}",
                    b.role_ref.name
                );
                assert!(
                    b.subjects
                        .iter()
                        .all(|s| s.name != crate::auth::attributes::NODES)
                );
            }
        }
    }
}
