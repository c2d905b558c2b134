//! `describe job` and `describe cronjob`, in kubectl's layout.

use jotasu_api::{CronJob, Job, LabelSelector};

use super::pod::template;
use super::writer::Writer;
use crate::age::{human_duration, timestamp};
use crate::table::{job_duration, selector_text};

const UNSET: &str = "<unset>";

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| UNSET.to_owned(), |v| v.to_string())
}

pub fn job(j: &Job, now: i64) -> String {
    let mut w = Writer::default();
    w.name(&j.metadata);
    let spec = &j.spec;
    w.field(
        0,
        "Selector",
        selector_text(spec.selector.as_ref().unwrap_or(&LabelSelector::default())),
    );
    w.labels_annotations(&j.metadata);
    if let Some(owner) = j.metadata.controller_ref() {
        w.field(0, "Controlled By", format!("{}/{}", owner.kind, owner.name));
    }
    w.field(0, "Parallelism", spec.parallelism());
    w.field(0, "Completions", opt(spec.completions));
    w.field(
        0,
        "Completion Mode",
        spec.completion_mode.as_deref().unwrap_or("NonIndexed"),
    );
    w.field(0, "Suspend", spec.suspended());
    w.field(0, "Backoff Limit", spec.backoff_limit());
    if let Some(ttl) = spec.ttl_seconds_after_finished {
        w.field(0, "TTL Seconds After Finished", ttl);
    }
    let s = j.status.clone().unwrap_or_default();
    if let Some(t) = &s.start_time {
        w.field(0, "Start Time", timestamp(t));
    }
    if let Some(t) = &s.completion_time {
        w.field(0, "Completed At", timestamp(t));
    }
    let duration = job_duration(j, now);
    if !duration.is_empty() {
        w.field(0, "Duration", duration);
    }
    if let Some(d) = spec.active_deadline_seconds {
        w.field(0, "Active Deadline Seconds", human_duration(d));
    }
    w.field(
        0,
        "Pods Statuses",
        format!(
            "{} Active ({} Ready) / {} Succeeded / {} Failed",
            s.active,
            s.ready.unwrap_or(0),
            s.succeeded,
            s.failed
        ),
    );
    if let Some(done) = &s.completed_indexes {
        w.field(
            0,
            "Completed Indexes",
            if done.is_empty() { "<none>" } else { done },
        );
    }
    template(&mut w, &spec.template);
    w.conditions(&s.conditions, true);
    w.finish()
}

pub fn cron_job(c: &CronJob) -> String {
    let mut w = Writer::default();
    w.name(&c.metadata);
    w.labels_annotations(&c.metadata);
    let spec = &c.spec;
    w.field(0, "Schedule", &spec.schedule);
    if let Some(tz) = &spec.time_zone {
        w.field(0, "Time Zone", tz);
    }
    w.field(
        0,
        "Concurrency Policy",
        spec.concurrency_policy.as_deref().unwrap_or("Allow"),
    );
    w.field(
        0,
        "Suspend",
        if spec.suspended() { "True" } else { "False" },
    );
    w.field(
        0,
        "Successful Job History Limit",
        opt(spec.successful_jobs_history_limit),
    );
    w.field(
        0,
        "Failed Job History Limit",
        opt(spec.failed_jobs_history_limit),
    );
    w.field(
        0,
        "Starting Deadline Seconds",
        spec.starting_deadline_seconds
            .map_or_else(|| UNSET.to_owned(), |d| format!("{d}s")),
    );
    let js = &spec.job_template.spec;
    w.field(0, "Selector", opt(js.selector.as_ref()));
    w.field(0, "Parallelism", opt(js.parallelism));
    w.field(0, "Completions", opt(js.completions));
    if let Some(d) = js.active_deadline_seconds {
        w.field(0, "Active Deadline Seconds", format!("{d}s"));
    }
    template(&mut w, &js.template);
    let s = c.status.clone().unwrap_or_default();
    w.field(
        0,
        "Last Schedule Time",
        s.last_schedule_time
            .as_ref()
            .map_or_else(|| UNSET.to_owned(), timestamp),
    );
    let active: Vec<String> = s.active.iter().filter_map(|r| r.name.clone()).collect();
    w.field(
        0,
        "Active Jobs",
        if active.is_empty() {
            "<none>".to_owned()
        } else {
            active.join(", ")
        },
    );
    w.finish()
}

#[cfg(test)]
mod tests {
    use jotasu_api::Object;

    #[test]
    fn job_and_cronjob_pages() {
        let job: Object =
            serde_json::from_value(serde_json::json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default"},
            "spec": {"completions": 3, "parallelism": 2, "backoffLimit": 4,
                "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
                "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "pi", "image": "busybox"}]}}},
            "status": {"succeeded": 2, "failed": 1, "active": 1, "ready": 1}}))
            .expect("a job");
        let page = super::super::page(&job, None, &[], 0);
        assert!(page.contains("Selector:"), "{page}");
        assert!(
            page.contains("batch.kubernetes.io/controller-uid=u1"),
            "{page}"
        );
        assert!(page.contains("Backoff Limit:"), "{page}");
        assert!(
            page.contains("1 Active (1 Ready) / 2 Succeeded / 1 Failed"),
            "{page}"
        );
        let cj: Object = serde_json::from_value(
            serde_json::json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "hello", "namespace": "default"},
            "spec": {"schedule": "@hourly", "concurrencyPolicy": "Forbid",
                "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "h", "image": "busybox"}]}}}}},
            "status": {"active": [{"kind": "Job", "name": "hello-1"}]}}),
        )
        .expect("a cronjob");
        let page = super::super::page(&cj, None, &[], 0);
        assert!(page.contains("Concurrency Policy:"), "{page}");
        assert!(page.contains("Forbid"), "{page}");
        assert!(page.contains("hello-1"), "{page}");
    }
}
