//! A simulated cluster for the deployment controller's tests: a Deployment,
//! its ReplicaSets and their pods in memory, stepped by the pure planners
//! of both controllers ([`super::plan::plan`] and the replica set
//! controller's), with pods that become Ready after a delay and take a
//! step to terminate.

use jotasu_api::kinds::pod_status::{PodPhase, PodStatus};
use jotasu_api::{Condition, ConditionStatus, Deployment, Object, Pod, ReplicaSet, Time};

use super::count_pods;
use super::plan::{Input, Owned, Plan, plan};
use super::rollout::{max_surge, max_unavailable};
use crate::controllers::replicaset::plan::{
    claim, plan_replica_set, pod_from_template, replica_set_status,
};
use crate::runtime::controlled_by;
use crate::runtime::status::{is_active, is_available};

/// A Deployment `web` of `replicas` pods of `image`, with `extra` merged into its spec.
pub fn deployment(replicas: i32, image: &str, extra: serde_json::Value) -> Deployment {
    let mut spec = serde_json::json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image}]}
        }
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    let mut o: Object = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "uid": "d-uid", "generation": 1,
                     "creationTimestamp": "2024-01-01T00:00:00Z"},
        "spec": spec
    }))
    .expect("a Deployment");
    o.apply_defaults();
    Deployment::try_from(o).expect("a Deployment")
}

/// The simulated cluster.
#[derive(Debug, Clone)]
pub struct World {
    /// The Deployment as stored.
    pub d: Deployment,
    /// Its ReplicaSets as stored.
    pub sets: Vec<ReplicaSet>,
    /// Their pods.
    pub pods: Vec<Pod>,
    /// The clock (seconds).
    pub now: i64,
    /// Seconds a new pod takes to become Ready (None: never).
    pub ready_after: Option<i64>,
    /// Every plan so far.
    pub plans: Vec<Plan>,
    serial: u64,
}

impl World {
    /// A cluster with `d` stored and nothing else.
    pub fn new(d: Deployment) -> Self {
        Self {
            d,
            sets: Vec::new(),
            pods: Vec::new(),
            now: 1_000_000,
            ready_after: Some(1),
            plans: Vec::new(),
            serial: 0,
        }
    }

    fn serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// Changes the Deployment's spec as an apply would (generation bumped).
    pub fn update(&mut self, f: impl FnOnce(&mut Deployment)) {
        let before = self.d.spec.clone();
        f(&mut self.d);
        if self.d.spec != before {
            let g = self.d.metadata.generation.unwrap_or(1);
            self.d.metadata.generation = Some(g + 1);
        }
    }

    /// One deployment reconcile: plan and apply its writes.
    pub fn reconcile_deployment(&mut self) -> Plan {
        let replica_sets = self
            .sets
            .iter()
            .map(|rs| Owned {
                rs: rs.clone(),
                counts: count_pods(rs, &self.pods, self.now),
            })
            .collect();
        let p = plan(&Input {
            deployment: &self.d,
            replica_sets,
            taken_names: self
                .sets
                .iter()
                .map(|r| r.metadata.name().to_owned())
                .collect(),
            now: self.now,
        });
        for rs in &p.create {
            let mut rs = rs.clone();
            assert!(
                self.sets
                    .iter()
                    .all(|s| s.metadata.name != rs.metadata.name)
            );
            rs.metadata.uid = Some(format!("rs-{}", self.serial()));
            rs.metadata.generation = Some(1);
            rs.metadata.creation_timestamp = Some(Time::from_unix_seconds(self.now));
            self.sets.push(rs);
        }
        for rs in &p.update {
            let stored = self
                .sets
                .iter_mut()
                .find(|s| s.metadata.name == rs.metadata.name)
                .expect("updating a stored ReplicaSet");
            if stored.spec != rs.spec {
                stored.metadata.generation = Some(stored.metadata.generation.unwrap_or(1) + 1);
            }
            stored.spec = rs.spec.clone();
            stored.metadata.annotations = rs.metadata.annotations.clone();
        }
        for name in &p.delete {
            let uid = self
                .sets
                .iter()
                .find(|s| s.metadata.name() == name)
                .and_then(|s| s.metadata.uid.clone());
            self.sets.retain(|s| s.metadata.name() != name);
            self.pods
                .retain(|p| p.metadata.controller_ref().map(|r| &r.uid) != uid.as_ref());
        }
        if let Some(a) = &p.annotations {
            self.d.metadata.annotations = a.clone();
        }
        if let Some(s) = &p.status {
            self.d.status = Some(s.clone());
        }
        self.plans.push(p.clone());
        p
    }

    /// One reconcile of every ReplicaSet: create and delete pods, write status.
    pub fn reconcile_replica_sets(&mut self) {
        for i in 0..self.sets.len() {
            let rs = self.sets[i].clone();
            let pods: Vec<&Pod> = self
                .pods
                .iter()
                .filter(|p| controlled_by(*p, &rs))
                .collect();
            let all: Vec<&Pod> = self.pods.iter().collect();
            let plan = plan_replica_set(&rs, &pods, &all, self.now);
            let (claimed, _, _) = claim(&rs, &pods);
            let active: Vec<&Pod> = claimed.into_iter().filter(|p| is_active(p)).collect();
            let status = replica_set_status(&rs, &active, None, self.now);
            self.sets[i].status = Some(status);
            for name in &plan.delete {
                let now = self.now;
                if let Some(p) = self.pods.iter_mut().find(|p| p.metadata.name() == name) {
                    p.metadata.deletion_timestamp = Some(Time::from_unix_seconds(now));
                }
            }
            for _ in 0..plan.create {
                let mut pod = pod_from_template(&rs);
                pod.metadata.name = Some(format!("{}-{}", rs.metadata.name(), self.serial()));
                pod.metadata.uid = pod.metadata.name.clone();
                pod.metadata.creation_timestamp = Some(Time::from_unix_seconds(self.now));
                pod.spec.node_name = Some("node-1".into());
                pod.status = Some(PodStatus {
                    phase: Some(PodPhase::Pending),
                    ..PodStatus::default()
                });
                self.pods.push(pod);
            }
        }
    }

    /// Time passes: terminating pods go, pods old enough become Ready.
    pub fn tick(&mut self, seconds: i64) {
        self.pods
            .retain(|p| p.metadata.deletion_timestamp.is_none());
        self.now += seconds;
        let Some(after) = self.ready_after else {
            return;
        };
        let now = self.now;
        for p in &mut self.pods {
            let born = p
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(Time::unix_seconds)
                .unwrap_or(now);
            let status = p.status.get_or_insert_with(PodStatus::default);
            if born + after <= now && status.phase != Some(PodPhase::Running) {
                status.phase = Some(PodPhase::Running);
                status.conditions.push(Condition {
                    type_: "Ready".into(),
                    status: ConditionStatus::True,
                    last_transition_time: Some(Time::from_unix_seconds(now)),
                    ..Condition::default()
                });
            }
        }
    }

    /// Active pods, and those of them available.
    pub fn live_and_available(&self) -> (i32, i32) {
        let min_ready = self.d.spec.min_ready_seconds.unwrap_or(0);
        let live: Vec<&Pod> = self.pods.iter().filter(|p| is_active(p)).collect();
        let available = live
            .iter()
            .filter(|p| is_available(p, min_ready, self.now))
            .count();
        (
            i32::try_from(live.len()).unwrap_or(i32::MAX),
            i32::try_from(available).unwrap_or(i32::MAX),
        )
    }

    /// One round: deployment, replica sets, then `seconds` pass. Checks the
    /// rolling-update bounds after the controllers acted when `bounded`.
    pub fn step(&mut self, seconds: i64, bounded: bool) {
        self.reconcile_deployment();
        self.reconcile_replica_sets();
        if bounded {
            self.assert_bounds();
        }
        self.tick(seconds);
        if bounded {
            self.assert_bounds();
        }
    }

    /// Total pods ≤ replicas + maxSurge; available ≥ replicas − maxUnavailable.
    pub fn assert_bounds(&self) {
        let replicas = self.d.spec.replicas();
        let (live, available) = self.live_and_available();
        assert!(
            live <= replicas + max_surge(&self.d),
            "{live} pods > {replicas} + surge {} at {}",
            max_surge(&self.d),
            self.now
        );
        assert!(
            available >= replicas - max_unavailable(&self.d),
            "{available} available < {replicas} - maxUnavailable {} at {}",
            max_unavailable(&self.d),
            self.now
        );
    }

    /// Steps until the Deployment reports a complete rollout (and its pods
    /// match), at most `limit` steps; returns the steps taken.
    pub fn settle(&mut self, limit: usize, bounded: bool) -> usize {
        for n in 0..limit {
            if self.complete() {
                return n;
            }
            self.step(1, bounded);
        }
        panic!("not settled after {limit} steps: {:#?}", self.d.status);
    }

    /// Whether the rollout is complete as `rollout status` would say.
    pub fn complete(&self) -> bool {
        let r = self.d.spec.replicas();
        let Some(s) = &self.d.status else {
            return false;
        };
        s.observed_generation >= self.d.metadata.generation
            && s.updated_replicas == r
            && s.replicas == r
            && s.available_replicas == r
            && self.pods.iter().filter(|p| is_active(p)).count() == usize::try_from(r).unwrap_or(0)
    }

    /// The ReplicaSet whose template has `image`.
    pub fn set_of(&self, image: &str) -> Option<&ReplicaSet> {
        self.sets
            .iter()
            .find(|rs| rs.spec.template.spec.containers[0].image == image)
    }

    /// The pods of the ReplicaSet with `image`.
    pub fn pods_of(&self, image: &str) -> usize {
        self.set_of(image).map_or(0, |rs| {
            self.pods
                .iter()
                .filter(|p| controlled_by(*p, rs) && is_active(p))
                .count()
        })
    }
}
