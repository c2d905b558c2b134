//! Kubernetes RBAC over the stored Roles, ClusterRoles, RoleBindings and
//! ClusterRoleBindings. (Being written: see `RbacSnapshot`.)

mod cache;

pub use cache::RbacCache;

use jotasu_api::Object;

use super::attributes::{Attributes, Decision, UserInfo};

/// The RBAC objects at one revision, indexed for lookups.
#[derive(Debug, Default)]
pub struct RbacSnapshot {
    objects: Vec<Object>,
}

impl RbacSnapshot {
    /// A snapshot of `objects` (of the four RBAC kinds; others are ignored).
    pub fn new(objects: impl IntoIterator<Item = Object>) -> Self {
        Self {
            objects: objects.into_iter().collect(),
        }
    }

    /// Whether a rule bound to `user` (or one of its groups) allows `attributes`.
    pub fn authorize(&self, user: &UserInfo, attributes: &Attributes) -> Decision {
        let _ = (user, attributes, &self.objects);
        Decision::NoOpinion("RBAC is not evaluated yet".into())
    }
}

/// The default ClusterRoles and ClusterRoleBindings written at start.
pub fn bootstrap_policy() -> Vec<Object> {
    Vec::new()
}
