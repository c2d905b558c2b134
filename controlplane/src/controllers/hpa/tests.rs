//! The autoscaler's runner against an in-process API server.

use std::time::Duration;

use super::*;
use crate::controllers::nodes::testkit::Cluster;

const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scales_a_deployment_up_on_cpu_and_down_after_the_window() {
    let c = Cluster::start(&["n1"]).await;
    c.apply(vec![
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "busybox:1",
                        "resources": {"requests": {"cpu": "100m"}}}]}}}}),
        // Two pods of it, already on n1 (no ReplicaSet controller runs here).
        serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-a", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "busybox:1",
                "resources": {"requests": {"cpu": "100m"}}}]}}),
        serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-b", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "busybox:1",
                "resources": {"requests": {"cpu": "100m"}}}]}}),
        serde_json::json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 5,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 50}}}],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 1}}}}),
    ])
    .await;
    c.agent("n1").await;
    c.beat("n1", 100);
    let config = Config {
        sync_period: Duration::from_millis(200),
    };
    tokio::spawn(run(c.ctx.clone(), config));
    let replicas = || async {
        c.ctx
            .informers
            .deployments
            .get("default", "web")
            .and_then(|d| d.spec.replicas)
    };
    c.eventually("scaled to 4 (200 % against 50 %)", LIMIT, || async {
        (replicas().await == Some(4)).then_some(())
    })
    .await;
    let status = c
        .eventually("the status", LIMIT, || async {
            let h = c.ctx.informers.hpas.get("default", "web")?;
            h.status.clone().filter(|s| s.desired_replicas == 4)
        })
        .await;
    assert!(status.last_scale_time.is_some());
    let metric = status.current_metrics[0].resource.as_ref().expect("cpu");
    assert_eq!(metric.current.average_utilization, Some(100));

    c.beat("n1", 1);
    c.eventually("scaled down to the minimum", LIMIT, || async {
        (replicas().await == Some(1)).then_some(())
    })
    .await;
}
