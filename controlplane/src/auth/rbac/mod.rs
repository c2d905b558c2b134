//! Kubernetes RBAC over the stored Roles, ClusterRoles, RoleBindings and
//! ClusterRoleBindings: rule matching ([`rules`]), ClusterRole aggregation
//! ([`aggregate`]), an indexed snapshot ([`RbacSnapshot`]) and its decision
//! ([`RbacSnapshot::authorize`]), the default policy ([`bootstrap_policy`]),
//! and a snapshot kept current from the store ([`RbacCache`]).

pub mod aggregate;
pub mod bootstrap;
pub mod cache;
mod evaluate;
pub mod rules;
mod snapshot;

#[cfg(test)]
mod cache_tests;
#[cfg(test)]
mod tests;

pub use bootstrap::bootstrap_policy;
pub use cache::RbacCache;
pub use evaluate::NO_RULE_ALLOWS;
pub use snapshot::RbacSnapshot;
