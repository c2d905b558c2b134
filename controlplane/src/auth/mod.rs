//! Who may call the API and what they may do: authentication (client
//! certificates, bootstrap tokens, the local socket), Kubernetes RBAC, and
//! the node authorizer with its NodeRestriction rules.

pub mod attributes;
pub mod authenticate;
pub mod node;
pub mod rbac;
pub mod token;

pub use attributes::{Attributes, Decision, Forbidden, UserInfo};
pub use rbac::{RbacCache, RbacSnapshot, bootstrap_policy};
