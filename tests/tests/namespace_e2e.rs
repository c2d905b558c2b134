//! Namespaces end to end: a real control plane and one node running
//! `jotasu-agent` ([`LocalCluster`], names with this run's prefix, removed
//! on drop, on failure too). A manifest file brings a Namespace and a
//! Deployment, Service and ConfigMap in it; deleting the namespace shows it
//! Terminating while the node stops its pods, refuses new content, and
//! then everything in it and the namespace itself are gone.
use std::time::Duration;

use jotasu_api::{Kind, Object, ObjectRef, Pod};
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::e2e::{Harness, SETTLE, ready};
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;

/// The manifest: the Namespace first, then what lives in it.
fn manifest(ns: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata:
  name: {ns}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {ns}
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {ns}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 3
      containers:
      - name: sleeper
        image: jotasu.local/busybox:latest
        command: ["sleep", "3600"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {ns}
spec:
  selector: {{app: web}}
  ports:
  - {{port: 80, targetPort: 80}}
"#
    )
}

fn config_map(ns: &str, name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\n")
}

/// A table's rows, as cells.
fn cells(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// How many objects of `kind` are left in `ns`.
async fn count(h: &Harness, kind: Kind, ns: &str) -> usize {
    h.client
        .list(kind, Some(ns), "")
        .await
        .map_or(usize::MAX, |l| l.items.len())
}

async fn pods_in(h: &Harness, ns: &str) -> Vec<Pod> {
    h.client
        .list(Kind::Pod, Some(ns), "")
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter_map(|o| Pod::try_from(o).ok())
        .collect()
}

/// A deleted namespace is Terminating until the node has stopped its pods
/// and everything in it is gone; then it goes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_namespace_takes_everything_in_it_along() {
    if !require_root("a_deleted_namespace_takes_everything_in_it_along") {
        return;
    }
    let h = Harness::start(ClusterOptions::default()).await;
    let ns = format!("{}-team", h.cluster.prefix());

    // Nothing can be created in a namespace that does not exist.
    let missing = format!("{}-nowhere", h.cluster.prefix());
    let run = h.ctl.pipe(
        &h.server,
        &["apply", "-f", "-"],
        &config_map(&missing, "lost"),
    );
    assert_eq!(
        run.failed(),
        format!("Error from server (NotFound): namespaces \"{missing}\" not found\n")
    );

    // One file: the namespace and its contents, applied together.
    let file = h.cluster.dir().join("namespace.yaml");
    std::fs::write(&file, manifest(&ns)).expect("write the manifest");
    let out = h.ctl(&["apply", "-f", file.to_str().expect("utf-8 path")]);
    assert_eq!(
        out,
        format!(
            "namespace/{ns} created\nconfigmap/settings created\ndeployment.apps/web created\nservice/web created\n"
        )
    );
    let table = cells(&h.ctl(&["get", "ns", &ns]));
    assert_eq!(table[0], ["NAME", "STATUS", "AGE"]);
    assert_eq!(table[1][..2], [ns.as_str(), "Active"]);
    let all = cells(&h.ctl(&["get", "namespaces"]));
    for initial in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        assert!(
            all.iter().any(|row| row[0] == initial),
            "{initial}: {all:?}"
        );
    }
    let accounts = cells(&h.ctl(&["get", "sa", "-A"]));
    assert_eq!(accounts[0], ["NAMESPACE", "NAME", "SECRETS", "AGE"]);
    assert!(
        accounts
            .iter()
            .any(|row| row[..3] == [ns.as_str(), "default", "0"]),
        "{accounts:?}"
    );
    // A pod naming an account the namespace lacks is refused.
    let run = h.ctl.pipe(
        &h.server,
        &["apply", "-n", &ns, "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: lone\nspec:\n  serviceAccountName: robot\n  containers:\n  - name: c\n    image: jotasu.local/busybox:latest\n",
    );
    assert_eq!(
        run.failed(),
        format!(
            "Error from server (Forbidden): pods \"lone\" is forbidden: error looking up service account {ns}/robot: serviceaccount \"robot\" not found\n"
        )
    );
    eventually("two web pods running", SETTLE, || async {
        let pods = pods_in(&h, &ns).await;
        (pods.len() == 2 && pods.iter().all(ready)).then_some(())
    })
    .await;

    // The cluster's own namespaces stay.
    let run = h.ctl.at(&h.server, &["delete", "ns", "default"]);
    assert_eq!(
        run.failed(),
        "Error from server (Forbidden): namespaces \"default\" is forbidden: this namespace may not be deleted\n"
    );

    // Deleted: Terminating while the node stops the pods (3 s of grace).
    assert_eq!(
        h.ctl(&["delete", "namespace", &ns]),
        format!("namespace \"{ns}\" deleted\n")
    );
    let table = cells(&h.ctl(&["get", "ns", &ns]));
    assert_eq!(table[1][..2], [ns.as_str(), "Terminating"]);
    let run = h
        .ctl
        .pipe(&h.server, &["apply", "-f", "-"], &config_map(&ns, "late"));
    assert_eq!(
        run.failed(),
        format!(
            "Error from server (Forbidden): configmaps \"late\" is forbidden: unable to create new content in namespace {ns} because it is being terminated\n"
        )
    );
    let described = eventually("pods said to remain", SETTLE, || async {
        let page = h.ctl(&["describe", "ns", &ns]);
        page.contains("NamespaceContentRemaining").then_some(page)
    })
    .await;
    assert!(
        described.contains("Status:       Terminating"),
        "{described}"
    );

    // Then everything goes, the namespace last.
    let ns_ref = ObjectRef {
        kind: Kind::Namespace,
        namespace: None,
        name: ns.clone(),
    };
    eventually("the namespace gone", SETTLE, || async {
        match h.client.get(&ns_ref).await {
            Err(e) if e.is_not_found() => Some(()),
            Ok(Object::Namespace(n)) => {
                assert!(n.is_terminating(), "it never comes back to Active");
                None
            }
            _ => None,
        }
    })
    .await;
    for kind in [
        Kind::Pod,
        Kind::Deployment,
        Kind::ReplicaSet,
        Kind::Service,
        Kind::Endpoints,
        Kind::ConfigMap,
        Kind::ServiceAccount,
    ] {
        assert_eq!(count(&h, kind, &ns).await, 0, "{kind} left in {ns}");
    }
    let run = h.ctl.at(&h.server, &["get", "ns", &ns]);
    assert_eq!(
        run.failed(),
        format!("Error from server (NotFound): namespaces \"{ns}\" not found\n")
    );
    // The node stopped the containers: nothing of the namespace runs.
    let cd = h.containerd().await;
    eventually("no container left", Duration::from_secs(30), || async {
        cd.list().await.ok().filter(Vec::is_empty)
    })
    .await;
}
