//! The node lifecycle controller's decisions as a pure function: from each
//! node's heartbeat silence and how long it has been lost, which nodes turn
//! Ready or Unknown, which pods lose their Ready condition, which pods are
//! evicted, and which pods are collected because nothing will ever stop
//! them (bound to a node that does not exist, or terminating on a lost one).

use std::time::Duration;

use jotasu_api::kinds::node::NodeStatus;
use jotasu_api::{Condition, ConditionStatus, Node, Pod, PodStatus, Time};

use super::Config;
use crate::runtime::status::{condition, is_terminating, node_of, set_condition};

/// Reason of Ready=True.
pub const NODE_READY: &str = "NodeReady";
/// Reason of Ready=Unknown.
pub const NODE_STATUS_UNKNOWN: &str = "NodeStatusUnknown";
/// Message of Ready=Unknown (Kubernetes' words).
pub const STOPPED_POSTING: &str = "Kubelet stopped posting node status.";
/// Why of a pod evicted from a lost node (rate-limited per node).
pub const EVICTED: &str = "evicted from a lost node";
/// Reason of a pod's Ready=False on a lost node.
pub const NODE_NOT_READY: &str = "NodeNotReady";

/// What the heartbeats say of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It spoke within the grace period.
    Healthy,
    /// Not heard since the controller started, which was less than the
    /// grace period ago: no judgement yet.
    Waiting,
    /// Silent for the grace period or longer.
    Lost,
}

/// Judges a node: `heard` whether it spoke since the controller started,
/// `silence` the time since it last did (or since the start).
pub fn verdict(heard: bool, silence: Duration, grace: Duration) -> Verdict {
    match (silence < grace, heard) {
        (true, true) => Verdict::Healthy,
        (true, false) => Verdict::Waiting,
        (false, _) => Verdict::Lost,
    }
}

/// How many nodes are lost at once (Kubernetes' zone states, one zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Disruption {
    /// Few nodes lost: their pods are evicted after the eviction delay.
    #[default]
    Normal,
    /// More than two nodes and at least 55 % of them lost: a network split
    /// or an outage is likelier than that many dead machines, so nothing is
    /// evicted (Kubernetes stops below 50 nodes and slows to 0.01 nodes/s
    /// above; jotasu stops).
    Partial,
    /// Every node lost: the control plane is likelier cut off than every
    /// node dead; nothing is evicted.
    Full,
}

/// Kubernetes' unhealthy-zone threshold.
const UNHEALTHY_FRACTION: f64 = 0.55;

/// The disruption `lost` of `total` nodes make.
pub fn disruption(total: usize, lost: usize) -> Disruption {
    if lost > 0 && lost >= total {
        Disruption::Full
    } else if lost > 2 && lost as f64 >= UNHEALTHY_FRACTION * total as f64 {
        Disruption::Partial
    } else {
        Disruption::Normal
    }
}

/// One node as the runner observed it.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The node.
    pub node: &'a Node,
    /// Whether it spoke since the controller started.
    pub heard: bool,
    /// Time since it last spoke (or since the controller started).
    pub silence: Duration,
    /// How long the controller has judged it lost (None: it has not).
    pub lost_for: Option<Duration>,
}

/// A pod to remove at once (grace 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doomed {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The node it is bound to.
    pub node: String,
    /// Why (for the log): `evicted`, `terminating on a lost node`, `node gone`.
    pub why: &'static str,
}

/// What one tick does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Nodes whose Ready condition changes (status updates).
    pub nodes: Vec<Node>,
    /// Pods on lost nodes set Ready=False (status updates).
    pub unready: Vec<Pod>,
    /// Pods to delete with grace 0.
    pub delete: Vec<Doomed>,
    /// Pods bound to a node the cache does not know: deleted with grace 0
    /// once the store confirms the node does not exist.
    pub orphans: Vec<Doomed>,
    /// How many nodes are lost at once; evictions happen only when Normal.
    pub disruption: Disruption,
}

fn doomed(pod: &Pod, node: &str, why: &'static str) -> Doomed {
    Doomed {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        name: pod.metadata.name().to_owned(),
        node: node.to_owned(),
        why,
    }
}

fn daemon(pod: &Pod) -> bool {
    pod.metadata
        .controller_ref()
        .is_some_and(|r| r.kind == "DaemonSet")
}

/// The node with its Ready condition set from `verdict`, if that changes it.
fn node_update(o: &Observed<'_>, verdict: Verdict, now: i64) -> Option<Node> {
    let stamp = Time::from_unix_seconds(now);
    let mut node = o.node.clone();
    let status = node.status.get_or_insert_with(NodeStatus::default);
    let previous = condition(&status.conditions, "Ready").cloned();
    let new = match verdict {
        Verdict::Waiting => return None,
        Verdict::Healthy => {
            let secs = i64::try_from(o.silence.as_secs()).unwrap_or(0);
            Condition {
                type_: "Ready".into(),
                status: ConditionStatus::True,
                reason: Some(NODE_READY.into()),
                message: Some("node agent is posting ready status".into()),
                last_heartbeat_time: Some(Time::from_unix_seconds(now - secs)),
                ..Condition::default()
            }
        }
        Verdict::Lost => Condition {
            type_: "Ready".into(),
            status: ConditionStatus::Unknown,
            reason: Some(NODE_STATUS_UNKNOWN.into()),
            message: Some(STOPPED_POSTING.into()),
            last_heartbeat_time: previous.and_then(|c| c.last_heartbeat_time),
            ..Condition::default()
        },
    };
    set_condition(&mut status.conditions, new, &stamp).then_some(node)
}

/// The pod with Ready=False (reason NodeNotReady), unless it is already.
fn unready(pod: &Pod, now: i64) -> Option<Pod> {
    let mut p = pod.clone();
    let status = p.status.get_or_insert_with(PodStatus::default);
    if condition(&status.conditions, "Ready").is_some_and(|c| c.status == ConditionStatus::False) {
        return None;
    }
    let new = Condition {
        type_: "Ready".into(),
        status: ConditionStatus::False,
        reason: Some(NODE_NOT_READY.into()),
        message: Some("the node stopped posting status".into()),
        ..Condition::default()
    };
    set_condition(&mut status.conditions, new, &Time::from_unix_seconds(now)).then_some(p)
}

/// Decides one tick: `nodes` as observed, every pod, `now` in seconds.
pub fn plan(config: &Config, nodes: &[Observed<'_>], pods: &[&Pod], now: i64) -> Plan {
    let mut out = Plan::default();
    let mut lost = std::collections::HashMap::new();
    let mut known = std::collections::HashSet::new();
    let verdicts: Vec<Verdict> = nodes
        .iter()
        .map(|o| verdict(o.heard, o.silence, config.grace))
        .collect();
    let lost_count = verdicts.iter().filter(|v| **v == Verdict::Lost).count();
    out.disruption = disruption(nodes.len(), lost_count);
    for (o, &v) in nodes.iter().zip(&verdicts) {
        let name = o.node.metadata.name();
        known.insert(name);
        if let Some(n) = node_update(o, v, now) {
            out.nodes.push(n);
        }
        if v == Verdict::Lost {
            let evict = out.disruption == Disruption::Normal
                && o.lost_for.is_some_and(|d| d >= config.eviction_delay);
            lost.insert(name, evict);
        }
    }
    for &pod in pods {
        let Some(node) = node_of(pod) else { continue };
        if !known.contains(node) {
            out.orphans.push(doomed(pod, node, "node gone"));
            continue;
        }
        let Some(&evict) = lost.get(node) else {
            continue;
        };
        if is_terminating(pod) {
            out.delete
                .push(doomed(pod, node, "terminating on a lost node"));
        } else if evict && !daemon(pod) {
            out.delete.push(doomed(pod, node, EVICTED));
        } else if let Some(p) = unready(pod, now) {
            out.unready.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::status::{is_node_ready, is_ready};
    use jotasu_api::OwnerReference;
    use jotasu_api::kinds::pod_status::PodPhase;

    const NOW: i64 = 1_000_000;

    fn config() -> Config {
        Config {
            grace: Duration::from_secs(10),
            eviction_delay: Duration::from_secs(30),
            eviction_rate: 0.1,
        }
    }

    fn node(name: &str, ready: Option<ConditionStatus>) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.status = Some(NodeStatus {
            conditions: ready
                .map(|s| Condition {
                    type_: "Ready".into(),
                    status: s,
                    reason: Some(if s == ConditionStatus::True {
                        NODE_READY.into()
                    } else {
                        NODE_STATUS_UNKNOWN.into()
                    }),
                    message: Some(if s == ConditionStatus::True {
                        "node agent is posting ready status".into()
                    } else {
                        STOPPED_POSTING.into()
                    }),
                    last_heartbeat_time: Some(Time::from_unix_seconds(NOW - 100)),
                    last_transition_time: Some(Time::from_unix_seconds(NOW - 1000)),
                    ..Condition::default()
                })
                .into_iter()
                .collect(),
            ..NodeStatus::default()
        });
        n
    }

    fn pod(name: &str, node: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        p.spec.node_name = Some(node.into());
        p.status = Some(PodStatus {
            phase: Some(PodPhase::Running),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: ConditionStatus::True,
                ..Condition::default()
            }],
            ..PodStatus::default()
        });
        p
    }

    fn seen(node: &Node, heard: bool, silence: u64, lost_for: Option<u64>) -> Observed<'_> {
        Observed {
            node,
            heard,
            silence: Duration::from_secs(silence),
            lost_for: lost_for.map(Duration::from_secs),
        }
    }

    fn names(d: &[Doomed]) -> Vec<&str> {
        d.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn verdicts() {
        let g = Duration::from_secs(10);
        assert_eq!(verdict(true, Duration::from_secs(3), g), Verdict::Healthy);
        assert_eq!(verdict(false, Duration::from_secs(3), g), Verdict::Waiting);
        assert_eq!(verdict(true, g, g), Verdict::Lost);
        assert_eq!(verdict(false, Duration::from_secs(11), g), Verdict::Lost);
    }

    #[test]
    fn a_node_that_speaks_turns_ready_once() {
        let new = node("n1", None);
        let p = plan(&config(), &[seen(&new, true, 1, None)], &[], NOW);
        assert_eq!(p.nodes.len(), 1);
        let n = &p.nodes[0];
        assert!(is_node_ready(n));
        let c = condition(&n.status.as_ref().expect("status").conditions, "Ready")
            .expect("Ready")
            .clone();
        assert_eq!(c.reason.as_deref(), Some(NODE_READY));
        assert_eq!(
            c.last_heartbeat_time,
            Some(Time::from_unix_seconds(NOW - 1))
        );
        assert_eq!(c.last_transition_time, Some(Time::from_unix_seconds(NOW)));

        let ready = node("n1", Some(ConditionStatus::True));
        let p = plan(&config(), &[seen(&ready, true, 1, None)], &[], NOW);
        assert!(p.nodes.is_empty(), "no write while nothing changes");
    }

    #[test]
    fn a_node_not_heard_since_start_is_left_alone_within_the_grace() {
        let n = node("n1", Some(ConditionStatus::True));
        let pods = [pod("a", "n1")];
        let refs: Vec<&Pod> = pods.iter().collect();
        let p = plan(&config(), &[seen(&n, false, 5, None)], &refs, NOW);
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn a_silent_node_turns_unknown_and_its_pods_unready() {
        let n = node("n1", Some(ConditionStatus::True));
        let mut already = pod("b", "n1");
        already.status.as_mut().expect("status").conditions[0].status = ConditionStatus::False;
        let pods = [pod("a", "n1"), already, pod("c", "n2")];
        let refs: Vec<&Pod> = pods.iter().collect();
        let other = node("n2", Some(ConditionStatus::True));
        let observed = [seen(&n, true, 10, Some(0)), seen(&other, true, 1, None)];
        let p = plan(&config(), &observed, &refs, NOW);
        assert_eq!(p.nodes.len(), 1);
        let c = condition(&p.nodes[0].status.as_ref().expect("s").conditions, "Ready")
            .expect("Ready")
            .clone();
        assert_eq!(c.status, ConditionStatus::Unknown);
        assert_eq!(c.reason.as_deref(), Some(NODE_STATUS_UNKNOWN));
        assert_eq!(c.message.as_deref(), Some(STOPPED_POSTING));
        assert_eq!(
            c.last_heartbeat_time,
            Some(Time::from_unix_seconds(NOW - 100)),
            "the last heartbeat stays"
        );
        assert_eq!(p.unready.len(), 1);
        assert_eq!(p.unready[0].metadata.name.as_deref(), Some("a"));
        assert!(!is_ready(&p.unready[0]));
        let cond = condition(
            &p.unready[0].status.as_ref().expect("s").conditions,
            "Ready",
        )
        .expect("Ready")
        .clone();
        assert_eq!(cond.reason.as_deref(), Some(NODE_NOT_READY));
        assert!(p.delete.is_empty(), "not before the eviction delay");
    }

    #[test]
    fn after_the_eviction_delay_pods_go_but_daemons_stay() {
        let n = node("n1", Some(ConditionStatus::Unknown));
        let mut daemon = pod("d", "n1");
        daemon.metadata.owner_references.push(OwnerReference {
            api_version: "apps/v1".into(),
            kind: "DaemonSet".into(),
            name: "agent".into(),
            uid: "u".into(),
            controller: Some(true),
            block_owner_deletion: None,
        });
        let mut terminating = pod("t", "n1");
        terminating.metadata.deletion_timestamp = Some(Time::from_unix_seconds(NOW));
        let pods = [pod("a", "n1"), daemon, terminating];
        let refs: Vec<&Pod> = pods.iter().collect();

        let up = node("n2", Some(ConditionStatus::True));
        let early = plan(
            &config(),
            &[seen(&n, true, 20, Some(10)), seen(&up, true, 0, None)],
            &refs,
            NOW,
        );
        assert_eq!(names(&early.delete), ["t"], "terminating pods go at once");
        assert!(
            early.nodes.iter().all(|n| n.metadata.name() == "n2"),
            "n1 already Unknown"
        );

        let late = plan(
            &config(),
            &[seen(&n, true, 45, Some(35)), seen(&up, true, 0, None)],
            &refs,
            NOW,
        );
        assert_eq!(late.disruption, Disruption::Normal);
        assert_eq!(names(&late.delete), ["a", "t"]);
        assert_eq!(late.unready.len(), 1, "the daemon pod stays, unready");
        assert_eq!(late.unready[0].metadata.name.as_deref(), Some("d"));
    }

    #[test]
    fn nothing_is_evicted_while_most_nodes_are_lost_at_once() {
        assert_eq!(disruption(0, 0), Disruption::Normal);
        assert_eq!(disruption(2, 1), Disruption::Normal);
        assert_eq!(disruption(1, 1), Disruption::Full);
        assert_eq!(disruption(2, 2), Disruption::Full);
        assert_eq!(disruption(5, 2), Disruption::Normal, "two is never partial");
        assert_eq!(disruption(5, 3), Disruption::Partial);
        assert_eq!(disruption(10, 5), Disruption::Normal, "50 % < 55 %");
        assert_eq!(disruption(10, 6), Disruption::Partial);
        // Every node silent past the eviction delay: pods are only unready;
        // terminating pods on lost nodes still go (nothing else stops them).
        let (a, b) = (
            node("n1", Some(ConditionStatus::Unknown)),
            node("n2", Some(ConditionStatus::Unknown)),
        );
        let mut t = pod("t", "n2");
        t.metadata.deletion_timestamp = Some(Time::from_unix_seconds(NOW));
        let pods = [pod("a", "n1"), pod("b", "n2"), t];
        let refs: Vec<&Pod> = pods.iter().collect();
        let all = [
            seen(&a, true, 120, Some(110)),
            seen(&b, true, 120, Some(110)),
        ];
        let p = plan(&config(), &all, &refs, NOW);
        assert_eq!(p.disruption, Disruption::Full);
        assert_eq!(names(&p.delete), ["t"]);
        assert_eq!(p.unready.len(), 2);
    }

    #[test]
    fn pods_on_missing_nodes_are_orphans_and_a_returning_node_is_ready_again() {
        let pods = [pod("a", "gone"), Pod::default()];
        let refs: Vec<&Pod> = pods.iter().collect();
        let back = node("n1", Some(ConditionStatus::Unknown));
        let p = plan(&config(), &[seen(&back, true, 0, None)], &refs, NOW);
        assert_eq!(names(&p.orphans), ["a"]);
        assert_eq!(p.orphans[0].node, "gone");
        assert!(is_node_ready(&p.nodes[0]));
    }
}
