//! The replica set controller's decisions as pure functions: which pods a
//! ReplicaSet owns (adopting matching orphans, releasing pods that stopped
//! matching), how many to create, which to delete, the pods it creates and
//! the status it reports.

use jotasu_api::kinds::workloads::ReplicaSetStatus;
use jotasu_api::{Condition, ConditionStatus, ObjectMeta, Pod, ReplicaSet, Time};

use super::rank::victims;
use crate::runtime::status::{is_active, is_available, is_ready, ready_since};
use crate::runtime::{controlled_by, controller_reference};

/// At most this many pods are created or deleted per reconcile
/// (Kubernetes' `burstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// The `ReplicaFailure` condition type.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// What one reconcile of a ReplicaSet does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RsPlan {
    /// Orphans to adopt: the pods with this ReplicaSet's controller
    /// reference added (their resourceVersion kept as a precondition).
    pub adopt: Vec<Pod>,
    /// Owned pods whose labels no longer match: the pods without the
    /// reference (resourceVersion kept as a precondition).
    pub release: Vec<Pod>,
    /// How many pods to create from the template.
    pub create: usize,
    /// Pods to delete, by name, first victim first.
    pub delete: Vec<String>,
    /// Seconds until a ready pod becomes available (reconcile then).
    pub requeue_after: Option<i64>,
}

/// Why pods could not be created or deleted (the `ReplicaFailure` condition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `FailedCreate` or `FailedDelete`.
    pub reason: &'static str,
    /// The error.
    pub message: String,
}

/// The pods `rs` claims among `candidates` (every pod of its namespace it
/// controls, and orphans): owned pods whose labels still match, plus
/// adoptable orphans (matching, not terminating), with the claim's writes.
pub fn claim<'a>(rs: &ReplicaSet, candidates: &[&'a Pod]) -> (Vec<&'a Pod>, Vec<Pod>, Vec<Pod>) {
    let selector = &rs.spec.selector;
    let mut claimed = Vec::new();
    let mut adopt = Vec::new();
    let mut release = Vec::new();
    for &pod in candidates {
        let matches = !selector.is_empty() && selector.matches(&pod.metadata.labels);
        if controlled_by(pod, rs) {
            if matches {
                claimed.push(pod);
            } else {
                let mut p = pod.clone();
                let uid = rs.metadata.uid.as_deref();
                p.metadata
                    .owner_references
                    .retain(|r| Some(r.uid.as_str()) != uid);
                p.status = None;
                release.push(p);
            }
        } else if pod.metadata.controller_ref().is_none()
            && matches
            && pod.metadata.deletion_timestamp.is_none()
        {
            let mut p = pod.clone();
            p.metadata.owner_references.push(controller_reference(rs));
            p.status = None;
            adopt.push(p);
            claimed.push(pod);
        }
    }
    (claimed, adopt, release)
}

/// Decides one reconcile of `rs`: `candidates` are the pods of its
/// namespace that it controls or that have no controller; `related` the
/// pods of every ReplicaSet sharing its owner (for choosing victims).
pub fn plan_replica_set(
    rs: &ReplicaSet,
    candidates: &[&Pod],
    related: &[&Pod],
    now: i64,
) -> RsPlan {
    let (claimed, adopt, release) = claim(rs, candidates);
    let active: Vec<&Pod> = claimed.into_iter().filter(|p| is_active(p)).collect();
    let want = usize::try_from(rs.spec.replicas().max(0)).unwrap_or(0);
    let mut plan = RsPlan {
        adopt,
        release,
        requeue_after: next_available(rs, &active, now),
        ..RsPlan::default()
    };
    if active.len() < want {
        plan.create = (want - active.len()).min(BURST_REPLICAS);
    } else if active.len() > want {
        let surplus = (active.len() - want).min(BURST_REPLICAS);
        let related = if related.is_empty() {
            &active[..]
        } else {
            related
        };
        plan.delete = victims(&active, related, surplus);
    }
    plan
}

/// Seconds until the next ready-but-not-yet-available pod of `active`
/// becomes available (at least 1).
pub fn next_available(rs: &ReplicaSet, active: &[&Pod], now: i64) -> Option<i64> {
    let min_ready = i64::from(rs.spec.min_ready_seconds.unwrap_or(0));
    if min_ready <= 0 {
        return None;
    }
    active
        .iter()
        .filter(|p| is_ready(p))
        .filter_map(|p| ready_since(p))
        .map(|t| t + min_ready - now)
        .filter(|d| *d > 0)
        .min()
        .map(|d| d.max(1))
}

/// A pod of `rs`'s template: named `<rs>-<random>` by the server, labelled
/// as the template, controlled by `rs`.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = &rs.spec.template;
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.metadata.name())),
            namespace: rs.metadata.namespace.clone(),
            labels: template.metadata.labels.clone(),
            annotations: template.metadata.annotations.clone(),
            owner_references: vec![controller_reference(rs)],
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        ..Pod::default()
    }
}

/// The status of `rs` given its claimed pods (`active` ones only count),
/// and the failure of this reconcile's writes, if any.
pub fn replica_set_status(
    rs: &ReplicaSet,
    active: &[&Pod],
    failure: Option<&Failure>,
    now: i64,
) -> ReplicaSetStatus {
    let mut status = rs.status.clone().unwrap_or_default();
    let template = &rs.spec.template.metadata.labels;
    let min_ready = rs.spec.min_ready_seconds.unwrap_or(0);
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(active.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    status.replicas = count(&|_| true);
    status.fully_labeled_replicas = Some(count(&|p| {
        template
            .iter()
            .all(|(k, v)| p.metadata.labels.get(k) == Some(v))
    }));
    status.ready_replicas = count(&|p| is_ready(p));
    status.available_replicas = count(&|p| is_available(p, min_ready, now));
    status.observed_generation = rs.metadata.generation;
    let has_failure = status.conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match failure {
        Some(f) if !has_failure => status.conditions.push(Condition {
            type_: REPLICA_FAILURE.into(),
            status: ConditionStatus::True,
            reason: Some(f.reason.into()),
            message: Some(f.message.clone()),
            last_transition_time: Some(Time::from_unix_seconds(now)),
            ..Condition::default()
        }),
        None if has_failure => status.conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        _ => {}
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::kinds::pod_status::{PodPhase, PodStatus};
    use jotasu_api::{LabelSelector, OwnerReference};

    fn labels(app: &str) -> jotasu_api::Labels {
        [("app".to_owned(), app.to_owned())].into()
    }

    fn rs(replicas: i32, min_ready: i32) -> ReplicaSet {
        let mut r = ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web-abc".into()),
                namespace: Some("default".into()),
                uid: Some("rs-uid".into()),
                generation: Some(3),
                ..ObjectMeta::default()
            },
            ..ReplicaSet::default()
        };
        r.spec.replicas = Some(replicas);
        r.spec.min_ready_seconds = Some(min_ready);
        r.spec.selector = LabelSelector::from_labels(&labels("web"));
        r.spec.template.metadata.labels = labels("web");
        r
    }

    fn pod(name: &str, owner: Option<&ReplicaSet>, ready_at: Option<i64>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.labels = labels("web");
        if let Some(o) = owner {
            p.metadata.owner_references.push(controller_reference(o));
        }
        p.spec.node_name = Some("n1".into());
        let mut s = PodStatus {
            phase: Some(PodPhase::Running),
            ..PodStatus::default()
        };
        if let Some(t) = ready_at {
            s.conditions.push(Condition {
                type_: "Ready".into(),
                status: ConditionStatus::True,
                last_transition_time: Some(Time::from_unix_seconds(t)),
                ..Condition::default()
            });
        }
        p.status = Some(s);
        p
    }

    #[test]
    fn creates_the_missing_and_deletes_the_surplus() {
        let r = rs(3, 0);
        let a = pod("a", Some(&r), Some(10));
        let plan = plan_replica_set(&r, &[&a], &[], 100);
        assert_eq!(plan.create, 2);
        assert!(plan.delete.is_empty());

        let b = pod("b", Some(&r), None);
        let mut c = pod("c", Some(&r), Some(10));
        c.metadata.deletion_timestamp = Some(Time::from_unix_seconds(90));
        let one = rs(1, 0);
        let mut one_pods = [a.clone(), b.clone(), c.clone()];
        for p in &mut one_pods {
            p.metadata.owner_references = vec![controller_reference(&one)];
        }
        let refs: Vec<&Pod> = one_pods.iter().collect();
        let plan = plan_replica_set(&one, &refs, &[], 100);
        assert_eq!(plan.create, 0);
        // The terminating pod does not count; the unready one goes first.
        assert_eq!(plan.delete, ["b"]);

        let big = rs(2_000, 0);
        assert_eq!(plan_replica_set(&big, &[], &[], 0).create, BURST_REPLICAS);
    }

    #[test]
    fn adopts_orphans_and_releases_strays() {
        let r = rs(2, 0);
        let orphan = pod("orphan", None, None);
        let mut stray = pod("stray", Some(&r), None);
        stray.metadata.labels = labels("other");
        let mut foreign = pod("foreign", None, None);
        foreign.metadata.owner_references.push(OwnerReference {
            kind: "ReplicaSet".into(),
            uid: "someone-else".into(),
            controller: Some(true),
            ..OwnerReference::default()
        });
        let plan = plan_replica_set(&r, &[&orphan, &stray, &foreign], &[], 0);
        assert_eq!(plan.adopt.len(), 1);
        assert!(controlled_by(&plan.adopt[0], &r));
        assert_eq!(plan.release.len(), 1);
        assert!(plan.release[0].metadata.owner_references.is_empty());
        // The orphan now counts: one more to create, not two.
        assert_eq!(plan.create, 1);
    }

    #[test]
    fn template_pods() {
        let r = rs(1, 0);
        let p = pod_from_template(&r);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("web-abc-"));
        assert_eq!(p.metadata.labels, labels("web"));
        assert!(controlled_by(&p, &r));
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
    }

    #[test]
    fn status_counts_and_min_ready() {
        let r = rs(3, 10);
        let ready_long = pod("a", Some(&r), Some(50));
        let ready_new = pod("b", Some(&r), Some(95));
        let mut unlabelled = pod("c", Some(&r), None);
        unlabelled.metadata.labels.clear();
        let active = [&ready_long, &ready_new, &unlabelled];
        let s = replica_set_status(&r, &active, None, 100);
        assert_eq!(s.replicas, 3);
        assert_eq!(s.fully_labeled_replicas, Some(2));
        assert_eq!(s.ready_replicas, 2);
        assert_eq!(s.available_replicas, 1);
        assert_eq!(s.observed_generation, Some(3));
        assert_eq!(next_available(&r, &active, 100), Some(5));
        assert_eq!(next_available(&rs(3, 0), &active, 100), None);

        let failure = Failure {
            reason: "FailedCreate",
            message: "quota".into(),
        };
        let s = replica_set_status(&r, &active, Some(&failure), 100);
        assert_eq!(s.conditions[0].reason.as_deref(), Some("FailedCreate"));
        let mut failed = r.clone();
        failed.status = Some(s);
        assert!(
            replica_set_status(&failed, &active, None, 101)
                .conditions
                .is_empty()
        );
    }
}
