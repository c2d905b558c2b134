//! The statefulset controller's decisions, without I/O: ordering,
//! identity, scaling, rolling updates with a partition, OnDelete, and the
//! revision history.

use std::collections::BTreeSet;

use jotasu_api::kinds::pod_status::{PodPhase, PodStatus};
use jotasu_api::kinds::statefulset::{
    PodManagementPolicy, RollingUpdateStatefulSet, StatefulSetUpdateStrategy,
    StatefulSetUpdateStrategyType,
};
use jotasu_api::meta::{Condition, ConditionStatus};
use jotasu_api::{ControllerRevision, LabelSelector, Object, ObjectMeta, Pod, StatefulSet, Time};

use super::plan::{Plan, Revisions, ordinal_of, plan, revision_of};
use super::revisions::plan_revisions;

fn set(replicas: i32, policy: PodManagementPolicy) -> StatefulSet {
    let mut s: StatefulSet = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default", "uid": "sts-uid", "generation": 1},
        "spec": {"serviceName": "nginx", "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}
    }))
    .expect("a set");
    let mut o = Object::StatefulSet(s.clone());
    o.apply_defaults();
    if let Object::StatefulSet(d) = o {
        s = d;
    }
    s.spec.replicas = Some(replicas);
    s.spec.pod_management_policy = Some(policy);
    s.spec.selector = LabelSelector::from_labels(&s.spec.template.metadata.labels);
    s
}

/// A cluster where every created pod becomes Running and Ready when asked.
struct Sim {
    set: StatefulSet,
    pods: Vec<Pod>,
    revisions: Vec<ControllerRevision>,
}

impl Sim {
    fn new(set: StatefulSet) -> Self {
        Self {
            set,
            pods: Vec::new(),
            revisions: Vec::new(),
        }
    }

    /// One reconcile: revisions written, the plan carried out (deleted pods
    /// gone at once), the status stored.
    fn step(&mut self) -> Plan {
        let refs: Vec<&ControllerRevision> = self.revisions.iter().collect();
        let in_use: BTreeSet<String> = self
            .pods
            .iter()
            .filter_map(|p| revision_of(p).map(str::to_owned))
            .collect();
        let revs = plan_revisions(&self.set, &refs, &in_use);
        if revs.write_update {
            self.revisions
                .retain(|r| r.metadata.name() != revs.update.metadata.name());
            self.revisions.push(revs.update.clone());
        }
        self.revisions
            .retain(|r| !revs.delete.contains(&r.metadata.name().to_owned()));
        let update = revs.update.template().expect("a template");
        let current = revs.current.template().expect("a template");
        let pods: Vec<&Pod> = self.pods.iter().collect();
        let p = plan(
            &self.set,
            &pods,
            Revisions {
                current: (revs.current.metadata.name(), &current),
                update: (revs.update.metadata.name(), &update),
            },
            1_000,
        );
        self.pods
            .retain(|pod| !p.delete.contains(&pod.metadata.name().to_owned()));
        self.pods.extend(p.create.iter().cloned());
        self.set.status = Some(p.status.clone());
        p
    }

    fn ready_all(&mut self) {
        for p in &mut self.pods {
            ready(p);
        }
    }

    fn names(&self) -> Vec<String> {
        let mut n: Vec<String> = self
            .pods
            .iter()
            .map(|p| p.metadata.name().to_owned())
            .collect();
        n.sort();
        n
    }

    /// Steps, readying every pod each time, until nothing changes.
    fn settle(&mut self) {
        for _ in 0..100 {
            let p = self.step();
            self.ready_all();
            if p.create.is_empty() && p.delete.is_empty() {
                self.step();
                return;
            }
        }
        panic!("no steady state");
    }

    fn revision_of(&self, pod: &str) -> String {
        let p = self
            .pods
            .iter()
            .find(|p| p.metadata.name() == pod)
            .expect("the pod");
        revision_of(p).expect("a revision").to_owned()
    }
}

fn ready(p: &mut Pod) {
    p.status = Some(PodStatus {
        phase: Some(PodPhase::Running),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: ConditionStatus::True,
            last_transition_time: Some(Time::from_unix_seconds(1)),
            ..Condition::default()
        }],
        ..PodStatus::default()
    });
}

fn names(p: &[Pod]) -> Vec<&str> {
    p.iter().map(|p| p.metadata.name()).collect()
}

#[test]
fn ordered_ready_starts_one_pod_at_a_time_in_order() {
    let mut sim = Sim::new(set(3, PodManagementPolicy::OrderedReady));
    assert_eq!(names(&sim.step().create), ["web-0"]);
    // web-0 is not Ready yet: nothing more.
    assert!(sim.step().create.is_empty());
    sim.ready_all();
    assert_eq!(names(&sim.step().create), ["web-1"]);
    sim.ready_all();
    assert_eq!(names(&sim.step().create), ["web-2"]);
    sim.ready_all();
    let p = sim.step();
    assert!(p.create.is_empty() && p.delete.is_empty());
    assert_eq!(p.status.replicas, 3);
    assert_eq!(p.status.ready_replicas, 3);
}

#[test]
fn parallel_starts_and_stops_all_at_once() {
    let mut sim = Sim::new(set(3, PodManagementPolicy::Parallel));
    assert_eq!(names(&sim.step().create), ["web-0", "web-1", "web-2"]);
    sim.ready_all();
    sim.set.spec.replicas = Some(1);
    assert_eq!(sim.step().delete, ["web-2", "web-1"]);
}

#[test]
fn scale_down_takes_the_highest_ordinal_first_one_at_a_time() {
    let mut sim = Sim::new(set(4, PodManagementPolicy::OrderedReady));
    sim.settle();
    sim.set.spec.replicas = Some(2);
    assert_eq!(sim.step().delete, ["web-3"]);
    assert_eq!(sim.step().delete, ["web-2"]);
    assert!(sim.step().delete.is_empty());
    assert_eq!(sim.names(), ["web-0", "web-1"]);
    // Scaling up again brings back the same names.
    sim.set.spec.replicas = Some(3);
    assert_eq!(names(&sim.step().create), ["web-2"]);
}

#[test]
fn a_stuck_pod_holds_ordered_scale_down_and_a_failed_one_is_replaced() {
    let mut sim = Sim::new(set(3, PodManagementPolicy::OrderedReady));
    sim.settle();
    // web-1 fails: it is deleted, then recreated, before anything else.
    sim.pods[1].status.as_mut().expect("a status").phase = Some(PodPhase::Failed);
    sim.set.spec.replicas = Some(2);
    assert_eq!(sim.step().delete, ["web-1"]);
    assert_eq!(names(&sim.step().create), ["web-1"]);
    // Not Ready yet: the scale-down of web-2 waits.
    assert!(sim.step().delete.is_empty());
    sim.ready_all();
    assert_eq!(sim.step().delete, ["web-2"]);
}

#[test]
fn identity_labels_hostname_and_subdomain() {
    let mut sim = Sim::new(set(1, PodManagementPolicy::OrderedReady));
    let p = sim.step().create.remove(0);
    assert_eq!(p.metadata.name(), "web-0");
    assert_eq!(p.spec.hostname.as_deref(), Some("web-0"));
    assert_eq!(p.spec.subdomain.as_deref(), Some("nginx"));
    assert_eq!(
        p.metadata.labels["statefulset.kubernetes.io/pod-name"],
        "web-0"
    );
    assert_eq!(p.metadata.labels["apps.kubernetes.io/pod-index"], "0");
    assert!(p.metadata.labels["controller-revision-hash"].starts_with("web-"));
    assert_eq!(p.metadata.owner_references[0].kind, "StatefulSet");
    let s = set(1, PodManagementPolicy::OrderedReady);
    assert_eq!(ordinal_of(&s, &p), Some(0));
    let mut odd = p.clone();
    odd.metadata.name = Some("web-01".into());
    assert_eq!(ordinal_of(&s, &odd), None);
    odd.metadata.name = Some("webby-1".into());
    assert_eq!(ordinal_of(&s, &odd), None);
}

#[test]
fn rolling_update_goes_from_the_highest_ordinal_down_to_the_partition() {
    let mut sim = Sim::new(set(3, PodManagementPolicy::OrderedReady));
    sim.settle();
    let old = sim.revision_of("web-0");
    sim.set.spec.template.spec.containers[0].image = "nginx:2".into();
    sim.set.spec.update_strategy = Some(StatefulSetUpdateStrategy {
        type_: Some(StatefulSetUpdateStrategyType::RollingUpdate),
        rolling_update: Some(RollingUpdateStatefulSet {
            partition: Some(1),
            max_unavailable: None,
        }),
    });
    assert_eq!(sim.step().delete, ["web-2"]);
    let recreated = sim.step().create;
    assert_eq!(names(&recreated), ["web-2"]);
    assert_eq!(recreated[0].spec.containers[0].image, "nginx:2");
    // One at a time: web-1 waits for web-2 to be Ready.
    assert!(sim.step().delete.is_empty());
    sim.ready_all();
    assert_eq!(sim.step().delete, ["web-1"]);
    sim.settle();
    let new = sim.revision_of("web-2");
    assert_ne!(new, old);
    assert_eq!(sim.revision_of("web-1"), new);
    assert_eq!(sim.revision_of("web-0"), old, "below the partition");
    let status = sim.set.status.clone().expect("a status");
    assert_eq!(status.updated_replicas, 2);
    assert_eq!(status.current_revision.as_deref(), Some(old.as_str()));

    // Partition 0: web-0 too, and the update revision becomes current.
    sim.set.spec.update_strategy = None;
    sim.settle();
    assert_eq!(sim.revision_of("web-0"), new);
    let status = sim.set.status.clone().expect("a status");
    assert_eq!(status.current_revision.as_deref(), Some(new.as_str()));
    assert_eq!(status.current_replicas, 3);
}

#[test]
fn on_delete_replaces_only_what_the_user_deletes() {
    let mut s = set(2, PodManagementPolicy::OrderedReady);
    s.spec.update_strategy = Some(StatefulSetUpdateStrategy {
        type_: Some(StatefulSetUpdateStrategyType::OnDelete),
        rolling_update: None,
    });
    let mut sim = Sim::new(s);
    sim.settle();
    let old = sim.revision_of("web-1");
    sim.set.spec.template.spec.containers[0].image = "nginx:2".into();
    let p = sim.step();
    assert!(p.delete.is_empty() && p.create.is_empty());
    sim.pods.retain(|p| p.metadata.name() != "web-1");
    let created = sim.step().create;
    assert_eq!(created[0].spec.containers[0].image, "nginx:2");
    sim.ready_all();
    assert_ne!(sim.revision_of("web-1"), old);
    assert_eq!(sim.revision_of("web-0"), old);
}

#[test]
fn parallel_rolling_update_keeps_max_unavailable() {
    let mut s = set(4, PodManagementPolicy::Parallel);
    s.spec.update_strategy = Some(StatefulSetUpdateStrategy {
        type_: Some(StatefulSetUpdateStrategyType::RollingUpdate),
        rolling_update: Some(RollingUpdateStatefulSet {
            partition: None,
            max_unavailable: Some(jotasu_api::IntOrString::Int(2)),
        }),
    });
    let mut sim = Sim::new(s);
    sim.settle();
    sim.set.spec.template.spec.containers[0].image = "nginx:2".into();
    assert_eq!(sim.step().delete, ["web-3", "web-2"]);
}

#[test]
fn a_rollback_renumbers_the_old_revision_and_history_is_bounded() {
    let mut s = set(1, PodManagementPolicy::OrderedReady);
    s.spec.revision_history_limit = Some(1);
    let mut sim = Sim::new(s);
    sim.settle();
    let first = sim.revision_of("web-0");
    for image in ["nginx:2", "nginx:3"] {
        sim.set.spec.template.spec.containers[0].image = image.into();
        sim.settle();
    }
    // Three templates, one pod: the live revision and one of history.
    assert_eq!(sim.revisions.len(), 2, "{:?}", sim.revisions);
    assert!(sim.revisions.iter().all(|r| r.metadata.name() != first));
    let second = sim
        .revisions
        .iter()
        .find(|r| r.revision == 2)
        .expect("revision 2 kept")
        .metadata
        .name()
        .to_owned();
    // Back to nginx:2: its revision is renumbered 4, not copied.
    sim.set.spec.template.spec.containers[0].image = "nginx:2".into();
    sim.settle();
    assert_eq!(sim.revision_of("web-0"), second);
    let r = sim
        .revisions
        .iter()
        .find(|r| r.metadata.name() == second)
        .expect("the revision");
    assert_eq!(r.revision, 4);
}

#[test]
fn the_revision_data_restores_the_template() {
    let s = set(1, PodManagementPolicy::OrderedReady);
    let revs = plan_revisions(&s, &[], &BTreeSet::new());
    assert!(revs.write_update);
    assert_eq!(revs.update.revision, 1);
    assert_eq!(
        revs.update.data["spec"]["template"]["$patch"],
        serde_json::json!("replace")
    );
    assert_eq!(revs.update.template().expect("a template"), s.spec.template);
    assert_eq!(revs.update.metadata.owner_references[0].name, "web");
    let meta: &ObjectMeta = &revs.update.metadata;
    assert!(meta.labels.contains_key("controller.kubernetes.io/hash"));
}

#[test]
fn each_pod_mounts_its_own_claims() {
    let mut s = set(2, PodManagementPolicy::Parallel);
    s.spec.volume_claim_templates = vec![
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "www", "labels": {"tier": "data"}},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}
        }))
        .expect("a claim template"),
    ];
    s.spec.template.spec.volumes = vec![
        serde_json::from_value(serde_json::json!({"name": "www", "emptyDir": {}}))
            .expect("a volume"),
    ];
    let mut sim = Sim::new(s.clone());
    let pods = sim.step().create;
    let claim_of = |p: &Pod| {
        let v: Vec<_> = p.spec.volumes.iter().filter(|v| v.name == "www").collect();
        assert_eq!(v.len(), 1, "the template's volume of that name is replaced");
        v[0].persistent_volume_claim
            .as_ref()
            .expect("a claim volume")
            .claim_name
            .clone()
    };
    assert_eq!(claim_of(&pods[0]), "www-web-0");
    assert_eq!(claim_of(&pods[1]), "www-web-1");
    let claims = super::plan::claims_for(&s, 1);
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].metadata.name(), "www-web-1");
    assert_eq!(claims[0].metadata.labels["tier"], "data");
    assert_eq!(claims[0].metadata.labels["app"], "web");
    assert!(
        claims[0].metadata.owner_references.is_empty(),
        "retained by default"
    );
    s.spec.persistent_volume_claim_retention_policy =
        Some(jotasu_api::kinds::statefulset::ClaimRetentionPolicy {
            when_deleted: Some("Delete".into()),
            when_scaled: Some("Delete".into()),
        });
    assert_eq!(
        super::plan::claims_for(&s, 1)[0].metadata.owner_references[0].kind,
        "StatefulSet"
    );
    assert!(super::plan::delete_claims_on_scale_down(&s));
}
