//! Job and CronJob (`batch/v1`): pods that run to completion, once or on a
//! schedule. The job controller keeps `parallelism` pods running until
//! `completions` succeed (or the job fails); the cronjob controller creates
//! Jobs from a template at the times a cron schedule names.

use serde::{Deserialize, Serialize};

use crate::kinds::pod::PodTemplateSpec;
use crate::meta::{Condition, ObjectMeta, ObjectReference, Time};
use crate::resource::{ApiVersionTag, KindTag, resource};
use crate::selector::LabelSelector;

/// The label Kubernetes' generated selector matches: the Job's uid.
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The label carrying the Job's name on its pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
/// The legacy form of [`CONTROLLER_UID_LABEL`], still written.
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
/// The legacy form of [`JOB_NAME_LABEL`], still written.
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";
/// The annotation (and label) giving an Indexed Job's pod its index.
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable giving an Indexed Job's container its index.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// On a Job created by hand from a CronJob (`create job --from=cronjob/x`).
pub const INSTANTIATE_ANNOTATION: &str = "cronjob.kubernetes.io/instantiate";
/// On a Job a CronJob created: the time it was scheduled for (RFC 3339).
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Kubernetes' default `backoffLimit`.
pub const DEFAULT_BACKOFF_LIMIT: i32 = 6;
/// The largest parallelism of an Indexed Job.
pub const MAX_PARALLELISM_INDEXED: i32 = 100_000;
/// The largest completions of an Indexed Job.
pub const MAX_COMPLETIONS_INDEXED: i32 = 100_000;
/// The longest CronJob name (its Jobs get an 11-character suffix).
pub const MAX_CRONJOB_NAME: usize = 52;

pub(crate) use super::batch_server::{default_cron_job, default_job};
pub use super::batch_server::{generate_selector, immutable_changes, keep_generated_selector};

/// Runs pods until a number of them succeed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Job {
    /// Always `batch/v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<Job>,
    /// Always `Job`.
    #[serde(default)]
    pub kind: KindTag<Job>,
    /// Name, namespace, labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: JobSpec,
    /// Observed state, written by the job controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
}
resource!(Job, "batch/v1", "Job", namespaced = true);

/// Desired state of a Job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobSpec {
    /// Pods running at once at most (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i32>,
    /// Successful pods needed (default 1 when parallelism is unset too;
    /// unset: a work queue, done when one pod succeeds and none runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completions: Option<i32>,
    /// Seconds from the job's start after which its pods are stopped and it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    /// Failed pods tolerated before the job fails (default 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    /// `NonIndexed` (default) or `Indexed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_mode: Option<String>,
    /// When true, `selector` is the user's; else Kubernetes generates it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_selector: Option<bool>,
    /// Which pods belong to the Job (generated from its uid by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// The pods to run.
    #[serde(default)]
    pub template: PodTemplateSpec,
    /// Seconds after the job finishes before it (and its pods) are deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds_after_finished: Option<i32>,
    /// While true, no pods run (running ones are stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// What a failed pod's exit codes or conditions mean for the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_failure_policy: Option<PodFailurePolicy>,
}

/// How a Job's completions are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionMode {
    /// Any `completions` successful pods.
    NonIndexed,
    /// One successful pod per index 0…completions−1.
    Indexed,
}

impl JobSpec {
    /// Pods at once, defaulted.
    pub fn parallelism(&self) -> i32 {
        self.parallelism.unwrap_or(1)
    }

    /// Failed pods tolerated, defaulted.
    pub fn backoff_limit(&self) -> i32 {
        self.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT)
    }

    /// The completion mode, defaulted.
    pub fn completion_mode(&self) -> CompletionMode {
        match self.completion_mode.as_deref() {
            Some("Indexed") => CompletionMode::Indexed,
            _ => CompletionMode::NonIndexed,
        }
    }

    /// Whether the job is suspended.
    pub fn suspended(&self) -> bool {
        self.suspend.unwrap_or(false)
    }
}

/// Rules for failed pods, checked in order; the first that matches decides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodFailurePolicy {
    /// The rules (at most 20).
    #[serde(default)]
    pub rules: Vec<PodFailurePolicyRule>,
}

/// One rule: an action for failed pods matching exit codes or conditions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodFailurePolicyRule {
    /// `FailJob`, `Ignore` or `Count` (`FailIndex` needs backoffLimitPerIndex).
    #[serde(default)]
    pub action: String,
    /// Matches the exit codes of the pod's containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exit_codes: Option<PodFailurePolicyOnExitCodes>,
    /// Matches the pod's conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_pod_conditions: Vec<PodFailurePolicyOnPodCondition>,
}

/// What a rule does to the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodFailureAction {
    /// The job fails at once, its pods are stopped.
    FailJob,
    /// The failure is not counted against backoffLimit; the pod is replaced.
    Ignore,
    /// The failure counts as usual.
    Count,
}

impl PodFailurePolicyRule {
    /// The action, if it is one jotasu knows.
    pub fn action(&self) -> Option<PodFailureAction> {
        match self.action.as_str() {
            "FailJob" => Some(PodFailureAction::FailJob),
            "Ignore" => Some(PodFailureAction::Ignore),
            "Count" => Some(PodFailureAction::Count),
            _ => None,
        }
    }
}

/// Exit codes a rule matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodFailurePolicyOnExitCodes {
    /// Only this container's exit code (default: any container's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// `In` or `NotIn`.
    #[serde(default)]
    pub operator: String,
    /// The codes (distinct, ascending, at most 255; 0 only with NotIn).
    #[serde(default)]
    pub values: Vec<i32>,
}

impl PodFailurePolicyOnExitCodes {
    /// Whether `code` satisfies the requirement.
    pub fn matches(&self, code: i32) -> bool {
        match self.operator.as_str() {
            "In" => self.values.contains(&code),
            "NotIn" => !self.values.contains(&code),
            _ => false,
        }
    }
}

/// A pod condition a rule matches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodFailurePolicyOnPodCondition {
    /// The condition type, e.g. `DisruptionTarget`.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// `True` (default), `False` or `Unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// Observed state of a Job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobStatus {
    /// `Complete`, `Failed`, `SuccessCriteriaMet`, `FailureTarget`, `Suspended`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the controller first ran the job (reset while suspended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    /// When the job completed (only on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<Time>,
    /// Pods pending or running.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub active: i32,
    /// Pods that succeeded.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub succeeded: i32,
    /// Pods that failed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: i32,
    /// Pods being deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminating: Option<i32>,
    /// Active pods that are Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<i32>,
    /// Indexed Jobs: the indexes that succeeded, as `1,3-5,7`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_indexes: Option<String>,
    /// Indexed Jobs with backoffLimitPerIndex (not implemented; never written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_indexes: Option<String>,
    /// Pods finished but not yet counted (Kubernetes' finalizer tracking;
    /// jotasu counts in one write and never writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncounted_terminated_pods: Option<UncountedTerminatedPods>,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(v: &i32) -> bool {
    *v == 0
}

/// Pod uids finished but not yet counted in a Job's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UncountedTerminatedPods {
    /// Succeeded pods' uids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub succeeded: Vec<String>,
    /// Failed pods' uids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
}

impl Job {
    /// The condition of `type_` if it is True.
    pub fn condition_true(&self, type_: &str) -> Option<&Condition> {
        self.status.as_ref().and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == type_ && c.status == crate::meta::ConditionStatus::True)
        })
    }

    /// `Complete` or `Failed` if the job has finished.
    pub fn finished(&self) -> Option<&Condition> {
        self.condition_true("Complete")
            .or_else(|| self.condition_true("Failed"))
    }
}

/// Creates Jobs on a schedule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronJob {
    /// Always `batch/v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<CronJob>,
    /// Always `CronJob`.
    #[serde(default)]
    pub kind: KindTag<CronJob>,
    /// Name (at most 52 characters), namespace, labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Desired state.
    #[serde(default)]
    pub spec: CronJobSpec,
    /// Observed state, written by the cronjob controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CronJobStatus>,
}
resource!(CronJob, "batch/v1", "CronJob", namespaced = true);

/// Desired state of a CronJob.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronJobSpec {
    /// Cron syntax: five fields or a macro (`@hourly`).
    #[serde(default)]
    pub schedule: String,
    /// The IANA zone the schedule is read in (default: the control plane's UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Seconds after a missed time within which the job still starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline_seconds: Option<i64>,
    /// `Allow` (default), `Forbid` or `Replace`: what a run does while the previous runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<String>,
    /// While true, no new runs start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
    /// The Job to create.
    #[serde(default)]
    pub job_template: JobTemplateSpec,
    /// Finished successful Jobs kept (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_jobs_history_limit: Option<i32>,
    /// Finished failed Jobs kept (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_jobs_history_limit: Option<i32>,
}

/// What a CronJob does when a run is due while an earlier one is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConcurrencyPolicy {
    /// Start it anyway.
    Allow,
    /// Skip it.
    Forbid,
    /// Delete the running ones, then start it.
    Replace,
}

impl CronJobSpec {
    /// The concurrency policy, defaulted.
    pub fn concurrency_policy(&self) -> ConcurrencyPolicy {
        match self.concurrency_policy.as_deref() {
            Some("Forbid") => ConcurrencyPolicy::Forbid,
            Some("Replace") => ConcurrencyPolicy::Replace,
            _ => ConcurrencyPolicy::Allow,
        }
    }

    /// Whether the CronJob is suspended.
    pub fn suspended(&self) -> bool {
        self.suspend.unwrap_or(false)
    }
}

/// The Job a CronJob creates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobTemplateSpec {
    /// Labels and annotations of the Jobs (boxed: a CronJob would
    /// otherwise be the largest object by far).
    #[serde(default)]
    pub metadata: Box<ObjectMeta>,
    /// The Jobs' spec.
    #[serde(default)]
    pub spec: JobSpec,
}

/// Observed state of a CronJob.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CronJobStatus {
    /// The Jobs running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub active: Vec<ObjectReference>,
    /// When a Job was last scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When a Job last completed successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<Time>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_requirements() {
        let r = PodFailurePolicyOnExitCodes {
            container_name: None,
            operator: "In".into(),
            values: vec![1, 42],
        };
        assert!(r.matches(42));
        assert!(!r.matches(0));
        let n = PodFailurePolicyOnExitCodes {
            operator: "NotIn".into(),
            ..r
        };
        assert!(!n.matches(42));
        assert!(n.matches(3));
    }
}
