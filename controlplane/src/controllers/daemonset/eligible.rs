//! Which nodes a DaemonSet's pod belongs on, as Kubernetes decides it: the
//! template's nodeSelector matched and every NoSchedule / NoExecute taint
//! tolerated, counting the tolerations Kubernetes adds to every daemon pod
//! (not-ready, unreachable, unschedulable, pressure conditions). A node
//! whose new taints are only NoSchedule keeps the pod it has.

use jotasu_api::kinds::node::TaintEffect;
use jotasu_api::kinds::pod::{Toleration, TolerationOperator};
use jotasu_api::{Node, PodSpec};

use crate::scheduler::filter::tolerated;

/// The taint of a node that is not Ready.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// The taint of a node the control plane cannot reach.
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
/// The taint of a cordoned node.
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";
/// Taints of nodes under resource pressure.
pub const PRESSURE_TAINTS: [&str; 3] = [
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/pid-pressure",
];

fn exists(key: &str, effect: TaintEffect) -> Toleration {
    Toleration {
        key: Some(key.to_owned()),
        operator: Some(TolerationOperator::Exists),
        value: None,
        effect: Some(effect),
        toleration_seconds: None,
    }
}

/// The tolerations Kubernetes adds to every DaemonSet pod: a daemon stays
/// on a node that is not ready or unreachable, and is placed on cordoned
/// nodes and nodes under pressure.
pub fn daemon_tolerations() -> Vec<Toleration> {
    let mut all = vec![
        exists(NOT_READY_TAINT, TaintEffect::NoExecute),
        exists(UNREACHABLE_TAINT, TaintEffect::NoExecute),
        exists(UNSCHEDULABLE_TAINT, TaintEffect::NoSchedule),
    ];
    all.extend(
        PRESSURE_TAINTS
            .iter()
            .map(|k| exists(k, TaintEffect::NoSchedule)),
    );
    all
}

/// Adds [`daemon_tolerations`] the spec does not have yet.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    for t in daemon_tolerations() {
        if !spec.tolerations.contains(&t) {
            spec.tolerations.push(t);
        }
    }
}

/// Whether a node should get the daemon pod, and whether a pod already
/// there may stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// A pod should run here (created if missing).
    pub should_run: bool,
    /// A pod already here may keep running (NoSchedule taints added after
    /// it started do not evict it; NoExecute ones do).
    pub should_continue: bool,
}

/// How `node` fits the pod `spec` (with the daemon tolerations added).
pub fn fit(node: &Node, spec: &PodSpec) -> Fit {
    let no = Fit {
        should_run: false,
        should_continue: false,
    };
    if node.metadata.deletion_timestamp.is_some() {
        return no;
    }
    let labels = &node.metadata.labels;
    if !spec
        .node_selector
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
    {
        return no;
    }
    let untolerated = |effect: TaintEffect| {
        node.spec
            .taints
            .iter()
            .any(|t| t.effect == effect && !tolerated(&spec.tolerations, t))
    };
    let execute = untolerated(TaintEffect::NoExecute);
    let schedule = untolerated(TaintEffect::NoSchedule);
    Fit {
        should_run: !execute && !schedule,
        should_continue: !execute,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::kinds::node::Taint;

    fn node(labels: &[(&str, &str)], taints: &[(&str, TaintEffect)]) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some("n".into());
        n.metadata.labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        n.spec.taints = taints
            .iter()
            .map(|(k, e)| Taint {
                key: (*k).to_owned(),
                value: None,
                effect: *e,
                time_added: None,
            })
            .collect();
        n
    }

    fn spec(selector: &[(&str, &str)]) -> PodSpec {
        let mut s = PodSpec {
            node_selector: selector
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..PodSpec::default()
        };
        add_daemon_tolerations(&mut s);
        s
    }

    #[test]
    fn selector_must_be_a_subset_of_the_labels() {
        let n = node(&[("disk", "ssd"), ("zone", "a")], &[]);
        assert!(fit(&n, &spec(&[("disk", "ssd")])).should_run);
        assert!(fit(&n, &spec(&[])).should_run);
        let f = fit(&n, &spec(&[("disk", "hdd")]));
        assert!(!f.should_run && !f.should_continue);
    }

    #[test]
    fn taints_and_the_daemon_tolerations() {
        let s = spec(&[]);
        let cordoned = node(&[], &[(UNSCHEDULABLE_TAINT, TaintEffect::NoSchedule)]);
        assert!(fit(&cordoned, &s).should_run);
        let unreachable = node(&[], &[(UNREACHABLE_TAINT, TaintEffect::NoExecute)]);
        assert!(fit(&unreachable, &s).should_run);
        let dedicated = node(&[], &[("dedicated", TaintEffect::NoSchedule)]);
        assert_eq!(
            fit(&dedicated, &s),
            Fit {
                should_run: false,
                should_continue: true
            }
        );
        let evicting = node(&[], &[("dedicated", TaintEffect::NoExecute)]);
        assert!(!fit(&evicting, &s).should_continue);
        let soft = node(&[], &[("dedicated", TaintEffect::PreferNoSchedule)]);
        assert!(fit(&soft, &s).should_run);
        let mut tolerant = s.clone();
        tolerant.tolerations.push(Toleration {
            key: Some("dedicated".into()),
            operator: Some(TolerationOperator::Exists),
            ..Toleration::default()
        });
        assert!(fit(&evicting, &tolerant).should_run);
    }

    #[test]
    fn a_node_being_deleted_gets_nothing() {
        let mut n = node(&[], &[]);
        n.metadata.deletion_timestamp = Some(jotasu_api::Time::from_unix_seconds(1));
        assert!(!fit(&n, &spec(&[])).should_continue);
    }

    #[test]
    fn tolerations_are_added_once() {
        let mut s = spec(&[]);
        let n = s.tolerations.len();
        add_daemon_tolerations(&mut s);
        assert_eq!(s.tolerations.len(), n);
    }
}
