//! The cronjob controller's decisions as one pure function of the
//! CronJob, the Jobs it owns, the time and the zone (Kubernetes'
//! `syncCronJob`): the run due now, if any (the most recent scheduled time
//! not yet run, unless it is past `startingDeadlineSeconds`), what the
//! concurrency policy makes of it, the finished Jobs past the history
//! limits, the status, and when the next run is due.

use jiff::tz::TimeZone;
use jotasu_api::kinds::batch::{
    ConcurrencyPolicy, CronJob, CronJobStatus, Job, SCHEDULED_TIMESTAMP_ANNOTATION,
};
use jotasu_api::meta::ObjectReference;
use jotasu_api::{ObjectMeta, Resource, Time};

use crate::runtime::controller_reference;

/// Kubernetes gives up counting missed runs past this many (and starts
/// the most recent one).
pub const MAX_MISSED: usize = 100;

/// What one reconcile of a CronJob does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CronPlan {
    /// The Job to create (the run due now).
    pub create: Option<Job>,
    /// Jobs to delete (with their pods): replaced runs, history past the limits.
    pub delete: Vec<String>,
    /// The status to write.
    pub status: CronJobStatus,
    /// Seconds until the next scheduled time.
    pub requeue_after: Option<i64>,
    /// Why nothing ran, for the log (`Forbid`, past the starting deadline, …).
    pub skipped: Option<String>,
}

/// The name of the Job for a scheduled time: `<cronjob>-<minutes since the epoch>`.
pub fn job_name(cron_job: &str, scheduled: i64) -> String {
    format!("{cron_job}-{}", scheduled.div_euclid(60))
}

/// The Job a CronJob creates for `scheduled` (also `create job --from`).
pub fn job_from_template(cj: &CronJob, name: String, scheduled: Option<i64>) -> Job {
    let template = &cj.spec.job_template;
    let mut annotations = template.metadata.annotations.clone();
    if let Some(t) = scheduled {
        annotations.insert(
            SCHEDULED_TIMESTAMP_ANNOTATION.to_owned(),
            Time::from_unix_seconds(t).0,
        );
    }
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: cj.metadata.namespace.clone(),
            labels: template.metadata.labels.clone(),
            annotations,
            owner_references: vec![controller_reference(cj)],
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        ..Job::default()
    }
}

fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        kind: Some(Job::KIND.to_owned()),
        namespace: job.metadata.namespace.clone(),
        name: job.metadata.name.clone(),
        uid: job.metadata.uid.clone(),
        api_version: Some(Job::API_VERSION.to_owned()),
        ..ObjectReference::default()
    }
}

/// The most recent time the schedule names in (`earliest`, `now`], and
/// how many it names there. Only the most recent run matters: past
/// [`MAX_MISSED`] the count stops being exact and the search skips to the
/// last hour (five fields name at most 60 times an hour); `@every` is
/// computed directly.
pub fn most_recent(
    schedule: &jotasu_api::cron::Schedule,
    zone: &TimeZone,
    earliest: i64,
    now: i64,
) -> (Option<i64>, usize) {
    if let Some(step) = schedule.interval() {
        if now < earliest.saturating_add(step) {
            return (None, 0);
        }
        let n = (now - earliest) / step;
        return (
            Some(earliest + n * step),
            usize::try_from(n).unwrap_or(usize::MAX),
        );
    }
    let mut t = earliest;
    let (mut last, mut missed) = (None, 0);
    while let Some(next) = schedule.next_after(t, zone) {
        if next > now {
            break;
        }
        last = Some(next);
        missed += 1;
        t = next;
        if missed == MAX_MISSED && t < now - 3600 {
            t = now - 3600;
        }
    }
    (last, missed)
}

/// Plans one reconcile of `cj` given the Jobs it controls, `now` and the
/// zone its schedule is read in.
pub fn plan_cron_job(cj: &CronJob, jobs: &[&Job], now: i64, zone: &TimeZone) -> CronPlan {
    let spec = &cj.spec;
    let mut plan = CronPlan {
        status: cj.status.clone().unwrap_or_default(),
        ..CronPlan::default()
    };
    let (finished, running): (Vec<&Job>, Vec<&Job>) =
        jobs.iter().partition(|j| j.finished().is_some());
    plan.status.active = running.iter().map(|j| reference(j)).collect();
    let last_success = finished
        .iter()
        .filter(|j| j.condition_true("Complete").is_some())
        .filter_map(|j| j.status.as_ref()?.completion_time.clone())
        .max();
    if last_success > plan.status.last_successful_time {
        plan.status.last_successful_time = last_success;
    }
    plan.delete = history_to_delete(cj, &finished);

    if spec.suspended() || cj.metadata.deletion_timestamp.is_some() {
        return plan;
    }
    let Ok(schedule) = jotasu_api::cron::parse(&spec.schedule) else {
        plan.skipped = Some(format!("unparseable schedule {:?}", spec.schedule));
        return plan;
    };
    let next = schedule.next_after(now, zone);
    plan.requeue_after = next.map(|n| (n - now).max(1));
    let created = cj
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(Time::unix_seconds)
        .unwrap_or(now);
    let mut earliest = plan
        .status
        .last_schedule_time
        .as_ref()
        .and_then(Time::unix_seconds)
        .unwrap_or(created);
    if let Some(deadline) = spec.starting_deadline_seconds {
        earliest = earliest.max(now - deadline);
    }
    let (Some(scheduled), _) = most_recent(&schedule, zone, earliest, now) else {
        return plan;
    };
    if let Some(deadline) = spec.starting_deadline_seconds
        && scheduled + deadline < now
    {
        plan.skipped = Some("missed its starting deadline".to_owned());
        return plan;
    }
    let name = job_name(cj.metadata.name(), scheduled);
    if jobs.iter().any(|j| j.metadata.name() == name) {
        // Already run (the status update may not have landed yet).
        return plan;
    }
    match spec.concurrency_policy() {
        ConcurrencyPolicy::Forbid if !running.is_empty() => {
            plan.skipped = Some("Forbid: the previous run is still active".to_owned());
            return plan;
        }
        ConcurrencyPolicy::Replace => {
            plan.delete
                .extend(running.iter().map(|j| j.metadata.name().to_owned()));
            plan.status.active.clear();
        }
        ConcurrencyPolicy::Allow | ConcurrencyPolicy::Forbid => {}
    }
    let job = job_from_template(cj, name, Some(scheduled));
    plan.status.active.push(reference(&job));
    plan.status.last_schedule_time = Some(Time::from_unix_seconds(scheduled));
    plan.create = Some(job);
    plan
}

/// Finished Jobs past the history limits, oldest first.
fn history_to_delete(cj: &CronJob, finished: &[&Job]) -> Vec<String> {
    let mut out = Vec::new();
    for (complete, limit) in [
        (true, cj.spec.successful_jobs_history_limit.unwrap_or(3)),
        (false, cj.spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let mut these: Vec<&Job> = finished
            .iter()
            .copied()
            .filter(|j| j.condition_true("Complete").is_some() == complete)
            .collect();
        these.sort_by(|a, b| {
            let start = |j: &Job| {
                j.status
                    .as_ref()
                    .and_then(|s| s.start_time.clone())
                    .or_else(|| j.metadata.creation_timestamp.clone())
            };
            start(a).cmp(&start(b))
        });
        let limit = usize::try_from(limit.max(0)).unwrap_or(0);
        let surplus = these.len().saturating_sub(limit);
        out.extend(
            these[..surplus]
                .iter()
                .map(|j| j.metadata.name().to_owned()),
        );
    }
    out
}
