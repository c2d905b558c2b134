//! The job controller's decisions, without I/O.

use jotasu_api::kinds::batch::{COMPLETION_INDEX_ANNOTATION, COMPLETION_INDEX_ENV, JobStatus};
use jotasu_api::kinds::pod_status::{
    ContainerState, ContainerStateTerminated, ContainerStatus, PodPhase, PodStatus,
};
use jotasu_api::{ConditionStatus, Job, Object, Pod, Time};

use super::plan::{JobPlan, conditions, plan_job};
use super::pods::pod_for;

const NOW: i64 = 1_000_000;

fn job(spec: serde_json::Value) -> Job {
    let mut spec = spec;
    spec["template"] = serde_json::json!({
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}
    });
    let v = serde_json::json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "pi", "namespace": "default", "uid": "u1"}, "spec": spec});
    let mut o = Object::from_value(v).expect("a job");
    o.apply_defaults();
    Job::try_from(o).expect("a job")
}

/// A pod of `job` (index `index`) in `phase`, exited with `code` at `at`.
fn pod(job: &Job, n: usize, index: Option<i32>, phase: PodPhase, code: i32, at: i64) -> Pod {
    let mut p = pod_for(job, index);
    p.metadata.name = Some(format!("pi-{n}"));
    let terminated =
        matches!(phase, PodPhase::Succeeded | PodPhase::Failed).then(|| ContainerStateTerminated {
            exit_code: code,
            finished_at: Some(Time::from_unix_seconds(at)),
            ..ContainerStateTerminated::default()
        });
    p.status = Some(PodStatus {
        phase: Some(phase),
        container_statuses: vec![ContainerStatus {
            name: "main".into(),
            state: Some(ContainerState {
                terminated,
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }],
        ..PodStatus::default()
    });
    p
}

fn plan(job: &Job, pods: &[Pod], now: i64) -> JobPlan {
    let refs: Vec<&Pod> = pods.iter().collect();
    plan_job(job, &refs, now)
}

fn reason(status: &JobStatus, type_: &str) -> Option<String> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == ConditionStatus::True)
        .and_then(|c| c.reason.clone())
}

/// Applies a plan's status to the job (what the runner writes).
fn with(mut job: Job, plan: &JobPlan) -> Job {
    job.status = Some(plan.status.clone());
    job
}

#[test]
fn creates_up_to_parallelism_and_remaining_completions() {
    let j = job(serde_json::json!({"completions": 5, "parallelism": 3}));
    let p = plan(&j, &[], NOW);
    assert_eq!(p.create, vec![None; 3]);
    assert_eq!(
        p.status.start_time.as_ref().and_then(Time::unix_seconds),
        Some(NOW)
    );
    // 4 succeeded, one running: nothing more to create.
    let pods: Vec<Pod> = (0..4)
        .map(|n| pod(&j, n, None, PodPhase::Succeeded, 0, NOW))
        .chain([pod(&j, 9, None, PodPhase::Running, 0, NOW)])
        .collect();
    let p = plan(&j, &pods, NOW);
    assert!(p.create.is_empty(), "{p:?}");
    assert_eq!((p.status.succeeded, p.status.active), (4, 1));
}

#[test]
fn failures_back_off_then_exceed_the_limit() {
    let j = job(serde_json::json!({"backoffLimit": 1}));
    let one = [pod(&j, 0, None, PodPhase::Failed, 1, NOW - 3)];
    let p = plan(&j, &one, NOW);
    assert!(p.create.is_empty(), "10 s back-off after the first failure");
    assert_eq!(p.requeue_after, Some(7));
    assert_eq!(p.status.failed, 1);
    let p = plan(&j, &one, NOW + 8);
    assert_eq!(p.create, vec![None], "replaced after the back-off");

    let two = [
        pod(&j, 0, None, PodPhase::Failed, 1, NOW - 30),
        pod(&j, 1, None, PodPhase::Failed, 1, NOW - 1),
    ];
    let p = plan(&j, &two, NOW);
    assert_eq!(
        reason(&p.status, conditions::FAILURE_TARGET).as_deref(),
        Some("BackoffLimitExceeded")
    );
    assert_eq!(
        reason(&p.status, conditions::FAILED).as_deref(),
        Some("BackoffLimitExceeded"),
        "no pod runs: Failed at once"
    );
    assert!(p.create.is_empty());
    let done = with(j, &p);
    assert!(done.finished().is_some());
}

#[test]
fn succeeds_after_failures() {
    let j = job(serde_json::json!({}));
    let pods = [
        pod(&j, 0, None, PodPhase::Failed, 1, NOW - 60),
        pod(&j, 1, None, PodPhase::Failed, 1, NOW - 40),
        pod(&j, 2, None, PodPhase::Succeeded, 0, NOW - 1),
    ];
    let p = plan(&j, &pods, NOW);
    assert_eq!((p.status.succeeded, p.status.failed), (1, 2));
    assert!(reason(&p.status, conditions::SUCCESS_CRITERIA_MET).is_some());
    assert_eq!(
        reason(&p.status, conditions::COMPLETE).as_deref(),
        Some("CompletionsReached")
    );
    assert!(p.status.completion_time.is_some());
}

#[test]
fn pod_failure_policy_fails_the_job_or_ignores() {
    let policy = serde_json::json!({"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
        {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [7]}},
    ]});
    let j = job(serde_json::json!({"backoffLimit": 0, "podFailurePolicy": policy}));
    let running = pod(&j, 1, None, PodPhase::Running, 0, NOW);
    let p = plan(
        &j,
        &[pod(&j, 0, None, PodPhase::Failed, 42, NOW), running.clone()],
        NOW,
    );
    let target = reason(&p.status, conditions::FAILURE_TARGET);
    assert_eq!(target.as_deref(), Some("PodFailurePolicy"));
    assert_eq!(
        p.delete,
        vec!["pi-1".to_owned()],
        "the running pod is stopped"
    );
    assert!(
        reason(&p.status, conditions::FAILED).is_none(),
        "pods still run"
    );
    let message = &p.status.conditions[0].message;
    assert_eq!(
        message.as_deref(),
        Some(
            "Container main for pod default/pi-0 failed with exit code 42 matching FailJob rule at index 0"
        )
    );

    let p = plan(&j, &[pod(&j, 0, None, PodPhase::Failed, 7, NOW - 1)], NOW);
    assert_eq!(p.status.failed, 0, "ignored failures are not counted");
    assert!(reason(&p.status, conditions::FAILURE_TARGET).is_none());
    assert_eq!(p.create, vec![None], "replaced at once, without back-off");
}

#[test]
fn indexed_jobs_fill_free_indexes() {
    let j =
        job(serde_json::json!({"completions": 3, "parallelism": 2, "completionMode": "Indexed"}));
    let p = plan(&j, &[], NOW);
    assert_eq!(p.create, vec![Some(0), Some(1)]);
    let created = pod_for(&j, Some(2));
    assert_eq!(
        created.metadata.annotations[COMPLETION_INDEX_ANNOTATION],
        "2"
    );
    assert_eq!(created.spec.hostname.as_deref(), Some("pi-2"));
    assert_eq!(created.metadata.generate_name.as_deref(), Some("pi-2-"));
    assert!(
        created.spec.containers[0]
            .env
            .iter()
            .any(|e| e.name == COMPLETION_INDEX_ENV)
    );
    assert_eq!(created.metadata.owner_references[0].controller, Some(true));

    let pods = [
        pod(&j, 0, Some(0), PodPhase::Succeeded, 0, NOW),
        pod(&j, 1, Some(0), PodPhase::Succeeded, 0, NOW),
        pod(&j, 2, Some(2), PodPhase::Running, 0, NOW),
    ];
    let p = plan(&j, &pods, NOW);
    assert_eq!(
        p.create,
        vec![Some(1)],
        "index 1 is free; index 0 counts once"
    );
    assert_eq!(p.status.completed_indexes.as_deref(), Some("0"));
    assert_eq!(p.status.succeeded, 1);
}

#[test]
fn active_deadline_fails_the_job() {
    let j = job(serde_json::json!({"activeDeadlineSeconds": 30}));
    let p = plan(&j, &[], NOW);
    assert_eq!(p.requeue_after, Some(30));
    let started = with(j, &p);
    let running = [pod(&started, 0, None, PodPhase::Running, 0, NOW)];
    let p = plan(&started, &running, NOW + 31);
    assert_eq!(
        reason(&p.status, conditions::FAILURE_TARGET).as_deref(),
        Some("DeadlineExceeded")
    );
    assert_eq!(p.delete, vec!["pi-0".to_owned()]);
    assert_eq!(p.status.failed, 1, "the stopped pod counts as failed");
    let stopping = with(started, &p);
    let p = plan(&stopping, &[], NOW + 32);
    assert_eq!(
        reason(&p.status, conditions::FAILED).as_deref(),
        Some("DeadlineExceeded")
    );
}

#[test]
fn time_to_live_after_finishing() {
    let j = job(serde_json::json!({"ttlSecondsAfterFinished": 5}));
    let done = [pod(&j, 0, None, PodPhase::Succeeded, 0, NOW)];
    let p = plan(&j, &done, NOW);
    assert_eq!(p.requeue_after, Some(1));
    let finished = with(j, &p);
    let p = plan(&finished, &done, NOW + 2);
    assert!(!p.expired);
    assert_eq!(p.requeue_after, Some(3));
    assert!(plan(&finished, &done, NOW + 5).expired);
}

#[test]
fn suspended_jobs_stop_their_pods() {
    let j = job(serde_json::json!({"suspend": true, "parallelism": 2}));
    let running = [pod(&j, 0, None, PodPhase::Running, 0, NOW)];
    let p = plan(&j, &running, NOW);
    assert_eq!(p.delete, vec!["pi-0".to_owned()]);
    assert!(p.create.is_empty());
    assert_eq!(
        reason(&p.status, conditions::SUSPENDED).as_deref(),
        Some("JobSuspended")
    );
    assert!(p.status.start_time.is_none());
}

#[test]
fn counted_successes_stay_counted_when_their_pods_go() {
    let j = job(serde_json::json!({"completions": 2}));
    let one = [pod(&j, 0, None, PodPhase::Succeeded, 0, NOW)];
    let p = plan(&j, &one, NOW);
    assert_eq!((p.status.succeeded, p.create.len()), (1, 1));
    let counted = with(j, &p);
    let p = plan(&counted, &[], NOW + 1);
    assert_eq!(
        p.status.succeeded, 1,
        "the deleted pod's success still counts"
    );
    assert_eq!(p.create.len(), 1);

    let ix = job(serde_json::json!({"completions": 3, "completionMode": "Indexed"}));
    let done = [pod(&ix, 0, Some(1), PodPhase::Succeeded, 0, NOW)];
    let counted = with(ix.clone(), &plan(&ix, &done, NOW));
    let p = plan(&counted, &[], NOW + 1);
    assert_eq!(p.status.completed_indexes.as_deref(), Some("1"));
    assert_eq!(p.create, vec![Some(0)], "index 1 is not run again");
}
