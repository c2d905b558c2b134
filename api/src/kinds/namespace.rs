//! Namespace (`v1`, cluster-scoped): the scope of namespaced objects'
//! names, with the lifecycle Kubernetes gives it — `Active`, then
//! `Terminating` once deleted, until its contents are gone and its
//! finalizers removed.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::meta::{Condition, ObjectMeta};
use crate::resource::{ApiVersionTag, KindTag, resource};

/// The finalizer the API server puts on every namespace: the namespace
/// controller removes it once everything in the namespace is gone.
pub const FINALIZER_KUBERNETES: &str = "kubernetes";

/// The label Kubernetes sets on every namespace to its own name, so
/// selectors can pick namespaces by name.
pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Namespaces that exist from a cluster's first start and cannot be deleted.
pub const IMMORTAL: [&str; 3] = ["default", "kube-system", "kube-public"];

/// Namespaces every cluster has from its first start (the immortal ones
/// and `kube-node-lease`).
pub const INITIAL: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// A namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Namespace {
    /// Always `v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<Namespace>,
    /// Always `Namespace`.
    #[serde(default)]
    pub kind: KindTag<Namespace>,
    /// Name (a DNS-1123 label) and labels; no namespace.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Its finalizers.
    #[serde(default)]
    pub spec: NamespaceSpec,
    /// Its phase and conditions, written by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NamespaceStatus>,
}
resource!(Namespace, "v1", "Namespace", namespaced = false);

impl Namespace {
    /// Whether the namespace is being deleted (`Terminating`, or marked for deletion).
    pub fn is_terminating(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
            || self.status.as_ref().and_then(|s| s.phase) == Some(NamespacePhase::Terminating)
    }

    /// The phase, `Active` when none is recorded yet.
    pub fn phase(&self) -> NamespacePhase {
        self.status
            .as_ref()
            .and_then(|s| s.phase)
            .unwrap_or(NamespacePhase::Active)
    }
}

/// Desired state of a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSpec {
    /// What must happen before the namespace is removed from storage
    /// (`kubernetes`: its contents are deleted). Set by the server on
    /// creation; an apply cannot change it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

/// Observed state of a namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceStatus {
    /// `Active` or `Terminating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<NamespacePhase>,
    /// Why a deletion is not done yet (`NamespaceContentRemaining`,
    /// `NamespaceDeletionContentFailure`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The lifecycle phase of a namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NamespacePhase {
    /// New objects may be created in it.
    #[default]
    Active,
    /// Deleted: its contents are being removed and nothing new may be created in it.
    Terminating,
}

impl fmt::Display for NamespacePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NamespacePhase::Active => "Active",
            NamespacePhase::Terminating => "Terminating",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_kubernetes_does() {
        let json = r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team-a"},"spec":{"finalizers":["kubernetes"]},"status":{"phase":"Terminating","conditions":[{"type":"NamespaceContentRemaining","status":"True","reason":"SomeResourcesRemain","message":"Some resources are remaining: pods. has 1 resource instances"}]}}"#;
        let ns: Namespace = serde_json::from_str(json).unwrap();
        assert_eq!(ns.spec.finalizers, [FINALIZER_KUBERNETES]);
        assert_eq!(ns.phase(), NamespacePhase::Terminating);
        assert!(ns.is_terminating());
        assert_eq!(serde_json::to_string(&ns).unwrap(), json);
        let fresh: Namespace = serde_json::from_str(
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}"#,
        )
        .unwrap();
        assert_eq!(fresh.phase(), NamespacePhase::Active);
        assert!(!fresh.is_terminating());
        assert!(
            serde_json::from_str::<Namespace>(
                r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"},"status":{"phase":"Gone"}}"#
            )
            .is_err()
        );
    }
}
