//! The cronjob runner against an in-process API server and store.

use std::time::Duration;

use jotasu_api::kinds::batch::SCHEDULED_TIMESTAMP_ANNOTATION;
use jotasu_api::{CronJob, Job, Kind, ObjectRef};

use super::*;
use crate::controllers::nodes::testkit::Cluster;

const LIMIT: Duration = Duration::from_secs(15);

fn jobs_of(c: &Cluster, cj: &CronJob) -> Vec<Job> {
    c.ctx
        .informers
        .jobs
        .list_in("default")
        .iter()
        .filter(|j| controlled_by(&***j, cj))
        .map(|j| Job::clone(j))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_a_job_when_due_and_deleting_the_cronjob_deletes_it() {
    let c = Cluster::start(&[]).await;
    tokio::spawn(run(c.ctx.clone()));
    // `@every 1s` is Kubernetes syntax; one Job per minute at most (the
    // name is the scheduled minute), so the test sees exactly one.
    c.apply(vec![
        serde_json::json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "tick", "namespace": "default"},
        "spec": {"schedule": "@every 1s", "concurrencyPolicy": "Allow",
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox"}]}}}}}}),
    ])
    .await;
    let cj = c
        .eventually("the cronjob is stored", LIMIT, || async {
            c.ctx.informers.cron_jobs.get("default", "tick")
        })
        .await;
    let job = c
        .eventually("a job", LIMIT, || async {
            jobs_of(&c, &cj).into_iter().next()
        })
        .await;
    assert!(job.metadata.name().starts_with("tick-"));
    assert!(
        job.metadata
            .annotations
            .contains_key(SCHEDULED_TIMESTAMP_ANNOTATION)
    );
    assert_eq!(job.spec.backoff_limit, Some(6), "the Job got its defaults");
    c.eventually("the status names it", LIMIT, || async {
        let cj = c.ctx.informers.cron_jobs.get("default", "tick")?;
        let s = cj.status.clone()?;
        (s.active
            .iter()
            .any(|r| r.name.as_deref() == Some(job.metadata.name()))
            && s.last_schedule_time.is_some())
        .then_some(())
    })
    .await;
    let r = ObjectRef {
        kind: Kind::CronJob,
        namespace: Some("default".into()),
        name: "tick".into(),
    };
    let deleted = c.ctx.api.delete(&r, None).await.expect("delete");
    assert!(
        deleted
            .iter()
            .any(|d| d.kind == Kind::Job && d.name == job.metadata.name()),
        "{deleted:?}"
    );
}
