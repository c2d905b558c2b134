//! PodDisruptionBudget (`policy/v1`): how many of a set of pods must stay
//! healthy while they are evicted on purpose (a node drained); the
//! eviction call refuses what would break it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::int_or_string::IntOrString;
use crate::meta::{Condition, ObjectMeta, Time};
use crate::resource::{ApiVersionTag, KindTag, resource};
use crate::selector::LabelSelector;

/// A bound on voluntary disruptions of the pods a selector picks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodDisruptionBudget {
    /// Always `policy/v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<PodDisruptionBudget>,
    /// Always `PodDisruptionBudget`.
    #[serde(default)]
    pub kind: KindTag<PodDisruptionBudget>,
    /// Name and namespace.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The budget.
    #[serde(default)]
    pub spec: PodDisruptionBudgetSpec,
    /// What the disruption controller counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PodDisruptionBudgetStatus>,
}
resource!(
    PodDisruptionBudget,
    "policy/v1",
    "PodDisruptionBudget",
    namespaced = true
);

/// The budget: one of `minAvailable` and `maxUnavailable`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodDisruptionBudgetSpec {
    /// Pods (count or percent of the expected) that must stay healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrString>,
    /// Pods (count or percent of the expected) that may be unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// The pods it covers (in its namespace); empty: every pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// `IfHealthyBudget` (default: unhealthy pods only when the budget
    /// holds) or `AlwaysAllow` (unhealthy pods always).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_pod_eviction_policy: Option<String>,
}

/// What the disruption controller counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodDisruptionBudgetStatus {
    /// The generation counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods evicted whose deletion the controller has not seen yet, with
    /// when they were evicted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub disrupted_pods: BTreeMap<String, Time>,
    /// Evictions allowed now.
    #[serde(default)]
    pub disruptions_allowed: i32,
    /// Healthy (Ready) pods.
    #[serde(default)]
    pub current_healthy: i32,
    /// Healthy pods the budget needs.
    #[serde(default)]
    pub desired_healthy: i32,
    /// Pods the budget counts from (its pods' controllers' replicas).
    #[serde(default)]
    pub expected_pods: i32,
    /// `DisruptionAllowed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl PodDisruptionBudget {
    /// Whether unhealthy pods may always be evicted (`AlwaysAllow`).
    pub fn always_allow_unhealthy(&self) -> bool {
        self.spec.unhealthy_pod_eviction_policy.as_deref() == Some("AlwaysAllow")
    }
}
