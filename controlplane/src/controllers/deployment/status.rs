//! A Deployment's status: replica counts summed over its ReplicaSets, the
//! `Available` condition (minimum availability), and the `Progressing`
//! condition that tracks a rollout — created / found / updated / complete,
//! paused / resumed, and timed out after progressDeadlineSeconds without
//! progress (`syncRolloutStatus` and friends in kube-controller-manager).

use jotasu_api::kinds::workloads::DeploymentStatus;
use jotasu_api::{Condition, ConditionStatus, Deployment, Time};

use super::plan::Sync;
use super::rollout::max_unavailable;
use crate::controllers::replicaset::plan::REPLICA_FAILURE;

/// The `Available` condition type.
pub const AVAILABLE: &str = "Available";
/// The `Progressing` condition type.
pub const PROGRESSING: &str = "Progressing";
/// Available: enough pods are available.
pub const MIN_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
/// Available: too few pods are available.
pub const MIN_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
/// Progressing: the new ReplicaSet was created.
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
/// Progressing: the new ReplicaSet was found (first look at a rollout).
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
/// Progressing: the rollout made progress.
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
/// Progressing: the rollout is complete.
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
/// Progressing (False): no progress within the deadline.
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
/// Progressing (Unknown): paused.
pub const PAUSED: &str = "DeploymentPaused";
/// Progressing (Unknown): resumed.
pub const RESUMED: &str = "DeploymentResumed";

/// A condition that changed at `now`.
pub fn new_condition(
    type_: &str,
    status: ConditionStatus,
    reason: &str,
    message: impl Into<String>,
    now: i64,
) -> Condition {
    let t = Time::from_unix_seconds(now);
    Condition {
        type_: type_.into(),
        status,
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_transition_time: Some(t.clone()),
        last_update_time: Some(t),
        ..Condition::default()
    }
}

/// The condition of `type_`.
pub fn get_condition<'a>(status: &'a DeploymentStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// Kubernetes' `SetDeploymentCondition`: nothing if status and reason are
/// unchanged; the transition time kept if the status is.
pub fn set_condition(status: &mut DeploymentStatus, mut c: Condition) {
    if let Some(old) = get_condition(status, &c.type_) {
        if old.status == c.status && old.reason == c.reason {
            return;
        }
        if old.status == c.status {
            c.last_transition_time.clone_from(&old.last_transition_time);
        }
    }
    remove_condition(status, &c.type_);
    status.conditions.push(c);
}

/// Removes the condition of `type_`.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    status.conditions.retain(|c| c.type_ != type_);
}

/// Whether the Deployment has a progress deadline.
pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .progress_deadline_seconds
        .is_some_and(|s| s != i32::MAX)
}

/// `DeploymentComplete`: every replica updated and available, and the
/// latest generation observed.
pub fn deployment_complete(d: &Deployment, status: &DeploymentStatus) -> bool {
    let r = d.spec.replicas();
    status.updated_replicas == r
        && status.replicas == r
        && status.available_replicas == r
        && status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// `DeploymentProgressing`: more updated, ready or available pods, or
/// fewer old ones, than the stored status says.
fn progressing(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    let old_olds = old.replicas - old.updated_replicas;
    let new_olds = new.replicas - new.updated_replicas;
    new.updated_replicas > old.updated_replicas
        || new_olds < old_olds
        || new.ready_replicas > old.ready_replicas
        || new.available_replicas > old.available_replicas
}

fn deadline(d: &Deployment) -> i64 {
    i64::from(d.spec.progress_deadline_seconds.unwrap_or(0))
}

fn last_update(c: &Condition) -> i64 {
    c.last_update_time
        .as_ref()
        .or(c.last_transition_time.as_ref())
        .and_then(Time::unix_seconds)
        .unwrap_or(0)
}

/// `DeploymentTimedOut`.
fn timed_out(d: &Deployment, status: &DeploymentStatus, now: i64) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    match get_condition(status, PROGRESSING) {
        None => false,
        Some(c) if c.reason.as_deref() == Some(NEW_RS_AVAILABLE) => false,
        Some(c) if c.reason.as_deref() == Some(TIMED_OUT) => true,
        Some(c) => last_update(c) + deadline(d) < now,
    }
}

impl Sync<'_> {
    /// `calculateStatus`: counts over the live ReplicaSets, and Available.
    pub fn calculate_status(&self, new: Option<usize>) -> DeploymentStatus {
        let live = self.live();
        let sum = |f: &dyn Fn(usize) -> i32| live.iter().map(|i| f(*i)).sum::<i32>();
        let available = sum(&|i| self.sets[i].counts.available);
        let mut status = DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: sum(&|i| self.sets[i].counts.replicas),
            updated_replicas: new.map_or(0, |i| self.sets[i].counts.replicas),
            ready_replicas: sum(&|i| self.sets[i].counts.ready),
            available_replicas: available,
            unavailable_replicas: (self.total_spec(&live) - available).max(0),
            conditions: self.status.conditions.clone(),
        };
        let c = if available >= self.replicas() - max_unavailable(&self.d) {
            new_condition(
                AVAILABLE,
                ConditionStatus::True,
                MIN_REPLICAS_AVAILABLE,
                "Deployment has minimum availability.",
                self.now,
            )
        } else {
            new_condition(
                AVAILABLE,
                ConditionStatus::False,
                MIN_REPLICAS_UNAVAILABLE,
                "Deployment does not have minimum availability.",
                self.now,
            )
        };
        set_condition(&mut status, c);
        status
    }

    /// `syncDeploymentStatus` (scaling, paused): counts and Available only.
    pub fn sync_deployment_status(&mut self, new: Option<usize>) {
        self.final_status = Some(self.calculate_status(new));
        self.requeue_after = self.next_available_in();
    }

    /// `syncRolloutStatus`: counts, Available, Progressing and ReplicaFailure.
    pub fn sync_rollout_status(&mut self, new: Option<usize>) {
        let mut st = self.calculate_status(new);
        let d = &self.d;
        let has_deadline = has_progress_deadline(d);
        if !has_deadline {
            remove_condition(&mut st, PROGRESSING);
        }
        let current = get_condition(&self.status, PROGRESSING).cloned();
        let complete_already = st.replicas == st.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
        let rs_name = new.map(|i| self.sets[i].rs.metadata.name().to_owned());
        let subject = |what: &str| match &rs_name {
            Some(n) => format!("ReplicaSet \"{n}\" {what}"),
            None => format!("Deployment \"{}\" {what}", d.metadata.name()),
        };
        if has_deadline && !complete_already {
            if deployment_complete(d, &st) {
                let msg = subject("has successfully progressed.");
                let c = new_condition(
                    PROGRESSING,
                    ConditionStatus::True,
                    NEW_RS_AVAILABLE,
                    msg,
                    self.now,
                );
                set_condition(&mut st, c);
            } else if progressing(&self.status, &st) {
                let msg = subject("is progressing.");
                let mut c = new_condition(
                    PROGRESSING,
                    ConditionStatus::True,
                    RS_UPDATED,
                    msg,
                    self.now,
                );
                if let Some(cur) = current
                    .as_ref()
                    .filter(|c| c.status == ConditionStatus::True)
                {
                    c.last_transition_time.clone_from(&cur.last_transition_time);
                }
                remove_condition(&mut st, PROGRESSING);
                set_condition(&mut st, c);
            } else if timed_out(d, &st, self.now) {
                let msg = subject("has timed out progressing.");
                let c = new_condition(
                    PROGRESSING,
                    ConditionStatus::False,
                    TIMED_OUT,
                    msg,
                    self.now,
                );
                set_condition(&mut st, c);
            }
        }
        match self.replica_failure(new) {
            Some(c) => set_condition(&mut st, c),
            None => remove_condition(&mut st, REPLICA_FAILURE),
        }
        let stuck = self.requeue_stuck(current.as_ref(), &st);
        self.requeue_after = match (stuck, self.next_available_in()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.final_status = Some(st);
    }

    /// `getReplicaFailures`: the new ReplicaSet's ReplicaFailure, else an old one's.
    fn replica_failure(&self, new: Option<usize>) -> Option<Condition> {
        let failure = |i: usize| {
            let status = self.sets[i].rs.status.as_ref()?;
            let c = status
                .conditions
                .iter()
                .find(|c| c.type_ == REPLICA_FAILURE)?;
            Some(Condition {
                last_update_time: c.last_transition_time.clone(),
                ..c.clone()
            })
        };
        new.and_then(failure)
            .or_else(|| self.live().into_iter().find_map(failure))
    }

    /// `requeueStuckDeployment`: when to check the progress deadline again.
    fn requeue_stuck(&self, current: Option<&Condition>, st: &DeploymentStatus) -> Option<i64> {
        let current = current?;
        if !has_progress_deadline(&self.d)
            || deployment_complete(&self.d, st)
            || current.reason.as_deref() == Some(TIMED_OUT)
        {
            return None;
        }
        let after = last_update(current) + deadline(&self.d) - self.now;
        Some(if after < 1 { 1 } else { after + 1 })
    }

    /// Seconds until the next ready pod becomes available.
    fn next_available_in(&self) -> Option<i64> {
        self.live()
            .into_iter()
            .filter_map(|i| self.sets[i].counts.next_available_at)
            .map(|t| (t - self.now).max(1))
            .min()
    }

    /// `checkPausedConditions`: Progressing Unknown while paused, and on resume.
    pub fn check_paused_conditions(&mut self) {
        if !has_progress_deadline(&self.d) {
            return;
        }
        let cond = get_condition(&self.status, PROGRESSING);
        if cond.is_some_and(|c| c.reason.as_deref() == Some(TIMED_OUT)) {
            return;
        }
        let paused_cond = cond.is_some_and(|c| c.reason.as_deref() == Some(PAUSED));
        let c = if self.d.spec.paused && !paused_cond {
            new_condition(
                PROGRESSING,
                ConditionStatus::Unknown,
                PAUSED,
                "Deployment is paused",
                self.now,
            )
        } else if !self.d.spec.paused && paused_cond {
            new_condition(
                PROGRESSING,
                ConditionStatus::Unknown,
                RESUMED,
                "Deployment is resumed",
                self.now,
            )
        } else {
            return;
        };
        set_condition(&mut self.status, c);
    }
}
