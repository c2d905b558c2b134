//! [`RbacSnapshot`]: the RBAC objects at one store revision, with every
//! binding's role resolved (ClusterRole aggregation included) and bindings
//! indexed by the users, groups and service accounts they name, so a
//! request only looks at the bindings that can apply to its caller.

use std::collections::HashMap;
use std::sync::Arc;

use jotasu_api::meta::DEFAULT_NAMESPACE;
use jotasu_api::{ClusterRole, Object, PolicyRule, Role, RoleRef, Subject};

use super::aggregate::effective_rules;
use crate::store::Revision;

/// The subject kind of a user (a certificate's CN).
pub(super) const USER: &str = "User";
/// The subject kind of a group (a certificate's O).
pub(super) const GROUP: &str = "Group";
/// The subject kind of a service account (user `system:serviceaccount:<ns>:<name>`).
pub(super) const SERVICE_ACCOUNT: &str = "ServiceAccount";

/// The user name of a service account.
pub(super) fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// The RBAC objects at one revision, indexed for lookups.
#[derive(Debug, Default)]
pub struct RbacSnapshot {
    /// The store revision up to which every RBAC change is in it (0: unknown).
    pub(super) revision: Revision,
    /// ClusterRoleBindings: they apply everywhere.
    pub(super) cluster: Bindings,
    /// RoleBindings by namespace: they apply only there.
    pub(super) namespaced: HashMap<String, Bindings>,
}

/// One binding with its role resolved.
#[derive(Debug)]
pub(super) struct Binding {
    /// The binding's name.
    pub name: String,
    /// A RoleBinding's namespace; `None` for a ClusterRoleBinding.
    pub namespace: Option<String>,
    /// The role it grants.
    pub role_ref: RoleRef,
    /// Whom it grants it to.
    pub subjects: Vec<Subject>,
    /// The role's rules, or why there are none (the role does not exist).
    pub rules: Result<Arc<[PolicyRule]>, String>,
}

/// Bindings of one scope and who they name.
#[derive(Debug, Default)]
pub(super) struct Bindings {
    /// Sorted by name.
    pub list: Vec<Binding>,
    /// Indices into `list` by user name (service accounts by their user name).
    users: HashMap<String, Vec<usize>>,
    /// Indices into `list` by group name.
    groups: HashMap<String, Vec<usize>>,
}

impl Bindings {
    fn index(mut list: Vec<Binding>) -> Self {
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let mut users: HashMap<String, Vec<usize>> = HashMap::new();
        let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, binding) in list.iter().enumerate() {
            for subject in &binding.subjects {
                let entry = match subject.kind.as_str() {
                    USER => users.entry(subject.name.clone()),
                    GROUP => groups.entry(subject.name.clone()),
                    SERVICE_ACCOUNT => {
                        let Some(ns) = subject_namespace(subject, binding.namespace.as_deref())
                        else {
                            continue;
                        };
                        users.entry(service_account_user(ns, &subject.name))
                    }
                    _ => continue,
                };
                let indices = entry.or_default();
                if indices.last() != Some(&i) {
                    indices.push(i);
                }
            }
        }
        Self {
            list,
            users,
            groups,
        }
    }

    /// The bindings that name `name` or one of `groups`, in name order, once each.
    pub fn candidates(&self, name: &str, groups: &[String]) -> Vec<&Binding> {
        let mut found: Vec<usize> = Vec::new();
        if let Some(i) = self.users.get(name) {
            found.extend(i);
        }
        for group in groups {
            if let Some(i) = self.groups.get(group) {
                found.extend(i);
            }
        }
        found.sort_unstable();
        found.dedup();
        found.into_iter().filter_map(|i| self.list.get(i)).collect()
    }

    /// How many bindings there are.
    pub fn len(&self) -> usize {
        self.list.len()
    }
}

/// A service account subject's namespace: its own, else the binding's
/// (Kubernetes lets a RoleBinding name its namespace's accounts without one).
pub(super) fn subject_namespace<'a>(
    subject: &'a Subject,
    binding_namespace: Option<&'a str>,
) -> Option<&'a str> {
    subject
        .namespace
        .as_deref()
        .filter(|ns| !ns.is_empty())
        .or(binding_namespace)
        .filter(|ns| !ns.is_empty())
}

impl RbacSnapshot {
    /// A snapshot of `objects` (of the four RBAC kinds; others are ignored).
    pub fn new(objects: impl IntoIterator<Item = Object>) -> Self {
        let objects: Vec<Object> = objects.into_iter().collect();
        Self::build(&objects, 0)
    }

    /// A snapshot of `objects` that reflects every RBAC change up to store
    /// revision `revision`.
    pub fn build<'a>(objects: impl IntoIterator<Item = &'a Object>, revision: Revision) -> Self {
        let mut roles: Vec<&Role> = Vec::new();
        let mut cluster_roles: Vec<&ClusterRole> = Vec::new();
        let mut role_bindings = Vec::new();
        let mut cluster_bindings = Vec::new();
        for object in objects {
            match object {
                Object::Role(r) => roles.push(r),
                Object::ClusterRole(r) => cluster_roles.push(r),
                Object::RoleBinding(b) => role_bindings.push(b),
                Object::ClusterRoleBinding(b) => cluster_bindings.push(b),
                _ => {}
            }
        }
        let cluster_rules = effective_rules(&cluster_roles);
        let role_rules: HashMap<(&str, &str), Arc<[PolicyRule]>> = roles
            .iter()
            .map(|r| {
                let key = (
                    namespace_of(r.metadata.namespace.as_deref()),
                    r.metadata.name(),
                );
                (key, Arc::from(r.rules.as_slice()))
            })
            .collect();
        let resolve =
            |role_ref: &RoleRef, namespace: Option<&str>| match (role_ref.kind.as_str(), namespace)
            {
                ("ClusterRole", _) => cluster_rules.get(&role_ref.name).cloned().ok_or_else(|| {
                    format!(
                        "clusterrole.rbac.authorization.k8s.io {:?} not found",
                        role_ref.name
                    )
                }),
                ("Role", Some(ns)) => role_rules
                    .get(&(ns, role_ref.name.as_str()))
                    .cloned()
                    .ok_or_else(|| {
                        format!(
                            "role.rbac.authorization.k8s.io {:?} not found",
                            role_ref.name
                        )
                    }),
                ("Role", None) => Err(format!(
                    "a ClusterRoleBinding cannot grant Role {:?}",
                    role_ref.name
                )),
                (kind, _) => Err(format!("unsupported role reference kind: {kind:?}")),
            };
        let cluster = cluster_bindings
            .into_iter()
            .map(|b| Binding {
                name: b.metadata.name().to_owned(),
                namespace: None,
                role_ref: b.role_ref.clone(),
                subjects: b.subjects.clone(),
                rules: resolve(&b.role_ref, None),
            })
            .collect();
        let mut by_namespace: HashMap<String, Vec<Binding>> = HashMap::new();
        for b in role_bindings {
            let ns = namespace_of(b.metadata.namespace.as_deref());
            by_namespace
                .entry(ns.to_owned())
                .or_default()
                .push(Binding {
                    name: b.metadata.name().to_owned(),
                    namespace: Some(ns.to_owned()),
                    role_ref: b.role_ref.clone(),
                    subjects: b.subjects.clone(),
                    rules: resolve(&b.role_ref, Some(ns)),
                });
        }
        Self {
            revision,
            cluster: Bindings::index(cluster),
            namespaced: by_namespace
                .into_iter()
                .map(|(ns, list)| (ns, Bindings::index(list)))
                .collect(),
        }
    }

    /// The store revision up to which every RBAC change is in this snapshot
    /// (0 when it was not built from the store).
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// How many ClusterRoleBindings and RoleBindings it holds.
    pub fn binding_count(&self) -> usize {
        self.cluster.len() + self.namespaced.values().map(Bindings::len).sum::<usize>()
    }
}

/// A namespaced object's namespace (`default` before defaulting).
fn namespace_of(namespace: Option<&str>) -> &str {
    namespace
        .filter(|ns| !ns.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
}
