//! The cronjob controller's decisions, without I/O.

use jiff::tz::TimeZone;
use jotasu_api::kinds::batch::{CronJob, Job, JobStatus, SCHEDULED_TIMESTAMP_ANNOTATION};
use jotasu_api::{Condition, ConditionStatus, Object, Time};

use super::plan::{MAX_MISSED, job_name, most_recent, plan_cron_job};

/// 2026-12-07T17:00:00Z.
const T0: i64 = 1_796_662_800;

fn cron_job(spec: serde_json::Value) -> CronJob {
    let mut spec = spec;
    spec["jobTemplate"] = serde_json::json!({"metadata": {"labels": {"run": "nightly"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}}}});
    let v = serde_json::json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "default", "uid": "cj1",
            "creationTimestamp": Time::from_unix_seconds(T0).0}, "spec": spec});
    let mut o = Object::from_value(v).expect("a cronjob");
    o.apply_defaults();
    CronJob::try_from(o).expect("a cronjob")
}

fn finished(cj: &CronJob, at: i64, ok: bool) -> Job {
    let mut j = super::plan::job_from_template(cj, job_name("nightly", at), Some(at));
    j.status = Some(JobStatus {
        start_time: Some(Time::from_unix_seconds(at)),
        completion_time: ok.then(|| Time::from_unix_seconds(at + 10)),
        conditions: vec![Condition {
            type_: if ok { "Complete" } else { "Failed" }.into(),
            status: ConditionStatus::True,
            ..Condition::default()
        }],
        ..JobStatus::default()
    });
    j
}

fn running(cj: &CronJob, at: i64) -> Job {
    super::plan::job_from_template(cj, job_name("nightly", at), Some(at))
}

#[test]
fn runs_the_most_recent_missed_time_once() {
    let cj = cron_job(serde_json::json!({"schedule": "*/1 * * * *"}));
    let p = plan_cron_job(&cj, &[], T0 + 30, &TimeZone::UTC);
    assert!(p.create.is_none(), "nothing due in the first minute");
    assert_eq!(p.requeue_after, Some(30));

    let p = plan_cron_job(&cj, &[], T0 + 185, &TimeZone::UTC);
    let job = p.create.expect("a run");
    assert_eq!(job.metadata.name(), job_name("nightly", T0 + 180));
    assert_eq!(
        job.metadata.annotations[SCHEDULED_TIMESTAMP_ANNOTATION],
        Time::from_unix_seconds(T0 + 180).0
    );
    assert_eq!(job.metadata.labels["run"], "nightly");
    let owner = job.metadata.controller_ref().expect("owned");
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("CronJob", "cj1")
    );
    assert_eq!(
        p.status.last_schedule_time,
        Some(Time::from_unix_seconds(T0 + 180))
    );
    assert_eq!(p.status.active.len(), 1);

    // The job exists, the status lags: not created twice.
    let j = running(&cj, T0 + 180);
    let p = plan_cron_job(&cj, &[&j], T0 + 186, &TimeZone::UTC);
    assert!(p.create.is_none());
}

#[test]
fn forbid_skips_and_replace_replaces() {
    let forbid = cron_job(serde_json::json!({"schedule": "*/1 * * * *",
        "concurrencyPolicy": "Forbid"}));
    let old = running(&forbid, T0 + 60);
    let p = plan_cron_job(&forbid, &[&old], T0 + 125, &TimeZone::UTC);
    assert!(p.create.is_none(), "{p:?}");
    assert!(p.skipped.is_some());
    let allow = cron_job(serde_json::json!({"schedule": "*/1 * * * *"}));
    let p = plan_cron_job(&allow, &[&old], T0 + 125, &TimeZone::UTC);
    assert!(p.create.is_some());
    assert!(p.delete.is_empty());
    let replace = cron_job(serde_json::json!({"schedule": "*/1 * * * *",
        "concurrencyPolicy": "Replace"}));
    let p = plan_cron_job(&replace, &[&old], T0 + 125, &TimeZone::UTC);
    assert!(p.create.is_some());
    assert_eq!(p.delete, vec![old.metadata.name().to_owned()]);
}

#[test]
fn starting_deadline_suspend_and_zones() {
    let late = cron_job(serde_json::json!({"schedule": "0 * * * *",
        "startingDeadlineSeconds": 60}));
    let p = plan_cron_job(&late, &[], T0 + 3600 + 120, &TimeZone::UTC);
    assert!(p.create.is_none(), "two minutes late, the deadline is one");
    let p = plan_cron_job(&late, &[], T0 + 3600 + 30, &TimeZone::UTC);
    assert!(p.create.is_some());

    let suspended = cron_job(serde_json::json!({"schedule": "*/1 * * * *", "suspend": true}));
    assert!(
        plan_cron_job(&suspended, &[], T0 + 600, &TimeZone::UTC)
            .create
            .is_none()
    );

    // 18:00 in Berlin is 17:00 UTC (T0) in December.
    let berlin = jotasu_api::cron::zone_of("Europe/Berlin").expect("the zone database");
    let mut cj = cron_job(serde_json::json!({"schedule": "0 18 * * *"}));
    cj.metadata.creation_timestamp = Some(Time::from_unix_seconds(T0 - 60));
    let p = plan_cron_job(&cj, &[], T0 + 5, &berlin);
    assert_eq!(
        p.create.map(|j| j.metadata.name().to_owned()),
        Some(job_name("nightly", T0))
    );
}

#[test]
fn history_limits_delete_the_oldest() {
    let cj = cron_job(serde_json::json!({"schedule": "*/1 * * * *",
        "successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 0}));
    let jobs = [
        finished(&cj, T0 + 60, true),
        finished(&cj, T0 + 120, true),
        finished(&cj, T0 + 180, false),
    ];
    let refs: Vec<&Job> = jobs.iter().collect();
    let p = plan_cron_job(&cj, &refs, T0 + 200, &TimeZone::UTC);
    let mut deleted = p.delete.clone();
    deleted.sort();
    assert_eq!(
        deleted,
        vec![job_name("nightly", T0 + 60), job_name("nightly", T0 + 180)]
    );
    assert_eq!(
        p.status.last_successful_time,
        Some(Time::from_unix_seconds(T0 + 130))
    );
}

#[test]
fn long_missed_stretches_end_at_the_most_recent_time() {
    let every = jotasu_api::cron::parse("@every 10s").expect("valid");
    let year = 365 * 86_400;
    assert_eq!(
        most_recent(&every, &TimeZone::UTC, T0 - year, T0 + 5),
        (Some(T0), usize::try_from(year / 10).expect("fits"))
    );
    assert_eq!(most_recent(&every, &TimeZone::UTC, T0, T0 + 9), (None, 0));
    let minutely = jotasu_api::cron::parse("* * * * *").expect("valid");
    let (last, missed) = most_recent(&minutely, &TimeZone::UTC, T0 - year, T0 + 30);
    assert_eq!(last, Some(T0));
    assert!(missed >= MAX_MISSED, "{missed}");
}
