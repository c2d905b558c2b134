//! The scheduler's state and its decisions, without I/O: the cluster's
//! accounting and the queue, fed by informer changes; a cycle takes a
//! batch of pending pods and returns the bindings to write and the
//! Unschedulable conditions to report; binding outcomes come back here.

use std::sync::Arc;
use std::time::Instant;

use jotasu_api::{Condition, ConditionStatus, Node, Pod, Time};

use super::Scoring;
use super::filter::{PodNeeds, unschedulable_message};
use super::nodes::Cluster;
use super::queue::Queue;
use super::score::{Candidate, pick};
use super::volumes::{VolumeView, volume_needs};
use crate::apiserver::{BindOutcome, Binding};
use crate::runtime::status::{condition, is_terminating, node_of, set_condition};
use crate::runtime::{Key, key_of};

/// Failures remembered per cycle: a pod asking the same as one that
/// found no node earlier in the cycle finds none either (room only
/// shrinks within a cycle).
const REMEMBERED_FAILURES: usize = 16;

/// What one cycle decided.
#[derive(Debug, Default)]
pub struct Decisions {
    /// Pods to bind, with the resourceVersion they were scheduled at.
    pub bindings: Vec<Binding>,
    /// Pods no node can take whose PodScheduled condition must say why.
    pub unschedulable: Vec<(Arc<Pod>, String)>,
    /// Claims to record the chosen node on (`volume.kubernetes.io/selected-node`):
    /// (namespace, claim, node).
    pub selected: Vec<(String, String, String)>,
}

/// The cluster as the scheduler sees it and the pods it has to place.
#[derive(Debug)]
pub struct Scheduler {
    /// Nodes and what is placed on them.
    pub cluster: Cluster,
    /// Pending pods.
    pub queue: Queue,
    /// Claims, volumes and classes.
    pub volumes: VolumeView,
    scoring: Scoring,
    candidates: Vec<Candidate>,
}

fn same_needs(a: &Pod, b: &Pod) -> bool {
    let inits = |p: &Pod| -> Vec<_> {
        p.spec
            .init_containers
            .iter()
            .map(|c| (c.resources.clone(), c.is_sidecar()))
            .collect()
    };
    inits(a) == inits(b)
        && a.spec.containers.len() == b.spec.containers.len()
        && a.spec
            .containers
            .iter()
            .zip(&b.spec.containers)
            .all(|(x, y)| x.resources == y.resources)
        && a.spec.node_selector == b.spec.node_selector
        && a.spec.tolerations == b.spec.tolerations
        && a.spec.affinity == b.spec.affinity
        && a.spec.topology_spread_constraints == b.spec.topology_spread_constraints
        // Inter-pod rules (its own and placed pods') look at these.
        && a.metadata.namespace == b.metadata.namespace
        && a.metadata.labels == b.metadata.labels
        && a.spec.volumes == b.spec.volumes
}

/// Whether the pod's PodScheduled condition already says `message`.
fn reported(pod: &Pod, message: &str) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        condition(&s.conditions, "PodScheduled").is_some_and(|c| {
            c.status == ConditionStatus::False
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message)
        })
    })
}

/// The pod with PodScheduled=False, reason Unschedulable and `message`
/// (None if it says so already).
pub fn unschedulable_status(pod: &Pod, message: &str, now: &Time) -> Option<Pod> {
    let mut pod = pod.clone();
    let status = pod.status.get_or_insert_with(Default::default);
    let changed = set_condition(
        &mut status.conditions,
        Condition {
            type_: "PodScheduled".into(),
            status: ConditionStatus::False,
            reason: Some("Unschedulable".into()),
            message: Some(message.to_owned()),
            ..Condition::default()
        },
        now,
    );
    changed.then_some(pod)
}

impl Scheduler {
    /// An empty scheduler.
    pub fn new(scoring: Scoring) -> Self {
        Self {
            cluster: Cluster::new(),
            queue: Queue::new(),
            volumes: VolumeView::default(),
            scoring,
            candidates: Vec::new(),
        }
    }

    /// A pod was created or changed; returns whether room was freed.
    pub fn pod_applied(&mut self, pod: Arc<Pod>) -> bool {
        let key = key_of(&*pod);
        let freed = self.cluster.observe_pod(&key, &pod);
        if node_of(&pod).is_some() || is_terminating(&pod) {
            self.queue.remove(&key);
        } else {
            self.queue.upsert(key, pod);
        }
        freed
    }

    /// A pod was deleted; returns whether room was freed.
    pub fn pod_deleted(&mut self, pod: &Pod) -> bool {
        let key = key_of(pod);
        self.queue.remove(&key);
        self.cluster.pod_deleted(&key)
    }

    /// A node was added or changed; returns whether room may have appeared.
    pub fn node_applied(&mut self, node: Arc<Node>) -> bool {
        self.cluster.set_node(node)
    }

    /// A node was deleted.
    pub fn node_deleted(&mut self, node: &Node) {
        self.cluster.remove_node(node.metadata.name());
    }

    /// Replaces the nodes with a fresh List.
    pub fn resync_nodes(&mut self, nodes: &[Arc<Node>]) {
        let names: std::collections::HashSet<&str> =
            nodes.iter().map(|n| n.metadata.name()).collect();
        self.cluster.retain_nodes(|n| names.contains(n));
        for n in nodes {
            self.cluster.set_node(Arc::clone(n));
        }
        self.queue.retry_unschedulable();
    }

    /// Recounts the pods from a fresh List (assumptions whose binding does
    /// not show yet are kept) and rebuilds the queue from it.
    pub fn resync_pods(&mut self, pods: &[Arc<Pod>]) {
        let assumed = self.cluster.clear_pods();
        let listed: std::collections::HashSet<Key> = pods.iter().map(|p| key_of(&**p)).collect();
        let gone: Vec<Key> = self
            .queue
            .keys()
            .filter(|k| !listed.contains(*k))
            .cloned()
            .collect();
        for k in &gone {
            self.queue.remove(k);
        }
        for p in pods {
            self.pod_applied(Arc::clone(p));
        }
        for (key, placed) in assumed {
            if self.queue.pod(&key).is_some() {
                self.cluster.restore(key, placed);
            }
        }
        self.queue.retry_unschedulable();
    }

    /// Schedules up to `max` active pods: each is filtered and scored
    /// against the nodes as they are *with* this cycle's earlier choices
    /// (assumed), so a batch never overcommits a node.
    pub fn cycle(&mut self, max: usize) -> Decisions {
        let mut out = Decisions::default();
        let mut failed: Vec<(Arc<Pod>, String)> = Vec::new();
        for _ in 0..max {
            let Some((key, pod)) = self.queue.pop() else {
                break;
            };
            if let Some((_, message)) = failed.iter().find(|(f, _)| same_needs(f, &pod)) {
                let message = message.clone();
                self.unschedulable(key, pod, message, &mut out);
                continue;
            }
            let nodes = self
                .cluster
                .slots()
                .iter()
                .filter_map(|s| s.node.as_deref());
            let claims = match volume_needs(&pod, &self.volumes, nodes) {
                Ok(c) => c,
                Err(why) => {
                    let message = format!(
                        "0/{} nodes are available: {why}.",
                        self.cluster.node_count()
                    );
                    self.unschedulable(key, pod, message, &mut out);
                    continue;
                }
            };
            let mut needs = PodNeeds::of(&pod);
            needs.volumes = claims.as_ref();
            let (group, rules) = self.cluster.rules_for(&pod);
            match pick(
                &mut self.cluster,
                &needs,
                rules.as_ref(),
                self.scoring,
                &mut self.candidates,
            ) {
                Some(slot) => {
                    self.cluster
                        .assume(key.clone(), slot, needs.usage, needs.owner, group);
                    let resource_version = pod.metadata.revision();
                    let (namespace, name) = key;
                    let node = self.cluster.slots()[slot].name.clone();
                    if let Some(c) = claims.as_ref().filter(|c| !c.to_select.is_empty()) {
                        self.volumes.assume(&c.to_select, &node);
                        out.selected.extend(
                            c.to_select
                                .iter()
                                .map(|(ns, claim)| (ns.clone(), claim.clone(), node.clone())),
                        );
                    }
                    out.bindings.push(Binding {
                        namespace,
                        name,
                        node,
                        resource_version,
                    });
                }
                None => {
                    let message =
                        unschedulable_message(self.cluster.slots(), &needs, rules.as_ref());
                    if failed.len() < REMEMBERED_FAILURES {
                        failed.push((Arc::clone(&pod), message.clone()));
                    }
                    self.unschedulable(key, pod, message, &mut out);
                }
            }
        }
        out
    }

    fn unschedulable(&mut self, key: Key, pod: Arc<Pod>, message: String, out: &mut Decisions) {
        self.queue.park(&key);
        if !reported(&pod, &message) {
            out.unschedulable.push((pod, message));
        }
    }

    /// The outcome of writing `bindings`: a refused binding is uncounted
    /// and its pod retried after a backoff. Returns whether room was freed.
    pub fn bound(
        &mut self,
        bindings: &[Binding],
        outcomes: Option<&[BindOutcome]>,
        now: Instant,
    ) -> bool {
        let mut freed = false;
        for (i, b) in bindings.iter().enumerate() {
            if let Some(BindOutcome::Bound(_)) = outcomes.and_then(|o| o.get(i)) {
                continue;
            }
            let key = (b.namespace.clone(), b.name.clone());
            freed |= self.cluster.forget(&key);
            self.queue.back_off(&key, now);
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::Refusal;
    use crate::scheduler::nodes::tests::{key, node, pod};
    use crate::scheduler::queue::State;

    fn scheduler(nodes: &[(&str, &str)]) -> Scheduler {
        let mut s = Scheduler::new(Scoring::MostAllocated);
        for (name, cpu) in nodes {
            s.node_applied(Arc::new(node(name, cpu, "64Gi", "110")));
        }
        s
    }

    fn add(s: &mut Scheduler, name: &str, cpu: &str) {
        s.pod_applied(Arc::new(pod(name, cpu, "1Gi", Some("rs"))));
    }

    fn bound_copy(s: &Scheduler, b: &Binding) -> Arc<Pod> {
        let mut p = (**s.queue.pod(&(b.namespace.clone(), b.name.clone())).unwrap()).clone();
        p.spec.node_name = Some(b.node.clone());
        p.metadata.resource_version = Some("99".into());
        Arc::new(p)
    }

    #[test]
    fn a_batch_never_overcommits_a_node() {
        let mut s = scheduler(&[("a", "4"), ("b", "4")]);
        for i in 0..10 {
            add(&mut s, &format!("p{i}"), "1");
        }
        let d = s.cycle(100);
        assert_eq!(d.bindings.len(), 8, "4 cores on each of 2 nodes");
        let on = |n: &str| d.bindings.iter().filter(|b| b.node == n).count();
        assert_eq!((on("a"), on("b")), (4, 4));
        assert!(d.bindings.iter().all(|b| b.resource_version == Some(7)));
        assert_eq!(d.unschedulable.len(), 2);
        assert_eq!(
            d.unschedulable[0].1,
            "0/2 nodes are available: 2 Insufficient cpu."
        );
        assert_eq!(s.queue.unschedulable(), 2);
        // The informer shows the bindings: counted once.
        for b in &d.bindings {
            let p = bound_copy(&s, b);
            assert!(!s.pod_applied(p));
        }
        assert_eq!(s.queue.len(), 2);
        let a = &s.cluster.slots()[s.cluster.slot_of("a").unwrap()];
        assert_eq!(a.used.requests.cpu_millis, 4000);
    }

    #[test]
    fn refused_bindings_are_uncounted_and_retried() {
        let mut s = scheduler(&[("a", "2")]);
        add(&mut s, "x", "1");
        add(&mut s, "y", "1");
        add(&mut s, "z", "1");
        let d = s.cycle(100);
        assert_eq!(d.bindings.len(), 2);
        assert_eq!(s.queue.unschedulable(), 1);
        let t0 = Instant::now();
        let outcomes = [
            BindOutcome::Bound(10),
            BindOutcome::Refused(Refusal::Conflict),
        ];
        assert!(s.bound(&d.bindings, Some(&outcomes), t0));
        let refused = (d.bindings[1].namespace.clone(), d.bindings[1].name.clone());
        assert!(matches!(s.queue.state(&refused), Some(State::Backoff(_))));
        let a = &s.cluster.slots()[0];
        assert_eq!(a.used.requests.cpu_millis, 1000);
        // Room appeared: the unschedulable pod is tried again and fits.
        s.queue.retry_unschedulable();
        let d2 = s.cycle(100);
        assert_eq!(d2.bindings.len(), 1);
        assert_eq!(d2.bindings[0].name, "z");
        // The refused one comes back after its backoff and finds no room.
        s.queue.end_backoffs(t0 + std::time::Duration::from_secs(1));
        let d3 = s.cycle(100);
        assert!(d3.bindings.is_empty());
        assert_eq!(s.queue.unschedulable(), 1);
        // A failed call refuses them all.
        assert!(!s.bound(&d3.bindings, None, t0));
    }

    #[test]
    fn unschedulable_pods_report_once_and_wait_for_room() {
        let mut s = scheduler(&[("a", "1")]);
        add(&mut s, "big", "2");
        let d = s.cycle(10);
        assert_eq!(d.unschedulable.len(), 1);
        let (p, message) = &d.unschedulable[0];
        let now = Time::from_unix_seconds(100);
        let mut written = unschedulable_status(p, message, &now).unwrap();
        assert!(unschedulable_status(&written, message, &now).is_none());
        written.metadata.resource_version = Some("8".into());
        s.pod_applied(Arc::new(written));
        assert!(
            !s.queue.has_active(),
            "its own status write does not requeue it"
        );
        s.queue.retry_unschedulable();
        let d = s.cycle(10);
        assert!(d.bindings.is_empty());
        assert!(
            d.unschedulable.is_empty(),
            "the same message is not written again"
        );
        // A bigger node arrives.
        assert!(s.node_applied(Arc::new(node("b", "4", "64Gi", "110"))));
        s.queue.retry_unschedulable();
        let d = s.cycle(10);
        assert_eq!(d.bindings[0].node, "b");
    }

    #[test]
    fn deletions_free_room_and_resyncs_keep_assumptions() {
        let mut s = scheduler(&[("a", "2")]);
        add(&mut s, "x", "2");
        let d = s.cycle(10);
        assert_eq!(d.bindings.len(), 1);
        // A List that does not show the binding yet: still counted.
        let listed = vec![Arc::clone(s.queue.pod(&key("x")).unwrap())];
        s.resync_pods(&listed);
        assert_eq!(s.cluster.slots()[0].used.requests.cpu_millis, 2000);
        assert_eq!(s.queue.state(&key("x")), Some(State::InFlight));
        let bound = bound_copy(&s, &d.bindings[0]);
        s.pod_applied(Arc::clone(&bound));
        assert!(s.queue.is_empty());
        assert!(s.pod_deleted(&bound));
        assert_eq!(s.cluster.slots()[0].used.requests.cpu_millis, 0);
        // Nodes resync: a node missing from the List is gone.
        s.resync_nodes(&[]);
        assert_eq!(s.cluster.node_count(), 0);
    }

    #[test]
    fn pods_follow_their_bound_volume_and_record_a_fresh_claims_node() {
        use jotasu_api::kinds::pod::{PersistentVolumeClaimVolumeSource, Volume};
        use jotasu_api::{PersistentVolume, PersistentVolumeClaim, StorageClass};
        let mut s = Scheduler::new(Scoring::MostAllocated);
        for name in ["a", "b"] {
            let mut n = node(name, "4", "64Gi", "110");
            n.metadata
                .labels
                .insert("kubernetes.io/hostname".into(), name.into());
            n.metadata
                .annotations
                .insert("jotasu.io/local-volume-dir".into(), "/v".into());
            let status = n.status.as_mut().unwrap();
            status.allocatable.insert(
                "ephemeral-storage".into(),
                jotasu_api::Quantity::parse("10Gi").unwrap(),
            );
            s.node_applied(Arc::new(n));
        }
        let class: StorageClass = serde_json::from_value(serde_json::json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "standard"}, "provisioner": "jotasu.io/local",
            "volumeBindingMode": "WaitForFirstConsumer"}))
        .unwrap();
        s.volumes.classes.insert("standard".into(), Arc::new(class));
        let claim = |name: &str, volume: Option<&str>| -> PersistentVolumeClaim {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                    "volumeName": volume, "resources": {"requests": {"storage": "1Gi"}}}}))
            .unwrap()
        };
        let mut old = claim("old", Some("pv-b"));
        old.metadata
            .annotations
            .insert("pv.kubernetes.io/bind-completed".into(), "yes".into());
        s.volumes.claim_applied(Arc::new(old));
        s.volumes.claim_applied(Arc::new(claim("fresh", None)));
        let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-b"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "local": {"path": "/v/pv-b"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["b"]}]}]}}}}))
        .unwrap();
        s.volumes.volumes.insert("pv-b".into(), Arc::new(pv));
        let with_claim = |name: &str, claim: &str| {
            let mut p = pod(name, "1", "1Gi", None);
            p.spec.volumes = vec![Volume {
                name: "d".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.into(),
                    read_only: None,
                }),
                ..Volume::default()
            }];
            Arc::new(p)
        };
        // Bin-packing would put both on one node; the bound volume pins "old" to b.
        s.pod_applied(with_claim("uses-old", "old"));
        s.pod_applied(with_claim("uses-fresh", "fresh"));
        s.pod_applied(with_claim("uses-none", "nope"));
        let d = s.cycle(10);
        let node_of = |n: &str| {
            d.bindings
                .iter()
                .find(|b| b.name == n)
                .map(|b| b.node.clone())
        };
        assert_eq!(node_of("uses-old").as_deref(), Some("b"));
        let fresh = node_of("uses-fresh").expect("the fresh claim's pod is placed");
        assert_eq!(
            d.selected,
            [("default".to_owned(), "fresh".to_owned(), fresh)]
        );
        assert_eq!(
            d.unschedulable
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>(),
            ["0/2 nodes are available: persistentvolumeclaim \"nope\" not found."]
        );
    }
}
