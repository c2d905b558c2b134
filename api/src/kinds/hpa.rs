//! HorizontalPodAutoscaler (`autoscaling/v2`): scales a Deployment on CPU or
//! memory use.

use serde::{Deserialize, Serialize};

use crate::meta::{Condition, ObjectMeta, Time};
use crate::quantity::Quantity;
use crate::resource::{ApiVersionTag, KindTag, resource};

/// Scales a workload between `minReplicas` and `maxReplicas` to hold a metric at target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HorizontalPodAutoscaler {
    /// Always `autoscaling/v2`.
    #[serde(default)]
    pub api_version: ApiVersionTag<HorizontalPodAutoscaler>,
    /// Always `HorizontalPodAutoscaler`.
    #[serde(default)]
    pub kind: KindTag<HorizontalPodAutoscaler>,
    /// Name, namespace, labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired behaviour.
    #[serde(default)]
    pub spec: HorizontalPodAutoscalerSpec,
    /// Observed state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<HorizontalPodAutoscalerStatus>,
}
resource!(
    HorizontalPodAutoscaler,
    "autoscaling/v2",
    "HorizontalPodAutoscaler",
    namespaced = true
);

/// Desired behaviour of an HPA.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HorizontalPodAutoscalerSpec {
    /// The workload scaled.
    #[serde(default)]
    pub scale_target_ref: CrossVersionObjectReference,
    /// Lower bound (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    /// Upper bound.
    #[serde(default)]
    pub max_replicas: i32,
    /// Metrics to hold at target (default: CPU utilization 80 %).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricSpec>,
    /// Scaling speed limits (defaults documented in the controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

/// The workload an HPA scales.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CrossVersionObjectReference {
    /// E.g. `apps/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// E.g. `Deployment`.
    #[serde(default)]
    pub kind: String,
    /// The name, in the HPA's namespace.
    #[serde(default)]
    pub name: String,
}

/// One metric source of an HPA.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricSpec {
    /// Only `Resource` is supported.
    #[serde(rename = "type")]
    pub type_: MetricSourceType,
    /// The resource metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceMetricSource>,
}

/// Kind of metric source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MetricSourceType {
    /// Per-pod CPU or memory from resource usage reports.
    #[default]
    Resource,
    /// One container's CPU or memory (refused: not served yet).
    ContainerResource,
    /// A per-pod custom metric (refused: no metrics API).
    Pods,
    /// A metric of another object (refused: no metrics API).
    Object,
    /// A metric from outside the cluster (refused: no metrics API).
    External,
}

/// A resource metric (`cpu` or `memory`) and its target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceMetricSource {
    /// `cpu` or `memory`.
    pub name: String,
    /// The target value.
    pub target: MetricTarget,
}

/// A metric target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricTarget {
    /// Which of the fields below applies.
    #[serde(rename = "type")]
    pub type_: MetricTargetType,
    /// Percent of the pods' requests (for `Utilization`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_utilization: Option<i32>,
    /// Absolute per-pod average (for `AverageValue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Quantity>,
    /// Absolute total (for `Value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Quantity>,
}

/// Kind of metric target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MetricTargetType {
    /// `averageUtilization` percent of requests.
    #[default]
    Utilization,
    /// `averageValue` per pod.
    AverageValue,
    /// `value` in total.
    Value,
}

/// Scale-up and scale-down rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HorizontalPodAutoscalerBehavior {
    /// Rules when scaling up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<HpaScalingRules>,
    /// Rules when scaling down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<HpaScalingRules>,
}

/// Rules for one scaling direction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HpaScalingRules {
    /// Seconds of past recommendations considered (0–3600; down default 300, up 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stabilization_window_seconds: Option<i32>,
    /// `Max` (default), `Min` or `Disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<ScalingPolicySelect>,
    /// Limits on change per period.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<HpaScalingPolicy>,
}

/// Which policy wins when several apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ScalingPolicySelect {
    /// The one allowing the largest change.
    #[default]
    Max,
    /// The one allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// A limit on change per period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HpaScalingPolicy {
    /// `Pods` or `Percent`.
    #[serde(rename = "type")]
    pub type_: HpaScalingPolicyType,
    /// The amount (> 0).
    pub value: i32,
    /// The period (1–1800 s).
    pub period_seconds: i32,
}

/// Unit of a scaling policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HpaScalingPolicyType {
    /// An absolute number of pods.
    #[default]
    Pods,
    /// A percentage of current pods.
    Percent,
}

/// Observed state of an HPA.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HorizontalPodAutoscalerStatus {
    /// The generation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When the workload was last scaled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
    /// Replicas seen.
    #[serde(default)]
    pub current_replicas: i32,
    /// Replicas wanted.
    #[serde(default)]
    pub desired_replicas: i32,
    /// Last read metric values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub current_metrics: Vec<MetricStatus>,
    /// `AbleToScale`, `ScalingActive`, `ScalingLimited`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A metric's last value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricStatus {
    /// `Resource`.
    #[serde(rename = "type")]
    pub type_: MetricSourceType,
    /// The resource metric value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceMetricStatus>,
}

/// A resource metric's last value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceMetricStatus {
    /// `cpu` or `memory`.
    pub name: String,
    /// The value.
    pub current: MetricValueStatus,
}

/// A metric value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricValueStatus {
    /// Percent of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_utilization: Option<i32>,
    /// Per-pod average.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_value: Option<Quantity>,
    /// Total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Quantity>,
}
