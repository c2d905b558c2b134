//! Changes without a failed request, on a real two-node cluster
//! ([`Harness`]): six HTTP servers behind a ClusterIP Service, with
//! readiness probes and no preStop hook, whose shell stops serving the
//! moment SIGTERM arrives; a client pod on every node sends requests back
//! to back through the Service's address, and a host outside the cluster
//! through its node port, each on a new connection; a
//! rolling update replaces every server. Each old pod leaves every node's
//! data plane (its endpoints turn `terminating`, every node reports its
//! data plane programmed past that) before it is sent SIGTERM, so not one
//! request fails and the rollout completes. And when every endpoint of a
//! Service is terminating, the ones still serving keep answering
//! (Kubernetes' ProxyTerminatingEndpoints).
use std::time::Duration;

use jotasu_api::{Kind, Object};
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::dns::PodPlace;
use jotasu_tests::e2e::{Harness, SETTLE, r, ready};
use jotasu_tests::lab::testbin_path;
use jotasu_tests::privilege::require_root;
use jotasu_tests::traffic::{HttpLoad, http_load_args};
use jotasu_tests::wait::eventually;

/// The servers: busybox httpd in the background of a shell that waits for
/// it; SIGTERM (sent to every process of the container) ends httpd and the
/// requests it is serving at once, as a server without a graceful
/// shutdown would.
const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 6
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: httpd
        image: jotasu.local/busybox:latest
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && echo ok > /www/healthz && httpd -f -p 80 -h /www & wait"]
        env:
        - {name: REVISION, value: "VALUE"}
        ports:
        - {name: http, containerPort: 80}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
"#;

/// A client pod pinned to node NODE.
const CLIENT: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: NAME
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: sh
    image: jotasu.local/busybox:latest
    command: ["sleep", "3600"]
"#;

/// `jotasu-testbin http-load` against `to` in a client pod's place.
fn pod_load(place: &PodPlace, to: &str) -> HttpLoad {
    let testbin = testbin_path().expect("jotasu-testbin is built");
    let testbin = testbin.to_str().expect("a UTF-8 path");
    let args = http_load_args(to, 2, 0.0);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cmd = place.command(Duration::from_secs(900), testbin, &args);
    HttpLoad::start(cmd, &place.pod).expect("the load starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_under_load_fails_no_request() {
    if !require_root("a_rolling_update_under_load_fails_no_request") {
        return;
    }
    let h = Harness::start(ClusterOptions {
        nodes: 2,
        ..ClusterOptions::default()
    })
    .await;
    h.apply(&WEB.replace("VALUE", "1"));
    let first = h.ready_pods("app=web", 6).await;
    let vip = h.vip("web").await;
    let to = format!("{vip}:80");
    eventually("six endpoints", SETTLE, || async {
        (h.endpoint_ips("web").await.len() == 6).then_some(())
    })
    .await;

    // A client on every node.
    let mut places = Vec::new();
    for (i, node) in h.node_names().iter().enumerate() {
        let name = format!("client-{i}");
        h.apply(&CLIENT.replace("NAME", &name).replace("NODE", node));
        let pod = eventually(&format!("{name} running"), SETTLE, || async {
            h.pod(&name).await.filter(ready)
        })
        .await;
        places.push(PodPlace::of(&pod).expect("the client pod's place"));
    }
    let mut loads: Vec<HttpLoad> = places.iter().map(|p| pod_load(p, &to)).collect();
    // And a host outside the cluster, through the node port of node 0.
    let node_port = h.node_port("web", 0).await.expect("a node port");
    let (outside, _) = h.cluster.external_host(0).expect("an external host");
    let testbin = testbin_path().expect("jotasu-testbin is built");
    let mut cmd = outside.command(&testbin);
    let node0 = h.cluster.nodes()[0].ip();
    cmd.args(http_load_args(&format!("{node0}:{node_port}"), 2, 0.0));
    loads.push(HttpLoad::start(cmd, "outside, node port").expect("the load starts"));

    // Every server replaced, while the clients keep asking.
    h.apply(&WEB.replace("VALUE", "2"));
    let run = h.ctl.at(
        &h.server,
        &["rollout", "status", "deployment/web", "--timeout", "600s"],
    );
    assert_eq!(run.code, 0, "the rollout completes: {run:?}");
    let second = h.ready_pods("app=web", 6).await;
    assert!(
        second
            .iter()
            .all(|p| first.iter().all(|f| f.metadata.uid != p.metadata.uid)),
        "every server was replaced"
    );
    for load in loads {
        let pod = load.label().to_owned();
        let report = load.stop().expect("the load reports");
        eprintln!(
            "{pod}: {} answered, {} failed",
            report.ok,
            report.failures.len()
        );
        assert!(report.ok > 0, "{pod}: no request answered");
        assert!(
            report.failures.is_empty(),
            "{pod}: {} of {} requests failed: {:?}",
            report.failures.len(),
            report.ok + report.failures.len() as u64,
            report.failures
        );
    }
}

/// One server that takes its time to stop (a preStop hook of 30 s, a grace
/// period of 60 s), its readiness probe passing all along.
const SOLO: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: solo
  labels: {app: solo}
spec:
  terminationGracePeriodSeconds: 60
  containers:
  - name: httpd
    image: jotasu.local/busybox:latest
    command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && echo ok > /www/healthz && exec httpd -f -p 80 -h /www"]
    ports:
    - {name: http, containerPort: 80}
    readinessProbe:
      httpGet: {path: /healthz, port: http}
      periodSeconds: 1
      failureThreshold: 1
    lifecycle:
      preStop:
        exec: {command: ["sleep", "30"]}
---
apiVersion: v1
kind: Service
metadata:
  name: solo
spec:
  selector: {app: solo}
  ports:
  - {name: http, port: 80, targetPort: http}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_endpoint_serves_while_it_terminates() {
    if !require_root("the_last_endpoint_serves_while_it_terminates") {
        return;
    }
    let h = Harness::start(ClusterOptions::default()).await;
    h.apply(SOLO);
    h.client_pod().await;
    let pod = h.ready_pods("app=solo", 1).await.remove(0);
    let ip: std::net::Ipv4Addr = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok())
        .expect("the pod's address");
    let vip = h.vip("solo").await;
    let vip_addr: std::net::Ipv4Addr = vip.parse().expect("a VIP");
    eventually("the VIP answers", SETTLE, || async {
        h.get_through(&vip, 1).filter(|l| l == &["solo"])
    })
    .await;

    h.client
        .delete(&r(Kind::Pod, "solo"), None)
        .await
        .expect("the pod is deleted (gracefully)");
    // Its slice shows it terminating and still serving ...
    eventually("the endpoint terminating and serving", SETTLE, || async {
        let list = h
            .client
            .list(
                Kind::EndpointSlice,
                Some("default"),
                "kubernetes.io/service-name=solo",
            )
            .await
            .ok()?;
        let conditions = list.items.iter().find_map(|o| match o {
            Object::EndpointSlice(s) => s.endpoints.first().map(|e| e.conditions.clone()),
            _ => None,
        })?;
        (conditions.terminating == Some(true)
            && conditions.serving == Some(true)
            && conditions.ready == Some(false))
        .then_some(())
    })
    .await;
    // Its preStop hook runs: the agent saw every node's data plane
    // programmed with the endpoint terminating (it waits for that first).
    eventually("the preStop hook running", SETTLE, || async {
        let run = h.ctl.at(&h.server, &["exec", "solo", "--", "ps"]);
        (run.code == 0 && run.stdout.contains("sleep 30")).then_some(())
    })
    .await;
    // ... so, the only endpoint of its Service, it stays the VIP's backend
    // on the node (without the fallback the VIP would have none and refuse).
    let node = h.node_names().remove(0);
    eventually(
        "the terminating pod still the VIP's backend",
        SETTLE,
        || async {
            let dp = jotasu_ebpf::Datapath::open(&node).ok()?;
            let services = dp.services().ok()?;
            let s = services
                .iter()
                .find(|s| s.service.frontend.vip == vip_addr && s.service.frontend.port == 80)?;
            (s.service
                .backends
                .iter()
                .map(|b| *b.ip())
                .collect::<Vec<_>>()
                == [ip])
            .then_some(())
        },
    )
    .await;
    assert!(
        h.pod("solo")
            .await
            .is_some_and(|p| p.metadata.deletion_timestamp.is_some()),
        "still terminating (its preStop hook sleeps)"
    );
    assert_eq!(
        h.get_through(&vip, 3).as_deref(),
        Some(&["solo".to_owned(), "solo".to_owned(), "solo".to_owned()][..]),
        "the terminating pod answers through the VIP"
    );
}
