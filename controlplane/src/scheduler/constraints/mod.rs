//! Rules that depend on where other pods run or on node labels beyond the
//! nodeSelector: node affinity, inter-pod affinity and anti-affinity
//! (the pod's own terms and existing pods' required anti-affinity, which
//! Kubernetes checks both ways), and topology spread constraints. For one
//! pod, [`Rules::prepare`] counts the pods its terms select per topology
//! domain once; filtering and scoring a node are then a few vector loads.
//!
//! Kubernetes' behaviour, with two simplifications (documented in
//! docs/controllers.md): a spread constraint's domains are those holding a
//! node the pod may use, and the pods counted are every selected pod in
//! such a domain; existing pods' *preferred* anti-affinity is not scored.

pub mod groups;
pub mod topology;

use std::sync::Arc;

use jotasu_api::Pod;
use jotasu_api::kinds::affinity::{
    NodeInclusionPolicy, NodeSelector, PreferredSchedulingTerm, TopologySpreadConstraint,
    UnsatisfiableConstraintAction,
};

use self::groups::{Groups, Namespaces, Term, with_label_keys};
use self::topology::{Domains, Topologies};
use super::filter::tolerated;
use super::nodes::NodeInfo;
use super::score::MAX_NODE_SCORE;

/// Matching pods per domain of one topology key.
#[derive(Debug)]
pub struct Counts {
    domains: Arc<Domains>,
    counts: Vec<u32>,
}

impl Counts {
    fn new(domains: Arc<Domains>) -> Self {
        let counts = vec![0; domains.count];
        Self { domains, counts }
    }

    fn add_groups(&mut self, groups: &Groups, ids: &[u32]) {
        for &id in ids {
            for (&slot, &n) in &groups.get(id).nodes {
                if let Some(d) = self.domains.of(slot) {
                    self.counts[d] += n;
                }
            }
        }
    }

    /// Matching pods in `slot`'s domain (None: the node lacks the key).
    pub fn at(&self, slot: usize) -> Option<u32> {
        self.domains.of(slot).map(|d| self.counts[d])
    }
}

/// One spread constraint, counted.
#[derive(Debug)]
pub struct Spread {
    counts: Counts,
    /// The least populated eligible domain's count.
    min: u32,
    max_skew: u32,
    /// 1 when the incoming pod matches its own selector.
    own: u32,
}

/// Why a node fails a rule of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// Required node affinity.
    NodeAffinity,
    /// A required pod affinity term.
    PodAffinity,
    /// A required pod anti-affinity term of the pod.
    PodAntiAffinity,
    /// A required anti-affinity term of a pod already placed.
    ExistingAntiAffinity,
    /// A DoNotSchedule spread constraint.
    Spread,
    /// A DoNotSchedule spread constraint's key is missing on the node.
    SpreadMissingLabel,
}

impl Broken {
    /// Kubernetes' words.
    pub fn reason(self) -> &'static str {
        match self {
            Broken::NodeAffinity => super::filter::SELECTOR_MISMATCH,
            Broken::PodAffinity => "node(s) didn't match pod affinity rules",
            Broken::PodAntiAffinity => "node(s) didn't match pod anti-affinity rules",
            Broken::ExistingAntiAffinity => {
                "node(s) didn't satisfy existing pods anti-affinity rules"
            }
            Broken::Spread => "node(s) didn't match pod topology spread constraints",
            Broken::SpreadMissingLabel => {
                "node(s) didn't match pod topology spread constraints (missing required label)"
            }
        }
    }
}

/// A pod's rules, counted against the cluster as it is.
#[derive(Debug, Default)]
pub struct Rules {
    required_nodes: Option<NodeSelector>,
    preferred_nodes: Vec<PreferredSchedulingTerm>,
    affinity: Vec<Counts>,
    /// No pod matches the required affinity terms but the pod matches them
    /// itself: they hold anywhere (the first pod of a co-located set).
    affinity_anywhere: bool,
    anti: Vec<Counts>,
    existing_anti: Vec<Counts>,
    preferred_pods: Vec<(i64, Counts)>,
    spread_hard: Vec<Spread>,
    spread_soft: Vec<Spread>,
}

/// Raw scores of one node under a pod's rules (normalized over the
/// candidates by [`normalize`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawScores {
    /// Sum of the weights of the preferred node terms the node matches.
    pub node: i64,
    /// Sum of weight × matching pods in the node's domain (anti-affinity negative).
    pub pods: i64,
    /// Pods the soft spread constraints count in the node's domain.
    pub spread: i64,
}

/// Weight of each of the three scores (Kubernetes' default for NodeAffinity,
/// InterPodAffinity and PodTopologySpread).
pub const WEIGHT: i64 = 2;

impl Rules {
    /// The rules of `pod` (of group `group`), or None when it has none
    /// and no placed pod's anti-affinity selects it.
    pub fn prepare(
        pod: &Pod,
        group: u32,
        slots: &[NodeInfo],
        groups: &mut Groups,
        topologies: &mut Topologies,
        generation: u64,
    ) -> Option<Rules> {
        let existing: Vec<u32> = groups.anti_selecting(group).to_vec();
        let affinity = pod.spec.affinity.as_ref();
        if affinity.is_none()
            && pod.spec.topology_spread_constraints.is_empty()
            && existing.is_empty()
        {
            return None;
        }
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let labels = &pod.metadata.labels;
        let mut rules = Rules::default();
        let mut counts = |term: &Term, groups: &mut Groups| -> Counts {
            let domains = topologies.domains(&term.topology_key, slots, generation);
            let mut c = Counts::new(domains);
            let ids = groups.selected(term).to_vec();
            c.add_groups(groups, &ids);
            c
        };
        if let Some(n) = affinity.and_then(|a| a.node_affinity.as_ref()) {
            rules.required_nodes = n
                .required_during_scheduling_ignored_during_execution
                .clone();
            rules.preferred_nodes = n
                .preferred_during_scheduling_ignored_during_execution
                .clone();
        }
        if let Some(pa) = affinity.and_then(|a| a.pod_affinity.as_ref()) {
            let terms: Vec<Term> = pa
                .required_during_scheduling_ignored_during_execution
                .iter()
                .map(|t| Term::resolve(t, namespace, labels))
                .collect();
            for t in &terms {
                rules.affinity.push(counts(t, groups));
            }
            let none_anywhere = rules
                .affinity
                .iter()
                .all(|c| c.counts.iter().all(|&n| n == 0));
            rules.affinity_anywhere =
                none_anywhere && terms.iter().all(|t| t.selects(namespace, labels));
            for w in &pa.preferred_during_scheduling_ignored_during_execution {
                let t = Term::resolve(&w.pod_affinity_term, namespace, labels);
                rules
                    .preferred_pods
                    .push((i64::from(w.weight), counts(&t, groups)));
            }
        }
        if let Some(pa) = affinity.and_then(|a| a.pod_anti_affinity.as_ref()) {
            for t in &pa.required_during_scheduling_ignored_during_execution {
                let t = Term::resolve(t, namespace, labels);
                rules.anti.push(counts(&t, groups));
            }
            for w in &pa.preferred_during_scheduling_ignored_during_execution {
                let t = Term::resolve(&w.pod_affinity_term, namespace, labels);
                rules
                    .preferred_pods
                    .push((-i64::from(w.weight), counts(&t, groups)));
            }
        }
        for id in existing {
            let g = groups.get(id);
            let terms: Vec<Term> = g
                .anti
                .iter()
                .filter(|t| t.selects(namespace, labels))
                .cloned()
                .collect();
            for t in terms {
                let domains = topologies.domains(&t.topology_key, slots, generation);
                let mut c = Counts::new(domains);
                c.add_groups(groups, &[id]);
                rules.existing_anti.push(c);
            }
        }
        for c in &pod.spec.topology_spread_constraints {
            let spread = spread(c, pod, slots, groups, topologies, generation, &rules);
            match c.when_unsatisfiable {
                UnsatisfiableConstraintAction::DoNotSchedule => rules.spread_hard.push(spread),
                UnsatisfiableConstraintAction::ScheduleAnyway => rules.spread_soft.push(spread),
            }
        }
        Some(rules)
    }

    /// Whether the node in `slot` may take the pod under its required node
    /// affinity.
    pub fn node_allowed(&self, node: &NodeInfo) -> bool {
        node_matches(self.required_nodes.as_ref(), node)
    }

    /// The first rule the node in `slot` breaks (node affinity excepted:
    /// see [`Rules::node_allowed`]).
    pub fn check_pods(&self, slot: usize) -> Result<(), Broken> {
        for s in &self.spread_hard {
            let Some(n) = s.counts.at(slot) else {
                return Err(Broken::SpreadMissingLabel);
            };
            if n + s.own > s.min + s.max_skew {
                return Err(Broken::Spread);
            }
        }
        if !self.affinity_anywhere
            && self
                .affinity
                .iter()
                .any(|c| c.at(slot).is_none_or(|n| n == 0))
        {
            return Err(Broken::PodAffinity);
        }
        if self.anti.iter().any(|c| c.at(slot).is_some_and(|n| n > 0)) {
            return Err(Broken::PodAntiAffinity);
        }
        if self
            .existing_anti
            .iter()
            .any(|c| c.at(slot).is_some_and(|n| n > 0))
        {
            return Err(Broken::ExistingAntiAffinity);
        }
        Ok(())
    }

    /// The node's raw scores.
    pub fn raw_scores(&self, slot: usize, node: &NodeInfo) -> RawScores {
        let mut raw = RawScores::default();
        if let Some(n) = node.node.as_deref() {
            for t in &self.preferred_nodes {
                if t.preference.matches(&n.metadata.labels, &node.name) {
                    raw.node += i64::from(t.weight);
                }
            }
        }
        for (w, c) in &self.preferred_pods {
            raw.pods += w * i64::from(c.at(slot).unwrap_or(0));
        }
        for s in &self.spread_soft {
            // A node without the key scores as the most crowded domain.
            let n = s
                .counts
                .at(slot)
                .unwrap_or_else(|| s.counts.counts.iter().copied().max().unwrap_or(0));
            raw.spread += i64::from(n + s.own);
        }
        raw
    }

    /// Whether any score of this module applies.
    pub fn scores(&self) -> bool {
        !self.preferred_nodes.is_empty()
            || !self.preferred_pods.is_empty()
            || !self.spread_soft.is_empty()
    }
}

/// Whether a node passes a required node selector (absent: every node).
fn node_matches(required: Option<&NodeSelector>, node: &NodeInfo) -> bool {
    let Some(required) = required else {
        return true;
    };
    let Some(n) = node.node.as_deref() else {
        return false;
    };
    required
        .node_selector_terms
        .iter()
        .any(|t| t.matches(&n.metadata.labels, &node.name))
}

fn spread(
    c: &TopologySpreadConstraint,
    pod: &Pod,
    slots: &[NodeInfo],
    groups: &mut Groups,
    topologies: &mut Topologies,
    generation: u64,
    rules: &Rules,
) -> Spread {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let labels = &pod.metadata.labels;
    let selector = c
        .label_selector
        .as_ref()
        .map(|s| with_label_keys(s, labels, &c.match_label_keys, &[]));
    let term = Term {
        namespaces: Namespaces::Some(vec![namespace.to_owned()]),
        selector,
        topology_key: c.topology_key.clone(),
    };
    let honor_affinity = c.node_affinity_policy.unwrap_or_default() == NodeInclusionPolicy::Honor;
    let honor_taints = c.node_taints_policy == Some(NodeInclusionPolicy::Honor);
    let selector_of_nodes = &pod.spec.node_selector;
    let tolerations = &pod.spec.tolerations;
    let signature = serde_json::to_string(&(
        honor_affinity.then_some((selector_of_nodes, &rules.required_nodes)),
        honor_taints.then_some(tolerations),
    ))
    .unwrap_or_default();
    let eligible = topologies.eligible(&c.topology_key, &signature, slots, generation, |s| {
        let Some(n) = s.node.as_deref() else {
            return false;
        };
        let affinity_ok = !honor_affinity
            || (selector_of_nodes
                .iter()
                .all(|(k, v)| n.metadata.labels.get(k) == Some(v))
                && node_matches(rules.required_nodes.as_ref(), s));
        let taints_ok = !honor_taints
            || n.spec.taints.iter().all(|t| {
                t.effect == jotasu_api::kinds::node::TaintEffect::PreferNoSchedule
                    || tolerated(tolerations, t)
            });
        affinity_ok && taints_ok
    });
    let domains = topologies.domains(&c.topology_key, slots, generation);
    let mut counts = Counts::new(domains);
    let ids = groups.selected(&term).to_vec();
    counts.add_groups(groups, &ids);
    let eligible_count = eligible.iter().filter(|e| **e).count();
    let min_domains = c
        .min_domains
        .and_then(|m| usize::try_from(m).ok())
        .unwrap_or(1);
    let min = if eligible_count < min_domains {
        0
    } else {
        counts
            .counts
            .iter()
            .zip(eligible.iter())
            .filter(|(_, e)| **e)
            .map(|(n, _)| *n)
            .min()
            .unwrap_or(0)
    };
    Spread {
        counts,
        min,
        max_skew: u32::try_from(c.max_skew).unwrap_or(1).max(1),
        own: u32::from(term.selects(namespace, labels)),
    }
}

/// The three scores of each candidate, each normalized to
/// 0–[`MAX_NODE_SCORE`] over the candidates as Kubernetes' plugins do, and
/// summed with their weights.
pub fn normalize(raw: &[RawScores]) -> Vec<i64> {
    let max_node = raw.iter().map(|r| r.node).max().unwrap_or(0);
    let (min_pods, max_pods) = raw.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| {
        (lo.min(r.pods), hi.max(r.pods))
    });
    let (min_spread, max_spread) = raw.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| {
        (lo.min(r.spread), hi.max(r.spread))
    });
    raw.iter()
        .map(|r| {
            let node = if max_node > 0 {
                r.node * MAX_NODE_SCORE / max_node
            } else {
                0
            };
            let pods = if max_pods > min_pods {
                (r.pods - min_pods) * MAX_NODE_SCORE / (max_pods - min_pods)
            } else {
                0
            };
            let spread = if max_spread > 0 {
                MAX_NODE_SCORE * (max_spread + min_spread - r.spread) / max_spread
            } else {
                MAX_NODE_SCORE
            };
            WEIGHT * (node + pods + spread)
        })
        .collect()
}

#[cfg(test)]
mod tests;
