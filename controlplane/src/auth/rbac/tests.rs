//! The RBAC decision as a table: users × verbs × resources × namespaces
//! against the default policy and a set of Roles and bindings, allowed and
//! denied rows alike.

use jotasu_api::kinds::rbac::RBAC_GROUP;
use jotasu_api::{
    ClusterRole, ClusterRoleBinding, Object, ObjectMeta, PolicyRule, Role, RoleBinding, RoleRef,
    Subject,
};

use super::bootstrap::AGGREGATE_TO_VIEW;
use super::{NO_RULE_ALLOWS, RbacSnapshot, bootstrap_policy};
use crate::auth::attributes::{Attributes, BOOTSTRAPPERS, Decision, MASTERS, UserInfo};

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
    PolicyRule {
        verbs: strings(verbs),
        api_groups: strings(groups),
        resources: strings(resources),
        resource_names: strings(names),
        non_resource_urls: Vec::new(),
    }
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        namespace: namespace.map(str::to_owned),
        ..ObjectMeta::named(name)
    }
}

fn cluster_role(name: &str, labels: &[&str], rules: Vec<PolicyRule>) -> Object {
    let mut metadata = meta(name, None);
    for l in labels {
        metadata.labels.insert((*l).to_owned(), "true".to_owned());
    }
    Object::ClusterRole(ClusterRole {
        metadata,
        rules,
        ..ClusterRole::default()
    })
}

fn role(namespace: &str, name: &str, rules: Vec<PolicyRule>) -> Object {
    Object::Role(Role {
        metadata: meta(name, Some(namespace)),
        rules,
        ..Role::default()
    })
}

/// `User:alice`, `Group:devs`, `ServiceAccount:dev/ci` or `ServiceAccount:ci`.
fn subject(spec: &str) -> Subject {
    let (kind, name) = spec.split_once(':').unwrap_or(("User", spec));
    let (namespace, name) = match name.split_once('/') {
        Some((ns, n)) => (Some(ns.to_owned()), n),
        None => (None, name),
    };
    Subject {
        kind: kind.to_owned(),
        api_group: (kind != "ServiceAccount").then(|| RBAC_GROUP.to_owned()),
        name: name.to_owned(),
        namespace,
    }
}

/// `Role:x` or `ClusterRole:x`.
fn role_ref(spec: &str) -> RoleRef {
    let (kind, name) = spec.split_once(':').unwrap_or(("ClusterRole", spec));
    RoleRef {
        api_group: RBAC_GROUP.to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
    }
}

fn role_binding(namespace: &str, name: &str, role: &str, subjects: &[&str]) -> Object {
    Object::RoleBinding(RoleBinding {
        metadata: meta(name, Some(namespace)),
        subjects: subjects.iter().map(|s| subject(s)).collect(),
        role_ref: role_ref(role),
        ..RoleBinding::default()
    })
}

fn cluster_binding(name: &str, role: &str, subjects: &[&str]) -> Object {
    Object::ClusterRoleBinding(ClusterRoleBinding {
        metadata: meta(name, None),
        subjects: subjects.iter().map(|s| subject(s)).collect(),
        role_ref: role_ref(role),
        ..ClusterRoleBinding::default()
    })
}

fn policy() -> RbacSnapshot {
    let mut objects = bootstrap_policy();
    objects.extend([
        role_binding("dev", "alice-view", "ClusterRole:view", &["User:alice"]),
        role_binding("dev", "devs-edit", "ClusterRole:edit", &["Group:devs"]),
        role_binding("dev", "hank-admin", "ClusterRole:admin", &["User:hank"]),
        role(
            "dev",
            "app-config",
            vec![rule(
                &["get", "update"],
                &[""],
                &["configmaps"],
                &["app-config"],
            )],
        ),
        role_binding("dev", "carol-config", "Role:app-config", &["User:carol"]),
        cluster_role(
            "reader",
            &[],
            vec![
                rule(&["get", "list"], &[""], &["pods", "nodes"], &[]),
                rule(&["get"], &["*"], &["*"], &["only-this"]),
            ],
        ),
        role_binding("prod", "dave-reader", "ClusterRole:reader", &["User:dave"]),
        role_binding("dev", "erin-ghost", "Role:missing", &["User:erin"]),
        cluster_binding("erin-ghost", "missing", &["User:erin"]),
        cluster_role(
            "status-writer",
            &[],
            vec![rule(&["update", "patch"], &["*"], &["*/status"], &[])],
        ),
        cluster_binding("frank-status", "status-writer", &["User:frank"]),
        cluster_role(
            "pod-subresources",
            &[],
            vec![rule(&["get", "create"], &[""], &["pods/*"], &[])],
        ),
        cluster_binding("grace-pods", "pod-subresources", &["User:grace"]),
        role_binding(
            "dev",
            "ci-edit",
            "ClusterRole:edit",
            &["ServiceAccount:dev/ci", "ServiceAccount:builder"],
        ),
        cluster_role(
            "leases-view",
            &[AGGREGATE_TO_VIEW],
            vec![rule(
                &["get", "list", "watch"],
                &["coordination.k8s.io"],
                &["leases"],
                &[],
            )],
        ),
    ]);
    RbacSnapshot::new(objects)
}

fn user(name: &str) -> UserInfo {
    match name {
        "bob" => UserInfo::new("bob", ["devs"]),
        "root" => UserInfo::new("root", [MASTERS]),
        "boot" => UserInfo::new("system:bootstrap:abcdef", [BOOTSTRAPPERS]),
        "ci" => UserInfo::new(
            "system:serviceaccount:dev:ci",
            ["system:serviceaccounts", "system:serviceaccounts:dev"],
        ),
        "builder" => UserInfo::new(
            "system:serviceaccount:dev:builder",
            ["system:serviceaccounts"],
        ),
        "prod-ci" => UserInfo::new("system:serviceaccount:prod:ci", ["system:serviceaccounts"]),
        other => UserInfo::new(other, Vec::<String>::new()),
    }
}

/// `resource[.group][/subresource]`, as kubectl writes it.
fn attributes(verb: &str, what: &str, namespace: &str, name: &str) -> Attributes {
    let (resource, subresource) = what.split_once('/').unwrap_or((what, ""));
    let (resource, group) = resource.split_once('.').unwrap_or((resource, ""));
    Attributes {
        verb: verb.to_owned(),
        api_group: group.to_owned(),
        resource: resource.to_owned(),
        subresource: subresource.to_owned(),
        namespace: (!namespace.is_empty()).then(|| namespace.to_owned()),
        name: (!name.is_empty()).then(|| name.to_owned()),
    }
}

const Y: bool = true;
const N: bool = false;

/// user, verb, resource, namespace ("" cluster-scoped / all), name ("" none), allowed.
const TABLE: &[(&str, &str, &str, &str, &str, bool)] = &[
    // alice: view in dev.
    ("alice", "get", "pods", "dev", "web", Y),
    ("alice", "list", "pods", "dev", "", Y),
    ("alice", "watch", "pods", "dev", "", Y),
    ("alice", "get", "pods/log", "dev", "web", Y),
    ("alice", "list", "deployments.apps", "dev", "", Y),
    ("alice", "get", "deployments.apps/scale", "dev", "web", Y),
    (
        "alice",
        "get",
        "horizontalpodautoscalers.autoscaling",
        "dev",
        "h",
        Y,
    ),
    ("alice", "list", "pods", "prod", "", N),
    ("alice", "list", "pods", "", "", N),
    ("alice", "get", "secrets", "dev", "s", N),
    ("alice", "list", "secrets", "dev", "", N),
    ("alice", "create", "pods", "dev", "", N),
    ("alice", "delete", "pods", "dev", "web", N),
    ("alice", "create", "pods/exec", "dev", "web", N),
    ("alice", "get", "pods/exec", "dev", "web", N),
    ("alice", "update", "deployments.apps/scale", "dev", "web", N),
    // Evictions: edit may, view may not; budgets read by view.
    ("alice", "create", "pods/eviction", "dev", "web", N),
    (
        "alice",
        "create",
        "poddisruptionbudgets.policy",
        "dev",
        "",
        N,
    ),
    ("alice", "list", "poddisruptionbudgets.policy", "dev", "", Y),
    (
        "alice",
        "update",
        "statefulsets.apps/scale",
        "dev",
        "web",
        N,
    ),
    ("alice", "list", "controllerrevisions.apps", "dev", "", Y),
    (
        "alice",
        "list",
        "rolebindings.rbac.authorization.k8s.io",
        "dev",
        "",
        N,
    ),
    ("alice", "get", "nodes", "", "n1", N),
    // aggregated into view (and so edit and admin) by its label
    ("alice", "list", "leases.coordination.k8s.io", "dev", "", Y),
    ("bob", "get", "leases.coordination.k8s.io", "dev", "l", Y),
    ("hank", "watch", "leases.coordination.k8s.io", "dev", "", Y),
    (
        "alice",
        "create",
        "leases.coordination.k8s.io",
        "dev",
        "",
        N,
    ),
    // bob: edit in dev through his group.
    ("bob", "create", "pods", "dev", "", Y),
    ("bob", "delete", "deployments.apps", "dev", "web", Y),
    ("bob", "update", "deployments.apps/scale", "dev", "web", Y),
    ("bob", "patch", "replicasets.apps/scale", "dev", "web", Y),
    ("bob", "create", "daemonsets.apps", "dev", "", Y),
    ("bob", "create", "pods/eviction", "dev", "web", Y),
    ("bob", "create", "pods/eviction", "prod", "web", N),
    ("bob", "create", "poddisruptionbudgets.policy", "dev", "", Y),
    ("bob", "update", "statefulsets.apps/scale", "dev", "web", Y),
    (
        "bob",
        "create",
        "horizontalpodautoscalers.autoscaling",
        "dev",
        "",
        Y,
    ),
    ("bob", "get", "secrets", "dev", "s", Y),
    ("bob", "create", "secrets", "dev", "", Y),
    ("bob", "update", "configmaps", "dev", "c", Y),
    ("bob", "create", "services", "dev", "", Y),
    ("bob", "create", "pods/exec", "dev", "web", Y),
    ("bob", "get", "pods/log", "dev", "web", Y),
    ("bob", "list", "pods", "dev", "", Y),
    ("bob", "create", "endpoints", "dev", "", N),
    ("bob", "update", "pods/status", "dev", "web", N),
    (
        "bob",
        "create",
        "rolebindings.rbac.authorization.k8s.io",
        "dev",
        "",
        N,
    ),
    (
        "bob",
        "create",
        "roles.rbac.authorization.k8s.io",
        "dev",
        "",
        N,
    ),
    ("bob", "create", "pods", "prod", "", N),
    ("bob", "list", "nodes", "", "", N),
    // hank: admin in dev.
    (
        "hank",
        "create",
        "rolebindings.rbac.authorization.k8s.io",
        "dev",
        "",
        Y,
    ),
    (
        "hank",
        "delete",
        "roles.rbac.authorization.k8s.io",
        "dev",
        "r",
        Y,
    ),
    ("hank", "delete", "secrets", "dev", "s", Y),
    (
        "hank",
        "create",
        "localsubjectaccessreviews.authorization.k8s.io",
        "dev",
        "",
        Y,
    ),
    ("hank", "delete", "secrets", "prod", "s", N),
    ("hank", "get", "nodes", "", "n1", N),
    (
        "hank",
        "list",
        "clusterroles.rbac.authorization.k8s.io",
        "",
        "",
        N,
    ),
    // carol: a Role with resourceNames.
    ("carol", "get", "configmaps", "dev", "app-config", Y),
    ("carol", "update", "configmaps", "dev", "app-config", Y),
    ("carol", "get", "configmaps", "dev", "other", N),
    ("carol", "list", "configmaps", "dev", "", N),
    ("carol", "watch", "configmaps", "dev", "", N),
    ("carol", "delete", "configmaps", "dev", "app-config", N),
    ("carol", "get", "configmaps", "prod", "app-config", N),
    // dave: a ClusterRole bound by a RoleBinding in prod.
    ("dave", "list", "pods", "prod", "", Y),
    ("dave", "get", "pods", "prod", "p", Y),
    ("dave", "get", "deployments.apps", "prod", "only-this", Y),
    ("dave", "get", "deployments.apps", "prod", "another", N),
    ("dave", "list", "pods", "dev", "", N),
    ("dave", "list", "pods", "", "", N),
    ("dave", "get", "nodes", "", "n1", N),
    ("dave", "list", "nodes", "", "", N),
    // erin: bindings to roles that do not exist.
    ("erin", "get", "pods", "dev", "p", N),
    ("erin", "list", "nodes", "", "", N),
    // frank: */status everywhere.
    ("frank", "update", "deployments.apps/status", "dev", "d", Y),
    ("frank", "patch", "pods/status", "prod", "p", Y),
    ("frank", "update", "nodes/status", "", "n1", Y),
    ("frank", "update", "deployments.apps", "dev", "d", N),
    ("frank", "update", "deployments.apps/scale", "dev", "d", N),
    ("frank", "get", "pods/status", "dev", "p", N),
    // grace: `pods/*` is not a pattern in Kubernetes.
    ("grace", "get", "pods/log", "dev", "p", N),
    ("grace", "create", "pods/exec", "dev", "p", N),
    ("grace", "get", "pods", "dev", "p", N),
    // service accounts
    ("ci", "create", "deployments.apps", "dev", "", Y),
    ("ci", "create", "deployments.apps", "prod", "", N),
    ("builder", "update", "configmaps", "dev", "c", Y),
    ("prod-ci", "create", "deployments.apps", "dev", "", N),
    ("prod-ci", "create", "deployments.apps", "prod", "", N),
    // system:masters: everything, everywhere
    ("root", "delete", "nodes", "", "n1", Y),
    ("root", "list", "pods", "", "", Y),
    (
        "root",
        "escalate",
        "clusterroles.rbac.authorization.k8s.io",
        "",
        "x",
        Y,
    ),
    ("root", "create", "pods/exec", "dev", "p", Y),
    // system:authenticated alone
    ("nobody", "list", "pods", "default", "", N),
    ("nobody", "get", "nodes", "", "n1", N),
    (
        "nobody",
        "create",
        "selfsubjectaccessreviews.authorization.k8s.io",
        "",
        "",
        Y,
    ),
    (
        "nobody",
        "create",
        "selfsubjectreviews.authentication.k8s.io",
        "",
        "",
        Y,
    ),
    // bootstrap tokens: certificate requests, nothing else
    (
        "boot",
        "create",
        "certificatesigningrequests.certificates.k8s.io",
        "",
        "",
        Y,
    ),
    (
        "boot",
        "get",
        "certificatesigningrequests.certificates.k8s.io",
        "",
        "c",
        N,
    ),
    // Namespaces and ServiceAccounts, as Kubernetes' view / edit / admin.
    ("alice", "list", "serviceaccounts", "dev", "", Y),
    ("alice", "create", "serviceaccounts", "dev", "", N),
    ("bob", "create", "serviceaccounts", "dev", "", Y),
    ("bob", "delete", "serviceaccounts", "dev", "default", Y),
    ("alice", "get", "namespaces", "dev", "dev", Y),
    ("alice", "get", "namespaces", "prod", "prod", N),
    ("alice", "list", "namespaces", "", "", N),
    ("bob", "delete", "namespaces", "dev", "dev", N),
    ("hank", "delete", "namespaces", "dev", "dev", N),
    ("hank", "update", "namespaces", "dev", "dev", N),
    ("boot", "list", "pods", "default", "", N),
    ("boot", "create", "nodes", "", "", N),
    ("boot", "get", "nodes", "", "n1", N),
];

#[test]
fn a_request_on_one_namespace_is_in_that_namespace() {
    use jotasu_api::Kind;
    let a = Attributes::of_kind("get", Kind::Namespace, None, Some("dev"));
    assert_eq!(a.namespace.as_deref(), Some("dev"));
    let list = Attributes::of_kind("list", Kind::Namespace, Some("dev"), None);
    assert_eq!(list.namespace, None);
}

#[test]
fn decision_table() {
    let snapshot = policy();
    let mut wrong = Vec::new();
    for (who, verb, what, namespace, name, want) in TABLE {
        let decision = snapshot.authorize(&user(who), &attributes(verb, what, namespace, name));
        if decision.allowed() != *want {
            wrong.push(format!(
                "{who} {verb} {what} ns={namespace:?} name={name:?}: {decision:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "wrong decisions:\n{}", wrong.join("\n"));
}

#[test]
fn reasons_name_the_binding_as_kubernetes_does() {
    let snapshot = policy();
    let ask = |who: &str, verb: &str, what: &str, ns: &str, name: &str| {
        snapshot.authorize(&user(who), &attributes(verb, what, ns, name))
    };
    assert_eq!(
        ask("alice", "get", "pods", "dev", "p"),
        Decision::Allow(
            r#"RBAC: allowed by RoleBinding "alice-view/dev" of ClusterRole "view" to User "alice""#
                .into()
        )
    );
    assert_eq!(
        ask("root", "get", "nodes", "", "n"),
        Decision::Allow(
            r#"RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" to Group "system:masters""#
                .into()
        )
    );
    assert_eq!(
        ask("bob", "create", "pods", "dev", ""),
        Decision::Allow(
            r#"RBAC: allowed by RoleBinding "devs-edit/dev" of ClusterRole "edit" to Group "devs""#
                .into()
        )
    );
    assert_eq!(
        ask("builder", "get", "secrets", "dev", "s"),
        Decision::Allow(
            r#"RBAC: allowed by RoleBinding "ci-edit/dev" of ClusterRole "edit" to ServiceAccount "builder/dev""#
                .into()
        )
    );
    assert_eq!(
        ask("carol", "get", "configmaps", "dev", "app-config"),
        Decision::Allow(
            r#"RBAC: allowed by RoleBinding "carol-config/dev" of Role "app-config" to User "carol""#
                .into()
        )
    );
    assert_eq!(
        ask("alice", "delete", "pods", "dev", "p"),
        Decision::NoOpinion(NO_RULE_ALLOWS.into())
    );
    // Missing roles are named, as kube-apiserver appends them to a denial.
    assert_eq!(
        ask("erin", "get", "pods", "dev", "p"),
        Decision::NoOpinion(
            r#"RBAC: [clusterrole.rbac.authorization.k8s.io "missing" not found, role.rbac.authorization.k8s.io "missing" not found]"#
                .into()
        )
    );
    assert_eq!(
        ask("erin", "get", "nodes", "", "n"),
        Decision::NoOpinion(
            r#"RBAC: clusterrole.rbac.authorization.k8s.io "missing" not found"#.into()
        )
    );
}

#[test]
fn a_binding_grants_once_its_role_exists() {
    let binding = role_binding("dev", "late", "Role:late", &["User:zed"]);
    let late = role("dev", "late", vec![rule(&["list"], &[""], &["pods"], &[])]);
    let ask = attributes("list", "pods", "dev", "");
    let before = RbacSnapshot::new([binding.clone()]);
    assert!(!before.authorize(&user("zed"), &ask).allowed());
    let after = RbacSnapshot::new([binding, late]);
    assert!(after.authorize(&user("zed"), &ask).allowed());
    // A Role of another namespace with the same name does not count.
    let elsewhere = RbacSnapshot::new([
        role_binding("dev", "late", "Role:late", &["User:zed"]),
        role("prod", "late", vec![rule(&["list"], &[""], &["pods"], &[])]),
    ]);
    assert!(!elsewhere.authorize(&user("zed"), &ask).allowed());
}

#[test]
fn many_bindings_are_indexed_by_subject() {
    // 2,000 RoleBindings in 100 namespaces, each to its own user; one group
    // binding per namespace.
    let mut objects = bootstrap_policy();
    for i in 0..2_000 {
        let ns = format!("ns{}", i % 100);
        objects.push(role_binding(
            &ns,
            &format!("b{i}"),
            "ClusterRole:view",
            &[&format!("User:u{i}")],
        ));
    }
    for n in 0..100 {
        objects.push(role_binding(
            &format!("ns{n}"),
            "team",
            "ClusterRole:edit",
            &["Group:team"],
        ));
    }
    let snapshot = RbacSnapshot::new(objects);
    assert_eq!(snapshot.binding_count(), 2_103);
    let list = |ns: &str| attributes("list", "pods", ns, "");
    assert!(snapshot.authorize(&user("u1234"), &list("ns34")).allowed());
    assert!(!snapshot.authorize(&user("u1234"), &list("ns35")).allowed());
    assert!(
        !snapshot
            .authorize(&user("u1234"), &attributes("create", "pods", "ns34", ""))
            .allowed()
    );
    let member = UserInfo::new("someone", ["team"]);
    assert!(
        snapshot
            .authorize(&member, &attributes("create", "pods", "ns99", ""))
            .allowed()
    );
    assert!(!snapshot.authorize(&member, &list("")).allowed());
}
