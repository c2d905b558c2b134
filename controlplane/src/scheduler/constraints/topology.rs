//! Topology domains: for a node label key (`kubernetes.io/hostname`,
//! `topology.kubernetes.io/zone`), which domain each node slot is in, as a
//! small integer, so rules count pods per domain in plain vectors. Built
//! once per key and kept until a node is added, removed or relabelled.

use std::collections::HashMap;
use std::sync::Arc;

use crate::scheduler::nodes::NodeInfo;

/// The slot is not a node, or the node lacks the key.
pub const NO_DOMAIN: u32 = u32::MAX;

/// The domains of one topology key.
#[derive(Debug, Default)]
pub struct Domains {
    /// Per node slot: its domain, or [`NO_DOMAIN`].
    pub of_slot: Vec<u32>,
    /// How many domains there are.
    pub count: usize,
}

impl Domains {
    /// The domains of `key` over `slots`.
    pub fn build(key: &str, slots: &[NodeInfo]) -> Self {
        let mut ids: HashMap<&str, u32> = HashMap::new();
        let mut of_slot = Vec::with_capacity(slots.len());
        for s in slots {
            let value = s
                .node
                .as_deref()
                .and_then(|n| n.metadata.labels.get(key))
                .map(String::as_str);
            of_slot.push(match value {
                Some(v) => {
                    let next = u32::try_from(ids.len()).unwrap_or(NO_DOMAIN);
                    *ids.entry(v).or_insert(next)
                }
                None => NO_DOMAIN,
            });
        }
        Self {
            of_slot,
            count: ids.len(),
        }
    }

    /// The domain of `slot`.
    pub fn of(&self, slot: usize) -> Option<usize> {
        match self.of_slot.get(slot) {
            Some(&d) if d != NO_DOMAIN => Some(d as usize),
            _ => None,
        }
    }
}

/// Domains per key, valid for one generation of the nodes.
#[derive(Debug, Default)]
pub struct Topologies {
    generation: u64,
    by_key: HashMap<String, Arc<Domains>>,
    /// Eligible domains per (key, node filter) for spread constraints.
    eligible: HashMap<(String, String), Arc<Vec<bool>>>,
}

impl Topologies {
    fn refresh(&mut self, generation: u64) {
        if generation != self.generation {
            self.by_key.clear();
            self.eligible.clear();
            self.generation = generation;
        }
    }

    /// The domains of `key`.
    pub fn domains(&mut self, key: &str, slots: &[NodeInfo], generation: u64) -> Arc<Domains> {
        self.refresh(generation);
        if let Some(d) = self.by_key.get(key) {
            return Arc::clone(d);
        }
        let d = Arc::new(Domains::build(key, slots));
        self.by_key.insert(key.to_owned(), Arc::clone(&d));
        d
    }

    /// Which domains of `key` hold a node passing `filter` (`signature`
    /// names the filter for the cache).
    pub fn eligible(
        &mut self,
        key: &str,
        signature: &str,
        slots: &[NodeInfo],
        generation: u64,
        filter: impl Fn(&NodeInfo) -> bool,
    ) -> Arc<Vec<bool>> {
        let domains = self.domains(key, slots, generation);
        let cache_key = (key.to_owned(), signature.to_owned());
        if let Some(e) = self.eligible.get(&cache_key) {
            return Arc::clone(e);
        }
        let mut eligible = vec![false; domains.count];
        for (slot, s) in slots.iter().enumerate() {
            if let Some(d) = domains.of(slot)
                && !eligible[d]
                && s.node.is_some()
                && filter(s)
            {
                eligible[d] = true;
            }
        }
        let e = Arc::new(eligible);
        self.eligible.insert(cache_key, Arc::clone(&e));
        e
    }
}
