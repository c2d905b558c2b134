//! Jobs and CronJobs through a real control plane's API (no nodes): bad
//! specs are refused in Kubernetes' words and nothing is written; a Job
//! gets its generated selector and labels, re-applying its manifest
//! changes nothing, and an update may not change its template or
//! completions; `batch/v1beta1` is refused as kubectl words it.
#![allow(clippy::unwrap_used)]
use jotasu_api::client::Client;
use jotasu_api::grpc::v1;
use jotasu_api::kinds::batch::{CONTROLLER_UID_LABEL, JOB_NAME_LABEL, LEGACY_JOB_NAME_LABEL};
use jotasu_api::{Kind, Object, ObjectRef, Outcome};
use jotasu_tests::controlplane::{ControlPlane, Options};
use serde_json::{Value, json};

fn obj(v: Value) -> Object {
    serde_json::from_value(v).expect("test object")
}

fn job(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    if spec.get("template").is_none() {
        spec["template"] = json!({"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}});
    }
    json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

fn cron_job(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec["jobTemplate"] = json!({"spec": {"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox"}]}}}});
    json!({"apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

async fn start() -> (ControlPlane, Client) {
    let cp = ControlPlane::start(Options {
        args: vec!["--no-controllers".into()],
        ..Options::default()
    })
    .await
    .expect("control plane starts");
    let client = cp.client().await.expect("client connects");
    (cp, client)
}

/// The server's refusal of `object`, sent as raw JSON (as a kubectl-like
/// client sends it, so fields jotasu's types do not know reach the server).
async fn refused(client: &Client, object: Value) -> String {
    let request = v1::ApplyRequest {
        objects: vec![v1::Object {
            json: object.to_string(),
        }],
        dry_run: false,
    };
    let e = client.raw().apply(request).await.expect_err("refused");
    e.message().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_jobs_and_cron_jobs_are_refused_and_nothing_is_written() {
    let (_cp, client) = start().await;
    let cases: &[(Value, &str)] = &[
        (
            job(
                "always",
                json!({"template": {"spec": {
                "containers": [{"name": "main", "image": "busybox"}]}}}),
            ),
            r#"spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never""#,
        ),
        (
            job("negative", json!({"backoffLimit": -1})),
            r#"spec.backoffLimit: Invalid value: "-1": must be greater than or equal to 0"#,
        ),
        (
            job(
                "indexed",
                json!({"completionMode": "Indexed", "parallelism": 2}),
            ),
            "spec.completions: Required value: when completion mode is Indexed",
        ),
        (
            job("mode", json!({"completionMode": "Sometimes"})),
            r#"spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed""#,
        ),
        (
            job(
                "policy",
                json!({"podFailurePolicy": {"rules": [
                {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [0, 1]}}]}}),
            ),
            r#"spec.podFailurePolicy.rules[0].action: Unsupported value: "FailIndex": supported values: "Count", "FailJob", "Ignore""#,
        ),
        (
            job(
                "policy-zero",
                json!({"podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0]}}]}}),
            ),
            r#"spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: "0": must not be 0 for the In operator"#,
        ),
        (
            job(
                "policy-restart",
                json!({"podFailurePolicy": {"rules": [
                {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1]}}]},
                "template": {"spec": {"restartPolicy": "OnFailure",
                    "containers": [{"name": "main", "image": "busybox"}]}}}),
            ),
            r#"spec.template.spec.restartPolicy: Invalid value: "OnFailure": only "Never" is supported when podFailurePolicy is specified"#,
        ),
        (
            job("per-index", json!({"backoffLimitPerIndex": 1})),
            "spec.backoffLimitPerIndex: Forbidden: jotasu does not support this field",
        ),
        (
            job("manual", json!({"manualSelector": true})),
            "spec.selector: Required value",
        ),
        (
            cron_job("bad-schedule", json!({"schedule": "every minute"})),
            r#"spec.schedule: Invalid value: "every minute": expected exactly 5 fields, found 2: [every minute]"#,
        ),
        (
            cron_job(
                "cron-tz",
                json!({"schedule": "CRON_TZ=Europe/Berlin 0 3 * * *"}),
            ),
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ),
        (
            cron_job(
                "zone",
                json!({"schedule": "@daily", "timeZone": "Mars/Olympus"}),
            ),
            r#"spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus"#,
        ),
        (
            cron_job(
                "policy",
                json!({"schedule": "@daily", "concurrencyPolicy": "Sometimes"}),
            ),
            r#"spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace""#,
        ),
        (
            cron_job(&"n".repeat(53), json!({"schedule": "@daily"})),
            "metadata.name: Invalid value",
        ),
        (
            json!({"apiVersion": "batch/v1beta1", "kind": "CronJob",
                "metadata": {"name": "old"}, "spec": {"schedule": "@daily"}}),
            r#"no matches for kind "CronJob" in version "batch/v1beta1": Kubernetes 1.25 removed it, use apiVersion: batch/v1"#,
        ),
    ];
    for (object, words) in cases {
        let e = refused(&client, object.clone()).await;
        assert!(e.contains(words), "expected {words:?} in: {e}");
    }
    for kind in [Kind::Job, Kind::CronJob] {
        let list = client.list(kind, Some("default"), "").await.unwrap();
        assert!(list.items.is_empty(), "nothing written: {:?}", list.items);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_gets_its_selector_and_reapplying_changes_nothing() {
    let (_cp, client) = start().await;
    let manifest = obj(job("pi", json!({})));
    let cron = obj(cron_job(
        "nightly",
        json!({"schedule": "0 3 * * *",
        "timeZone": "Europe/Berlin"}),
    ));
    let first = client
        .apply(&[manifest.clone(), cron.clone()], false)
        .await
        .unwrap();
    assert!(first.iter().all(|a| a.outcome == Outcome::Created));
    let r = ObjectRef {
        kind: Kind::Job,
        namespace: Some("default".into()),
        name: "pi".into(),
    };
    let Object::Job(stored) = client.get(&r).await.unwrap() else {
        panic!("a job")
    };
    let uid = stored.metadata.uid.clone().unwrap();
    let selector = stored.spec.selector.clone().expect("a generated selector");
    assert_eq!(selector.match_labels[CONTROLLER_UID_LABEL], uid);
    let labels = &stored.spec.template.metadata.labels;
    assert_eq!(labels[JOB_NAME_LABEL], "pi");
    assert_eq!(labels[LEGACY_JOB_NAME_LABEL], "pi");
    assert_eq!(stored.spec.backoff_limit, Some(6));
    assert_eq!(stored.spec.completions, Some(1));
    assert_eq!(stored.spec.completion_mode.as_deref(), Some("NonIndexed"));
    let again = client.apply(&[manifest, cron], false).await.unwrap();
    assert!(
        again.iter().all(|a| a.outcome == Outcome::Unchanged),
        "{again:?}"
    );
    // Parallelism may change; the template and completions may not.
    let scaled = client
        .apply(
            &[obj(job("pi", json!({"parallelism": 2, "completions": 1})))],
            false,
        )
        .await
        .unwrap();
    assert_eq!(scaled[0].outcome, Outcome::Configured);
    let e = refused(
        &client,
        job(
            "pi",
            json!({"completions": 3, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox:2"}]}}}),
        ),
    )
    .await;
    assert!(
        e.contains("spec.template: Invalid value: field is immutable")
            && e.contains("spec.completions: Invalid value: field is immutable"),
        "{e}"
    );
}
