//! Kubernetes' RBAC decision on a snapshot: ClusterRoleBindings first (they
//! apply everywhere), then the RoleBindings of the request's namespace
//! (never for cluster-scoped or all-namespace requests); the first rule that
//! allows the request decides, and the answer names the binding, role and
//! subject as kube-apiserver's does.

use std::fmt;

use jotasu_api::Subject;

use super::rules;
use super::snapshot::{
    Binding, Bindings, GROUP, RbacSnapshot, SERVICE_ACCOUNT, USER, service_account_user,
    subject_namespace,
};
use crate::auth::attributes::{Attributes, Decision, UserInfo};

/// The reason of a [`Decision::NoOpinion`] when no rule allows a request and
/// nothing was wrong with the bindings that apply to the caller.
pub const NO_RULE_ALLOWS: &str = "no RBAC rule allows it";

impl RbacSnapshot {
    /// Whether a rule bound to `user` (or one of its groups) allows
    /// `attributes`: [`Decision::Allow`] naming the binding, or
    /// [`Decision::NoOpinion`] ([`NO_RULE_ALLOWS`], or `RBAC: …` naming the
    /// roles that bindings of the caller refer to but do not exist).
    pub fn authorize(&self, user: &UserInfo, attributes: &Attributes) -> Decision {
        let mut errors = Vec::new();
        if let Some(reason) = allowed_by(&self.cluster, user, attributes, &mut errors) {
            return Decision::Allow(reason);
        }
        let namespace = attributes.namespace.as_deref().filter(|ns| !ns.is_empty());
        if let Some(bindings) = namespace.and_then(|ns| self.namespaced.get(ns))
            && let Some(reason) = allowed_by(bindings, user, attributes, &mut errors)
        {
            return Decision::Allow(reason);
        }
        Decision::NoOpinion(match errors.as_slice() {
            [] => NO_RULE_ALLOWS.to_owned(),
            [one] => format!("RBAC: {one}"),
            many => format!("RBAC: [{}]", many.join(", ")),
        })
    }
}

/// The reason the first binding in `bindings` that applies to `user` and
/// has a rule allowing `attributes` gives; roles found missing on the way
/// are added to `errors`.
fn allowed_by(
    bindings: &Bindings,
    user: &UserInfo,
    attributes: &Attributes,
    errors: &mut Vec<String>,
) -> Option<String> {
    for binding in bindings.candidates(&user.name, &user.groups) {
        let Some(subject) = binding.subjects.iter().find(|s| applies(s, binding, user)) else {
            continue;
        };
        match &binding.rules {
            Err(e) => {
                if !errors.contains(e) {
                    errors.push(e.clone());
                }
            }
            Ok(rules) => {
                if rules.iter().any(|rule| rules::allows(rule, attributes)) {
                    return Some(format!("RBAC: allowed by {}", Source { binding, subject }));
                }
            }
        }
    }
    None
}

/// Whether `subject` of `binding` is `user` (Kubernetes' `appliesToUser`).
fn applies(subject: &Subject, binding: &Binding, user: &UserInfo) -> bool {
    match subject.kind.as_str() {
        USER => subject.name == user.name,
        GROUP => user.in_group(&subject.name),
        SERVICE_ACCOUNT => subject_namespace(subject, binding.namespace.as_deref())
            .is_some_and(|ns| service_account_user(ns, &subject.name) == user.name),
        _ => false,
    }
}

/// What allowed a request, worded as Kubernetes' rule resolver words it:
/// `ClusterRoleBinding "x" of ClusterRole "y" to User "alice"`, or
/// `RoleBinding "x/ns" of Role "y" to Group "g"` (name, then namespace).
struct Source<'a> {
    binding: &'a Binding,
    subject: &'a Subject,
}

impl fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.binding;
        match &b.namespace {
            Some(ns) => write!(f, "RoleBinding {:?}", format!("{}/{ns}", b.name))?,
            None => write!(f, "ClusterRoleBinding {:?}", b.name)?,
        }
        write!(
            f,
            " of {} {:?} to {}",
            b.role_ref.kind, b.role_ref.name, self.subject.kind
        )?;
        match self.subject.kind.as_str() {
            SERVICE_ACCOUNT => {
                let ns = subject_namespace(self.subject, b.namespace.as_deref()).unwrap_or("");
                write!(f, " {:?}", format!("{}/{ns}", self.subject.name))
            }
            _ => write!(f, " {:?}", self.subject.name),
        }
    }
}
