//! Tests of the DaemonSet controller's decisions.

use jotasu_api::kinds::node::{Taint, TaintEffect};
use jotasu_api::kinds::pod_status::{PodPhase, PodStatus};
use jotasu_api::kinds::workloads::{
    DaemonSetUpdateStrategy, DaemonSetUpdateStrategyType, RollingUpdate,
};
use jotasu_api::{Condition, ConditionStatus, DaemonSet, IntOrString, Node, Object, Pod, Time};

use super::*;

const NOW: i64 = 10_000;

fn ds() -> DaemonSet {
    let json = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid", "generation": 2},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "a", "image": "busybox:1"}]}}}
    });
    let mut o: Object = serde_json::from_value(json).expect("a DaemonSet");
    o.apply_defaults();
    match o {
        Object::DaemonSet(d) => d,
        _ => unreachable!(),
    }
}

fn node(name: &str) -> Node {
    let mut n = Node::default();
    n.metadata.name = Some(name.into());
    n
}

/// A pod of `d` on `node`, created at `created`, ready since `ready`.
fn pod(d: &DaemonSet, name: &str, node: &str, created: i64, ready: Option<i64>) -> Pod {
    let mut p = new_pod(d, &template_hash(d), node);
    p.metadata.name = Some(name.into());
    p.metadata.creation_timestamp = Some(Time::from_unix_seconds(created));
    p.status = Some(PodStatus {
        phase: Some(PodPhase::Running),
        conditions: ready
            .map(|t| Condition {
                type_: "Ready".into(),
                status: ConditionStatus::True,
                last_transition_time: Some(Time::from_unix_seconds(t)),
                ..Condition::default()
            })
            .into_iter()
            .collect(),
        ..PodStatus::default()
    });
    p
}

fn old(mut p: Pod) -> Pod {
    p.metadata.labels.insert(HASH_LABEL.into(), "old".into());
    p
}

fn run(d: &DaemonSet, nodes: &[Node], pods: &[Pod]) -> DsPlan {
    let nodes: Vec<&Node> = nodes.iter().collect();
    let pods: Vec<&Pod> = pods.iter().collect();
    plan(d, &template_hash(d), &nodes, &pods, NOW)
}

fn nodes_of(p: &DsPlan) -> Vec<&str> {
    p.create
        .iter()
        .filter_map(|p| p.spec.node_name.as_deref())
        .collect()
}

fn deleted(p: &DsPlan) -> Vec<&str> {
    p.delete.iter().map(|d| d.name.as_str()).collect()
}

#[test]
fn hash_is_stable_and_follows_the_template() {
    let a = ds();
    assert_eq!(template_hash(&a), template_hash(&a.clone()));
    assert!(!template_hash(&a).is_empty());
    let mut b = a.clone();
    b.spec.template.spec.containers[0].image = "busybox:2".into();
    assert_ne!(template_hash(&a), template_hash(&b));
    b.metadata.labels.insert("x".into(), "y".into());
    b.spec.template.spec.containers[0].image = "busybox:1".into();
    assert_eq!(
        template_hash(&a),
        template_hash(&b),
        "only the template counts"
    );
}

#[test]
fn one_bound_pod_per_node() {
    let d = ds();
    let p = run(&d, &[node("n1"), node("n2")], &[]);
    assert_eq!(nodes_of(&p), ["n1", "n2"]);
    let created = &p.create[0];
    assert_eq!(created.metadata.generate_name.as_deref(), Some("agent-"));
    assert_eq!(
        created.metadata.labels.get(HASH_LABEL),
        Some(&template_hash(&d))
    );
    assert_eq!(
        created.metadata.labels.get("app").map(String::as_str),
        Some("agent")
    );
    let owner = created.metadata.controller_ref().expect("controller ref");
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("DaemonSet", "ds-uid")
    );
    assert!(
        created
            .spec
            .tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some("node.kubernetes.io/unreachable"))
    );
    assert_eq!(p.status.desired_number_scheduled, 2);
    assert_eq!(p.status.current_number_scheduled, 0);
    assert_eq!(p.status.number_unavailable, 2);
    assert_eq!(p.status.observed_generation, Some(2));
}

#[test]
fn a_steady_daemonset_does_nothing_and_reports_all_available() {
    let d = ds();
    let pods = [
        pod(&d, "a", "n1", 1, Some(2)),
        pod(&d, "b", "n2", 1, Some(2)),
    ];
    let p = run(&d, &[node("n1"), node("n2")], &pods);
    assert!(p.create.is_empty() && p.delete.is_empty(), "{p:?}");
    let s = &p.status;
    assert_eq!(
        (
            s.desired_number_scheduled,
            s.current_number_scheduled,
            s.number_ready,
            s.updated_number_scheduled,
            s.number_available,
            s.number_unavailable,
            s.number_misscheduled
        ),
        (2, 2, 2, 2, 2, 0, 0)
    );
}

#[test]
fn extra_pods_on_a_node_keep_the_oldest() {
    let d = ds();
    let pods = [
        pod(&d, "young", "n1", 5, Some(6)),
        pod(&d, "old", "n1", 1, Some(2)),
        pod(&d, "middle", "n1", 3, None),
    ];
    let p = run(&d, &[node("n1")], &pods);
    let mut gone = deleted(&p);
    gone.sort_unstable();
    assert_eq!(gone, ["middle", "young"]);
    assert!(p.create.is_empty());
}

#[test]
fn a_node_that_left_loses_its_pod_at_once_and_a_new_one_gets_one() {
    let d = ds();
    let mut terminating = pod(&d, "t", "gone", 1, Some(2));
    terminating.metadata.deletion_timestamp = Some(Time::from_unix_seconds(NOW));
    let pods = [pod(&d, "a", "gone", 1, Some(2)), terminating];
    let p = run(&d, &[node("new")], &pods);
    assert_eq!(nodes_of(&p), ["new"]);
    assert_eq!(p.delete.len(), 2);
    assert!(p.delete.iter().all(|r| r.node_gone && r.node == "gone"));
}

#[test]
fn an_ineligible_node_loses_its_pod_and_counts_misscheduled() {
    let mut d = ds();
    d.spec
        .template
        .spec
        .node_selector
        .insert("disk".into(), "ssd".into());
    let mut ssd = node("ssd");
    ssd.metadata.labels.insert("disk".into(), "ssd".into());
    let pods = [
        pod(&d, "a", "hdd", 1, Some(2)),
        pod(&d, "b", "ssd", 1, Some(2)),
    ];
    let p = run(&d, &[node("hdd"), ssd], &pods);
    assert_eq!(deleted(&p), ["a"]);
    assert!(!p.delete[0].node_gone);
    assert_eq!(p.status.number_misscheduled, 1);
    assert_eq!(p.status.desired_number_scheduled, 1);
}

#[test]
fn a_noschedule_taint_keeps_the_pod_but_places_none() {
    let d = ds();
    let mut tainted = node("t");
    tainted.spec.taints.push(Taint {
        key: "dedicated".into(),
        value: None,
        effect: TaintEffect::NoSchedule,
        time_added: None,
    });
    let p = run(&d, &[tainted.clone()], &[pod(&d, "a", "t", 1, Some(2))]);
    assert!(p.delete.is_empty() && p.create.is_empty());
    assert_eq!(p.status.number_misscheduled, 1);
    let p = run(&d, &[tainted], &[]);
    assert!(p.create.is_empty());
}

#[test]
fn a_terminating_pod_blocks_its_replacement_and_failed_pods_go() {
    let d = ds();
    let mut t = pod(&d, "t", "n1", 1, Some(2));
    t.metadata.deletion_timestamp = Some(Time::from_unix_seconds(NOW));
    let mut failed = pod(&d, "f", "n2", 1, None);
    failed.status.as_mut().expect("status").phase = Some(PodPhase::Failed);
    let p = run(&d, &[node("n1"), node("n2")], &[t, failed]);
    assert!(p.create.is_empty(), "wait for the terminating pod to go");
    assert_eq!(deleted(&p), ["f"]);
}

#[test]
fn rolling_update_replaces_one_available_pod_at_a_time() {
    let d = ds();
    let nodes = [node("n1"), node("n2"), node("n3")];
    let pods = [
        old(pod(&d, "a", "n1", 1, Some(2))),
        old(pod(&d, "b", "n2", 1, Some(2))),
        old(pod(&d, "c", "n3", 1, Some(2))),
    ];
    let p = run(&d, &nodes, &pods);
    assert_eq!(deleted(&p), ["a"]);
    assert_eq!(p.status.updated_number_scheduled, 0);

    // n1's new pod is not ready yet: nothing else is touched.
    let pods = [
        pod(&d, "a2", "n1", 5, None),
        old(pod(&d, "b", "n2", 1, Some(2))),
        old(pod(&d, "c", "n3", 1, Some(2))),
    ];
    let p = run(&d, &nodes, &pods);
    assert!(p.delete.is_empty(), "{p:?}");
    assert_eq!(p.status.updated_number_scheduled, 1);

    // Ready: the next one goes.
    let pods = [
        pod(&d, "a2", "n1", 5, Some(6)),
        old(pod(&d, "b", "n2", 1, Some(2))),
        old(pod(&d, "c", "n3", 1, Some(2))),
    ];
    assert_eq!(deleted(&run(&d, &nodes, &pods)), ["b"]);
}

#[test]
fn rolling_update_replaces_unavailable_old_pods_regardless_and_honours_percentages() {
    let mut d = ds();
    let nodes: Vec<Node> = (1..=4).map(|i| node(&format!("n{i}"))).collect();
    let pods = [
        old(pod(&d, "a", "n1", 1, None)),
        old(pod(&d, "b", "n2", 1, Some(2))),
        old(pod(&d, "c", "n3", 1, Some(2))),
        old(pod(&d, "e", "n4", 1, Some(2))),
    ];
    assert_eq!(deleted(&run(&d, &nodes, &pods)), ["a", "b"]);
    d.spec.update_strategy = Some(DaemonSetUpdateStrategy {
        type_: Some(DaemonSetUpdateStrategyType::RollingUpdate),
        rolling_update: Some(RollingUpdate {
            max_surge: None,
            max_unavailable: Some(IntOrString::String("50%".into())),
        }),
    });
    assert_eq!(max_unavailable(&d, 4), 2);
    assert_eq!(max_unavailable(&d, 3), 2, "percentages round up");
    assert_eq!(max_unavailable(&d, 0), 0);
    assert_eq!(deleted(&run(&d, &nodes, &pods)), ["a", "b", "c"]);
}

#[test]
fn on_delete_only_replaces_what_the_user_deleted() {
    let mut d = ds();
    d.spec.update_strategy = Some(DaemonSetUpdateStrategy {
        type_: Some(DaemonSetUpdateStrategyType::OnDelete),
        rolling_update: None,
    });
    let nodes = [node("n1"), node("n2")];
    let pods = [old(pod(&d, "a", "n1", 1, Some(2)))];
    let p = run(&d, &nodes, &pods);
    assert!(p.delete.is_empty());
    assert_eq!(nodes_of(&p), ["n2"]);
    assert_eq!(
        p.create[0].metadata.labels.get(HASH_LABEL),
        Some(&template_hash(&d)),
        "the replacement has the new template"
    );
}

#[test]
fn min_ready_seconds_delays_availability_and_asks_for_a_requeue() {
    let mut d = ds();
    d.spec.min_ready_seconds = Some(30);
    let p = run(&d, &[node("n1")], &[pod(&d, "a", "n1", 1, Some(NOW - 10))]);
    assert_eq!(p.status.number_ready, 1);
    assert_eq!(p.status.number_available, 0);
    assert_eq!(p.requeue_after, Some(20));
}

#[test]
fn a_refused_creation_shows_in_the_status_until_one_succeeds() {
    use jotasu_api::kinds::workloads::DaemonSetStatus;
    let mut status = DaemonSetStatus::default();
    let refusal = "pods \"d-x\" is forbidden: error looking up service account default/agent: serviceaccount \"agent\" not found";
    record_create_failure(&mut status, true, Some(refusal), 100);
    assert_eq!(status.conditions.len(), 1);
    assert_eq!(status.conditions[0].type_, "ReplicaFailure");
    assert_eq!(status.conditions[0].reason.as_deref(), Some("FailedCreate"));
    assert_eq!(status.conditions[0].message.as_deref(), Some(refusal));
    record_create_failure(&mut status, false, None, 200);
    assert_eq!(status.conditions.len(), 1, "nothing tried: unchanged");
    record_create_failure(&mut status, true, None, 300);
    assert!(status.conditions.is_empty());
}
