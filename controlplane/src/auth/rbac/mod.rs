//! Kubernetes RBAC over the stored Roles, ClusterRoles, RoleBindings and
//! ClusterRoleBindings: rule matching ([`rules`]), ClusterRole aggregation
//! ([`aggregate`]), an indexed snapshot ([`RbacSnapshot`]) and its decision
//! ([`RbacSnapshot::authorize`]), and the default policy ([`bootstrap_policy`]).

pub mod aggregate;
pub mod bootstrap;
mod evaluate;
pub mod rules;
mod snapshot;

#[cfg(test)]
mod tests;

pub use bootstrap::bootstrap_policy;
pub use evaluate::NO_RULE_ALLOWS;
pub use snapshot::RbacSnapshot;
