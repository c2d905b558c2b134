//! The job controller's decisions as one pure function of the Job, its
//! pods and the time: pods to create (with their indexes), pods to stop,
//! the status to write, whether the Job's time to live is over, and when
//! to look again. Kubernetes' order: a finished Job only waits for its TTL;
//! a suspended one stops its pods; failures (pod failure policy, backoff
//! limit, deadline) first mark `FailureTarget` and stop the pods, success
//! marks `SuccessCriteriaMet`; `Failed` / `Complete` follow once no pod
//! of the Job is still running.

use std::collections::BTreeSet;

use jotasu_api::kinds::batch::{CompletionMode, JobStatus, PodFailureAction};
use jotasu_api::kinds::pod::RestartPolicy;
use jotasu_api::{Condition, ConditionStatus, Job, Pod, Time};

use super::pods::{
    PodState, backoff_seconds, failure_action, finished_at, format_indexes, index_of,
    parse_indexes, ready, state,
};
use crate::runtime::status::set_condition;

/// Job condition types and reasons, as Kubernetes writes them.
pub mod conditions {
    /// The job succeeded (terminal).
    pub const COMPLETE: &str = "Complete";
    /// The job failed (terminal).
    pub const FAILED: &str = "Failed";
    /// The job will fail once its pods are gone.
    pub const FAILURE_TARGET: &str = "FailureTarget";
    /// The job will complete once its pods are gone.
    pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
    /// The job is suspended.
    pub const SUSPENDED: &str = "Suspended";
}

/// At most this many pods are created per reconcile (Kubernetes' burst).
pub const MAX_CREATE: usize = 500;

/// What one reconcile of a Job does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobPlan {
    /// Pods to create: the index of each (`None` for NonIndexed Jobs).
    pub create: Vec<Option<i32>>,
    /// Pods to delete, by name.
    pub delete: Vec<String>,
    /// The status to write.
    pub status: JobStatus,
    /// The Job's time to live is over: delete it (and its pods).
    pub expired: bool,
    /// Seconds until something is due (back-off, deadline, TTL).
    pub requeue_after: Option<i64>,
}

fn condition(type_: &str, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: ConditionStatus::True,
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        ..Condition::default()
    }
}

fn has(status: &JobStatus, type_: &str) -> Option<Condition> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == ConditionStatus::True)
        .cloned()
}

fn soonest(a: Option<i64>, b: i64) -> Option<i64> {
    Some(a.map_or(b, |a| a.min(b)).max(1))
}

fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Plans one reconcile of `job`, given the pods it controls and `now`
/// (seconds since the epoch).
pub fn plan_job(job: &Job, pods: &[&Pod], now: i64) -> JobPlan {
    let spec = &job.spec;
    let ttl = spec.ttl_seconds_after_finished.is_some();
    let stamp = Time::from_unix_seconds(now);
    let mut plan = JobPlan {
        status: job.status.clone().unwrap_or_default(),
        ..JobPlan::default()
    };
    let active: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| state(p) == PodState::Active)
        .collect();
    let terminating = pods
        .iter()
        .filter(|p| state(p) == PodState::Terminating)
        .count();

    // A finished Job waits for its time to live.
    if let Some(done) = job.finished() {
        plan.delete = active
            .iter()
            .map(|p| p.metadata.name().to_owned())
            .collect();
        if let Some(ttl) = spec.ttl_seconds_after_finished {
            let at = done
                .last_transition_time
                .as_ref()
                .and_then(Time::unix_seconds)
                .unwrap_or(now);
            let due = at + i64::from(ttl);
            if now >= due {
                plan.expired = true;
            } else {
                plan.requeue_after = Some(due - now);
            }
        }
        return plan;
    }

    // Count: successes (by index for Indexed Jobs), and failures the pod
    // failure policy does not ignore.
    let indexed = spec.completion_mode() == CompletionMode::Indexed;
    let completions = spec.completions;
    let mut succeeded_indexes = BTreeSet::new();
    let mut succeeded = 0usize;
    let mut failed = 0usize;
    let mut fail_job: Option<String> = None;
    let mut last_success = None;
    let mut failures: Vec<i64> = Vec::new();
    for pod in pods {
        match state(pod) {
            PodState::Succeeded => {
                if indexed {
                    // Each index counts once, and only below completions.
                    if let Some(i) = index_of(pod).filter(|i| completions.is_some_and(|c| *i < c))
                        && succeeded_indexes.insert(i)
                    {
                        succeeded += 1;
                    }
                } else {
                    succeeded += 1;
                }
                last_success = last_success.max(finished_at(pod));
            }
            PodState::Failed => match failure_action(spec.pod_failure_policy.as_ref(), pod) {
                Some((PodFailureAction::Ignore, _)) => {}
                Some((PodFailureAction::FailJob, message)) => {
                    failed += 1;
                    fail_job.get_or_insert(message);
                }
                Some((PodFailureAction::Count, _)) | None => {
                    failed += 1;
                    failures.push(finished_at(pod).unwrap_or(now));
                }
            },
            PodState::Active | PodState::Terminating => {}
        }
    }
    // What the status counted stays counted: pods the controller stopped
    // when it decided to fail, finished pods deleted since (Kubernetes
    // keeps them counted with a finalizer).
    let failed = count(failed).max(plan.status.failed);
    if indexed {
        let counted = plan
            .status
            .completed_indexes
            .as_deref()
            .map(parse_indexes)
            .unwrap_or_default();
        succeeded_indexes.extend(
            counted
                .into_iter()
                .filter(|i| completions.is_some_and(|c| *i < c)),
        );
        succeeded = succeeded_indexes.len();
    } else {
        succeeded = succeeded.max(usize::try_from(plan.status.succeeded).unwrap_or(0));
    }
    let st = &mut plan.status;
    st.succeeded = count(succeeded);
    st.failed = failed;
    st.active = count(active.len());
    st.ready = Some(count(active.iter().filter(|p| ready(p)).count()));
    st.terminating = Some(count(terminating));
    st.completed_indexes = indexed.then(|| format_indexes(&succeeded_indexes));

    // Suspended: stop the pods, clear the start time.
    if spec.suspended() {
        set_condition(
            &mut st.conditions,
            condition(conditions::SUSPENDED, "JobSuspended", "Job suspended"),
            &stamp,
        );
        st.start_time = None;
        plan.delete = active
            .iter()
            .map(|p| p.metadata.name().to_owned())
            .collect();
        return plan;
    }
    if has(st, conditions::SUSPENDED).is_some() {
        let mut resumed = condition(conditions::SUSPENDED, "JobResumed", "Job resumed");
        resumed.status = ConditionStatus::False;
        set_condition(&mut st.conditions, resumed, &stamp);
    }
    let start = match st.start_time.as_ref().and_then(Time::unix_seconds) {
        Some(t) => t,
        None => {
            st.start_time = Some(stamp.clone());
            now
        }
    };

    // Decide failure or success once; then wait for the pods to go.
    if has(st, conditions::FAILURE_TARGET).is_none()
        && has(st, conditions::SUCCESS_CRITERIA_MET).is_none()
    {
        let on_failure_restarts: i32 =
            if spec.template.spec.restart_policy == Some(RestartPolicy::OnFailure) {
                active
                    .iter()
                    .filter_map(|p| p.status.as_ref())
                    .flat_map(|s| {
                        s.container_statuses
                            .iter()
                            .chain(&s.init_container_statuses)
                    })
                    .map(|c| c.restart_count)
                    .sum()
            } else {
                0
            };
        let limit = spec.backoff_limit();
        let past_restarts = if limit == 0 {
            on_failure_restarts > 0
        } else {
            on_failure_restarts >= limit
        };
        let deadline = spec.active_deadline_seconds.map(|d| start + d);
        let failure = if let Some(message) = fail_job {
            Some(("PodFailurePolicy", message))
        } else if failed > limit || past_restarts {
            Some((
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit".to_owned(),
            ))
        } else if deadline.is_some_and(|d| now >= d) {
            Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline".to_owned(),
            ))
        } else {
            None
        };
        let success = match (indexed, completions) {
            (true, Some(c)) => count(succeeded_indexes.len()) >= c,
            (false, Some(c)) => count(succeeded) >= c,
            // A work queue: done when one pod succeeded and none runs.
            (_, None) => succeeded > 0 && active.is_empty(),
        };
        if let Some((reason, message)) = failure {
            set_condition(
                &mut st.conditions,
                condition(conditions::FAILURE_TARGET, reason, &message),
                &stamp,
            );
            // The stopped pods count as failed, as Kubernetes counts them.
            st.failed = failed.saturating_add(count(active.len()));
        } else if success {
            set_condition(
                &mut st.conditions,
                condition(
                    conditions::SUCCESS_CRITERIA_MET,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                ),
                &stamp,
            );
        } else if let Some(d) = deadline {
            plan.requeue_after = soonest(plan.requeue_after, d - now);
        }
    }
    if let Some(target) = has(st, conditions::FAILURE_TARGET) {
        plan.delete = active
            .iter()
            .map(|p| p.metadata.name().to_owned())
            .collect();
        if active.is_empty() && terminating == 0 {
            let reason = target.reason.clone().unwrap_or_default();
            let message = target.message.clone().unwrap_or_default();
            set_condition(
                &mut st.conditions,
                condition(conditions::FAILED, &reason, &message),
                &stamp,
            );
        }
        st.active = 0;
        return finish_ttl(plan, ttl);
    }
    if has(st, conditions::SUCCESS_CRITERIA_MET).is_some() {
        plan.delete = active
            .iter()
            .map(|p| p.metadata.name().to_owned())
            .collect();
        if active.is_empty() && terminating == 0 {
            set_condition(
                &mut st.conditions,
                condition(
                    conditions::COMPLETE,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                ),
                &stamp,
            );
            st.completion_time = Some(stamp.clone());
        }
        return finish_ttl(plan, ttl);
    }

    // Create pods up to parallelism, after the back-off of recent failures.
    let failures_since_success = failures
        .iter()
        .filter(|t| last_success.is_none_or(|s| **t > s))
        .count();
    let last_failure = failures.iter().copied().max();
    let delay = backoff_seconds(u32::try_from(failures_since_success).unwrap_or(u32::MAX));
    if let Some(at) = last_failure
        && now < at + delay
    {
        plan.requeue_after = soonest(plan.requeue_after, at + delay - now);
        return plan;
    }
    let parallelism = usize::try_from(spec.parallelism().max(0)).unwrap_or(0);
    let running = active.len() + terminating;
    let wanted = match (indexed, completions) {
        (_, None) if succeeded > 0 => 0,
        (_, None) => parallelism,
        (false, Some(c)) => {
            let remaining = usize::try_from(c).unwrap_or(0).saturating_sub(succeeded);
            parallelism.min(remaining)
        }
        (true, Some(c)) => {
            let busy: BTreeSet<i32> = active.iter().filter_map(|p| index_of(p)).collect();
            let free: Vec<i32> = (0..c)
                .filter(|i| !succeeded_indexes.contains(i) && !busy.contains(i))
                .collect();
            let room = parallelism.saturating_sub(running).min(MAX_CREATE);
            plan.create = free.into_iter().take(room).map(Some).collect();
            return plan;
        }
    };
    if active.len() > wanted {
        // Parallelism lowered: stop the newest surplus pods.
        let mut newest: Vec<&Pod> = active.clone();
        newest.sort_by(|a, b| {
            b.metadata
                .creation_timestamp
                .cmp(&a.metadata.creation_timestamp)
        });
        plan.delete = newest[..active.len() - wanted]
            .iter()
            .map(|p| p.metadata.name().to_owned())
            .collect();
        return plan;
    }
    let room = wanted.saturating_sub(running).min(MAX_CREATE);
    plan.create = vec![None; room];
    plan
}

/// A Job that has just finished: with a time to live, look again at once
/// (the finished branch schedules its deletion).
fn finish_ttl(mut plan: JobPlan, ttl: bool) -> JobPlan {
    let finished = has(&plan.status, conditions::COMPLETE)
        .or_else(|| has(&plan.status, conditions::FAILED))
        .is_some();
    if finished && ttl {
        // Look again at once: the finished branch schedules the TTL.
        plan.requeue_after = Some(1);
    }
    plan
}
