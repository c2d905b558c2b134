//! The `pods/eviction` subresource, as Kubernetes' eviction REST does it:
//! a pod is deleted unless the one PodDisruptionBudget of its namespace
//! that selects it allows no disruption now. An allowed eviction takes one
//! disruption from the budget's status (with the status's
//! resourceVersion as a precondition, so two evictions cannot both take
//! the last one) before the pod is deleted.

use jotasu_api::kinds::pod_status::PodPhase;
use jotasu_api::{LabelSelector, Object, ObjectRef, Pod, PodDisruptionBudget, Time};

use super::error::{ApiResult, ApiServerError};
use super::{ApiServer, WRITE_ATTEMPTS};
use crate::runtime::status::is_ready;
use crate::store::Store;

/// What an eviction does with a pod, given its budgets.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Delete it; the budget keeps its count (the pod is not running,
    /// not healthy, or no budget selects it).
    Delete,
    /// Take one disruption from this budget (updated status), then delete.
    Disrupt(Box<PodDisruptionBudget>),
    /// Refuse for now, with the reason.
    Refuse(String),
}

/// The refusal kubectl users know, naming the budget.
pub const VIOLATES: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// Whether a budget selects a pod (policy/v1: an empty selector selects
/// every pod of the namespace).
pub fn selects(b: &PodDisruptionBudget, pod: &Pod) -> bool {
    b.spec
        .selector
        .as_ref()
        .is_none_or(|s| s.matches(&pod.metadata.labels))
}

/// Decides the eviction of `pod` against its namespace's `budgets` at `now`.
pub fn decide(pod: &Pod, budgets: &[PodDisruptionBudget], now: &Time) -> Decision {
    // Pods that are not running take nothing from a budget.
    if matches!(
        pod.status.as_ref().and_then(|s| s.phase),
        Some(PodPhase::Succeeded | PodPhase::Failed | PodPhase::Pending) | None
    ) {
        return Decision::Delete;
    }
    let matching: Vec<&PodDisruptionBudget> = budgets.iter().filter(|b| selects(b, pod)).collect();
    let budget = match matching.as_slice() {
        [] => return Decision::Delete,
        [b] => *b,
        _ => {
            return Decision::Refuse(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
            );
        }
    };
    let name = budget.metadata.name();
    let Some(status) = budget
        .status
        .as_ref()
        .filter(|s| s.observed_generation >= budget.metadata.generation)
    else {
        return Decision::Refuse(format!(
            "{VIOLATES} The disruption budget {name} is still being processed by the server."
        ));
    };
    if !is_ready(pod)
        && (budget.always_allow_unhealthy() || status.current_healthy >= status.desired_healthy)
    {
        return Decision::Delete;
    }
    if status.disruptions_allowed <= 0 {
        return Decision::Refuse(format!(
            "{VIOLATES} The disruption budget {name} needs {} healthy pods and has {} currently",
            status.desired_healthy, status.current_healthy
        ));
    }
    let mut updated = budget.clone();
    if let Some(s) = updated.status.as_mut() {
        s.disruptions_allowed -= 1;
        s.disrupted_pods
            .insert(pod.metadata.name().to_owned(), now.clone());
    }
    Decision::Disrupt(Box::new(updated))
}

impl<S: Store> ApiServer<S> {
    /// Evicts pod `r` ([`decide`]), deleting it with `grace_period_seconds`
    /// (None: its own). A refusal is [`ApiServerError::TooManyRequests`].
    pub async fn evict(&self, r: &ObjectRef, grace_period_seconds: Option<i64>) -> ApiResult<()> {
        for _ in 0..WRITE_ATTEMPTS {
            let Some((Object::Pod(pod), _)) = self.read(r).await? else {
                return Err(ApiServerError::NotFound(r.clone()));
            };
            if pod.metadata.deletion_timestamp.is_some() {
                return Ok(());
            }
            let ns = r.namespace.as_deref();
            let (items, _) = self
                .list(
                    jotasu_api::Kind::PodDisruptionBudget,
                    ns,
                    &LabelSelector::default(),
                )
                .await?;
            let budgets: Vec<PodDisruptionBudget> = items
                .iter()
                .filter_map(|j| serde_json::from_str(j).ok())
                .collect();
            match decide(&pod, &budgets, &Time::now()) {
                Decision::Refuse(reason) => return Err(ApiServerError::TooManyRequests(reason)),
                Decision::Delete => {}
                Decision::Disrupt(budget) => {
                    let json = serde_json::to_string(&Object::PodDisruptionBudget(*budget))
                        .map_err(|e| ApiServerError::Invalid(e.to_string()))?;
                    match self.update_status(&json).await {
                        Ok(_) => {}
                        // Another eviction took a disruption first: decide again.
                        Err(ApiServerError::Conflict(_)) => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
            return match self.delete_graceful(r, None, grace_period_seconds).await {
                Ok(_) | Err(ApiServerError::NotFound(_)) => Ok(()),
                Err(e) => Err(e),
            };
        }
        Err(ApiServerError::TooManyRequests(format!(
            "too many concurrent evictions in namespace {}; retry",
            r.namespace.as_deref().unwrap_or_default()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "d", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]}
        }))
        .unwrap()
    }

    fn budget(
        allowed: i32,
        healthy: i32,
        desired: i32,
        policy: Option<&str>,
    ) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "web-pdb", "namespace": "d", "generation": 1},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}},
                     "unhealthyPodEvictionPolicy": policy},
            "status": {"observedGeneration": 1, "disruptionsAllowed": allowed,
                       "currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": 3}
        }))
        .unwrap()
    }

    #[test]
    fn a_budget_with_room_gives_one_disruption_and_none_refuses() {
        let now = Time::from_unix_seconds(100);
        let Decision::Disrupt(b) = decide(&pod("a", true), &[budget(1, 3, 2, None)], &now) else {
            panic!("expected a disruption")
        };
        let s = b.status.expect("a status");
        assert_eq!(s.disruptions_allowed, 0);
        assert!(s.disrupted_pods.contains_key("a"));
        assert_eq!(
            decide(&pod("a", true), &[budget(0, 2, 2, None)], &now),
            Decision::Refuse(
                "Cannot evict pod as it would violate the pod's disruption budget. The disruption budget web-pdb needs 2 healthy pods and has 2 currently".into()
            )
        );
    }

    #[test]
    fn unhealthy_pods_and_other_cases() {
        let now = Time::from_unix_seconds(100);
        // Unhealthy, the budget holds: evicted without taking a disruption.
        assert_eq!(
            decide(&pod("a", false), &[budget(0, 2, 2, None)], &now),
            Decision::Delete
        );
        // Unhealthy, the budget does not hold: only AlwaysAllow lets it go.
        assert!(matches!(
            decide(&pod("a", false), &[budget(0, 1, 2, None)], &now),
            Decision::Refuse(_)
        ));
        assert_eq!(
            decide(
                &pod("a", false),
                &[budget(0, 1, 2, Some("AlwaysAllow"))],
                &now
            ),
            Decision::Delete
        );
        // No budget, another app's budget: deleted.
        assert_eq!(decide(&pod("a", true), &[], &now), Decision::Delete);
        let mut other = budget(0, 2, 2, None);
        other.spec.selector = Some(LabelSelector::from_labels(
            &[("app".to_owned(), "db".to_owned())].into(),
        ));
        assert_eq!(decide(&pod("a", true), &[other], &now), Decision::Delete);
        // Two budgets: refused, as Kubernetes does.
        assert!(matches!(
            decide(&pod("a", true), &[budget(1, 3, 2, None), budget(1, 3, 2, None)], &now),
            Decision::Refuse(r) if r.contains("more than one PodDisruptionBudget")
        ));
        // A budget not yet counted: refused.
        let mut fresh = budget(1, 3, 2, None);
        fresh.status = None;
        assert!(matches!(
            decide(&pod("a", true), &[fresh], &now),
            Decision::Refuse(r) if r.contains("still being processed")
        ));
    }
}
