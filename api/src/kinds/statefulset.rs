//! StatefulSet and ControllerRevision (`apps/v1`): pods with stable names
//! (`web-0`, `web-1`, …), stable storage (a claim per replica from
//! `volumeClaimTemplates`) and ordered start, stop and update; the
//! revisions of their template kept as ControllerRevisions for
//! `rollout history` and `undo`.

use serde::{Deserialize, Serialize};

use crate::int_or_string::IntOrString;
use crate::kinds::pod::PodTemplateSpec;
use crate::meta::{Condition, ObjectMeta};
use crate::resource::{ApiVersionTag, KindTag, resource};
use crate::selector::LabelSelector;

/// Pods with stable identities and storage, started and stopped in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatefulSet {
    /// Always `apps/v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<StatefulSet>,
    /// Always `StatefulSet`.
    #[serde(default)]
    pub kind: KindTag<StatefulSet>,
    /// Name, namespace, labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: StatefulSetSpec,
    /// Observed state, written by the statefulset controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatefulSetStatus>,
}
resource!(StatefulSet, "apps/v1", "StatefulSet", namespaced = true);

/// Desired state of a StatefulSet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatefulSetSpec {
    /// Desired pod count (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Which pods belong to the set; must match the template's labels.
    #[serde(default)]
    pub selector: LabelSelector,
    /// The pods to run.
    #[serde(default)]
    pub template: PodTemplateSpec,
    /// A claim per replica for each template, named
    /// `<template>-<set>-<ordinal>`, mounted as the template's volume of
    /// the same name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_claim_templates: Vec<crate::kinds::storage::PersistentVolumeClaim>,
    /// The (headless) Service giving the pods their DNS names
    /// (`<pod>.<serviceName>.<namespace>.svc…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// `OrderedReady` (default: one at a time, in order) or `Parallel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_management_policy: Option<PodManagementPolicy>,
    /// How pods are replaced on a template change (default RollingUpdate, partition 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<StatefulSetUpdateStrategy>,
    /// Old revisions kept for rollback (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    /// Seconds a new pod must be ready before it counts as available (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// Whether claims are deleted with the set or on scale-down (default: both Retain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim_retention_policy: Option<ClaimRetentionPolicy>,
    /// The first ordinal (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordinals: Option<StatefulSetOrdinals>,
}

impl StatefulSetSpec {
    /// Desired replicas, with the default applied.
    pub fn replicas(&self) -> i32 {
        self.replicas.unwrap_or(1)
    }

    /// The first ordinal.
    pub fn start(&self) -> i32 {
        self.ordinals.as_ref().map_or(0, |o| o.start)
    }

    /// Whether pods are managed one at a time, in order.
    pub fn ordered(&self) -> bool {
        self.pod_management_policy != Some(PodManagementPolicy::Parallel)
    }

    /// The update strategy's type (default RollingUpdate).
    pub fn update_type(&self) -> StatefulSetUpdateStrategyType {
        self.update_strategy
            .as_ref()
            .and_then(|s| s.type_)
            .unwrap_or_default()
    }

    /// The rolling update's partition (default 0).
    pub fn partition(&self) -> i32 {
        self.update_strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.partition)
            .unwrap_or(0)
    }
}

/// How a StatefulSet's pods are created and deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PodManagementPolicy {
    /// One at a time, in ordinal order, each Running and Ready first.
    #[default]
    OrderedReady,
    /// All at once.
    Parallel,
}

/// How a StatefulSet replaces pods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatefulSetUpdateStrategy {
    /// `RollingUpdate` (default) or `OnDelete`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<StatefulSetUpdateStrategyType>,
    /// Parameters of a rolling update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdateStatefulSet>,
}

/// The kind of StatefulSet update strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum StatefulSetUpdateStrategyType {
    /// Replace pods from the highest ordinal down to the partition.
    #[default]
    RollingUpdate,
    /// Replace a pod only when the user deletes it.
    OnDelete,
}

/// Bounds of a StatefulSet's rolling update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingUpdateStatefulSet {
    /// Pods with an ordinal below it keep their revision (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// Pods that may be unavailable during the update (count or percent; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// What happens to the claims of `volumeClaimTemplates`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimRetentionPolicy {
    /// When the set is deleted: `Retain` (default) or `Delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_deleted: Option<String>,
    /// When the set is scaled down: `Retain` (default) or `Delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_scaled: Option<String>,
}

/// The ordinals a StatefulSet's pods take.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatefulSetOrdinals {
    /// The first ordinal (default 0).
    #[serde(default)]
    pub start: i32,
}

/// Observed state of a StatefulSet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatefulSetStatus {
    /// The generation the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods the controller created that exist.
    #[serde(default)]
    pub replicas: i32,
    /// Pods ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Pods ready for at least minReadySeconds.
    #[serde(default)]
    pub available_replicas: i32,
    /// Pods at `currentRevision`.
    #[serde(default)]
    pub current_replicas: i32,
    /// Pods at `updateRevision`.
    #[serde(default)]
    pub updated_replicas: i32,
    /// The revision the pods below the rollout run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// The revision of the current template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,
    /// Hash collisions met naming revisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    /// Conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One revision of a StatefulSet's (or DaemonSet's) template: `data` is
/// the patch that restores it (`{"spec":{"template":{…,"$patch":"replace"}}}`,
/// as Kubernetes writes it), `revision` its number.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ControllerRevision {
    /// Always `apps/v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<ControllerRevision>,
    /// Always `ControllerRevision`.
    #[serde(default)]
    pub kind: KindTag<ControllerRevision>,
    /// Name (`<set>-<hash>`), namespace, labels, owner.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The state this revision restores.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
    /// The revision number (1, 2, …).
    #[serde(default)]
    pub revision: i64,
}
resource!(
    ControllerRevision,
    "apps/v1",
    "ControllerRevision",
    namespaced = true
);

impl ControllerRevision {
    /// The pod template the revision restores (its data's
    /// `spec.template`, without the patch directive); None if it holds none.
    pub fn template(&self) -> Option<crate::kinds::pod::PodTemplateSpec> {
        let mut template = self.data.pointer("/spec/template")?.clone();
        if let serde_json::Value::Object(t) = &mut template {
            t.remove("$patch");
        }
        serde_json::from_value(template).ok()
    }
}
