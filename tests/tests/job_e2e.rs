//! Jobs and CronJobs on a real node (a control plane, a containerd and one
//! agent in namespaces of this run, [`Harness`]): retries with back-off to
//! completion, the backoff limit, the pod failure policy (FailJob, Ignore),
//! an Indexed Job whose pods see their index, the active deadline, the time
//! to live, Kubernetes' `pi` example; a CronJob firing on its schedule
//! with Forbid skipping the run that would overlap, `create job --from`.

use std::time::Duration;

use jotasu_api::kinds::batch::{
    COMPLETION_INDEX_ANNOTATION, INSTANTIATE_ANNOTATION, JOB_NAME_LABEL,
    SCHEDULED_TIMESTAMP_ANNOTATION,
};
use jotasu_api::{CronJob, Job, Kind, Object, Time};
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::e2e::{Harness, SETTLE, r};
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;

/// Two failures back off 10 s, then 20 s, before the third pod.
const RETRIES: Duration = Duration::from_secs(180);

const JOBS: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: retry
spec:
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      volumes: [{name: host, hostPath: {path: HOST_DIR, type: DirectoryOrCreate}}]
      containers:
      - name: main
        image: jotasu.local/busybox:latest
        command: ["sh", "-c", "n=$(cat /host/retry 2>/dev/null || echo 0); n=$((n+1)); echo $n > /host/retry; [ $n -ge 3 ]"]
        volumeMounts: [{name: host, mountPath: /host}]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: limit
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: jotasu.local/busybox:latest
        command: ["sh", "-c", "exit 1"]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: fail-fast
spec:
  backoffLimit: 6
  podFailurePolicy:
    rules:
    - action: FailJob
      onExitCodes: {containerName: main, operator: In, values: [42]}
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: jotasu.local/busybox:latest
        command: ["sh", "-c", "exit 42"]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: ignore
spec:
  backoffLimit: 0
  podFailurePolicy:
    rules:
    - action: Ignore
      onExitCodes: {operator: In, values: [3]}
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      volumes: [{name: host, hostPath: {path: HOST_DIR, type: DirectoryOrCreate}}]
      containers:
      - name: main
        image: jotasu.local/busybox:latest
        command: ["sh", "-c", "if [ -f /host/ignored ]; then exit 0; fi; touch /host/ignored; exit 3"]
        volumeMounts: [{name: host, mountPath: /host}]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: indexed
spec:
  completions: 3
  parallelism: 3
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      volumes: [{name: host, hostPath: {path: HOST_DIR, type: DirectoryOrCreate}}]
      containers:
      - name: main
        image: jotasu.local/busybox:latest
        command: ["sh", "-c", "echo \"$JOB_COMPLETION_INDEX $(hostname)\" > /host/index-$JOB_COMPLETION_INDEX"]
        volumeMounts: [{name: host, mountPath: /host}]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: deadline
spec:
  activeDeadlineSeconds: 3
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: jotasu.local/busybox:latest
        command: ["sleep", "600"]
---
apiVersion: batch/v1
kind: Job
metadata:
  name: short-lived
spec:
  ttlSecondsAfterFinished: 2
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: jotasu.local/busybox:latest
        command: ["true"]
"#;

/// Kubernetes' example (concepts/workloads/controllers/job.yaml) with the
/// image replaced by busybox; busybox has no perl, so the command prints π
/// to 2000 places with bc instead of `perl -Mbignum=bpi -wle "print bpi(2000)"`.
const PI: &str = r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: pi
spec:
  template:
    spec:
      containers:
      - name: pi
        image: jotasu.local/busybox:latest
        command: ["sh", "-c", "echo 'scale=2000; 4*a(1)' | bc -l"]
      restartPolicy: Never
  backoffLimit: 4
"#;

async fn job(h: &Harness, name: &str) -> Option<Job> {
    match h.client.get(&r(Kind::Job, name)).await {
        Ok(Object::Job(j)) => Some(j),
        _ => None,
    }
}

/// The Job once it has the condition `type_` (True).
async fn job_with(h: &Harness, name: &str, type_: &str, limit: Duration) -> Job {
    eventually(&format!("job {name} {type_}"), limit, || async {
        job(h, name)
            .await
            .filter(|j| j.condition_true(type_).is_some())
    })
    .await
}

fn reason(j: &Job, type_: &str) -> Option<String> {
    j.condition_true(type_).and_then(|c| c.reason.clone())
}

fn counts(j: &Job) -> (i32, i32, i32) {
    let s = j.status.clone().unwrap_or_default();
    (s.succeeded, s.failed, s.active)
}

/// Retries back off to completion; the backoff limit, FailJob and Ignore
/// rules, an Indexed Job, the deadline and the time to live, each on real
/// pods; `pi` prints π; `get`, `describe`, `logs` and `delete` of Jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_retry_fail_index_and_expire_on_a_node() {
    if !require_root("jobs_retry_fail_index_and_expire_on_a_node") {
        return;
    }
    let h = Harness::start(ClusterOptions::default()).await;
    let host_dir = h.cluster.dir().join("jobs");
    h.apply(&JOBS.replace("HOST_DIR", &host_dir.display().to_string()));
    h.apply(PI);

    let failed_fast = job_with(&h, "fail-fast", "Failed", SETTLE).await;
    assert_eq!(
        reason(&failed_fast, "Failed").as_deref(),
        Some("PodFailurePolicy")
    );
    assert_eq!(
        counts(&failed_fast),
        (0, 1, 0),
        "failed at the first exit 42"
    );
    assert!(failed_fast.condition_true("FailureTarget").is_some());

    let indexed = job_with(&h, "indexed", "Complete", SETTLE).await;
    let s = indexed.status.clone().unwrap_or_default();
    assert_eq!(s.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!(s.succeeded, 3);
    for i in 0..3 {
        let seen = std::fs::read_to_string(host_dir.join(format!("index-{i}")))
            .unwrap_or_else(|e| panic!("index {i} wrote nothing: {e}"));
        assert_eq!(
            seen,
            format!("{i} indexed-{i}\n"),
            "JOB_COMPLETION_INDEX and hostname"
        );
    }
    let pods = h.pods(&format!("{JOB_NAME_LABEL}=indexed")).await;
    let mut indexes: Vec<String> = pods
        .iter()
        .filter_map(|p| {
            p.metadata
                .annotations
                .get(COMPLETION_INDEX_ANNOTATION)
                .cloned()
        })
        .collect();
    indexes.sort();
    assert_eq!(indexes, ["0", "1", "2"]);

    let deadline = job_with(&h, "deadline", "Failed", SETTLE).await;
    assert_eq!(
        reason(&deadline, "Failed").as_deref(),
        Some("DeadlineExceeded")
    );
    assert_eq!(counts(&deadline).2, 0, "its pod was stopped");

    let ignore = job_with(&h, "ignore", "Complete", RETRIES).await;
    assert_eq!(
        counts(&ignore),
        (1, 0, 0),
        "the ignored exit 3 is not counted (backoffLimit 0 would have failed it)"
    );

    let limit = job_with(&h, "limit", "Failed", RETRIES).await;
    assert_eq!(
        reason(&limit, "Failed").as_deref(),
        Some("BackoffLimitExceeded")
    );
    assert_eq!(counts(&limit), (0, 2, 0));

    let retry = job_with(&h, "retry", "Complete", RETRIES).await;
    assert_eq!(counts(&retry), (1, 2, 0), "two failures, then success");
    assert_eq!(
        reason(&retry, "Complete").as_deref(),
        Some("CompletionsReached")
    );
    assert!(retry.condition_true("SuccessCriteriaMet").is_some());
    assert_eq!(h.pods(&format!("{JOB_NAME_LABEL}=retry")).await.len(), 3);

    eventually(
        "short-lived deleted after its time to live",
        SETTLE,
        || async { job(&h, "short-lived").await.is_none().then_some(()) },
    )
    .await;
    eventually("short-lived's pod deleted", SETTLE, || async {
        h.pods(&format!("{JOB_NAME_LABEL}=short-lived"))
            .await
            .is_empty()
            .then_some(())
    })
    .await;

    // Kubernetes' example.
    let pi = job_with(&h, "pi", "Complete", SETTLE).await;
    assert_eq!(counts(&pi), (1, 0, 0));
    let printed = h.ctl(&["logs", "job/pi"]).replace("\\\n", "");
    assert!(
        printed.starts_with("3.14159265358979323846264338327950288419716939937510"),
        "{printed}"
    );
    assert_eq!(
        printed.trim_end().len(),
        2002,
        "π to 2000 places: {printed}"
    );

    let table = h.ctl(&["get", "jobs"]);
    let header = table.lines().next().unwrap_or_default();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    );
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
    };
    assert_eq!(row("retry").as_deref(), Some("retry Complete 1/1"));
    assert_eq!(row("limit").as_deref(), Some("limit Failed 0/1"));
    assert_eq!(row("indexed").as_deref(), Some("indexed Complete 3/3"));
    let page = h.ctl(&["describe", "job", "retry"]);
    assert!(
        page.contains("0 Active (0 Ready) / 1 Succeeded / 2 Failed"),
        "{page}"
    );

    // Deleting a Job deletes its pods.
    let out = h.ctl(&["delete", "job", "retry"]);
    assert!(out.contains("job.batch \"retry\" deleted"), "{out}");
    eventually("retry's pods deleted", SETTLE, || async {
        h.pods(&format!("{JOB_NAME_LABEL}=retry"))
            .await
            .is_empty()
            .then_some(())
    })
    .await;
}

const CRON_JOBS: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata:
  name: every-minute
spec:
  schedule: "*/1 * * * *"
  concurrencyPolicy: Forbid
  startingDeadlineSeconds: 20
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - name: main
            image: jotasu.local/busybox:latest
            command: ["sleep", "150"]
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: by-hand
spec:
  schedule: "@yearly"
  suspend: true
  jobTemplate:
    metadata:
      labels: {run: by-hand}
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: main
            image: jotasu.local/busybox:latest
            command: ["echo", "hello"]
"#;

async fn cron_job(h: &Harness, name: &str) -> Option<CronJob> {
    match h.client.get(&r(Kind::CronJob, name)).await {
        Ok(Object::CronJob(c)) => Some(c),
        _ => None,
    }
}

async fn jobs_of(h: &Harness, cron_job: &CronJob) -> Vec<Job> {
    let list = h
        .client
        .list(Kind::Job, Some("default"), "")
        .await
        .expect("list jobs");
    list.items
        .into_iter()
        .filter_map(|o| Job::try_from(o).ok())
        .filter(|j| {
            j.metadata
                .controller_ref()
                .is_some_and(|o| Some(&o.uid) == cron_job.metadata.uid.as_ref())
        })
        .collect()
}

/// A CronJob fires at the next minute; with Forbid, the run due while
/// that job still runs is skipped (past its starting deadline it is not
/// made up later); `create job --from=cronjob/…` runs a suspended one by
/// hand; deleting a CronJob deletes its Jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_jobs_fire_forbid_overlap_and_run_by_hand() {
    if !require_root("cron_jobs_fire_forbid_overlap_and_run_by_hand") {
        return;
    }
    let h = Harness::start(ClusterOptions::default()).await;
    h.apply(CRON_JOBS);
    let cj = eventually("the cronjob stored", SETTLE, || async {
        cron_job(&h, "every-minute").await
    })
    .await;

    // By hand, while the minute comes.
    let out = h.ctl(&["create", "job", "manual", "--from=cronjob/by-hand"]);
    assert_eq!(out, "job.batch/manual created\n");
    let manual = job_with(&h, "manual", "Complete", SETTLE).await;
    assert_eq!(
        manual.metadata.annotations[INSTANTIATE_ANNOTATION],
        "manual"
    );
    assert_eq!(manual.metadata.labels["run"], "by-hand");
    let owner = manual
        .metadata
        .controller_ref()
        .expect("owned by the cronjob");
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("CronJob", "by-hand")
    );
    let again = h.ctl.at(
        &h.server,
        &["create", "job", "manual", "--from=cronjob/by-hand"],
    );
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);

    // The first run, at the next minute.
    let first = eventually(
        "the first scheduled job",
        Duration::from_secs(150),
        || async { jobs_of(&h, &cj).await.into_iter().next() },
    )
    .await;
    let scheduled = first.metadata.annotations[SCHEDULED_TIMESTAMP_ANNOTATION].clone();
    let at = Time(scheduled).unix_seconds().expect("an RFC 3339 time");
    assert_eq!(at % 60, 0, "scheduled on a minute");
    let status = eventually("the cronjob's status", SETTLE, || async {
        let c = cron_job(&h, "every-minute").await?;
        c.status
            .filter(|s| s.active.len() == 1 && s.last_schedule_time.is_some())
    })
    .await;
    assert_eq!(status.last_schedule_time, Some(Time::from_unix_seconds(at)));

    // Past the next minute and its starting deadline: still one job.
    let past = at + 60 + 25;
    let wait = past - jotasu_api::meta::unix_now();
    if let Ok(secs) = u64::try_from(wait) {
        tokio::time::sleep(Duration::from_secs(secs)).await;
    }
    let jobs = jobs_of(&h, &cj).await;
    assert_eq!(
        jobs.iter().map(|j| j.metadata.name()).collect::<Vec<_>>(),
        [first.metadata.name()],
        "Forbid skipped the overlapping run"
    );
    assert!(jobs[0].finished().is_none(), "the first run still runs");
    let c = cron_job(&h, "every-minute").await.expect("the cronjob");
    assert_eq!(
        c.status.and_then(|s| s.last_schedule_time),
        Some(Time::from_unix_seconds(at)),
        "the skipped run left no schedule time"
    );

    let table = h.ctl(&["get", "cronjobs"]);
    let by_hand = table
        .lines()
        .find(|l| l.starts_with("by-hand "))
        .map(|l| l.split_whitespace().take(4).collect::<Vec<_>>().join(" "));
    assert_eq!(
        by_hand.as_deref(),
        Some("by-hand @yearly <none> True"),
        "{table}"
    );

    // Deleting the CronJob deletes its Jobs (and their pods).
    h.ctl(&["delete", "cronjob", "every-minute"]);
    eventually("its job deleted", SETTLE, || async {
        job(&h, first.metadata.name()).await.is_none().then_some(())
    })
    .await;
    eventually("its pods deleted", SETTLE, || async {
        h.pods(&format!("{JOB_NAME_LABEL}={}", first.metadata.name()))
            .await
            .is_empty()
            .then_some(())
    })
    .await;
}
