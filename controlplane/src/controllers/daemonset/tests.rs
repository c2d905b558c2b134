//! The DaemonSet runner against an in-process API server.

use std::collections::BTreeMap;
use std::time::Duration;

use jotasu_api::Kind;

use super::*;
use crate::controllers::nodes::testkit::Cluster;

const LIMIT: Duration = Duration::from_secs(15);

fn daemonset(image: &str) -> serde_json::Value {
    serde_json::json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "a", "image": image}]}}}})
}

/// Live pods per node, and how many carry the current template.
fn placement(c: &Cluster) -> (BTreeMap<String, usize>, usize) {
    let Some(ds) = c.ctx.informers.daemon_sets.get("default", "agent") else {
        return (BTreeMap::new(), 0);
    };
    let hash = template_hash(&ds);
    let mut m = BTreeMap::new();
    let mut updated = 0;
    for p in c.ctx.informers.pods.list() {
        if p.metadata.deletion_timestamp.is_some() || !controlled_by(p.as_ref(), ds.as_ref()) {
            continue;
        }
        *m.entry(p.spec.node_name.clone().unwrap_or_default())
            .or_default() += 1;
        if p.metadata.labels.get(plan::HASH_LABEL) == Some(&hash) {
            updated += 1;
        }
    }
    (m, updated)
}

fn on(nodes: &[&str]) -> BTreeMap<String, usize> {
    nodes.iter().map(|n| ((*n).to_owned(), 1)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_follow_nodes_and_roll_out_template_changes() {
    let c = Cluster::start(&["n1", "n2"]).await;
    tokio::spawn(run(c.ctx.clone()));
    let agents = c.spawn_agents(&["n1", "n2", "n3"]);
    c.apply(vec![daemonset("busybox:1")]).await;
    c.eventually("one pod on each node, all ready", LIMIT, || async {
        let ds = c.ctx.informers.daemon_sets.get("default", "agent")?;
        let s = ds.status.clone()?;
        let ok = placement(&c).0 == on(&["n1", "n2"])
            && s.desired_number_scheduled == 2
            && s.number_ready == 2
            && s.number_available == 2
            && s.updated_number_scheduled == 2;
        ok.then_some(())
    })
    .await;

    c.add_node("n3").await;
    c.eventually("n3 gets one", LIMIT, || async {
        (placement(&c).0 == on(&["n1", "n2", "n3"])).then_some(())
    })
    .await;

    let n2 = ObjectRef {
        kind: Kind::Node,
        namespace: None,
        name: "n2".into(),
    };
    c.ctx.api.delete(&n2, None).await.expect("delete n2");
    c.eventually("n2's pod gone", LIMIT, || async {
        let gone = !c
            .ctx
            .informers
            .pods
            .list()
            .iter()
            .any(|p| p.spec.node_name.as_deref() == Some("n2"));
        gone.then_some(())
    })
    .await;

    c.apply(vec![daemonset("busybox:2")]).await;
    c.eventually("rolled out", LIMIT, || async {
        let (m, updated) = placement(&c);
        let ds = c.ctx.informers.daemon_sets.get("default", "agent")?;
        let s = ds.status.clone()?;
        let ok = m == on(&["n1", "n3"])
            && updated == 2
            && s.updated_number_scheduled == 2
            && s.number_available == 2
            && s.observed_generation == ds.metadata.generation;
        ok.then_some(())
    })
    .await;
    agents.abort();
}
