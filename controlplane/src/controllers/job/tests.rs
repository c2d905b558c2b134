//! The job runner against an in-process API server and store: the pods it
//! creates, the status it writes from what "the kubelet" reports, the
//! failure policy, the time to live, and deleting a Job deleting its pods.

use std::time::Duration;

use jotasu_api::kinds::batch::{CONTROLLER_UID_LABEL, JOB_NAME_LABEL};
use jotasu_api::kinds::pod_status::{
    ContainerState, ContainerStateTerminated, ContainerStatus, PodPhase, PodStatus,
};
use jotasu_api::{Job, Kind, Object, ObjectRef, Pod, Time};

use super::plan::conditions;
use super::*;
use crate::controllers::nodes::testkit::Cluster;

const LIMIT: Duration = Duration::from_secs(15);

fn job_manifest(name: &str, spec: serde_json::Value) -> serde_json::Value {
    let mut spec = spec;
    spec["template"] = serde_json::json!({
        "metadata": {"labels": {"app": name}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}
    });
    serde_json::json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

fn pods_of(c: &Cluster, job: &Job) -> Vec<Pod> {
    c.ctx
        .informers
        .pods
        .list_in("default")
        .iter()
        .filter(|p| controlled_by(&***p, job))
        .map(|p| Pod::clone(p))
        .collect()
}

fn job(c: &Cluster, name: &str) -> Option<Job> {
    c.ctx
        .informers
        .jobs
        .get("default", name)
        .map(|j| Job::clone(&j))
}

/// Reports `pod` finished with `code` (Succeeded for 0), as an agent would.
async fn finish(c: &Cluster, pod: &Pod, code: i32) {
    let mut p = pod.clone();
    p.status = Some(PodStatus {
        phase: Some(if code == 0 {
            PodPhase::Succeeded
        } else {
            PodPhase::Failed
        }),
        container_statuses: vec![ContainerStatus {
            name: "main".into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    finished_at: Some(Time::now()),
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }],
        ..PodStatus::default()
    });
    c.update_status(Object::Pod(p)).await;
}

fn condition(job: &Job, type_: &str) -> Option<String> {
    job.condition_true(type_).and_then(|c| c.reason.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_pods_to_completion_and_deletes_them_with_the_job() {
    let c = Cluster::start(&[]).await;
    tokio::spawn(run(c.ctx.clone()));
    c.apply(vec![job_manifest(
        "work",
        serde_json::json!({"completions": 3, "parallelism": 2}),
    )])
    .await;
    let j = c
        .eventually("the job is stored", LIMIT, || async { job(&c, "work") })
        .await;
    let uid = j.metadata.uid.clone().expect("a uid");
    assert_eq!(
        j.spec
            .selector
            .as_ref()
            .map(|s| s.match_labels[CONTROLLER_UID_LABEL].clone()),
        Some(uid.clone()),
        "the generated selector"
    );
    let first = c
        .eventually("two pods", LIMIT, || async {
            let pods = pods_of(&c, &j);
            (pods.len() == 2).then_some(pods)
        })
        .await;
    for p in &first {
        assert_eq!(p.metadata.labels[JOB_NAME_LABEL], "work");
        assert_eq!(p.metadata.labels[CONTROLLER_UID_LABEL], uid);
        let owner = p.metadata.controller_ref().expect("an owner");
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Job", uid.as_str())
        );
    }
    for p in &first {
        finish(&c, p, 0).await;
    }
    let third = c
        .eventually("a third pod", LIMIT, || async {
            let pods = pods_of(&c, &j);
            (pods.len() == 3).then(|| {
                pods.into_iter()
                    .find(|p| p.status.is_none())
                    .expect("the new pod")
            })
        })
        .await;
    finish(&c, &third, 0).await;
    let done = c
        .eventually("Complete", LIMIT, || async {
            job(&c, "work").filter(|j| j.condition_true(conditions::COMPLETE).is_some())
        })
        .await;
    let s = done.status.clone().expect("a status");
    assert_eq!((s.succeeded, s.failed, s.active), (3, 0, 0));
    assert!(s.completion_time.is_some());
    assert!(
        done.condition_true(conditions::SUCCESS_CRITERIA_MET)
            .is_some()
    );

    let r = ObjectRef {
        kind: Kind::Job,
        namespace: Some("default".into()),
        name: "work".into(),
    };
    let deleted = c.ctx.api.delete(&r, None).await.expect("delete the job");
    assert_eq!(deleted.len(), 4, "the job and its three pods: {deleted:?}");
    c.eventually("the pods are gone", LIMIT, || async {
        pods_of(&c, &done).is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_job_rule_and_time_to_live() {
    let c = Cluster::start(&[]).await;
    tokio::spawn(run(c.ctx.clone()));
    let policy = serde_json::json!({"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}}
    ]});
    c.apply(vec![job_manifest(
        "doomed",
        serde_json::json!({"parallelism": 2, "completions": 4,
            "podFailurePolicy": policy, "ttlSecondsAfterFinished": 1}),
    )])
    .await;
    let j = c
        .eventually("the job is stored", LIMIT, || async { job(&c, "doomed") })
        .await;
    let pods = c
        .eventually("two pods", LIMIT, || async {
            let pods = pods_of(&c, &j);
            (pods.len() == 2).then_some(pods)
        })
        .await;
    finish(&c, &pods[0], 42).await;
    let failed = c
        .eventually("FailureTarget", LIMIT, || async {
            job(&c, "doomed").filter(|j| j.condition_true(conditions::FAILURE_TARGET).is_some())
        })
        .await;
    assert_eq!(
        condition(&failed, conditions::FAILURE_TARGET).as_deref(),
        Some("PodFailurePolicy")
    );
    // The other pod is being stopped; without an agent, it is marked only
    // when unbound pods are deleted at once.
    c.eventually(
        "the job is deleted after its time to live",
        LIMIT,
        || async { job(&c, "doomed").is_none().then_some(()) },
    )
    .await;
    c.eventually("its pods are gone", LIMIT, || async {
        pods_of(&c, &j).is_empty().then_some(())
    })
    .await;
}
