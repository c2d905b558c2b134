//! PriorityClass (`scheduling.k8s.io/v1`): a name for a pod priority.
//! Pods name one in `priorityClassName`; the API server writes its value
//! into `spec.priority` when the pod is created, and the scheduler takes
//! higher priorities first. jotasu does not preempt.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::resource::{ApiVersionTag, KindTag, resource};

/// The highest value a user's PriorityClass may have (larger ones are
/// reserved for the `system-` classes).
pub const HIGHEST_USER_PRIORITY: i32 = 1_000_000_000;

/// A class's preemption policy when it names none.
pub const DEFAULT_PREEMPTION_POLICY: &str = "PreemptLowerPriority";

/// The built-in classes, created at start: (name, value).
pub const SYSTEM_CLASSES: &[(&str, i32)] = &[
    ("system-cluster-critical", 2_000_000_000),
    ("system-node-critical", 2_000_001_000),
];

/// A priority by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriorityClass {
    /// Always `scheduling.k8s.io/v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<PriorityClass>,
    /// Always `PriorityClass`.
    #[serde(default)]
    pub kind: KindTag<PriorityClass>,
    /// Its name.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The priority pods naming it get (higher first).
    #[serde(default)]
    pub value: i32,
    /// Pods naming no class get this one (at most one class may say so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_default: Option<bool>,
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `PreemptLowerPriority` (default) or `Never` (kept; jotasu does not preempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preemption_policy: Option<String>,
}
impl PriorityClass {
    /// Its preemption policy, defaulted.
    pub fn preemption_policy(&self) -> &str {
        self.preemption_policy
            .as_deref()
            .unwrap_or(DEFAULT_PREEMPTION_POLICY)
    }
}

resource!(
    PriorityClass,
    "scheduling.k8s.io/v1",
    "PriorityClass",
    namespaced = false
);
