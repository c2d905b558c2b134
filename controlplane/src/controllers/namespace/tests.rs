//! The namespace and service accounts controllers against an in-process API server.

use std::time::Duration;

use jotasu_api::kinds::service_account::DEFAULT_SERVICE_ACCOUNT;
use jotasu_api::{NamespacePhase, ObjectRef};
use serde_json::json;

use super::*;
use crate::apiserver::lifecycle::namespace_ref;
use crate::controllers::nodes::testkit::Cluster;
use crate::runtime::status::condition;

const LIMIT: Duration = Duration::from_secs(15);

fn in_ns(kind: &str, name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut v = json!({"apiVersion": "v1", "kind": kind,
        "metadata": {"name": name, "namespace": "team-a"}});
    if let (Some(v), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        v.extend(extra.clone());
    }
    v
}

fn pod_spec(node: Option<&str>) -> serde_json::Value {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox:1"}]});
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    json!({"spec": spec})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_namespace_is_emptied_waits_for_its_pods_then_goes() {
    let c = Cluster::start(&["n1"]).await;
    tokio::spawn(run(c.ctx.clone()));
    c.apply(vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}}),
        in_ns("ConfigMap", "cfg", json!({"data": {"k": "v"}})),
        in_ns("Service", "web", json!({"spec": {"ports": [{"port": 80}]}})),
        in_ns("Pod", "bound", pod_spec(Some("n1"))),
        in_ns("Pod", "pending", pod_spec(None)),
    ])
    .await;
    c.ctx
        .api
        .delete(&namespace_ref("team-a"), None)
        .await
        .unwrap();

    // Everything but the bound pod goes at once; that one waits for its node.
    let ns = c
        .eventually("only the bound pod left", LIMIT, || async {
            let ns = c.ctx.informers.namespaces.get("", "team-a")?;
            let s = ns.status.as_ref()?;
            let remaining = condition(&s.conditions, "NamespaceContentRemaining")?;
            (remaining.message.as_deref()
                == Some("Some resources are remaining: pods. has 1 resource instances"))
            .then_some(ns)
        })
        .await;
    assert_eq!(ns.phase(), NamespacePhase::Terminating);
    let pods = c.ctx.informers.pods.list_in("team-a");
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].metadata.name(), "bound");
    assert!(pods[0].metadata.deletion_timestamp.is_some(), "terminating");
    assert!(c.ctx.informers.services.list_in("team-a").is_empty());
    assert!(
        c.ctx
            .informers
            .service_accounts
            .list_in("team-a")
            .is_empty()
    );

    // The node stops it: the namespace is empty and goes.
    c.agent("n1").await;
    c.eventually("the namespace gone", LIMIT, || async {
        match c.ctx.api.get(&namespace_ref("team-a")).await {
            Err(ApiServerError::NotFound(_)) => Some(()),
            _ => None,
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_default_service_account_is_made_again() {
    let c = Cluster::start(&[]).await;
    tokio::spawn(crate::controllers::serviceaccounts::run(c.ctx.clone()));
    let r = ObjectRef {
        kind: Kind::ServiceAccount,
        namespace: Some("default".into()),
        name: DEFAULT_SERVICE_ACCOUNT.into(),
    };
    let first = c.ctx.api.get(&r).await.expect("made at start");
    c.ctx.api.delete(&r, None).await.unwrap();
    let again = c
        .eventually("the default account again", LIMIT, || async {
            c.ctx.api.get(&r).await.ok()
        })
        .await;
    assert_ne!(first, again, "a new object (new uid)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_naming_a_missing_account_is_accepted_but_says_why_it_has_no_pods() {
    let c = Cluster::start(&[]).await;
    tokio::spawn(crate::controllers::replicaset::run(c.ctx.clone()));
    c.apply(vec![json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"serviceAccountName": "robot",
                    "containers": [{"name": "c", "image": "busybox:1"}]}}}})])
        .await;
    let failure = c
        .eventually("a ReplicaFailure condition", LIMIT, || async {
            let rs = c.ctx.informers.replica_sets.get("default", "web")?;
            let status = rs.status.as_ref()?;
            condition(&status.conditions, "ReplicaFailure").cloned()
        })
        .await;
    assert_eq!(failure.reason.as_deref(), Some("FailedCreate"));
    let message = failure.message.unwrap_or_default();
    assert!(
        message.ends_with(
            "is forbidden: error looking up service account default/robot: serviceaccount \"robot\" not found"
        ),
        "{message}"
    );
    assert!(c.ctx.informers.pods.list_in("default").is_empty());
}
