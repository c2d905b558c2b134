//! Evictions rate-limited per node, as Kubernetes' `--node-eviction-rate`
//! (0.1 nodes per second by default): pods of a newly lost node are
//! evicted only when a token is free (one at once, then one every
//! 1/rate seconds); a node whose eviction began goes on to the end. Many
//! nodes lost in a row so drain slowly, leaving time to notice a cause
//! that is not the nodes' own.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::health::{Doomed, EVICTED};

/// Kubernetes' default: one node every ten seconds.
pub const DEFAULT_EVICTION_RATE: f64 = 0.1;

/// A token bucket of node evictions (burst one).
#[derive(Debug, Clone)]
pub struct EvictionLimiter {
    rate: f64,
    tokens: f64,
    last: Option<Instant>,
    /// Nodes whose eviction began.
    evicting: HashSet<String>,
}

impl EvictionLimiter {
    /// A limiter of `rate` nodes per second (0: never evict).
    pub fn new(rate: f64) -> Self {
        Self {
            rate: rate.max(0.0),
            tokens: 1.0,
            last: None,
            evicting: HashSet::new(),
        }
    }

    /// Keeps the deletions of `planned` allowed at `now`: every non-eviction,
    /// and evictions of nodes whose turn has come. `lost` are the nodes
    /// lost now (a node back in health leaves the evicting set).
    pub fn admit(
        &mut self,
        planned: Vec<Doomed>,
        lost: &HashSet<String>,
        now: Instant,
    ) -> Vec<Doomed> {
        self.evicting.retain(|n| lost.contains(n));
        if let Some(last) = self.last {
            let earned = now.saturating_duration_since(last).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + earned).min(1.0);
        }
        self.last = Some(now);
        let mut waiting: Vec<String> = planned
            .iter()
            .filter(|d| d.why == EVICTED && !self.evicting.contains(&d.node))
            .map(|d| d.node.clone())
            .collect();
        waiting.sort();
        waiting.dedup();
        for node in waiting {
            if self.rate > 0.0 && self.tokens >= 1.0 {
                self.tokens -= 1.0;
                self.evicting.insert(node);
            }
        }
        planned
            .into_iter()
            .filter(|d| d.why != EVICTED || self.evicting.contains(&d.node))
            .collect()
    }

    /// When the next node's eviction may begin, from `now`.
    pub fn next_in(&self) -> Duration {
        if self.tokens >= 1.0 || self.rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doomed(name: &str, node: &str, why: &'static str) -> Doomed {
        Doomed {
            namespace: "default".into(),
            name: name.into(),
            node: node.into(),
            why,
        }
    }

    fn lost(nodes: &[&str]) -> HashSet<String> {
        nodes.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn one_node_at_once_then_one_every_ten_seconds() {
        let mut l = EvictionLimiter::new(DEFAULT_EVICTION_RATE);
        let t0 = Instant::now();
        let plan = vec![
            doomed("a1", "a", EVICTED),
            doomed("a2", "a", EVICTED),
            doomed("b1", "b", EVICTED),
            doomed("t", "c", "terminating on a lost node"),
        ];
        let all = lost(&["a", "b", "c"]);
        let first: Vec<String> = l
            .admit(plan.clone(), &all, t0)
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(
            first,
            ["a1", "a2", "t"],
            "node a first, whole; non-evictions pass"
        );
        assert_eq!(l.next_in(), Duration::from_secs(10));
        let later: Vec<String> = l
            .admit(plan.clone(), &all, t0 + Duration::from_secs(9))
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(later, ["a1", "a2", "t"], "b waits its turn");
        let turn: Vec<String> = l
            .admit(plan, &all, t0 + Duration::from_secs(10))
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(turn, ["a1", "a2", "b1", "t"]);
    }

    #[test]
    fn a_node_that_recovers_waits_for_a_new_token_next_time() {
        let mut l = EvictionLimiter::new(DEFAULT_EVICTION_RATE);
        let t0 = Instant::now();
        let plan = vec![doomed("a1", "a", EVICTED)];
        assert_eq!(l.admit(plan.clone(), &lost(&["a"]), t0).len(), 1);
        assert!(
            l.admit(Vec::new(), &lost(&[]), t0 + Duration::from_secs(1))
                .is_empty()
        );
        assert!(
            l.admit(plan, &lost(&["a"]), t0 + Duration::from_secs(2))
                .is_empty(),
            "lost again: a new turn"
        );
    }

    #[test]
    fn rate_zero_never_evicts() {
        let mut l = EvictionLimiter::new(0.0);
        let kept = l.admit(
            vec![doomed("a1", "a", EVICTED)],
            &lost(&["a"]),
            Instant::now(),
        );
        assert!(kept.is_empty());
    }
}
