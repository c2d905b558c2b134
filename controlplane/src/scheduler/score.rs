//! Choosing a node: find feasible nodes (only a sample of a big cluster,
//! from a rotating start, as Kubernetes' percentageOfNodesToScore), score
//! them as Kubernetes' default plugins do — NodeResourcesFit
//! (MostAllocated or LeastAllocated, 0–100, weight 1) and TaintToleration
//! (untolerated PreferNoSchedule taints, normalized, weight 3) — and take
//! the best; ties go to the node with the fewest pods of the same
//! controller, then to the first name.
//!
//! Unlike Kubernetes, which rounds every score to a whole point, scores
//! keep three decimals ([`SCORE_SCALE`]): a 100m pod moves a 32-core
//! node's score by 0.3 points, and bin-packing should see it.

use std::cmp::Ordering;

use jotasu_api::kinds::node::TaintEffect;
use jotasu_api::kinds::pod::Toleration;

use super::Scoring;
use super::constraints::{RawScores, Rules, normalize};
use super::filter::{PodNeeds, check_all, tolerated};
use super::nodes::{Cluster, NodeInfo};
use super::resources::Resources;

/// Score units per point (scores keep three decimals).
pub const SCORE_SCALE: i64 = 1000;
/// The highest score a plugin gives a node (100 points).
pub const MAX_NODE_SCORE: i64 = 100 * SCORE_SCALE;
/// Weight of the resource score.
pub const FIT_WEIGHT: i64 = 1;
/// Weight of the PreferNoSchedule taint score (Kubernetes' default 3).
pub const TAINT_WEIGHT: i64 = 3;
/// Below this many nodes, all are searched.
pub const MIN_FEASIBLE_NODES: usize = 100;
/// The sample never goes below this percentage of the nodes.
pub const MIN_FEASIBLE_PERCENTAGE: usize = 5;

/// How many feasible nodes to find before scoring, among `nodes`: all
/// below 100; else (50 − nodes/125)% of them, at least 5% and at least 100.
pub fn feasible_nodes_to_find(nodes: usize) -> usize {
    if nodes < MIN_FEASIBLE_NODES {
        return nodes;
    }
    let percentage = 50usize
        .saturating_sub(nodes / 125)
        .max(MIN_FEASIBLE_PERCENTAGE);
    (nodes * percentage / 100).max(MIN_FEASIBLE_NODES)
}

/// `part * MAX_NODE_SCORE / whole`, rounded down, for any i64 inputs.
fn percent(part: i64, whole: i64) -> i64 {
    match part.checked_mul(MAX_NODE_SCORE) {
        Some(p) => p / whole,
        None => {
            let p = i128::from(part) * i128::from(MAX_NODE_SCORE) / i128::from(whole);
            i64::try_from(p).unwrap_or(MAX_NODE_SCORE)
        }
    }
}

fn resource_score(scoring: Scoring, requested: i64, capacity: i64) -> i64 {
    if capacity <= 0 {
        return 0;
    }
    match scoring {
        Scoring::MostAllocated => percent(requested.clamp(0, capacity), capacity),
        Scoring::LeastAllocated if requested > capacity => 0,
        Scoring::LeastAllocated => percent(capacity - requested.max(0), capacity),
    }
}

/// The resource score (0–[`MAX_NODE_SCORE`]) of a node offering `allocatable` once it
/// holds `requested` (the pod included): the mean of the CPU and memory
/// scores.
pub fn fit_score(scoring: Scoring, allocatable: Resources, requested: Resources) -> i64 {
    let cpu = resource_score(scoring, requested.cpu_millis, allocatable.cpu_millis);
    let memory = resource_score(scoring, requested.memory_bytes, allocatable.memory_bytes);
    (cpu + memory) / 2
}

/// The node's PreferNoSchedule taints that `tolerations` (those with an
/// empty or PreferNoSchedule effect) do not tolerate.
pub fn untolerated_soft_taints(node: &NodeInfo, tolerations: &[Toleration]) -> i64 {
    let Some(n) = node.node.as_deref().filter(|_| node.soft_taints) else {
        return 0;
    };
    let count = n
        .spec
        .taints
        .iter()
        .filter(|t| t.effect == TaintEffect::PreferNoSchedule && !tolerated(tolerations, t))
        .count();
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// A feasible node and its raw scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Its slot in the cluster.
    pub slot: usize,
    /// Its resource score.
    pub fit: i64,
    /// Its untolerated PreferNoSchedule taints.
    pub soft_taints: i64,
    /// Its raw scores under the pod's affinity and spread preferences.
    pub raw: RawScores,
}

/// The taint score, normalized over the candidates as Kubernetes does:
/// the maximum for none, 0 for the most.
fn taint_score(soft_taints: i64, most: i64) -> i64 {
    if most == 0 {
        MAX_NODE_SCORE
    } else {
        MAX_NODE_SCORE - soft_taints * MAX_NODE_SCORE / most
    }
}

/// The best candidate: highest weighted score; then the fewest pods of
/// the pod's controller; then the first name.
pub fn best(
    slots: &[NodeInfo],
    candidates: &[Candidate],
    owner: Option<u64>,
    scored_rules: bool,
) -> Option<usize> {
    let most = candidates.iter().map(|c| c.soft_taints).max().unwrap_or(0);
    let rules: Vec<i64> = if scored_rules {
        normalize(&candidates.iter().map(|c| c.raw).collect::<Vec<_>>())
    } else {
        Vec::new()
    };
    let total = |i: usize, c: &Candidate| {
        c.fit * FIT_WEIGHT
            + taint_score(c.soft_taints, most) * TAINT_WEIGHT
            + rules.get(i).copied().unwrap_or(0)
    };
    let spread = |slot: usize| owner.map_or(0, |o| slots[slot].owner_count(o));
    let mut iter = candidates.iter().enumerate();
    let (_, first) = iter.next()?;
    let (mut best, mut best_total, mut best_spread) = (first.slot, total(0, first), None);
    for (i, c) in iter {
        let t = total(i, c);
        let order = match t.cmp(&best_total) {
            Ordering::Equal => {
                let mine = spread(c.slot);
                let theirs = *best_spread.get_or_insert_with(|| spread(best));
                mine.cmp(&theirs)
                    .reverse()
                    .then_with(|| slots[best].name.cmp(&slots[c.slot].name))
            }
            other => other,
        };
        if order == Ordering::Greater {
            best = c.slot;
            best_total = t;
            best_spread = None;
        }
    }
    Some(best)
}

/// Chooses a node for the pod: searches the nodes from the cluster's
/// rotating start until enough feasible ones are found, scores them and
/// returns the best one's slot (None: no node can take it). `buf` is
/// scratch space, reused between pods.
pub fn pick(
    cluster: &mut Cluster,
    pod: &PodNeeds<'_>,
    rules: Option<&Rules>,
    scoring: Scoring,
    buf: &mut Vec<Candidate>,
) -> Option<usize> {
    buf.clear();
    let slots = cluster.slots();
    let n = slots.len();
    if n == 0 {
        return None;
    }
    let want = feasible_nodes_to_find(cluster.node_count());
    let start = cluster.next_start % n;
    let mut processed = 0;
    let mut i = start;
    while processed < n {
        processed += 1;
        let node = &slots[i];
        if node.node.is_some() && check_all(i, node, pod, rules).is_ok() {
            let requested = node.used.scoring + pod.usage.scoring;
            buf.push(Candidate {
                slot: i,
                fit: fit_score(scoring, node.allocatable, requested),
                soft_taints: untolerated_soft_taints(node, pod.tolerations),
                raw: rules
                    .filter(|r| r.scores())
                    .map(|r| r.raw_scores(i, node))
                    .unwrap_or_default(),
            });
            if buf.len() >= want {
                break;
            }
        }
        i += 1;
        if i == n {
            i = 0;
        }
    }
    let chosen = best(slots, buf, pod.owner, rules.is_some_and(Rules::scores));
    cluster.next_start = (start + processed) % n;
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::nodes::owner_of;
    use crate::scheduler::nodes::tests::{key, node, pod};
    use crate::scheduler::resources::pod_usage;
    use jotasu_api::kinds::node::Taint;
    use jotasu_api::kinds::pod::TolerationOperator;
    use std::sync::Arc;

    fn cluster(nodes: &[(&str, &str)]) -> Cluster {
        let mut c = Cluster::new();
        for (name, cpu) in nodes {
            c.set_node(Arc::new(node(name, cpu, "16Gi", "110")));
        }
        c
    }

    fn place(c: &mut Cluster, name: &str, node: &str, cpu: &str, owner: Option<&str>) {
        let p = pod(name, cpu, "1Gi", owner);
        let slot = c.slot_of(node).unwrap();
        let (group, _) = c.rules_for(&p);
        c.assume(key(name), slot, pod_usage(&p), owner_of(&p), group);
    }

    fn choose(c: &mut Cluster, p: &jotasu_api::Pod, scoring: Scoring) -> Option<String> {
        let (_, rules) = c.rules_for(p);
        let slot = pick(
            c,
            &PodNeeds::of(p),
            rules.as_ref(),
            scoring,
            &mut Vec::new(),
        )?;
        Some(c.slots()[slot].name.clone())
    }

    #[test]
    fn sample_sizes_follow_kubernetes() {
        assert_eq!(feasible_nodes_to_find(0), 0);
        assert_eq!(feasible_nodes_to_find(99), 99);
        assert_eq!(feasible_nodes_to_find(100), 100);
        assert_eq!(feasible_nodes_to_find(1_000), 420); // 42%
        assert_eq!(feasible_nodes_to_find(5_000), 500); // 10%
        assert_eq!(feasible_nodes_to_find(6_000), 300); // 5% floor
        assert_eq!(feasible_nodes_to_find(1_000_000), 50_000);
        assert_eq!(feasible_nodes_to_find(150), 100); // 100 floor
    }

    #[test]
    fn resource_scores() {
        let alloc = Resources {
            cpu_millis: 4000,
            memory_bytes: 1000,
            pods: 110,
        };
        let req = Resources {
            cpu_millis: 1000,
            memory_bytes: 500,
            pods: 1,
        };
        let points = |p: i64| p * SCORE_SCALE;
        assert_eq!(
            fit_score(Scoring::MostAllocated, alloc, req),
            points(25 + 50) / 2
        );
        assert_eq!(
            fit_score(Scoring::LeastAllocated, alloc, req),
            points(75 + 50) / 2
        );
        let over = Resources {
            cpu_millis: 8000,
            ..req
        };
        assert_eq!(
            fit_score(Scoring::MostAllocated, alloc, over),
            points(100 + 50) / 2
        );
        assert_eq!(
            fit_score(Scoring::LeastAllocated, alloc, over),
            points(50) / 2
        );
        // Three decimals: 100m of 32 cores is 0.312 points.
        let big = Resources {
            cpu_millis: 32_000,
            memory_bytes: i64::MAX,
            pods: 110,
        };
        let small = Resources {
            cpu_millis: 100,
            memory_bytes: 0,
            pods: 1,
        };
        assert_eq!(fit_score(Scoring::MostAllocated, big, small), 312 / 2);
        let unlimited = Resources {
            cpu_millis: i64::MAX,
            memory_bytes: i64::MAX,
            pods: 110,
        };
        assert_eq!(fit_score(Scoring::MostAllocated, unlimited, req), 0);
        assert_eq!(
            fit_score(Scoring::LeastAllocated, unlimited, req),
            MAX_NODE_SCORE - 1
        );
    }

    #[test]
    fn most_allocated_packs_least_allocated_spreads() {
        let mut c = cluster(&[("a", "4"), ("b", "4")]);
        place(&mut c, "x", "b", "2", None);
        let p = pod("p", "1", "1Gi", None);
        assert_eq!(
            choose(&mut c, &p, Scoring::MostAllocated).as_deref(),
            Some("b")
        );
        assert_eq!(
            choose(&mut c, &p, Scoring::LeastAllocated).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn ties_go_to_fewer_pods_of_the_controller_then_the_name() {
        let mut c = cluster(&[("a", "64"), ("b", "64"), ("c", "64")]);
        // Tiny pods: every node still scores the same.
        place(&mut c, "x", "a", "10m", Some("rs"));
        place(&mut c, "y", "b", "10m", Some("other"));
        let p = pod("p", "10m", "1Gi", Some("rs"));
        assert_eq!(
            choose(&mut c, &p, Scoring::MostAllocated).as_deref(),
            Some("b")
        );
        let orphan = pod("o", "10m", "1Gi", None);
        assert_eq!(
            choose(&mut c, &orphan, Scoring::MostAllocated).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn prefer_no_schedule_only_lowers_the_score() {
        let mut c = Cluster::new();
        let mut soft = node("a", "4", "16Gi", "110");
        soft.spec.taints = vec![Taint {
            key: "spot".into(),
            value: None,
            effect: TaintEffect::PreferNoSchedule,
            time_added: None,
        }];
        c.set_node(Arc::new(soft));
        c.set_node(Arc::new(node("b", "4", "16Gi", "110")));
        // "a" is fuller, but tainted: the taint weighs more.
        place(&mut c, "x", "a", "2", None);
        let mut p = pod("p", "1", "1Gi", None);
        assert_eq!(
            choose(&mut c, &p, Scoring::MostAllocated).as_deref(),
            Some("b")
        );
        // Alone, the tainted node is still used.
        c.remove_node("b");
        assert_eq!(
            choose(&mut c, &p, Scoring::MostAllocated).as_deref(),
            Some("a")
        );
        // Tolerated: no penalty.
        c.set_node(Arc::new(node("b", "4", "16Gi", "110")));
        p.spec.tolerations = vec![Toleration {
            key: Some("spot".into()),
            operator: Some(TolerationOperator::Exists),
            ..Toleration::default()
        }];
        assert_eq!(
            choose(&mut c, &p, Scoring::MostAllocated).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn big_clusters_are_sampled_from_a_rotating_start() {
        let names: Vec<String> = (0..1000).map(|i| format!("n{i:04}")).collect();
        let nodes: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "8")).collect();
        let mut c = cluster(&nodes);
        let p = pod("p", "100m", "1Gi", None);
        let mut buf = Vec::new();
        let first = pick(
            &mut c,
            &PodNeeds::of(&p),
            None,
            Scoring::MostAllocated,
            &mut buf,
        )
        .unwrap();
        assert_eq!(buf.len(), 420, "42% of 1,000 nodes were scored");
        assert_eq!(c.next_start, 420);
        assert!(first < 420);
        let second = pick(
            &mut c,
            &PodNeeds::of(&p),
            None,
            Scoring::MostAllocated,
            &mut buf,
        )
        .unwrap();
        assert!((420..840).contains(&second), "{second}");
        assert_eq!(c.next_start, 840);
        pick(
            &mut c,
            &PodNeeds::of(&p),
            None,
            Scoring::MostAllocated,
            &mut buf,
        )
        .unwrap();
        assert_eq!(c.next_start, 260, "wrapped around");
        // No node fits: every node is searched and nothing chosen.
        let huge = pod("h", "9", "1Gi", None);
        assert_eq!(
            pick(
                &mut c,
                &PodNeeds::of(&huge),
                None,
                Scoring::MostAllocated,
                &mut buf
            ),
            None
        );
        assert!(buf.is_empty());
    }
}
