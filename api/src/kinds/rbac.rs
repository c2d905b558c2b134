//! Role, ClusterRole, RoleBinding and ClusterRoleBinding
//! (`rbac.authorization.k8s.io/v1`): who may do what, as Kubernetes' RBAC
//! writes it. The control plane's authorizer reads them.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::resource::{ApiVersionTag, KindTag, resource};

/// The API group of the RBAC kinds.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// One permission: verbs on resources (of API groups), optionally only on
/// named objects. `*` matches anything in each list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyRule {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, … or `*`.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// API groups (`""` is the core group, `apps`, …, `*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// Resources (`pods`), subresources (`pods/log`, `*/status`) or `*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Only these objects (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// Non-resource URLs (`/healthz`); kept, not served by jotasu.
    #[serde(
        rename = "nonResourceURLs",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

/// ClusterRoles whose labels match are aggregated into this one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AggregationRule {
    /// Label selectors of the ClusterRoles aggregated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_role_selectors: Vec<crate::selector::LabelSelector>,
}

/// Permissions within one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Role {
    /// Always `rbac.authorization.k8s.io/v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<Role>,
    /// Always `Role`.
    #[serde(default)]
    pub kind: KindTag<Role>,
    /// Name, namespace, labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What it allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<PolicyRule>,
}
resource!(
    Role,
    "rbac.authorization.k8s.io/v1",
    "Role",
    namespaced = true
);

/// Permissions cluster-wide, or in a namespace through a RoleBinding.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterRole {
    /// Always `rbac.authorization.k8s.io/v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<ClusterRole>,
    /// Always `ClusterRole`.
    #[serde(default)]
    pub kind: KindTag<ClusterRole>,
    /// Name and labels (no namespace).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What it allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<PolicyRule>,
    /// If set, `rules` are those of the ClusterRoles it selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation_rule: Option<AggregationRule>,
}
resource!(
    ClusterRole,
    "rbac.authorization.k8s.io/v1",
    "ClusterRole",
    namespaced = false
);

/// Who a binding grants to: a `User`, a `Group` or a `ServiceAccount`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: String,
    /// `rbac.authorization.k8s.io` for users and groups, `""` for service accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    /// The user's, group's or service account's name.
    pub name: String,
    /// A service account's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The role a binding grants.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleRef {
    /// Always `rbac.authorization.k8s.io`.
    pub api_group: String,
    /// `Role` or `ClusterRole`.
    pub kind: String,
    /// The role's name.
    pub name: String,
}

/// Grants a Role (or a ClusterRole's rules) within its namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleBinding {
    /// Always `rbac.authorization.k8s.io/v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<RoleBinding>,
    /// Always `RoleBinding`.
    #[serde(default)]
    pub kind: KindTag<RoleBinding>,
    /// Name, namespace, labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Who it grants to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<Subject>,
    /// What it grants (cannot change once created).
    pub role_ref: RoleRef,
}
resource!(
    RoleBinding,
    "rbac.authorization.k8s.io/v1",
    "RoleBinding",
    namespaced = true
);

/// Grants a ClusterRole in every namespace and on cluster-scoped kinds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterRoleBinding {
    /// Always `rbac.authorization.k8s.io/v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<ClusterRoleBinding>,
    /// Always `ClusterRoleBinding`.
    #[serde(default)]
    pub kind: KindTag<ClusterRoleBinding>,
    /// Name and labels (no namespace).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Who it grants to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<Subject>,
    /// What it grants: a ClusterRole (cannot change once created).
    pub role_ref: RoleRef,
}
resource!(
    ClusterRoleBinding,
    "rbac.authorization.k8s.io/v1",
    "ClusterRoleBinding",
    namespaced = false
);
