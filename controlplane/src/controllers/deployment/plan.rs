//! One reconcile of a Deployment as a pure function: [`plan`] takes the
//! Deployment, its ReplicaSets with their pod counts, and the time, and
//! returns the writes (ReplicaSets to create, resize or delete, the
//! Deployment's annotations and status) in the order the runner performs
//! them. The flow is kube-controller-manager's `syncDeployment`: paused or
//! scaling → [`Sync::sync`]; otherwise the strategy's rollout.

use std::collections::BTreeSet;

use jotasu_api::kinds::workloads::{DeploymentStatus, DeploymentStrategyType};
use jotasu_api::{Deployment, LabelSelector, Labels, PodTemplateSpec, ReplicaSet};

use super::annotations::{
    REVISION, max_revision, revision, set_deployment_revision, set_new_replica_set_annotations,
    set_replicas_annotations,
};
use super::hash::{POD_TEMPLATE_HASH, pod_template_hash};
use super::rollout::max_surge;
use super::status::{self, PROGRESSING};
use crate::runtime::controller_reference;

/// How a ReplicaSet's pods stand (from the pods it controls).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodCounts {
    /// Active pods (not terminating, not finished).
    pub replicas: i32,
    /// Active pods that are Ready.
    pub ready: i32,
    /// Active pods Ready for minReadySeconds.
    pub available: i32,
    /// Pods not finished, terminating ones included (Recreate waits for them).
    pub running: i32,
    /// When the next ready pod becomes available (seconds since the epoch).
    pub next_available_at: Option<i64>,
}

/// A ReplicaSet the Deployment controls, with its pods' counts.
#[derive(Debug, Clone)]
pub struct Owned {
    /// The ReplicaSet as stored.
    pub rs: ReplicaSet,
    /// Its pods.
    pub counts: PodCounts,
}

/// What [`plan`] reads.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// The Deployment as stored.
    pub deployment: &'a Deployment,
    /// The ReplicaSets it controls.
    pub replica_sets: Vec<Owned>,
    /// Every ReplicaSet name taken in the namespace (a new one must not clash).
    pub taken_names: BTreeSet<String>,
    /// Seconds since the epoch.
    pub now: i64,
}

/// The writes of one reconcile, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// ReplicaSets to create.
    pub create: Vec<ReplicaSet>,
    /// ReplicaSets to update (resize, annotations), with their stored
    /// resourceVersion as a precondition.
    pub update: Vec<ReplicaSet>,
    /// Old ReplicaSets beyond revisionHistoryLimit to delete, by name.
    pub delete: Vec<String>,
    /// The Deployment's new annotations (its revision), if they change.
    pub annotations: Option<Labels>,
    /// The Deployment's new status, if it changes.
    pub status: Option<DeploymentStatus>,
    /// Seconds until the Deployment should be looked at again.
    pub requeue_after: Option<i64>,
}

/// A ReplicaSet being worked on.
#[derive(Debug, Clone)]
pub(super) struct Working {
    pub rs: ReplicaSet,
    pub counts: PodCounts,
    /// To be written (updated, or created when `created`).
    pub changed: bool,
    pub created: bool,
    pub deleted: bool,
}

/// The state of one reconcile: working copies of the Deployment (its
/// annotations and status conditions) and of its ReplicaSets.
#[derive(Debug)]
pub(super) struct Sync<'a> {
    pub original: &'a Deployment,
    pub d: Deployment,
    /// The stored status with this reconcile's condition changes.
    pub status: DeploymentStatus,
    /// Oldest first.
    pub sets: Vec<Working>,
    pub taken: BTreeSet<String>,
    pub now: i64,
    pub final_status: Option<DeploymentStatus>,
    pub requeue_after: Option<i64>,
}

/// Whether two templates are equal but for the pod-template-hash label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    let strip = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        t.metadata.labels.remove(POD_TEMPLATE_HASH);
        t
    };
    strip(a) == strip(b)
}

fn created_at(rs: &ReplicaSet) -> (Option<i64>, String) {
    let t = rs
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(jotasu_api::Time::unix_seconds);
    (t, rs.metadata.name().to_owned())
}

/// Decides one reconcile of a Deployment.
pub fn plan(input: &Input<'_>) -> Plan {
    let mut s = Sync::new(input);
    s.check_paused_conditions();
    if s.d.spec.paused || s.is_scaling_event() {
        s.sync();
    } else {
        match strategy_type(&s.d) {
            DeploymentStrategyType::Recreate => s.rollout_recreate(),
            DeploymentStrategyType::RollingUpdate => s.rollout_rolling(),
        }
    }
    s.finish()
}

/// The Deployment's strategy type.
pub fn strategy_type(d: &Deployment) -> DeploymentStrategyType {
    d.spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_)
        .unwrap_or_default()
}

impl<'a> Sync<'a> {
    fn new(input: &Input<'a>) -> Self {
        let mut sets: Vec<Working> = input
            .replica_sets
            .iter()
            .map(|o| Working {
                rs: o.rs.clone(),
                counts: o.counts,
                changed: false,
                created: false,
                deleted: false,
            })
            .collect();
        sets.sort_by_key(|w| created_at(&w.rs));
        Self {
            original: input.deployment,
            d: input.deployment.clone(),
            status: input.deployment.status.clone().unwrap_or_default(),
            sets,
            taken: input.taken_names.clone(),
            now: input.now,
            final_status: None,
            requeue_after: None,
        }
    }

    /// The Deployment's desired replicas.
    pub fn replicas(&self) -> i32 {
        self.d.spec.replicas()
    }

    /// `spec.replicas` of ReplicaSet `i`.
    pub fn spec(&self, i: usize) -> i32 {
        self.sets[i].rs.spec.replicas()
    }

    /// Available pods of `i`, at most its size (pods beyond it are about
    /// to be deleted and cannot be counted on).
    pub fn available_within_spec(&self, i: usize) -> i32 {
        self.sets[i].counts.available.min(self.spec(i))
    }

    /// Indices of the live ReplicaSets, oldest first.
    pub fn live(&self) -> Vec<usize> {
        (0..self.sets.len())
            .filter(|i| !self.sets[*i].deleted)
            .collect()
    }

    /// The live ReplicaSet whose template is the Deployment's (the oldest
    /// such, as Kubernetes picks it).
    pub fn find_new(&self) -> Option<usize> {
        self.live()
            .into_iter()
            .find(|i| equal_ignore_hash(&self.sets[*i].rs.spec.template, &self.d.spec.template))
    }

    /// Live ReplicaSets but `new`, oldest first.
    pub fn olds(&self, new: Option<usize>) -> Vec<usize> {
        self.live()
            .into_iter()
            .filter(|i| Some(*i) != new)
            .collect()
    }

    /// Sum of `spec.replicas` over `sets`.
    pub fn total_spec(&self, sets: &[usize]) -> i32 {
        sets.iter().map(|i| self.spec(*i)).sum()
    }

    /// Resizes `i` if its size differs (with the replicas annotations);
    /// returns whether it was resized.
    pub fn scale(&mut self, i: usize, size: i32) -> bool {
        if self.spec(i) == size {
            return false;
        }
        self.scale_with_annotations(i, size)
    }

    /// Resizes `i` and refreshes its replicas annotations, writing if
    /// either changes; returns whether the size changed.
    pub fn scale_with_annotations(&mut self, i: usize, size: i32) -> bool {
        let (desired, max) = (self.replicas(), self.replicas() + max_surge(&self.d));
        let resized = self.spec(i) != size;
        let w = &mut self.sets[i];
        let annotated = set_replicas_annotations(&mut w.rs, desired, max);
        if resized {
            w.rs.spec.replicas = Some(size);
        }
        w.changed |= resized || annotated;
        resized
    }

    /// Kubernetes' `getNewReplicaSet`: finds the ReplicaSet of the current
    /// template and brings its annotations and the Deployment's revision up
    /// to date, or (when `create`) makes it, sized by the strategy.
    pub fn new_replica_set(&mut self, create: bool) -> Option<usize> {
        let existing = self.find_new();
        let olds = self.olds(existing);
        let next = max_revision(olds.iter().map(|i| &self.sets[*i].rs)) + 1;
        let surge = max_surge(&self.d);
        let has_deadline = status::has_progress_deadline(&self.d);
        if let Some(i) = existing {
            let min_ready = self.d.spec.min_ready_seconds;
            let w = &mut self.sets[i];
            let annotated = set_new_replica_set_annotations(&self.d, &mut w.rs, next, true, surge);
            if annotated || w.rs.spec.min_ready_seconds != min_ready {
                w.rs.spec.min_ready_seconds = min_ready;
                w.changed = true;
            }
            if let Some(rev) = w.rs.metadata.annotations.get(REVISION) {
                let rev = rev.clone();
                set_deployment_revision(&mut self.d, &rev);
            }
            if has_deadline && status::get_condition(&self.status, PROGRESSING).is_none() {
                let msg = format!(
                    "Found new replica set \"{}\"",
                    self.sets[i].rs.metadata.name()
                );
                let c = status::new_condition(
                    PROGRESSING,
                    true.into(),
                    status::FOUND_NEW_RS,
                    msg,
                    self.now,
                );
                status::set_condition(&mut self.status, c);
            }
            return Some(i);
        }
        if !create {
            return None;
        }
        let mut rs = self.new_replica_set_object()?;
        set_new_replica_set_annotations(&self.d, &mut rs, next, false, surge);
        self.taken.insert(rs.metadata.name().to_owned());
        self.sets.push(Working {
            rs,
            counts: PodCounts::default(),
            changed: true,
            created: true,
            deleted: false,
        });
        let i = self.sets.len() - 1;
        let size = self.new_rs_new_replicas(i);
        self.sets[i].rs.spec.replicas = Some(size);
        set_deployment_revision(&mut self.d, &next.to_string());
        if has_deadline {
            let msg = format!(
                "Created new replica set \"{}\"",
                self.sets[i].rs.metadata.name()
            );
            let c = status::new_condition(
                PROGRESSING,
                true.into(),
                status::NEW_RS_CREATED,
                msg,
                self.now,
            );
            status::set_condition(&mut self.status, c);
        }
        Some(i)
    }

    /// The new ReplicaSet of the Deployment's template: named and labelled
    /// by the template's hash (bumped past names taken by other objects).
    fn new_replica_set_object(&self) -> Option<ReplicaSet> {
        let d = &self.d;
        let name = d.metadata.name();
        let (hash, rs_name) = (0..32u32).find_map(|n| {
            let hash = pod_template_hash(&d.spec.template, (n > 0).then_some(n));
            let rs_name = format!("{name}-{hash}");
            (!self.taken.contains(&rs_name)).then_some((hash, rs_name))
        })?;
        let mut template = d.spec.template.clone();
        template
            .metadata
            .labels
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector: LabelSelector = d.spec.selector.clone();
        selector.match_labels.insert(POD_TEMPLATE_HASH.into(), hash);
        let mut rs = ReplicaSet::default();
        rs.metadata.name = Some(rs_name);
        rs.metadata.namespace.clone_from(&d.metadata.namespace);
        rs.metadata.owner_references = vec![controller_reference(d)];
        rs.metadata.labels = template.metadata.labels.clone();
        rs.spec.replicas = Some(0);
        rs.spec.min_ready_seconds = d.spec.min_ready_seconds;
        rs.spec.selector = selector;
        rs.spec.template = template;
        Some(rs)
    }

    /// Kubernetes' `cleanupDeployment`: deletes the oldest old ReplicaSets
    /// beyond revisionHistoryLimit that have scaled to nothing.
    pub fn cleanup(&mut self, new: Option<usize>) {
        let Some(limit) = self
            .d
            .spec
            .revision_history_limit
            .filter(|l| *l != i32::MAX)
        else {
            return;
        };
        let mut olds = self.olds(new);
        let excess = olds
            .len()
            .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
        if excess == 0 {
            return;
        }
        olds.sort_by_key(|i| {
            let rs = &self.sets[*i].rs;
            (revision(&rs.metadata).unwrap_or(0), created_at(rs))
        });
        for i in olds.into_iter().take(excess) {
            let w = &self.sets[i];
            let status = w.rs.status.clone().unwrap_or_default();
            let observed = status.observed_generation.unwrap_or(0);
            if w.counts.replicas != 0
                || status.replicas != 0
                || w.rs.spec.replicas() != 0
                || w.rs.metadata.generation.unwrap_or(0) > observed
                || w.created
            {
                continue;
            }
            self.sets[i].deleted = true;
        }
    }

    /// The writes.
    fn finish(self) -> Plan {
        let mut plan = Plan {
            requeue_after: self.requeue_after,
            ..Plan::default()
        };
        for w in self.sets {
            if w.deleted {
                plan.delete.push(w.rs.metadata.name().to_owned());
            } else if w.created {
                plan.create.push(w.rs);
            } else if w.changed {
                let mut rs = w.rs;
                rs.status = None;
                plan.update.push(rs);
            }
        }
        if self.d.metadata.annotations != self.original.metadata.annotations {
            plan.annotations = Some(self.d.metadata.annotations);
        }
        if let Some(st) = self.final_status
            && self.original.status.as_ref() != Some(&st)
        {
            plan.status = Some(st);
        }
        plan
    }
}
