//! The endpoints runner against an in-process API server.

use std::time::Duration;

use jotasu_api::kinds::node::NodeStatus;
use jotasu_api::{Condition, Endpoints, Node, Object};

use super::*;
use crate::controllers::nodes::testkit::Cluster;

const LIMIT: Duration = Duration::from_secs(10);

fn pod(name: &str, node: &str, app: &str) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox:1",
            "ports": [{"name": "http", "containerPort": 8080}]}]}})
}

fn service(name: &str, selector: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": selector, "ports": [{"port": 80, "targetPort": "http"}]}})
}

async fn set_node_ready(c: &Cluster, name: &str, ready: bool) {
    let node = c.ctx.informers.nodes.get("", name).expect("node");
    let mut n = Node::clone(&node);
    n.status = Some(NodeStatus {
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: ready.into(),
            ..Condition::default()
        }],
        ..NodeStatus::default()
    });
    c.update_status(Object::Node(n)).await;
}

fn endpoints(c: &Cluster, name: &str) -> Option<std::sync::Arc<Endpoints>> {
    c.ctx.informers.endpoints.get("default", name)
}

fn ready_ips(e: &Endpoints) -> Vec<String> {
    e.subsets
        .iter()
        .flat_map(|s| &s.addresses)
        .map(|a| a.ip.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_pods_nodes_and_the_service() {
    let c = Cluster::start(&["n1", "n2"]).await;
    set_node_ready(&c, "n1", true).await;
    set_node_ready(&c, "n2", true).await;
    tokio::spawn(run(c.ctx.clone()));
    c.apply(vec![
        service("web", serde_json::json!({"app": "web"})),
        pod("a", "n1", "web"),
        pod("b", "n2", "web"),
        pod("x", "n1", "db"),
    ])
    .await;
    c.eventually("an empty Endpoints at first", LIMIT, || async {
        endpoints(&c, "web").map(|_| ())
    })
    .await;
    c.agent("n1").await;
    c.agent("n2").await;
    let e = c
        .eventually("two ready addresses", LIMIT, || async {
            endpoints(&c, "web").filter(|e| ready_ips(e).len() == 2)
        })
        .await;
    assert!(
        e.subsets
            .iter()
            .all(|s| s.ports.iter().all(|p| p.port == 8080))
    );

    // A node that is not Ready takes its pods out at once.
    set_node_ready(&c, "n2", false).await;
    c.eventually("n2's pod not ready", LIMIT, || async {
        endpoints(&c, "web").filter(|e| {
            ready_ips(e).len() == 1 && e.subsets.iter().any(|s| s.not_ready_addresses.len() == 1)
        })
    })
    .await;

    // A relabelled pod leaves; a deleted Service takes its Endpoints along.
    let a = c.ctx.informers.pods.get("default", "a").expect("a");
    let mut relabelled = jotasu_api::Pod::clone(&a);
    relabelled
        .metadata
        .labels
        .insert("app".into(), "other".into());
    relabelled.metadata.resource_version = None;
    relabelled.status = None;
    c.ctx
        .apply(&[Object::Pod(relabelled)])
        .await
        .expect("relabel");
    c.eventually("no ready address", LIMIT, || async {
        endpoints(&c, "web").filter(|e| ready_ips(e).is_empty())
    })
    .await;
    c.ctx
        .api
        .delete(
            &ObjectRef {
                kind: Kind::Service,
                ..endpoints_ref(&("default".into(), "web".into()))
            },
            None,
        )
        .await
        .expect("delete service");
    c.eventually("endpoints gone with the service", LIMIT, || async {
        endpoints(&c, "web").is_none().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_endpoints_of_a_selectorless_service_stay() {
    let c = Cluster::start(&["n1"]).await;
    tokio::spawn(run(c.ctx.clone()));
    let manual = serde_json::json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "ext", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 443}]}]});
    let svc = serde_json::json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "ext", "namespace": "default"},
        "spec": {"ports": [{"port": 443}]}});
    c.apply(vec![manual, svc]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let e = endpoints(&c, "ext").expect("still there");
    assert_eq!(ready_ips(&e), ["192.0.2.1"]);
    // Mirrored into a slice (what the agents follow), by the mirroring
    // controller's name; no pods' slice is made for it.
    let slices = c
        .eventually("the hand-made endpoints mirrored", LIMIT, || async {
            let s = c.ctx.informers.endpoint_slices.list_in("default");
            (!s.is_empty()).then_some(s)
        })
        .await;
    assert_eq!(slices.len(), 1);
    let slice = &slices[0];
    assert_eq!(
        slice
            .metadata
            .labels
            .get("endpointslice.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("endpointslicemirroring-controller.k8s.io")
    );
    assert_eq!(slice.endpoints[0].addresses, ["192.0.2.1"]);
    assert_eq!(slice.ports[0].port, Some(443));
}
