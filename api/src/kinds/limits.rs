//! LimitRange (`v1`): per-namespace defaults and bounds for the resources
//! of containers and pods, applied by the API server when a pod is created
//! (Kubernetes' LimitRanger admission).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::quantity::Quantity;
use crate::resource::{ApiVersionTag, KindTag, resource};

/// Defaults and bounds for a namespace's pods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitRange {
    /// Always `v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<LimitRange>,
    /// Always `LimitRange`.
    #[serde(default)]
    pub kind: KindTag<LimitRange>,
    /// Name and namespace.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The limits.
    #[serde(default)]
    pub spec: LimitRangeSpec,
}
resource!(LimitRange, "v1", "LimitRange", namespaced = true);

/// The limits of a LimitRange.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitRangeSpec {
    /// One item per type.
    #[serde(default)]
    pub limits: Vec<LimitRangeItem>,
}

/// Defaults and bounds for one type of object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitRangeItem {
    /// `Container`, `Pod` or `PersistentVolumeClaim`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The most a container's (or pod's) limit may be.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max: BTreeMap<String, Quantity>,
    /// The least a container's (or pod's) request may be.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub min: BTreeMap<String, Quantity>,
    /// A container's limit when it gives none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub default: BTreeMap<String, Quantity>,
    /// A container's request when it gives none (else its limit).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub default_request: BTreeMap<String, Quantity>,
    /// The most a limit may be, as a multiple of the request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub max_limit_request_ratio: BTreeMap<String, Quantity>,
}

/// ResourceQuota (`v1`): the most a namespace may hold — object counts and
/// the sums of its pods' requests and limits — enforced when objects are
/// created (Kubernetes' ResourceQuota admission).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceQuota {
    /// Always `v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<ResourceQuota>,
    /// Always `ResourceQuota`.
    #[serde(default)]
    pub kind: KindTag<ResourceQuota>,
    /// Name and namespace.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The limits.
    #[serde(default)]
    pub spec: ResourceQuotaSpec,
    /// What is used (written by the system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ResourceQuotaStatus>,
}
resource!(ResourceQuota, "v1", "ResourceQuota", namespaced = true);

/// A quota's limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceQuotaSpec {
    /// Resource (`pods`, `requests.cpu`, `limits.memory`, `count/deployments.apps`, …) to its most.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hard: BTreeMap<String, Quantity>,
    /// Which pods count: all of these scopes ([`QUOTA_SCOPES`]) hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Which pods count, as requirements on scopes (all must hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope_selector: Option<ScopeSelector>,
}

/// A quota's scope selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScopeSelector {
    /// The requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<ScopedResourceSelectorRequirement>,
}

/// One requirement of a scope selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScopedResourceSelectorRequirement {
    /// The scope.
    pub scope_name: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub operator: String,
    /// The values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// What a quota allows and what is used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceQuotaStatus {
    /// The limits enforced.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hard: BTreeMap<String, Quantity>,
    /// What the namespace holds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub used: BTreeMap<String, Quantity>,
}

/// The quota scopes Kubernetes defines.
pub const QUOTA_SCOPES: [&str; 6] = [
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

impl ResourceQuotaSpec {
    /// Whether the quota counts only some pods (and no other objects).
    pub fn is_scoped(&self) -> bool {
        !self.scopes.is_empty()
            || self
                .scope_selector
                .as_ref()
                .is_some_and(|s| !s.match_expressions.is_empty())
    }

    /// Whether the quota counts `pod`: every scope of `scopes` and every
    /// requirement of the selector holds for it.
    pub fn selects(&self, pod: &crate::Pod) -> bool {
        let listed = self.scopes.iter().all(|s| scope_holds(s, pod));
        listed
            && self
                .scope_selector
                .iter()
                .flat_map(|s| &s.match_expressions)
                .all(|r| {
                    let holds = scope_holds(&r.scope_name, pod);
                    match (r.scope_name.as_str(), r.operator.as_str()) {
                        ("PriorityClass", "In" | "NotIn") => {
                            let name = pod.spec.priority_class_name.as_deref().unwrap_or_default();
                            (r.operator == "In") == r.values.iter().any(|v| v == name)
                        }
                        (_, "DoesNotExist") => !holds,
                        _ => holds,
                    }
                })
    }
}

/// Whether scope `scope` (as `Exists`) holds for `pod`. Terminating pods
/// are those with `activeDeadlineSeconds`, which jotasu's pods do not take:
/// none is Terminating.
fn scope_holds(scope: &str, pod: &crate::Pod) -> bool {
    use crate::kinds::qos::{QosClass, qos_class};
    match scope {
        "Terminating" => false,
        "NotTerminating" => true,
        "BestEffort" => qos_class(pod) == QosClass::BestEffort,
        "NotBestEffort" => qos_class(pod) != QosClass::BestEffort,
        "PriorityClass" => pod
            .spec
            .priority_class_name
            .as_deref()
            .is_some_and(|n| !n.is_empty()),
        "CrossNamespacePodAffinity" => pod.spec.affinity.as_ref().is_some_and(|a| {
            let pod_terms = a.pod_affinity.iter().flat_map(|p| {
                p.required_during_scheduling_ignored_during_execution
                    .iter()
                    .chain(
                        p.preferred_during_scheduling_ignored_during_execution
                            .iter()
                            .map(|w| &w.pod_affinity_term),
                    )
            });
            let anti_terms = a.pod_anti_affinity.iter().flat_map(|p| {
                p.required_during_scheduling_ignored_during_execution
                    .iter()
                    .chain(
                        p.preferred_during_scheduling_ignored_during_execution
                            .iter()
                            .map(|w| &w.pod_affinity_term),
                    )
            });
            pod_terms
                .chain(anti_terms)
                .any(|t| !t.namespaces.is_empty() || t.namespace_selector.is_some())
        }),
        _ => false,
    }
}
