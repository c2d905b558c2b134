//! Reading pods and nodes the way every controller must agree on: what is
//! active, ready, available, terminating; whether a node is Ready.

use jotasu_api::kinds::pod_status::PodPhase;
use jotasu_api::{Condition, ConditionStatus, Node, Pod, Time};

/// The condition of `type_` in `conditions`.
pub fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Sets a condition, keeping its lastTransitionTime unless its status
/// changes; returns whether anything changed.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition, now: &Time) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status && old.reason == new.reason && old.message == new.message {
                return false;
            }
            new.last_transition_time = if old.status == new.status {
                old.last_transition_time.clone()
            } else {
                Some(now.clone())
            };
            *old = new;
            true
        }
        None => {
            new.last_transition_time.get_or_insert_with(|| now.clone());
            conditions.push(new);
            true
        }
    }
}

/// Whether the pod is being deleted (graceful deletion in progress).
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Whether the pod counts toward its controller's replicas: not being
/// deleted and not finished (Succeeded / Failed).
pub fn is_active(pod: &Pod) -> bool {
    !is_terminating(pod)
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase),
            Some(PodPhase::Succeeded | PodPhase::Failed)
        )
}

/// Whether the pod's `Ready` condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        condition(&s.conditions, "Ready").is_some_and(|c| c.status == ConditionStatus::True)
    })
}

/// Whether the pod has been Ready for at least `min_ready_seconds` at `now`
/// (seconds since the epoch), as Kubernetes counts "available".
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: i64) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    ready_since(pod).is_some_and(|t| t + i64::from(min_ready_seconds) <= now)
}

/// When the pod last became Ready (seconds since the epoch).
pub fn ready_since(pod: &Pod) -> Option<i64> {
    let status = pod.status.as_ref()?;
    condition(&status.conditions, "Ready")
        .filter(|c| c.status == ConditionStatus::True)
        .and_then(|c| c.last_transition_time.as_ref())
        .and_then(Time::unix_seconds)
}

/// The node the pod is bound to, if any.
pub fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.node_name.as_deref().filter(|n| !n.is_empty())
}

/// Whether the node's `Ready` condition is True.
pub fn is_node_ready(node: &Node) -> bool {
    node.status.as_ref().is_some_and(|s| {
        condition(&s.conditions, "Ready").is_some_and(|c| c.status == ConditionStatus::True)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::kinds::pod_status::PodStatus;

    fn ready_pod(since: i64) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(PodPhase::Running),
                conditions: vec![Condition {
                    type_: "Ready".into(),
                    status: ConditionStatus::True,
                    last_transition_time: Some(Time::from_unix_seconds(since)),
                    ..Condition::default()
                }],
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn readiness_and_availability() {
        let p = ready_pod(1_000);
        assert!(is_active(&p));
        assert!(is_ready(&p));
        assert!(is_available(&p, 0, 1_000));
        assert!(!is_available(&p, 10, 1_005));
        assert!(is_available(&p, 10, 1_010));
        let mut t = p.clone();
        t.metadata.deletion_timestamp = Some(Time::from_unix_seconds(1));
        assert!(!is_active(&t));
        assert!(!is_ready(&Pod::default()));
    }

    #[test]
    fn conditions_keep_transition_time() {
        let t0 = Time::from_unix_seconds(100);
        let t1 = Time::from_unix_seconds(200);
        let mut cs = Vec::new();
        let ready = |s| Condition {
            type_: "Ready".into(),
            status: s,
            ..Condition::default()
        };
        assert!(set_condition(&mut cs, ready(ConditionStatus::True), &t0));
        assert!(!set_condition(&mut cs, ready(ConditionStatus::True), &t1));
        assert_eq!(cs[0].last_transition_time, Some(t0));
        assert!(set_condition(&mut cs, ready(ConditionStatus::False), &t1));
        assert_eq!(cs[0].last_transition_time, Some(t1));
    }
}
