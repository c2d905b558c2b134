//! The DaemonSet controller's decisions as a pure function of the
//! DaemonSet, the nodes and its pods: which nodes get a pod, which pods go
//! (excess, misplaced, failed, on a node that left), which old pods a
//! rolling update replaces now, and the status to report.

use std::collections::BTreeMap;

use jotasu_api::kinds::pod_status::PodPhase;
use jotasu_api::kinds::workloads::{DaemonSetStatus, DaemonSetUpdateStrategyType};
use jotasu_api::{DaemonSet, IntOrString, Node, ObjectMeta, Pod};

use super::eligible::{Fit, add_daemon_tolerations, fit};
use crate::runtime::controller_reference;
use crate::runtime::status::{is_available, is_ready, is_terminating, ready_since};

/// The label carrying the hash of the template a daemon pod was made from.
pub const HASH_LABEL: &str = "controller-revision-hash";

/// One pod to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The pod's name.
    pub name: String,
    /// The node it is bound to.
    pub node: String,
    /// The node is gone: nothing will stop the pod, so it is removed at
    /// once (grace 0) once the runner has confirmed the node is gone.
    pub node_gone: bool,
}

/// What one reconcile of a DaemonSet does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DsPlan {
    /// Pods to create, already bound to their node.
    pub create: Vec<Pod>,
    /// Pods to delete.
    pub delete: Vec<Removal>,
    /// The status to report.
    pub status: DaemonSetStatus,
    /// Seconds until a ready pod becomes available (reconcile then).
    pub requeue_after: Option<i64>,
}

/// A stable hash of the pod template (FNV-1a of its JSON form), written
/// with Kubernetes' safe alphabet (no vowels, no look-alike digits).
pub fn template_hash(ds: &DaemonSet) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let json = serde_json::to_vec(&ds.spec.template).unwrap_or_default();
    let mut h: u32 = 0x811c_9dc5;
    for b in json {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.to_string()
        .bytes()
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

/// The pod `ds` runs on `node`.
pub fn new_pod(ds: &DaemonSet, hash: &str, node: &str) -> Pod {
    let template = &ds.spec.template;
    let mut labels = template.metadata.labels.clone();
    labels.insert(HASH_LABEL.to_owned(), hash.to_owned());
    let mut spec = template.spec.clone();
    spec.node_name = Some(node.to_owned());
    add_daemon_tolerations(&mut spec);
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", ds.metadata.name())),
            namespace: ds.metadata.namespace.clone(),
            labels,
            annotations: template.metadata.annotations.clone(),
            owner_references: vec![controller_reference(ds)],
            ..ObjectMeta::default()
        },
        spec,
        ..Pod::default()
    }
}

fn is_updated(pod: &Pod, hash: &str) -> bool {
    pod.metadata.labels.get(HASH_LABEL).map(String::as_str) == Some(hash)
}

fn creation(pod: &Pod) -> (i64, &str) {
    let t = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(jotasu_api::Time::unix_seconds)
        .unwrap_or(i64::MAX);
    (t, pod.metadata.name())
}

fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase),
        Some(PodPhase::Failed | PodPhase::Succeeded)
    )
}

fn removal(pod: &Pod, node: &str, node_gone: bool) -> Removal {
    Removal {
        name: pod.metadata.name().to_owned(),
        node: node.to_owned(),
        node_gone,
    }
}

/// Most pods that may be unavailable during a rolling update (percentages
/// of the desired count round up; never 0 when anything is desired).
pub fn max_unavailable(ds: &DaemonSet, desired: i32) -> i32 {
    let value = ds
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.clone())
        .unwrap_or(IntOrString::Int(1));
    let n = value.scaled_value(desired, true).unwrap_or(1).max(0);
    if n == 0 && desired > 0 { 1 } else { n }
}

/// Decides what to do for `ds` given every node and the pods it controls.
pub fn plan(ds: &DaemonSet, hash: &str, nodes: &[&Node], pods: &[&Pod], now: i64) -> DsPlan {
    let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
    let mut spec = ds.spec.template.spec.clone();
    add_daemon_tolerations(&mut spec);

    // Pods by node, oldest first (unbound pods are not the daemon's doing).
    let mut by_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for &pod in pods {
        if let Some(node) = pod.spec.node_name.as_deref().filter(|n| !n.is_empty()) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    for list in by_node.values_mut() {
        list.sort_by(|a, b| creation(a).cmp(&creation(b)));
    }

    let mut out = DsPlan::default();
    let mut status = DaemonSetStatus {
        observed_generation: ds.metadata.generation,
        conditions: ds
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default(),
        ..DaemonSetStatus::default()
    };
    let mut fits: Vec<(&str, Fit)> = Vec::with_capacity(nodes.len());
    let mut known = std::collections::BTreeSet::new();
    for &node in nodes {
        let name = node.metadata.name();
        known.insert(name);
        let f = fit(node, &spec);
        fits.push((name, f));
        let here = by_node.get(name).map(Vec::as_slice).unwrap_or_default();

        // Status, from what is there now (the oldest pod speaks for the node).
        if f.should_run {
            status.desired_number_scheduled += 1;
            if let Some(&pod) = here.first() {
                status.current_number_scheduled += 1;
                if is_ready(pod) {
                    status.number_ready += 1;
                    if is_available(pod, min_ready, now) {
                        status.number_available += 1;
                    } else if let Some(since) = ready_since(pod) {
                        let wait = since + i64::from(min_ready) - now;
                        out.requeue_after = Some(out.requeue_after.map_or(wait, |w| w.min(wait)));
                    }
                }
                if is_updated(pod, hash) {
                    status.updated_number_scheduled += 1;
                }
            }
        } else if !here.is_empty() {
            status.number_misscheduled += 1;
        }

        // Pods to create and delete on this node.
        if f.should_run && here.is_empty() {
            out.create.push(new_pod(ds, hash, name));
        } else if f.should_continue {
            let mut running = Vec::new();
            for &pod in here.iter().filter(|p| !is_terminating(p)) {
                if finished(pod) {
                    out.delete.push(removal(pod, name, false));
                } else {
                    running.push(pod);
                }
            }
            for &extra in running.iter().skip(1) {
                out.delete.push(removal(extra, name, false));
            }
        } else {
            for &pod in here.iter().filter(|p| !is_terminating(p)) {
                out.delete.push(removal(pod, name, false));
            }
        }
    }
    status.number_unavailable = status.desired_number_scheduled - status.number_available;

    // Pods on nodes that left: nothing will ever stop them.
    for (node, list) in &by_node {
        if !known.contains(node) {
            out.delete
                .extend(list.iter().map(|pod| removal(pod, node, true)));
        }
    }

    let rolling = ds
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_)
        .unwrap_or_default()
        == DaemonSetUpdateStrategyType::RollingUpdate;
    if rolling {
        let old = rolling_update(ds, hash, &fits, &by_node, &status, now);
        for (pod, node) in old {
            if !out.delete.iter().any(|d| d.name == pod.metadata.name()) {
                out.delete.push(removal(pod, node, false));
            }
        }
    }
    out.status = status;
    out
}

/// The old pods a rolling update deletes now (the manage step creates
/// their replacements once they are gone): unavailable old pods always,
/// available ones while fewer than maxUnavailable nodes are unavailable.
fn rolling_update<'a>(
    ds: &DaemonSet,
    hash: &str,
    fits: &[(&'a str, Fit)],
    by_node: &BTreeMap<&str, Vec<&'a Pod>>,
    status: &DaemonSetStatus,
    now: i64,
) -> Vec<(&'a Pod, &'a str)> {
    let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
    let max = max_unavailable(ds, status.desired_number_scheduled);
    let mut unavailable = 0;
    let mut replace = Vec::new();
    let mut candidates = Vec::new();
    for &(node, f) in fits {
        let here = by_node.get(node).map(Vec::as_slice).unwrap_or_default();
        // Nodes losing their pod anyway, and nodes with nothing to do.
        if !f.should_continue || (!f.should_run && here.is_empty()) {
            continue;
        }
        let live: Vec<&Pod> = here
            .iter()
            .copied()
            .filter(|p| !is_terminating(p))
            .collect();
        let (new, old): (Vec<&Pod>, Vec<&Pod>) = live.iter().partition(|p| is_updated(p, hash));
        match (new.as_slice(), old.as_slice()) {
            ([new], []) => {
                if !is_available(new, min_ready, now) {
                    unavailable += 1;
                }
            }
            ([], [old]) => {
                if !is_available(old, min_ready, now) {
                    replace.push((*old, node));
                } else if unavailable < max {
                    candidates.push((*old, node));
                }
            }
            // Missing, duplicated or half-replaced: the manage step's
            // business; it counts as unavailable meanwhile.
            _ => unavailable += 1,
        }
    }
    let room = usize::try_from((max - unavailable).max(0)).unwrap_or(0);
    replace.extend(candidates.into_iter().take(room));
    replace
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;

/// Records the outcome of a round's pod creations in the status, as the
/// ReplicaSet controller does: a `ReplicaFailure` condition (reason
/// `FailedCreate`, the API's refusal as message — a missing ServiceAccount,
/// a terminating namespace) while creating fails, removed once creating
/// succeeds. `failure` is `None` when creations succeeded or none were tried
/// (`attempted` false: the condition stays as it was).
pub fn record_create_failure(
    status: &mut DaemonSetStatus,
    attempted: bool,
    failure: Option<&str>,
    now: i64,
) {
    use crate::controllers::replicaset::plan::REPLICA_FAILURE;
    use crate::runtime::status::set_condition;
    use jotasu_api::{Condition, ConditionStatus, Time};
    match failure {
        Some(message) => {
            set_condition(
                &mut status.conditions,
                Condition {
                    type_: REPLICA_FAILURE.into(),
                    status: ConditionStatus::True,
                    reason: Some("FailedCreate".into()),
                    message: Some(message.to_owned()),
                    ..Condition::default()
                },
                &Time::from_unix_seconds(now),
            );
        }
        None if attempted => status.conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        None => {}
    }
}
