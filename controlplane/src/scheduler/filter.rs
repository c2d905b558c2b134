//! Filtering: whether a node can take a pod (Ready, schedulable, taints
//! tolerated, nodeSelector matched, requests fitting), and, for a pod no
//! node can take, Kubernetes' summary of why ("0/5 nodes are available:
//! 3 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector.").

use std::collections::{BTreeMap, HashMap};

use jotasu_api::Pod;
use jotasu_api::kinds::node::{Taint, TaintEffect};
use jotasu_api::kinds::pod::{Toleration, TolerationOperator};

use super::constraints::{Broken, Rules};
use super::nodes::{NodeInfo, owner_of};
use super::resources::{Usage, pod_usage};

/// The taint a pod must tolerate to be placed on a cordoned node.
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";
/// The taint a pod must tolerate to be placed on a node that is not Ready.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

/// Reason: the node is not Ready.
pub const NOT_READY: &str = "node(s) were not ready";
/// Reason: the node is cordoned.
pub const UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// Reason: the node lacks a label of the pod's nodeSelector.
pub const SELECTOR_MISMATCH: &str = "node(s) didn't match Pod's node affinity/selector";
/// Reason: the node cannot hold another pod.
pub const TOO_MANY_PODS: &str = "Too many pods";
/// Reason: not enough CPU left.
pub const INSUFFICIENT_CPU: &str = "Insufficient cpu";
/// Reason: not enough memory left.
pub const INSUFFICIENT_MEMORY: &str = "Insufficient memory";

/// What a pod asks of a node, read once per scheduling attempt.
#[derive(Debug, Clone, Copy)]
pub struct PodNeeds<'a> {
    /// Its requests.
    pub usage: Usage,
    /// Labels the node must carry.
    pub node_selector: &'a BTreeMap<String, String>,
    /// Taints it tolerates.
    pub tolerations: &'a [Toleration],
    /// Its controller (hash of the uid), for spreading.
    pub owner: Option<u64>,
    /// What its PersistentVolumeClaims ask of the node.
    pub volumes: Option<&'a super::volumes::VolumeNeeds>,
}

impl<'a> PodNeeds<'a> {
    /// Reads them from `pod`.
    pub fn of(pod: &'a Pod) -> Self {
        Self {
            usage: pod_usage(pod),
            node_selector: &pod.spec.node_selector,
            tolerations: &pod.spec.tolerations,
            owner: owner_of(pod),
            volumes: None,
        }
    }
}

/// Why a node cannot take a pod (the first filter that fails; all the
/// resources that are short).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfit {
    /// Not Ready.
    NotReady,
    /// Cordoned (`spec.unschedulable`).
    Unschedulable,
    /// A NoSchedule / NoExecute taint (its index in `spec.taints`) is not tolerated.
    Taint(usize),
    /// The nodeSelector does not match.
    Selector,
    /// A rule of [`super::constraints`] (affinity, spread) is broken.
    Rule(Broken),
    /// Its volumes cannot be used or provisioned there.
    Volume(super::volumes::VolumeUnfit),
    /// Requests do not fit.
    Resources {
        /// Not enough CPU.
        cpu: bool,
        /// Not enough memory.
        memory: bool,
        /// No pod slot left.
        pods: bool,
    },
}

/// Whether `toleration` tolerates a taint (`key`, `value`, `effect`):
/// effects equal or the toleration's empty; keys equal or the toleration's
/// empty; `Exists`, or `Equal` with equal values.
pub fn tolerates(toleration: &Toleration, key: &str, value: &str, effect: TaintEffect) -> bool {
    if toleration.effect.is_some_and(|e| e != effect) {
        return false;
    }
    let tkey = toleration.key.as_deref().unwrap_or("");
    if !tkey.is_empty() && tkey != key {
        return false;
    }
    match toleration.operator.unwrap_or_default() {
        TolerationOperator::Exists => true,
        TolerationOperator::Equal => toleration.value.as_deref().unwrap_or("") == value,
    }
}

/// Whether any of `tolerations` tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    let value = taint.value.as_deref().unwrap_or("");
    tolerations
        .iter()
        .any(|t| tolerates(t, &taint.key, value, taint.effect))
}

fn tolerates_condition(tolerations: &[Toleration], key: &str) -> bool {
    tolerations
        .iter()
        .any(|t| tolerates(t, key, "", TaintEffect::NoSchedule))
}

/// Whether the node in `slot` can take the pod under its basic filters
/// ([`check`]) and its placement rules, or why not.
pub fn check_all(
    slot: usize,
    node: &NodeInfo,
    pod: &PodNeeds<'_>,
    rules: Option<&Rules>,
) -> Result<(), Unfit> {
    if let Some(r) = rules
        && !r.node_allowed(node)
    {
        // Kubernetes reports node affinity and nodeSelector alike.
        check(node, pod)?;
        return Err(Unfit::Rule(Broken::NodeAffinity));
    }
    check(node, pod)?;
    match rules {
        Some(r) => r.check_pods(slot).map_err(Unfit::Rule),
        None => Ok(()),
    }
}

/// Whether `node` can take the pod, or why not.
pub fn check(node: &NodeInfo, pod: &PodNeeds<'_>) -> Result<(), Unfit> {
    let Some(n) = node.node.as_deref() else {
        return Err(Unfit::NotReady);
    };
    if !node.ready && !tolerates_condition(pod.tolerations, NOT_READY_TAINT) {
        return Err(Unfit::NotReady);
    }
    if node.unschedulable && !tolerates_condition(pod.tolerations, UNSCHEDULABLE_TAINT) {
        return Err(Unfit::Unschedulable);
    }
    if node.hard_taints {
        for (i, taint) in n.spec.taints.iter().enumerate() {
            if taint.effect != TaintEffect::PreferNoSchedule && !tolerated(pod.tolerations, taint) {
                return Err(Unfit::Taint(i));
            }
        }
    }
    if !pod.node_selector.is_empty() {
        let labels = &n.metadata.labels;
        if !pod
            .node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            return Err(Unfit::Selector);
        }
    }
    if let Some(v) = pod.volumes {
        super::volumes::check(n, v).map_err(Unfit::Volume)?;
    }
    let want = pod.usage.requests;
    let free = node.allocatable - node.used.requests;
    let cpu = want.cpu_millis > 0 && want.cpu_millis > free.cpu_millis;
    let memory = want.memory_bytes > 0 && want.memory_bytes > free.memory_bytes;
    let pods = node.used.requests.pods.saturating_add(1) > node.allocatable.pods;
    if cpu || memory || pods {
        return Err(Unfit::Resources { cpu, memory, pods });
    }
    Ok(())
}

/// The reasons `unfit` gives on `node`, as Kubernetes words them.
pub fn reasons(unfit: Unfit, node: &NodeInfo) -> Vec<String> {
    match unfit {
        Unfit::NotReady => vec![NOT_READY.to_owned()],
        Unfit::Unschedulable => vec![UNSCHEDULABLE.to_owned()],
        Unfit::Selector => vec![SELECTOR_MISMATCH.to_owned()],
        Unfit::Rule(broken) => vec![broken.reason().to_owned()],
        Unfit::Volume(v) => vec![v.reason().to_owned()],
        Unfit::Taint(i) => {
            let taint = node.node.as_ref().and_then(|n| n.spec.taints.get(i));
            let (key, value) = taint.map_or(("", ""), |t| {
                (t.key.as_str(), t.value.as_deref().unwrap_or(""))
            });
            vec![format!("node(s) had untolerated taint {{{key}: {value}}}")]
        }
        Unfit::Resources { cpu, memory, pods } => {
            let mut r = Vec::new();
            if pods {
                r.push(TOO_MANY_PODS.to_owned());
            }
            if cpu {
                r.push(INSUFFICIENT_CPU.to_owned());
            }
            if memory {
                r.push(INSUFFICIENT_MEMORY.to_owned());
            }
            r
        }
    }
}

/// Why no node can take the pod: `0/<nodes> nodes are available: ` and
/// each reason with the number of nodes giving it, sorted as strings and
/// joined by `, ` (Kubernetes' FitError); `no nodes available to schedule
/// pods` when there are none.
pub fn unschedulable_message(
    slots: &[NodeInfo],
    pod: &PodNeeds<'_>,
    rules: Option<&Rules>,
) -> String {
    let mut total = 0;
    let mut histogram: HashMap<String, usize> = HashMap::new();
    for (slot, node) in slots.iter().enumerate() {
        if node.node.is_none() {
            continue;
        }
        total += 1;
        if let Err(unfit) = check_all(slot, node, pod, rules) {
            for reason in reasons(unfit, node) {
                *histogram.entry(reason).or_default() += 1;
            }
        }
    }
    if total == 0 {
        return "no nodes available to schedule pods".to_owned();
    }
    let mut parts: Vec<String> = histogram
        .into_iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    parts.sort();
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::nodes::tests::{node, pod};
    use crate::scheduler::resources::pod_usage;
    use jotasu_api::{Condition, ConditionStatus, Node};
    use std::sync::Arc;

    fn info(n: Node) -> NodeInfo {
        NodeInfo::new(Arc::new(n))
    }

    fn taint(key: &str, value: &str, effect: TaintEffect) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()),
            effect,
            time_added: None,
        }
    }

    fn toleration(key: &str, op: TolerationOperator, value: &str) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some(op),
            value: Some(value.into()),
            ..Toleration::default()
        }
    }

    #[test]
    fn fits_an_empty_ready_node() {
        let p = pod("p", "1", "1Gi", None);
        assert_eq!(
            check(&info(node("n", "4", "8Gi", "10")), &PodNeeds::of(&p)),
            Ok(())
        );
    }

    #[test]
    fn not_ready_unschedulable_and_unknown_nodes() {
        let p = pod("p", "1", "1Gi", None);
        let mut n = node("n", "4", "8Gi", "10");
        n.status.as_mut().unwrap().conditions = vec![Condition {
            type_: "Ready".into(),
            status: ConditionStatus::False,
            ..Condition::default()
        }];
        assert_eq!(
            check(&info(n.clone()), &PodNeeds::of(&p)),
            Err(Unfit::NotReady)
        );
        let mut tolerant = p.clone();
        tolerant.spec.tolerations = vec![Toleration {
            key: Some(NOT_READY_TAINT.into()),
            operator: Some(TolerationOperator::Exists),
            ..Toleration::default()
        }];
        assert_eq!(check(&info(n), &PodNeeds::of(&tolerant)), Ok(()));

        let mut c = node("c", "4", "8Gi", "10");
        c.spec.unschedulable = true;
        assert_eq!(
            check(&info(c.clone()), &PodNeeds::of(&p)),
            Err(Unfit::Unschedulable)
        );
        let mut ds = p.clone();
        ds.spec.tolerations = vec![Toleration {
            key: Some(UNSCHEDULABLE_TAINT.into()),
            operator: Some(TolerationOperator::Exists),
            effect: Some(TaintEffect::NoSchedule),
            ..Toleration::default()
        }];
        assert_eq!(check(&info(c), &PodNeeds::of(&ds)), Ok(()));

        let unknown = NodeInfo::default();
        assert_eq!(check(&unknown, &PodNeeds::of(&p)), Err(Unfit::NotReady));
    }

    #[test]
    fn taints_need_tolerations() {
        let mut n = node("n", "4", "8Gi", "10");
        n.spec.taints = vec![
            taint("soft", "x", TaintEffect::PreferNoSchedule),
            taint("gpu", "true", TaintEffect::NoSchedule),
            taint("drain", "", TaintEffect::NoExecute),
        ];
        let n = info(n);
        let mut p = pod("p", "1", "1Gi", None);
        assert_eq!(check(&n, &PodNeeds::of(&p)), Err(Unfit::Taint(1)));
        p.spec.tolerations = vec![toleration("gpu", TolerationOperator::Equal, "true")];
        assert_eq!(check(&n, &PodNeeds::of(&p)), Err(Unfit::Taint(2)));
        p.spec
            .tolerations
            .push(toleration("drain", TolerationOperator::Exists, ""));
        assert_eq!(check(&n, &PodNeeds::of(&p)), Ok(()));
        // Wrong value, wrong effect.
        p.spec.tolerations = vec![
            toleration("gpu", TolerationOperator::Equal, "false"),
            Toleration {
                effect: Some(TaintEffect::NoSchedule),
                ..toleration("drain", TolerationOperator::Exists, "")
            },
        ];
        assert_eq!(check(&n, &PodNeeds::of(&p)), Err(Unfit::Taint(1)));
        // Empty key with Exists tolerates everything.
        p.spec.tolerations = vec![Toleration {
            operator: Some(TolerationOperator::Exists),
            ..Toleration::default()
        }];
        assert_eq!(check(&n, &PodNeeds::of(&p)), Ok(()));
        assert_eq!(
            reasons(Unfit::Taint(1), &n),
            vec!["node(s) had untolerated taint {gpu: true}".to_owned()]
        );
    }

    #[test]
    fn node_selector_is_a_subset_of_labels() {
        let mut n = node("n", "4", "8Gi", "10");
        n.metadata.labels = [("zone".into(), "a".into()), ("disk".into(), "ssd".into())].into();
        let n = info(n);
        let mut p = pod("p", "1", "1Gi", None);
        p.spec.node_selector = [("disk".into(), "ssd".into())].into();
        assert_eq!(check(&n, &PodNeeds::of(&p)), Ok(()));
        p.spec.node_selector.insert("zone".into(), "b".into());
        assert_eq!(check(&n, &PodNeeds::of(&p)), Err(Unfit::Selector));
    }

    #[test]
    fn requests_must_fit_what_is_left() {
        let mut n = info(node("n", "2", "2Gi", "2"));
        let big = pod("big", "1500m", "1Gi", None);
        n.used = pod_usage(&big);
        let p = pod("p", "1", "1Gi", None);
        assert_eq!(
            check(&n, &PodNeeds::of(&p)),
            Err(Unfit::Resources {
                cpu: true,
                memory: false,
                pods: false
            })
        );
        let p = pod("p", "500m", "2Gi", None);
        assert_eq!(
            check(&n, &PodNeeds::of(&p)),
            Err(Unfit::Resources {
                cpu: false,
                memory: true,
                pods: false
            })
        );
        n.used = n.used + pod_usage(&pod("tiny", "0", "0", None));
        let zero = pod("z", "0", "0", None);
        assert_eq!(
            check(&n, &PodNeeds::of(&zero)),
            Err(Unfit::Resources {
                cpu: false,
                memory: false,
                pods: true
            })
        );
        assert_eq!(
            reasons(
                Unfit::Resources {
                    cpu: true,
                    memory: true,
                    pods: true
                },
                &n
            ),
            vec![TOO_MANY_PODS, INSUFFICIENT_CPU, INSUFFICIENT_MEMORY]
        );
    }

    #[test]
    fn the_message_counts_reasons_like_kubernetes() {
        let p = {
            let mut p = pod("p", "3", "1Gi", None);
            p.spec.node_selector = [("disk".into(), "ssd".into())].into();
            p
        };
        let mut nodes: Vec<NodeInfo> = Vec::new();
        for i in 0..3 {
            let mut n = node(&format!("small-{i}"), "2", "8Gi", "10");
            n.metadata.labels = [("disk".into(), "ssd".into())].into();
            nodes.push(info(n));
        }
        nodes.push(info(node("plain-0", "8", "8Gi", "10")));
        nodes.push(info(node("plain-1", "8", "8Gi", "10")));
        let mut t = node("tainted", "8", "8Gi", "10");
        t.spec.taints = vec![taint("dedicated", "db", TaintEffect::NoSchedule)];
        nodes.push(info(t));
        let mut c = node("cordoned", "8", "8Gi", "10");
        c.spec.unschedulable = true;
        nodes.push(info(c));
        nodes.push(NodeInfo::default()); // a name with pods, no node: not counted
        assert_eq!(
            unschedulable_message(&nodes, &PodNeeds::of(&p), None),
            "0/7 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, \
             1 node(s) were unschedulable, 2 node(s) didn't match Pod's node \
             affinity/selector, 3 Insufficient cpu."
        );
        assert_eq!(
            unschedulable_message(&[], &PodNeeds::of(&p), None),
            "no nodes available to schedule pods"
        );
    }
}
