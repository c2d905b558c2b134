//! Maintenance on a real two-node cluster ([`Harness`]): `drain` refuses a
//! node with a pod no controller would replace; with `--force` left out
//! of the way, it is blocked by a PodDisruptionBudget — naming it — until
//! the budget allows, then evicts every pod onto the other node;
//! `uncordon` makes the node schedulable again.
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::e2e::{Harness, SETTLE};
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: jotasu.local/busybox:latest
        command: ["sleep", "3600"]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web-pdb
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
"#;

const BARE: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: bare
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: jotasu.local/busybox:latest
    command: ["sleep", "3600"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_respects_budgets_and_controllers() {
    if !require_root("drain_respects_budgets_and_controllers") {
        return;
    }
    let h = Harness::start(ClusterOptions {
        nodes: 2,
        ..ClusterOptions::default()
    })
    .await;
    h.apply(WEB);
    let pods = h.ready_pods("app=web", 2).await;
    let node = pods[0].spec.node_name.clone().expect("a node");
    let other = h
        .node_names()
        .into_iter()
        .find(|n| *n != node)
        .expect("a second node");

    // The budget's status: 2 healthy, 2 needed, no disruption allowed.
    eventually("the budget counted", SETTLE, || async {
        let row = h.ctl(&["get", "pdb", "web-pdb", "--no-headers"]);
        let cells: Vec<&str> = row.split_whitespace().collect();
        (cells.get(1..4) == Some(&["2", "N/A", "0"][..])).then_some(())
    })
    .await;

    // A pod no controller would replace: refused before anything is evicted.
    h.apply(&BARE.replace("NODE", &node));
    eventually("the bare pod running", SETTLE, || async {
        h.pod("bare").await.filter(jotasu_tests::e2e::ready)
    })
    .await;
    let run = h
        .ctl
        .at(&h.server, &["drain", &node, "--ignore-daemonsets"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains(&format!("node/{node} cordoned")),
        "{run:?}"
    );
    assert!(
        run.stderr.contains(
            "cannot delete Pods that declare no controller (use --force to override): default/bare"
        ),
        "{run:?}"
    );
    assert_eq!(h.pods("app=web").await.len(), 2, "nothing evicted");
    h.ctl(&["delete", "pod", "bare"]);

    // The budget blocks, and says which budget and why.
    let run = h.ctl.at(
        &h.server,
        &["drain", &node, "--ignore-daemonsets", "--timeout=12s"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("node/{node} already cordoned")),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("(will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget. The disruption budget web-pdb needs 2 healthy pods and has 2 currently"),
        "{run:?}"
    );
    assert_eq!(
        h.ready_pods("app=web", 2).await.len(),
        2,
        "both still running"
    );

    // A third replica (on the other node: this one is cordoned) gives the
    // budget room; the drain then evicts and the pods move.
    h.ctl(&["scale", "deployment", "web", "--replicas=3"]);
    let three = h.ready_pods("app=web", 3).await;
    assert!(
        three
            .iter()
            .filter(|p| p.metadata.creation_timestamp > pods[1].metadata.creation_timestamp)
            .all(|p| p.spec.node_name.as_deref() == Some(other.as_str())),
        "no new pod on the cordoned node"
    );
    let run = h.ctl.at(
        &h.server,
        &["drain", &node, "--ignore-daemonsets", "--timeout=120s"],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(" evicted\n"), "{run:?}");
    assert!(
        run.stdout.ends_with(&format!("node/{node} drained\n")),
        "{run:?}"
    );
    let moved = h.ready_pods("app=web", 3).await;
    assert!(
        moved
            .iter()
            .all(|p| p.spec.node_name.as_deref() == Some(other.as_str())),
        "every web pod on {other}"
    );
    let nodes = h.ctl(&["get", "nodes"]);
    assert!(nodes.contains("SchedulingDisabled"), "{nodes}");
    assert_eq!(
        h.ctl(&["uncordon", &node]),
        format!("node/{node} uncordoned\n")
    );
    assert_eq!(
        h.ctl(&["uncordon", &node]),
        format!("node/{node} already uncordoned\n")
    );
}
