//! StatefulSets on a real node ([`Harness`]): pods started one at a time
//! in ordinal order, each Ready before the next; stable names, hostnames
//! and DNS names (`web-0.nginx`) through a headless Service; a deleted pod
//! back under its name; scale-down from the highest ordinal; a rolling
//! update held at its partition, then finished; `rollout status`,
//! `history` and `undo` as kubectl words them.
use std::collections::BTreeSet;
use std::time::Duration;

use jotasu_api::Pod;
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::e2e::{Harness, SETTLE, ready};
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;

/// Pods Ready only once told (`touch /tmp/ready`).
const ORDERED: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: slow
spec:
  replicas: 3
  serviceName: slow
  selector: {matchLabels: {app: slow}}
  template:
    metadata: {labels: {app: slow}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: jotasu.local/busybox:latest
        command: ["sleep", "3600"]
        readinessProbe:
          exec: {command: ["test", "-f", "/tmp/ready"]}
          periodSeconds: 1
"#;

/// Pods Ready at once, with a version in their environment.
const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: nginx
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80, name: web}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  replicas: 3
  serviceName: nginx
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: jotasu.local/busybox:latest
        command: ["sh", "-c", "touch /tmp/ready; exec sleep 3600"]
        env: [{name: VERSION, value: "VERSION_VALUE"}]
        readinessProbe:
          exec: {command: ["test", "-f", "/tmp/ready"]}
          periodSeconds: 1
"#;

fn web(version: &str) -> String {
    WEB.replace("VERSION_VALUE", version)
}

/// The live pods of `app`, by name.
async fn names(h: &Harness, app: &str) -> BTreeSet<String> {
    h.pods(&format!("app={app}"))
        .await
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.metadata.name().to_owned())
        .collect()
}

fn version(p: &Pod) -> String {
    p.spec.containers[0]
        .env
        .iter()
        .find(|e| e.name == "VERSION")
        .and_then(|e| e.value.clone())
        .unwrap_or_default()
}

async fn versions(h: &Harness) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = h
        .pods("app=web")
        .await
        .iter()
        .map(|p| (p.metadata.name().to_owned(), version(p)))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_order_identity_and_updates() {
    if !require_root("statefulset_order_identity_and_updates") {
        return;
    }
    let h = Harness::start(ClusterOptions::default()).await;

    // OrderedReady: web-1 waits for web-0 to be Ready, and so on.
    h.apply(ORDERED);
    for (i, name) in ["slow-0", "slow-1", "slow-2"].iter().enumerate() {
        eventually(&format!("{name} running"), SETTLE, || async {
            h.pod(name)
                .await
                .filter(|p| p.status.as_ref().and_then(|s| s.phase).is_some())
                .filter(|p| {
                    p.status.as_ref().and_then(|s| s.phase)
                        == Some(jotasu_api::kinds::pod_status::PodPhase::Running)
                })
        })
        .await;
        // Not Ready: the next ordinal is not created, however long it waits.
        for _ in 0..3 {
            let live = names(&h, "slow").await;
            assert_eq!(live.len(), i + 1, "before {name} is Ready: {live:?}");
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        h.ctl(&["exec", name, "--", "touch", "/tmp/ready"]);
    }
    h.ready_pods("app=slow", 3).await;
    assert_eq!(
        h.ctl(&["get", "statefulset", "slow", "--no-headers"])
            .split_whitespace()
            .nth(1),
        Some("3/3")
    );

    // Scale-down: the highest ordinal goes first, one at a time.
    h.ctl(&["scale", "statefulset", "slow", "--replicas=1"]);
    let mut gone: Vec<&str> = Vec::new();
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let all: BTreeSet<String> = h
            .pods("app=slow")
            .await
            .iter()
            .map(|p| p.metadata.name().to_owned())
            .collect();
        for name in ["slow-2", "slow-1"] {
            if !all.contains(name) && !gone.contains(&name) {
                gone.push(name);
            }
        }
        if all.len() == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "slow not scaled to 1: {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(gone, ["slow-2", "slow-1"], "deletion order");

    // Identity: names, hostnames and DNS names through the headless Service.
    h.apply(&web("1"));
    let pods = h.ready_pods("app=web", 3).await;
    let mut by_name: Vec<(String, String)> = pods
        .iter()
        .map(|p| {
            let ip = p
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.clone())
                .unwrap_or_default();
            (p.metadata.name().to_owned(), ip)
        })
        .collect();
    by_name.sort();
    assert_eq!(
        by_name.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["web-0", "web-1", "web-2"]
    );
    assert_eq!(h.ctl(&["exec", "web-1", "--", "hostname"]), "web-1\n");
    h.client_pod().await;
    let (_, ip0) = &by_name[0];
    eventually(
        "web-0.nginx resolves to web-0",
        Duration::from_secs(30),
        || async {
            let run = h.ctl.at(
                &h.server,
                &[
                    "exec",
                    "client",
                    "--",
                    "nslookup",
                    "web-0.nginx.default.svc.cluster.local",
                ],
            );
            (run.code == 0 && run.stdout.contains(ip0.as_str())).then_some(())
        },
    )
    .await;

    // A deleted pod comes back under its name.
    h.ctl(&["delete", "pod", "web-1"]);
    eventually("web-1 back", SETTLE, || async {
        h.pod("web-1")
            .await
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(ready)
    })
    .await;

    // A rolling update held at partition 2: only web-2 takes version 2.
    let partitioned = web("2").replace(
        "  serviceName: nginx\n",
        "  serviceName: nginx\n  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate: {partition: 2}\n",
    );
    h.apply(&partitioned);
    eventually("web-2 updated", SETTLE, || async {
        let v = versions(&h).await;
        (v == [
            ("web-0".to_owned(), "1".to_owned()),
            ("web-1".to_owned(), "1".to_owned()),
            ("web-2".to_owned(), "2".to_owned()),
        ])
        .then_some(())
    })
    .await;
    h.ready_pods("app=web", 3).await;
    let status = h.ctl(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
    assert!(
        status.contains("partitioned roll out complete: 1 new pods have been updated..."),
        "{status}"
    );

    // Partition 0: the rest, from web-1 down.
    h.apply(&web("2"));
    let status = h.ctl(&["rollout", "status", "statefulset/web", "--timeout=120s"]);
    assert!(
        status.contains("statefulset rolling update complete 3 pods at revision web-"),
        "{status}"
    );
    assert!(versions(&h).await.iter().all(|(_, v)| v == "2"));
    let history = h.ctl(&["rollout", "history", "statefulset/web"]);
    assert!(history.contains("REVISION  CHANGE-CAUSE"), "{history}");
    assert!(
        history.contains("\n1 ") && history.contains("\n2 "),
        "{history}"
    );

    // Undo: back to version 1 everywhere.
    let undo = h.ctl(&["rollout", "undo", "statefulset/web"]);
    assert_eq!(undo, "statefulset.apps/web rolled back\n");
    h.ctl(&["rollout", "status", "statefulset/web", "--timeout=120s"]);
    eventually("every pod at version 1", SETTLE, || async {
        let v = versions(&h).await;
        (v.len() == 3 && v.iter().all(|(_, v)| v == "1")).then_some(())
    })
    .await;
    let history = h.ctl(&["rollout", "history", "statefulset/web"]);
    assert!(
        history.contains("\n2 ") && history.contains("\n3 ") && !history.contains("\n1 "),
        "the first revision renumbered 3: {history}"
    );

    // Refusals: a StatefulSet's selector must match its template.
    let bad = ORDERED
        .replace("name: slow\n", "name: bad\n")
        .replace("matchLabels: {app: slow}", "matchLabels: {app: other}");
    let run = h.ctl.pipe(&h.server, &["apply", "-f", "-"], &bad);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("spec.template.metadata.labels: Invalid value: \"app=slow\": `selector` does not match template `labels`"),
        "{}",
        run.stderr
    );
}

/// Each pod's claim, from the default class (WaitForFirstConsumer, the
/// local provisioner), keeps what the pod wrote: every start appends a
/// line, and the identity file is written once.
const DB: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: app
        image: jotasu.local/busybox:latest
        command: ["sh", "-c", "[ -f /data/id ] || hostname > /data/id; echo start >> /data/starts; touch /tmp/ready; exec sleep 3600"]
        volumeMounts: [{name: data, mountPath: /data}]
        readinessProbe:
          exec: {command: ["test", "-f", "/tmp/ready"]}
          periodSeconds: 1
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Mi}}
"#;

/// (identity file, number of starts) of pod `name`'s volume.
fn volume(h: &Harness, name: &str) -> (String, usize) {
    try_volume(h, name).unwrap_or_else(|| panic!("cannot read the volume of {name}"))
}

/// [`volume`], or None while the pod's node does not answer.
fn try_volume(h: &Harness, name: &str) -> Option<(String, usize)> {
    let read = |file: &str| {
        let run = h.ctl.at(&h.server, &["exec", name, "--", "cat", file]);
        (run.code == 0).then_some(run.stdout)
    };
    let id = read("/data/id")?;
    let starts = read("/data/starts")?;
    Some((id.trim().to_owned(), starts.lines().count()))
}

async fn db_ready(h: &Harness, name: &str) {
    eventually(&format!("{name} Ready"), SETTLE, || async {
        h.pod(name)
            .await
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(ready)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_claims_outlive_pods_scaling_and_node_restarts() {
    if !require_root("statefulset_claims_outlive_pods_scaling_and_node_restarts") {
        return;
    }
    let mut h = Harness::start(ClusterOptions::default()).await;
    h.apply(DB);
    h.ready_pods("app=db", 2).await;
    assert_eq!(volume(&h, "db-0"), ("db-0".to_owned(), 1));
    assert_eq!(volume(&h, "db-1"), ("db-1".to_owned(), 1));
    let claims = h.ctl(&["get", "pvc", "--no-headers"]);
    for claim in ["data-db-0", "data-db-1"] {
        assert!(
            claims
                .lines()
                .any(|l| l.starts_with(claim) && l.contains("Bound")),
            "{claims}"
        );
    }

    // A deleted pod comes back to its own volume.
    h.ctl(&["delete", "pod", "db-0"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    db_ready(&h, "db-0").await;
    assert_eq!(volume(&h, "db-0"), ("db-0".to_owned(), 2));

    // Scale down: db-1 goes, its claim stays (Retain); back up, it finds it.
    h.ctl(&["scale", "statefulset", "db", "--replicas=1"]);
    h.ready_pods("app=db", 1).await;
    assert!(
        h.ctl(&["get", "pvc", "data-db-1", "--no-headers"])
            .contains("Bound")
    );
    h.ctl(&["scale", "statefulset", "db", "--replicas=2"]);
    h.ready_pods("app=db", 2).await;
    assert_eq!(volume(&h, "db-1"), ("db-1".to_owned(), 2));

    // The node restarts (agent and containers killed): the content stays.
    h.cluster.stop_node(0).await.expect("the node stops");
    tokio::time::sleep(Duration::from_secs(2)).await;
    h.cluster.start_node(0).expect("the node starts");
    eventually("db-0 restarted on its volume", SETTLE, || async {
        let p = h.pod("db-0").await.filter(ready)?;
        let (id, starts) = try_volume(&h, p.metadata.name())?;
        (starts >= 3).then_some((id, starts))
    })
    .await;
    assert_eq!(volume(&h, "db-0").0, "db-0");
    db_ready(&h, "db-1").await;
    let (id, starts) = volume(&h, "db-1");
    assert_eq!(id, "db-1");
    assert!(starts >= 2, "db-1 started {starts} times");
}
