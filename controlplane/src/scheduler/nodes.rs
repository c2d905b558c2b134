//! The scheduler's picture of the cluster: every node with what it offers
//! and what the pods placed on it take, kept up to date incrementally —
//! a pod bound or finished, a node changed — never recomputed from a List.
//! Pods the scheduler has chosen a node for but whose binding the cache
//! does not show yet are counted as *assumed*, so a batch of decisions
//! never overcommits a node; a refused binding is forgotten.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use jotasu_api::kinds::node::TaintEffect;
use jotasu_api::kinds::pod_status::PodPhase;
use jotasu_api::{Node, Pod};

use super::constraints::Rules;
use super::constraints::groups::Groups;
use super::constraints::topology::Topologies;
use super::resources::{Resources, Usage, node_allocatable, pod_usage};
use crate::runtime::Key;
use crate::runtime::status::{is_node_ready, node_of};

/// A node slot: a node, or only the pods bound to a name not (yet) seen as
/// a node. Slots keep their index for as long as anything refers to them.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// The node (None: pods are bound to this name, but no such node is known).
    pub node: Option<Arc<Node>>,
    /// Whether its Ready condition is True.
    pub ready: bool,
    /// Whether it is cordoned (`spec.unschedulable`).
    pub unschedulable: bool,
    /// Whether it has NoSchedule or NoExecute taints.
    pub hard_taints: bool,
    /// Whether it has PreferNoSchedule taints.
    pub soft_taints: bool,
    /// What it offers pods.
    pub allocatable: Resources,
    /// What the pods placed on it take.
    pub used: Usage,
    /// Pods placed here per controller (hash of the controller's uid).
    owners: Vec<(u64, u32)>,
}

impl NodeInfo {
    /// A slot for `node`, with nothing placed yet.
    pub fn new(node: Arc<Node>) -> Self {
        let mut info = Self {
            name: node.metadata.name().to_owned(),
            ..Self::default()
        };
        info.set(node);
        info
    }

    fn set(&mut self, node: Arc<Node>) {
        self.ready = is_node_ready(&node);
        self.unschedulable = node.spec.unschedulable;
        let taints = &node.spec.taints;
        self.soft_taints = taints
            .iter()
            .any(|t| t.effect == TaintEffect::PreferNoSchedule);
        self.hard_taints = taints
            .iter()
            .any(|t| t.effect != TaintEffect::PreferNoSchedule);
        self.allocatable = node_allocatable(&node);
        self.node = Some(node);
    }

    /// Pods of controller `owner` placed here.
    pub fn owner_count(&self, owner: u64) -> u32 {
        self.owners
            .iter()
            .find(|(o, _)| *o == owner)
            .map_or(0, |(_, n)| *n)
    }

    fn add(&mut self, usage: Usage, owner: Option<u64>) {
        self.used = self.used + usage;
        if let Some(owner) = owner {
            match self.owners.iter_mut().find(|(o, _)| *o == owner) {
                Some((_, n)) => *n += 1,
                None => self.owners.push((owner, 1)),
            }
        }
    }

    fn remove(&mut self, usage: Usage, owner: Option<u64>) {
        self.used = self.used - usage;
        if let Some(owner) = owner
            && let Some(i) = self.owners.iter().position(|(o, _)| *o == owner)
        {
            self.owners[i].1 -= 1;
            if self.owners[i].1 == 0 {
                self.owners.swap_remove(i);
            }
        }
    }
}

/// The controller of a pod, as a hash of its uid (for spreading).
pub fn owner_of(pod: &Pod) -> Option<u64> {
    pod.metadata.controller_ref().map(|r| {
        let mut h = DefaultHasher::new();
        r.uid.hash(&mut h);
        h.finish()
    })
}

/// Whether a pod bound to a node takes room there: not Succeeded or
/// Failed (a terminating pod still runs, so it counts).
pub fn takes_room(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase),
        Some(PodPhase::Succeeded | PodPhase::Failed)
    )
}

/// A pod counted on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// The node's slot.
    pub slot: usize,
    /// What it takes.
    pub usage: Usage,
    /// Its controller.
    pub owner: Option<u64>,
    /// Chosen by the scheduler, binding not seen in the cache yet.
    pub assumed: bool,
    /// Its group (namespace, labels, anti-affinity terms) for inter-pod rules.
    pub group: u32,
}

/// Every node and every pod counted on one.
#[derive(Debug, Default)]
pub struct Cluster {
    slots: Vec<NodeInfo>,
    by_name: HashMap<String, usize>,
    free: Vec<usize>,
    placed: HashMap<Key, Placed>,
    nodes: usize,
    groups: Groups,
    topologies: Topologies,
    /// Bumped when a node is added, removed or relabelled.
    generation: u64,
    /// Where the next pod's search starts (it rotates, as in Kubernetes).
    pub next_start: usize,
}

impl Cluster {
    /// An empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// The slots, some without a node (skip those).
    pub fn slots(&self) -> &[NodeInfo] {
        &self.slots
    }

    /// How many nodes are known.
    pub fn node_count(&self) -> usize {
        self.nodes
    }

    /// The slot of node `name`.
    pub fn slot_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The placement of pod `key`, if counted.
    pub fn placement(&self, key: &Key) -> Option<&Placed> {
        self.placed.get(key)
    }

    /// Every counted pod.
    pub fn placements(&self) -> impl Iterator<Item = (&Key, &Placed)> {
        self.placed.iter()
    }

    fn slot_for(&mut self, name: &str) -> usize {
        if let Some(&i) = self.by_name.get(name) {
            return i;
        }
        let info = NodeInfo {
            name: name.to_owned(),
            ..NodeInfo::default()
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i] = info;
                i
            }
            None => {
                self.slots.push(info);
                self.slots.len() - 1
            }
        };
        self.by_name.insert(name.to_owned(), i);
        i
    }

    /// Frees slot `i` if it holds neither a node nor a pod.
    fn release(&mut self, i: usize) {
        let s = &self.slots[i];
        if !s.name.is_empty()
            && s.node.is_none()
            && s.used == Usage::default()
            && s.owners.is_empty()
        {
            self.by_name.remove(&s.name);
            self.slots[i] = NodeInfo::default();
            self.free.push(i);
        }
    }

    /// Adds or updates a node; returns whether pods that did not fit
    /// before might fit now (new, Ready, schedulable, bigger, relabelled or
    /// retainted).
    pub fn set_node(&mut self, node: Arc<Node>) -> bool {
        let i = self.slot_for(node.metadata.name());
        let slot = &mut self.slots[i];
        let (old, was_ready, offered) = (slot.node.take(), slot.ready, slot.allocatable);
        slot.set(node);
        let Some(old) = old else {
            self.nodes += 1;
            self.generation += 1;
            return true;
        };
        if slot
            .node
            .as_ref()
            .is_some_and(|new| new.metadata.labels != old.metadata.labels)
        {
            self.generation += 1;
        }
        slot.node.as_ref().is_some_and(|new| {
            slot.ready != was_ready
                || slot.allocatable != offered
                || new.spec != old.spec
                || new.metadata.labels != old.metadata.labels
        })
    }

    /// Forgets a node (its pods stay counted on its name until they go).
    pub fn remove_node(&mut self, name: &str) {
        if let Some(&i) = self.by_name.get(name)
            && self.slots[i].node.take().is_some()
        {
            self.nodes -= 1;
            self.generation += 1;
            self.slots[i].ready = false;
            self.release(i);
        }
    }

    /// Removes every node not in `names`.
    pub fn retain_nodes(&mut self, keep: impl Fn(&str) -> bool) {
        let gone: Vec<String> = self
            .slots
            .iter()
            .filter(|s| s.node.is_some() && !keep(&s.name))
            .map(|s| s.name.clone())
            .collect();
        for name in gone {
            self.remove_node(&name);
        }
    }

    fn place(&mut self, key: Key, placed: Placed) {
        self.slots[placed.slot].add(placed.usage, placed.owner);
        self.groups.add(placed.group, placed.slot);
        if let Some(old) = self.placed.insert(key, placed) {
            self.slots[old.slot].remove(old.usage, old.owner);
            self.groups.remove(old.group, old.slot);
            self.release(old.slot);
        }
    }

    fn unplace(&mut self, key: &Key) -> Option<Placed> {
        let old = self.placed.remove(key)?;
        self.slots[old.slot].remove(old.usage, old.owner);
        self.groups.remove(old.group, old.slot);
        self.release(old.slot);
        Some(old)
    }

    /// The group of `pod` and its placement rules counted against the
    /// cluster as it is (None: it has none, and no placed pod's
    /// anti-affinity selects it).
    pub fn rules_for(&mut self, pod: &Pod) -> (u32, Option<Rules>) {
        let group = self.groups.intern(pod);
        let rules = Rules::prepare(
            pod,
            group,
            &self.slots,
            &mut self.groups,
            &mut self.topologies,
            self.generation,
        );
        (group, rules)
    }

    /// Takes in the pod as the cache shows it: a bound pod that takes room
    /// is counted on its node (confirming an assumption, or moving it); a
    /// finished one is not. Returns whether room was freed.
    pub fn observe_pod(&mut self, key: &Key, pod: &Pod) -> bool {
        let Some(node) = node_of(pod) else {
            return false;
        };
        if !takes_room(pod) {
            return self.unplace(key).is_some();
        }
        let slot = self.slot_for(node);
        match self.placed.get_mut(key) {
            Some(p) if p.slot == slot => {
                p.assumed = false;
                false
            }
            existing => {
                let moved = existing.is_some();
                let placed = Placed {
                    slot,
                    usage: pod_usage(pod),
                    owner: owner_of(pod),
                    assumed: false,
                    group: self.groups.intern(pod),
                };
                self.place(key.clone(), placed);
                moved
            }
        }
    }

    /// A pod is gone; returns whether room was freed.
    pub fn pod_deleted(&mut self, key: &Key) -> bool {
        self.unplace(key).is_some()
    }

    /// Counts a pod on the node the scheduler chose, before its binding shows.
    pub fn assume(&mut self, key: Key, slot: usize, usage: Usage, owner: Option<u64>, group: u32) {
        let placed = Placed {
            slot,
            usage,
            owner,
            assumed: true,
            group,
        };
        self.place(key, placed);
    }

    /// Its binding was refused: uncounts the pod if still only assumed.
    /// Returns whether room was freed.
    pub fn forget(&mut self, key: &Key) -> bool {
        if self.placed.get(key).is_some_and(|p| p.assumed) {
            return self.unplace(key).is_some();
        }
        false
    }

    /// Uncounts every pod (before recounting from a fresh List); returns
    /// the assumed ones, to count again if their binding does not show.
    pub fn clear_pods(&mut self) -> Vec<(Key, Placed)> {
        let assumed: Vec<(Key, Placed)> = self.placed.drain().filter(|(_, p)| p.assumed).collect();
        self.groups.clear_counts();
        for i in 0..self.slots.len() {
            self.slots[i].used = Usage::default();
            self.slots[i].owners.clear();
            self.release(i);
        }
        assumed
    }

    /// Counts an assumption again (after [`Cluster::clear_pods`]) unless
    /// the pod is counted already.
    pub fn restore(&mut self, key: Key, placed: Placed) {
        if !self.placed.contains_key(&key) && placed.slot < self.slots.len() {
            let name = self.slots[placed.slot].name.clone();
            if !name.is_empty() {
                self.assume(key, placed.slot, placed.usage, placed.owner, placed.group);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::scheduler::resources::Resources;
    use jotasu_api::kinds::node::NodeStatus;
    use jotasu_api::kinds::pod::ResourceRequirements;
    use jotasu_api::kinds::pod_status::PodStatus;
    use jotasu_api::{Condition, ConditionStatus, Container, OwnerReference, Quantity};

    /// A Ready node with `cpu` cores, `memory` and `pods` slots.
    pub(crate) fn node(name: &str, cpu: &str, memory: &str, pods: &str) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        let q = |s: &str| Quantity::parse(s).unwrap();
        n.status = Some(NodeStatus {
            allocatable: [
                ("cpu".into(), q(cpu)),
                ("memory".into(), q(memory)),
                ("pods".into(), q(pods)),
            ]
            .into(),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: ConditionStatus::True,
                ..Condition::default()
            }],
            ..NodeStatus::default()
        });
        n
    }

    /// A pod requesting `cpu` and `memory`, controlled by `owner` if given.
    pub(crate) fn pod(name: &str, cpu: &str, memory: &str, owner: Option<&str>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        p.metadata.resource_version = Some("7".into());
        if let Some(uid) = owner {
            p.metadata.owner_references = vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: uid.into(),
                uid: uid.into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }];
        }
        let q = |s: &str| Quantity::parse(s).unwrap();
        p.spec.containers = vec![Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: [("cpu".into(), q(cpu)), ("memory".into(), q(memory))].into(),
                limits: Default::default(),
            }),
            ..Container::default()
        }];
        p
    }

    pub(crate) fn key(name: &str) -> Key {
        ("default".into(), name.into())
    }

    fn bound(mut p: Pod, node: &str) -> Pod {
        p.spec.node_name = Some(node.into());
        p
    }

    #[test]
    fn counts_bound_pods_and_frees_finished_and_deleted_ones() {
        let mut c = Cluster::new();
        assert!(c.set_node(Arc::new(node("n1", "4", "8Gi", "10"))));
        assert!(!c.set_node(Arc::new(node("n1", "4", "8Gi", "10"))));
        let a = bound(pod("a", "1", "1Gi", Some("rs")), "n1");
        assert!(!c.observe_pod(&key("a"), &a));
        let n1 = &c.slots()[c.slot_of("n1").unwrap()];
        assert_eq!(
            n1.used.requests,
            Resources {
                cpu_millis: 1000,
                memory_bytes: 1 << 30,
                pods: 1
            }
        );
        assert_eq!(n1.owner_count(owner_of(&a).unwrap()), 1);
        let mut done = a.clone();
        done.status = Some(PodStatus {
            phase: Some(PodPhase::Succeeded),
            ..PodStatus::default()
        });
        assert!(c.observe_pod(&key("a"), &done));
        let n1 = &c.slots()[c.slot_of("n1").unwrap()];
        assert_eq!(n1.used, Usage::default());
        assert_eq!(n1.owner_count(owner_of(&a).unwrap()), 0);
        // Terminating pods still take room.
        let mut t = bound(pod("t", "1", "1Gi", None), "n1");
        t.metadata.deletion_timestamp = Some(jotasu_api::Time::from_unix_seconds(1));
        c.observe_pod(&key("t"), &t);
        assert_eq!(c.slots()[0].used.requests.pods, 1);
        assert!(c.pod_deleted(&key("t")));
        assert_eq!(c.slots()[0].used, Usage::default());
    }

    #[test]
    fn assumptions_are_confirmed_moved_or_forgotten() {
        let mut c = Cluster::new();
        c.set_node(Arc::new(node("n1", "4", "8Gi", "10")));
        c.set_node(Arc::new(node("n2", "4", "8Gi", "10")));
        let p = pod("a", "1", "1Gi", None);
        let u = pod_usage(&p);
        c.assume(key("a"), 0, u, None, u32::MAX);
        assert_eq!(c.slots()[0].used, u);
        // The binding shows: confirmed, counted once.
        c.observe_pod(&key("a"), &bound(p.clone(), "n1"));
        assert!(!c.placement(&key("a")).unwrap().assumed);
        assert_eq!(c.slots()[0].used, u);
        assert!(!c.forget(&key("a")), "a confirmed pod is not forgotten");
        // Another assumption, bound elsewhere by someone else: moved.
        c.assume(key("b"), 0, u, None, u32::MAX);
        c.observe_pod(&key("b"), &bound(p.clone(), "n2"));
        assert_eq!(c.slots()[0].used, u);
        assert_eq!(c.slots()[1].used, u);
        // A refused one: forgotten.
        c.assume(key("c"), 1, u, None, u32::MAX);
        assert!(c.forget(&key("c")));
        assert_eq!(c.slots()[1].used, u);
    }

    #[test]
    fn pods_on_unknown_nodes_wait_for_their_node() {
        let mut c = Cluster::new();
        c.observe_pod(&key("a"), &bound(pod("a", "1", "1Gi", None), "later"));
        assert_eq!(c.node_count(), 0);
        c.set_node(Arc::new(node("later", "4", "8Gi", "10")));
        assert_eq!(c.node_count(), 1);
        assert_eq!(c.slots()[0].used.requests.cpu_millis, 1000);
        c.remove_node("later");
        assert_eq!(c.node_count(), 0);
        assert!(c.slot_of("later").is_some(), "its pod still refers to it");
        c.pod_deleted(&key("a"));
        assert!(c.slot_of("later").is_none());
        // The slot is reused.
        c.set_node(Arc::new(node("next", "4", "8Gi", "10")));
        assert_eq!(c.slots().len(), 1);
    }

    #[test]
    fn clearing_keeps_assumptions_to_restore() {
        let mut c = Cluster::new();
        c.set_node(Arc::new(node("n1", "4", "8Gi", "10")));
        let p = pod("a", "1", "1Gi", None);
        c.observe_pod(&key("x"), &bound(p.clone(), "n1"));
        c.assume(key("a"), 0, pod_usage(&p), None, u32::MAX);
        let assumed = c.clear_pods();
        assert_eq!(assumed.len(), 1);
        assert_eq!(c.slots()[0].used, Usage::default());
        for (k, p) in assumed {
            c.restore(k, p);
        }
        assert_eq!(c.slots()[0].used, pod_usage(&p));
    }
}
