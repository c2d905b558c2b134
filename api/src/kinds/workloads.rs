//! Deployment, ReplicaSet and DaemonSet (`apps/v1`): controllers that keep
//! pods running from a template.

use serde::{Deserialize, Serialize};

use crate::int_or_string::IntOrString;
use crate::kinds::pod::PodTemplateSpec;
use crate::meta::{Condition, ObjectMeta};
use crate::resource::{ApiVersionTag, KindTag, resource};
use crate::selector::LabelSelector;

/// Keeps `replicas` pods of a template running and rolls out template changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deployment {
    /// Always `apps/v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<Deployment>,
    /// Always `Deployment`.
    #[serde(default)]
    pub kind: KindTag<Deployment>,
    /// Name, namespace, labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: DeploymentSpec,
    /// Observed state, written by the deployment controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeploymentStatus>,
}
resource!(Deployment, "apps/v1", "Deployment", namespaced = true);

/// Desired state of a Deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentSpec {
    /// Desired pod count (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Which pods belong to this Deployment; must match the template's labels.
    #[serde(default)]
    pub selector: LabelSelector,
    /// The pods to run.
    #[serde(default)]
    pub template: PodTemplateSpec,
    /// How pods are replaced on a template change (default RollingUpdate 25 %/25 %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<DeploymentStrategy>,
    /// Old ReplicaSets kept for rollback (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    /// Seconds a new pod must be ready before it counts as available (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// While true, template changes are not rolled out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Seconds without progress before the rollout is reported failed (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
}

impl DeploymentSpec {
    /// Desired replicas, with the default applied.
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(1)
    }
}

/// How a Deployment replaces pods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentStrategy {
    /// `RollingUpdate` (default) or `Recreate`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<DeploymentStrategyType>,
    /// Parameters of a rolling update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,
}

/// The kind of Deployment strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeploymentStrategyType {
    /// Replace pods gradually within maxSurge/maxUnavailable.
    #[default]
    RollingUpdate,
    /// Delete all old pods before creating new ones.
    Recreate,
}

/// Bounds of a rolling update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingUpdate {
    /// Pods above the desired count during the update (count or percent; Deployment default 25 %, DaemonSet 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// Pods that may be unavailable during the update (Deployment default 25 %, DaemonSet 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// Observed state of a Deployment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentStatus {
    /// The generation the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods of any revision.
    #[serde(default)]
    pub replicas: i32,
    /// Pods of the current template.
    #[serde(default)]
    pub updated_replicas: i32,
    /// Pods ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods ready for at least minReadySeconds.
    #[serde(default)]
    pub available_replicas: i32,
    /// Pods not yet available.
    #[serde(default)]
    pub unavailable_replicas: i32,
    /// `Available`, `Progressing`, `ReplicaFailure`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Keeps `replicas` pods of one template running: one revision of a
/// Deployment (its name and label carry the template's hash).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSet {
    /// Always `apps/v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<ReplicaSet>,
    /// Always `ReplicaSet`.
    #[serde(default)]
    pub kind: KindTag<ReplicaSet>,
    /// Name, namespace, labels; `deployment.kubernetes.io/revision` annotation.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: ReplicaSetSpec,
    /// Observed state, written by the replica set controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ReplicaSetStatus>,
}
resource!(ReplicaSet, "apps/v1", "ReplicaSet", namespaced = true);

/// Desired state of a ReplicaSet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSetSpec {
    /// Desired pod count (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Seconds a new pod must be ready before it counts as available (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// Which pods belong to this ReplicaSet; must match the template's labels.
    #[serde(default)]
    pub selector: LabelSelector,
    /// The pods to run.
    #[serde(default)]
    pub template: PodTemplateSpec,
}

impl ReplicaSetSpec {
    /// Desired replicas, with the default applied.
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(1)
    }
}

/// Observed state of a ReplicaSet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSetStatus {
    /// Pods that exist and are not being deleted.
    #[serde(default)]
    pub replicas: i32,
    /// Pods whose labels match the template's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fully_labeled_replicas: Option<i32>,
    /// Pods ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods ready for at least minReadySeconds.
    #[serde(default)]
    pub available_replicas: i32,
    /// The generation the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `ReplicaFailure` when pods cannot be created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Runs one pod of a template on every (selected) node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSet {
    /// Always `apps/v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<DaemonSet>,
    /// Always `DaemonSet`.
    #[serde(default)]
    pub kind: KindTag<DaemonSet>,
    /// Name, namespace, labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: DaemonSetSpec,
    /// Observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DaemonSetStatus>,
}
resource!(DaemonSet, "apps/v1", "DaemonSet", namespaced = true);

/// Desired state of a DaemonSet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSetSpec {
    /// Which pods belong to this DaemonSet; must match the template's labels.
    #[serde(default)]
    pub selector: LabelSelector,
    /// The pod to run on each node.
    #[serde(default)]
    pub template: PodTemplateSpec,
    /// How pods are replaced (default RollingUpdate, maxUnavailable 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<DaemonSetUpdateStrategy>,
    /// Seconds a new pod must be ready to count as available (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// Old revisions kept for rollback (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
}

/// How a DaemonSet replaces pods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSetUpdateStrategy {
    /// `RollingUpdate` (default) or `OnDelete`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<DaemonSetUpdateStrategyType>,
    /// Parameters of a rolling update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,
}

/// The kind of DaemonSet update strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DaemonSetUpdateStrategyType {
    /// Replace pods node by node.
    #[default]
    RollingUpdate,
    /// Replace a pod only when the user deletes it.
    OnDelete,
}

/// Observed state of a DaemonSet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonSetStatus {
    /// The generation the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Nodes that should run the pod.
    #[serde(default)]
    pub desired_number_scheduled: i32,
    /// Nodes running the pod that should.
    #[serde(default)]
    pub current_number_scheduled: i32,
    /// Nodes running the pod that should not.
    #[serde(default)]
    pub number_misscheduled: i32,
    /// Nodes whose pod is ready.
    #[serde(default)]
    pub number_ready: i32,
    /// Nodes running the current template.
    #[serde(default)]
    pub updated_number_scheduled: i32,
    /// Nodes whose pod is available.
    #[serde(default)]
    pub number_available: i32,
    /// Nodes whose pod is not available.
    #[serde(default)]
    pub number_unavailable: i32,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
