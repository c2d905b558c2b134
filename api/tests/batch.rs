//! Kubernetes' own Job and CronJob examples (kubernetes.io, "Jobs" and
//! "CronJob" pages: job.yaml and cronjob.yaml, unchanged) are read,
//! defaulted and valid; a Job's defaults are Kubernetes'.

use jotasu_api::{Object, ParseOptions, load_manifest};

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
        image: perl:5.34.0
        command: ["perl",  "-Mbignum=bpi", "-wle", "print bpi(2000)"]
      restartPolicy: Never
  backoffLimit: 4
"#;

const HELLO: &str = r#"
apiVersion: batch/v1
kind: CronJob
metadata:
  name: hello
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: hello
            image: busybox:1.28
            imagePullPolicy: IfNotPresent
            command:
            - /bin/sh
            - -c
            - date; echo Hello from the Kubernetes cluster
          restartPolicy: OnFailure
"#;

fn one(text: &str) -> Object {
    let loaded = load_manifest("x.yaml", text, ParseOptions::default())
        .unwrap_or_else(|e| panic!("refused: {e}"));
    loaded.into_objects().remove(0)
}

#[test]
fn the_upstream_examples_are_valid_with_kubernetes_defaults() {
    let Object::Job(pi) = one(PI) else {
        panic!("a Job")
    };
    assert_eq!(pi.spec.backoff_limit, Some(4));
    assert_eq!(pi.spec.completions, Some(1));
    assert_eq!(pi.spec.parallelism, Some(1));
    assert_eq!(pi.spec.completion_mode.as_deref(), Some("NonIndexed"));
    assert_eq!(pi.spec.suspend, Some(false));
    assert_eq!(pi.spec.manual_selector, Some(false));
    let Object::CronJob(hello) = one(HELLO) else {
        panic!("a CronJob")
    };
    assert_eq!(hello.spec.concurrency_policy.as_deref(), Some("Allow"));
    assert_eq!(hello.spec.successful_jobs_history_limit, Some(3));
    assert_eq!(hello.spec.failed_jobs_history_limit, Some(1));
    assert_eq!(hello.spec.suspend, Some(false));
}

#[test]
fn a_work_queue_keeps_completions_unset() {
    let text = PI.replace("  backoffLimit: 4", "  parallelism: 3");
    let Object::Job(queue) = one(&text) else {
        panic!("a Job")
    };
    assert_eq!(queue.spec.completions, None);
    assert_eq!(queue.spec.parallelism, Some(3));
    assert_eq!(queue.spec.backoff_limit, Some(6));
}
