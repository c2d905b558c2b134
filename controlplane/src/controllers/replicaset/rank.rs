//! Which pods a ReplicaSet deletes first when it has too many, ordered as
//! Kubernetes' `ActivePodsWithRanks` orders them: unscheduled before
//! scheduled, Pending before Unknown before Running, not ready before
//! ready, lower deletion cost first, more doubled-up first, more recently
//! ready first, more restarts first, newer first.

use std::cmp::Ordering;
use std::collections::HashMap;

use jotasu_api::Pod;
use jotasu_api::kinds::pod_status::PodPhase;

use crate::runtime::status::{is_active, is_ready, node_of, ready_since};

/// The annotation that lowers (or raises) a pod's deletion priority.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase) {
        Some(PodPhase::Unknown) => 1,
        Some(PodPhase::Running) => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .get(POD_DELETION_COST)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.iter().map(|c| c.restart_count).max())
        .unwrap_or(0)
}

fn created(pod: &Pod) -> Option<i64> {
    pod.metadata
        .creation_timestamp
        .as_ref()
        .and_then(jotasu_api::Time::unix_seconds)
}

/// "Later, or unknown" first: Kubernetes' `afterOrZero` as an ordering
/// (a missing time sorts before any time; later times before earlier).
fn later_or_unknown_first(a: Option<i64>, b: Option<i64>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => b.cmp(&a),
    }
}

/// Compares two pods with their ranks (active pods of related
/// ReplicaSets on the same node): `Less` means "delete first".
fn compare(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize) -> Ordering {
    let (na, nb) = (node_of(a), node_of(b));
    if na != nb && (na.is_none() || nb.is_none()) {
        return if na.is_none() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    phase_ordinal(a)
        .cmp(&phase_ordinal(b))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        .then_with(|| rank_b.cmp(&rank_a))
        .then_with(|| {
            if is_ready(a) && is_ready(b) {
                later_or_unknown_first(ready_since(a), ready_since(b))
            } else {
                Ordering::Equal
            }
        })
        .then_with(|| max_restarts(b).cmp(&max_restarts(a)))
        .then_with(|| later_or_unknown_first(created(a), created(b)))
}

/// The names of the `count` pods of `pods` to delete first; `related` are
/// the active and inactive pods of every ReplicaSet with the same owner
/// (this one's included), whose count per node ranks doubled-up pods first.
pub fn victims(pods: &[&Pod], related: &[&Pod], count: usize) -> Vec<String> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related.iter().filter(|p| is_active(p)) {
        *on_node.entry(node_of(p).unwrap_or("")).or_default() += 1;
    }
    let rank = |p: &Pod| on_node.get(node_of(p).unwrap_or("")).copied().unwrap_or(0);
    let mut ranked: Vec<(&Pod, usize)> = pods.iter().map(|p| (*p, rank(p))).collect();
    ranked.sort_by(|(a, ra), (b, rb)| {
        compare(a, *ra, b, *rb).then_with(|| a.metadata.name().cmp(b.metadata.name()))
    });
    ranked
        .into_iter()
        .take(count)
        .map(|(p, _)| p.metadata.name().to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::kinds::pod_status::{ContainerStatus, PodStatus};
    use jotasu_api::{Condition, ConditionStatus, Time};

    fn pod(name: &str, node: Option<&str>, phase: PodPhase, ready_at: Option<i64>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.creation_timestamp = Some(Time::from_unix_seconds(100));
        p.spec.node_name = node.map(str::to_owned);
        let mut status = PodStatus {
            phase: Some(phase),
            ..PodStatus::default()
        };
        if let Some(t) = ready_at {
            status.conditions.push(Condition {
                type_: "Ready".into(),
                status: ConditionStatus::True,
                last_transition_time: Some(Time::from_unix_seconds(t)),
                ..Condition::default()
            });
        }
        p.status = Some(status);
        p
    }

    fn order(pods: &[Pod], related: &[Pod]) -> Vec<String> {
        let ps: Vec<&Pod> = pods.iter().collect();
        let rs: Vec<&Pod> = related.iter().collect();
        victims(&ps, &rs, pods.len())
    }

    #[test]
    fn unscheduled_pending_unready_first() {
        let pods = [
            pod("ready", Some("n1"), PodPhase::Running, Some(10)),
            pod("running", Some("n1"), PodPhase::Running, None),
            pod("pending", Some("n1"), PodPhase::Pending, None),
            pod("unbound", None, PodPhase::Pending, None),
            pod("unknown", Some("n1"), PodPhase::Unknown, None),
        ];
        assert_eq!(
            order(&pods, &[]),
            ["unbound", "pending", "unknown", "running", "ready"]
        );
    }

    #[test]
    fn cost_rank_ready_time_restarts_age() {
        let mut cheap = pod("cheap", Some("n1"), PodPhase::Running, Some(10));
        cheap
            .metadata
            .annotations
            .insert(POD_DELETION_COST.into(), "-5".into());
        let recent = pod("recent", Some("n2"), PodPhase::Running, Some(50));
        let old = pod("old", Some("n3"), PodPhase::Running, Some(10));
        assert_eq!(
            order(&[old.clone(), recent.clone(), cheap], &[]),
            ["cheap", "recent", "old"]
        );
        // Doubled up on n3: n3's pod goes first despite being ready longer.
        let related = [old.clone(), pod("x", Some("n3"), PodPhase::Running, None)];
        assert_eq!(
            order(&[recent.clone(), old.clone()], &related),
            ["old", "recent"]
        );
        let mut crashy = pod("crashy", Some("n4"), PodPhase::Running, Some(10));
        crashy.status.as_mut().unwrap().container_statuses = vec![ContainerStatus {
            name: "c".into(),
            restart_count: 4,
            ..ContainerStatus::default()
        }];
        assert_eq!(order(&[old.clone(), crashy], &[]), ["crashy", "old"]);
        let mut newer = pod("newer", Some("n5"), PodPhase::Running, Some(10));
        newer.metadata.creation_timestamp = Some(Time::from_unix_seconds(200));
        assert_eq!(order(&[old, newer], &[]), ["newer", "old"]);
        assert_eq!(victims(&[&recent], &[], 0), Vec::<String>::new());
    }
}
