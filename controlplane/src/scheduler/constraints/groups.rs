//! Placed pods grouped by what inter-pod rules look at — namespace, labels
//! and their own required anti-affinity terms — with each group's count per
//! node slot. A rule's selector is matched against groups (a few per
//! workload), not pods, and the groups it selects are remembered, so the
//! pods of one workload cost one selector evaluation between them.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use jotasu_api::kinds::affinity::PodAffinityTerm;
use jotasu_api::{LabelSelector, Labels, Pod};

/// Which namespaces a term looks in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Namespaces {
    /// Every namespace (`namespaceSelector: {}`).
    All,
    /// These.
    Some(Vec<String>),
}

impl Namespaces {
    fn contains(&self, ns: &str) -> bool {
        match self {
            Namespaces::All => true,
            Namespaces::Some(list) => list.iter().any(|n| n == ns),
        }
    }
}

/// A term resolved for one pod: its namespaces, its selector with the
/// pod's `matchLabelKeys`/`mismatchLabelKeys` values added, its topology key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Term {
    /// Where the selected pods live.
    pub namespaces: Namespaces,
    /// Which pods (None: none).
    pub selector: Option<LabelSelector>,
    /// The node label naming the domain.
    pub topology_key: String,
}

impl Term {
    /// `term` of a pod in `namespace` with `labels`.
    pub fn resolve(term: &PodAffinityTerm, namespace: &str, labels: &Labels) -> Self {
        let namespaces = if term.namespace_selector.is_some() && term.namespaces.is_empty() {
            Namespaces::All
        } else if term.namespaces.is_empty() {
            Namespaces::Some(vec![namespace.to_owned()])
        } else {
            Namespaces::Some(term.namespaces.clone())
        };
        let selector = term
            .label_selector
            .as_ref()
            .map(|s| with_label_keys(s, labels, &term.match_label_keys, &term.mismatch_label_keys));
        Self {
            namespaces,
            selector,
            topology_key: term.topology_key.clone(),
        }
    }

    /// Whether a pod in `namespace` with `labels` is one this term selects.
    pub fn selects(&self, namespace: &str, labels: &Labels) -> bool {
        self.namespaces.contains(namespace)
            && self.selector.as_ref().is_some_and(|s| s.matches(labels))
    }
}

/// `selector` narrowed by the pod's values of `match_keys` (In) and
/// `mismatch_keys` (NotIn); keys the pod lacks are skipped, as Kubernetes does.
pub fn with_label_keys(
    selector: &LabelSelector,
    labels: &Labels,
    match_keys: &[String],
    mismatch_keys: &[String],
) -> LabelSelector {
    use jotasu_api::{LabelSelectorRequirement, SelectorOperator};
    let mut s = selector.clone();
    for (keys, operator) in [
        (match_keys, SelectorOperator::In),
        (mismatch_keys, SelectorOperator::NotIn),
    ] {
        for k in keys {
            if let Some(v) = labels.get(k) {
                s.match_expressions.push(LabelSelectorRequirement {
                    key: k.clone(),
                    operator,
                    values: vec![v.clone()],
                });
            }
        }
    }
    s
}

/// Pods sharing a namespace, labels and required anti-affinity terms.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// Their namespace.
    pub namespace: String,
    /// Their labels.
    pub labels: Labels,
    /// Their required anti-affinity terms (resolved).
    pub anti: Vec<Term>,
    /// How many are counted on each node slot.
    pub nodes: HashMap<usize, u32>,
}

/// Every group, and which groups each selector seen so far selects.
#[derive(Debug, Default)]
pub struct Groups {
    groups: Vec<Group>,
    by_hash: HashMap<u64, Vec<u32>>,
    /// Groups with required anti-affinity terms.
    anti: Vec<u32>,
    selections: HashMap<(Namespaces, LabelSelector), Vec<u32>>,
    /// Per group: the anti-affinity groups whose terms select it (and how
    /// many anti groups there were when that was worked out).
    selected_by: HashMap<u32, (usize, Vec<u32>)>,
}

/// Selections remembered before the cache is emptied.
const MAX_SELECTIONS: usize = 10_000;

impl Groups {
    /// The group of `pod`, made if new.
    pub fn intern(&mut self, pod: &Pod) -> u32 {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let labels = &pod.metadata.labels;
        let anti: Vec<Term> = pod
            .spec
            .affinity
            .as_ref()
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .map(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .iter()
                    .map(|t| Term::resolve(t, namespace, labels))
                    .collect()
            })
            .unwrap_or_default();
        let mut h = DefaultHasher::new();
        (namespace, labels, &anti).hash(&mut h);
        let hash = h.finish();
        if let Some(ids) = self.by_hash.get(&hash) {
            for &id in ids {
                let g = &self.groups[id as usize];
                if g.namespace == namespace && &g.labels == labels && g.anti == anti {
                    return id;
                }
            }
        }
        let id = u32::try_from(self.groups.len()).unwrap_or(u32::MAX);
        let group = Group {
            namespace: namespace.to_owned(),
            labels: labels.clone(),
            anti,
            nodes: HashMap::new(),
        };
        for ((namespaces, selector), ids) in &mut self.selections {
            if namespaces.contains(&group.namespace) && selector.matches(&group.labels) {
                ids.push(id);
            }
        }
        if !group.anti.is_empty() {
            self.anti.push(id);
        }
        self.groups.push(group);
        self.by_hash.entry(hash).or_default().push(id);
        id
    }

    /// The group `id`.
    pub fn get(&self, id: u32) -> &Group {
        &self.groups[id as usize]
    }

    /// One more pod of group `id` on `slot`.
    pub fn add(&mut self, id: u32, slot: usize) {
        if let Some(g) = self.groups.get_mut(id as usize) {
            *g.nodes.entry(slot).or_default() += 1;
        }
    }

    /// One pod of group `id` fewer on `slot`.
    pub fn remove(&mut self, id: u32, slot: usize) {
        if let Some(g) = self.groups.get_mut(id as usize)
            && let Some(n) = g.nodes.get_mut(&slot)
        {
            *n -= 1;
            if *n == 0 {
                g.nodes.remove(&slot);
            }
        }
    }

    /// Forgets every count (the groups and selections stay).
    pub fn clear_counts(&mut self) {
        for g in &mut self.groups {
            g.nodes.clear();
        }
    }

    /// The groups `term` selects.
    pub fn selected(&mut self, term: &Term) -> &[u32] {
        let Some(selector) = &term.selector else {
            return &[];
        };
        if self.selections.len() >= MAX_SELECTIONS {
            self.selections.clear();
        }
        let key = (term.namespaces.clone(), selector.clone());
        let groups = &self.groups;
        self.selections.entry(key).or_insert_with(|| {
            let s = selector;
            (0..groups.len())
                .filter(|&i| {
                    let g = &groups[i];
                    term.namespaces.contains(&g.namespace) && s.matches(&g.labels)
                })
                .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
                .collect()
        })
    }

    /// The anti-affinity groups with a term selecting pods of group `id`.
    pub fn anti_selecting(&mut self, id: u32) -> &[u32] {
        let known = self.anti.len();
        let groups = &self.groups;
        let anti = &self.anti;
        let entry = self
            .selected_by
            .entry(id)
            .or_insert((usize::MAX, Vec::new()));
        if entry.0 != known {
            let me = &groups[id as usize];
            entry.1 = anti
                .iter()
                .copied()
                .filter(|&a| {
                    let g = &groups[a as usize];
                    g.anti.iter().any(|t| t.selects(&me.namespace, &me.labels))
                })
                .collect();
            entry.0 = known;
        }
        &entry.1
    }
}
