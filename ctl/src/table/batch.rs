//! Jobs: `NAME STATUS COMPLETIONS DURATION AGE`; CronJobs: `NAME SCHEDULE
//! TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE` — kubectl's columns and cells.

use jotasu_api::{CronJob, Job, LabelSelector, Time};

use super::NONE;
use super::workloads::template_wide;
use crate::age::{age, human_duration};

pub(super) const JOB_COLUMNS: &[&str] = &["STATUS", "COMPLETIONS", "DURATION", "AGE"];
pub(super) const CRONJOB_COLUMNS: &[&str] = &[
    "SCHEDULE",
    "TIMEZONE",
    "SUSPEND",
    "ACTIVE",
    "LAST SCHEDULE",
    "AGE",
];

/// kubectl's STATUS of a Job.
pub(super) fn job_status(j: &Job) -> &'static str {
    let has = |t: &str| j.condition_true(t).is_some();
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if j.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

/// `2/3`, or `1/1 of 4` for a work queue with parallelism 4.
pub(super) fn completions(j: &Job) -> String {
    let succeeded = j.status.as_ref().map_or(0, |s| s.succeeded);
    match j.spec.completions {
        Some(c) => format!("{succeeded}/{c}"),
        None if j.spec.parallelism() > 1 => {
            format!("{succeeded}/1 of {}", j.spec.parallelism())
        }
        None => format!("{succeeded}/1"),
    }
}

/// From the start to completion (or to now while it runs); empty before it starts.
pub fn duration(j: &Job, now: i64) -> String {
    let status = j.status.as_ref();
    let start = status
        .and_then(|s| s.start_time.as_ref())
        .and_then(Time::unix_seconds);
    let end = status
        .and_then(|s| s.completion_time.as_ref())
        .and_then(Time::unix_seconds);
    match (start, end) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration(now - s),
        (Some(s), Some(e)) => human_duration(e - s),
    }
}

pub(super) fn job_row(j: &Job, now: i64, age: String) -> Vec<String> {
    vec![
        job_status(j).to_owned(),
        completions(j),
        duration(j, now),
        age,
    ]
}

pub(super) fn job_wide(j: &Job) -> Vec<String> {
    template_wide(
        &j.spec.template,
        j.spec
            .selector
            .as_ref()
            .unwrap_or(&LabelSelector::default()),
    )
}

pub(super) fn cronjob_row(c: &CronJob, now: i64, age_text: String) -> Vec<String> {
    let status = c.status.as_ref();
    vec![
        c.spec.schedule.clone(),
        c.spec.time_zone.clone().unwrap_or_else(|| NONE.to_owned()),
        if c.spec.suspended() { "True" } else { "False" }.to_owned(),
        status.map_or(0, |s| s.active.len()).to_string(),
        status
            .and_then(|s| s.last_schedule_time.as_ref())
            .map_or_else(|| NONE.to_owned(), |t| age(Some(t), now)),
        age_text,
    ]
}

pub(super) fn cronjob_wide(c: &CronJob) -> Vec<String> {
    let spec = &c.spec.job_template.spec;
    template_wide(
        &spec.template,
        spec.selector.as_ref().unwrap_or(&LabelSelector::default()),
    )
}

#[cfg(test)]
mod tests {
    use super::super::tests::{CREATED, NOW, object};
    use super::super::{TableOptions, render};
    use jotasu_api::Kind;

    #[test]
    fn job_and_cronjob_columns() {
        let job = object(serde_json::json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "creationTimestamp": CREATED},
            "spec": {"completions": 3, "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "pi", "image": "busybox"}]}}},
            "status": {"succeeded": 3, "startTime": CREATED, "completionTime": CREATED,
                "conditions": [{"type": "Complete", "status": "True"}]}}));
        let out = render(
            Kind::Job,
            &[job],
            &TableOptions {
                now: NOW,
                ..TableOptions::default()
            },
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "NAME   STATUS     COMPLETIONS   DURATION   AGE");
        assert!(
            lines[1].starts_with("pi     Complete   3/3           0s "),
            "{out}"
        );

        let cj = object(
            serde_json::json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "hello", "creationTimestamp": CREATED},
            "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "h", "image": "busybox"}]}}}}}}),
        );
        let out = render(
            Kind::CronJob,
            &[cj],
            &TableOptions {
                now: NOW,
                ..TableOptions::default()
            },
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[0],
            "NAME    SCHEDULE      TIMEZONE   SUSPEND   ACTIVE   LAST SCHEDULE   AGE"
        );
        assert!(
            lines[1].starts_with("hello   */1 * * * *   <none>     False     0        <none>"),
            "{out}"
        );
    }
}
