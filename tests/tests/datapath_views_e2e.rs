//! What an operator sees of a node's data plane, end to end on a real
//! 2-node cluster: the test makes flows through a Service (by the socket
//! programs from a pod, and by `from_pod` from a process in the pod's
//! network namespace outside the node's cgroup) and refusals to a Service
//! without endpoints, then reads them back with the real `jotactl`:
//! `datapath services` shows the flows each backend got, `datapath
//! conntrack --service` the tc path's entries, `datapath drops` the
//! refusals, `datapath tunnels` the other node, and `flows` (a stream
//! followed from before the traffic, and the node's recent events) every
//! flow and the drops with their reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::sync::{Arc, Mutex};

use jotasu_api::Pod;
use jotasu_api::grpc::v1;
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::e2e::{Harness, SETTLE, ready};
use jotasu_tests::netns::enter;
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;
use serde_json::Value;

fn pinned_pod(name: &str, node: &str, labels: &str, command: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{{labels}}}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  containers:
  - name: main
    image: jotasu.local/busybox:latest
    command: ["sh", "-c", {command:?}]
    readinessProbe:
      exec: {{command: ["true"]}}
      periodSeconds: 1
---
"#
    )
}

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 80}
---
apiVersion: v1
kind: Service
metadata:
  name: empty
spec:
  selector: {app: nothing}
  ports:
  - {name: http, port: 80, targetPort: 80}
---
"#;

const HTTPD: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www";

/// `count` GETs of `vip` from a shell line; the answers' last lines.
fn gets(vip: &str, count: usize) -> String {
    format!(
        "for i in $(seq {count}); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {vip} 80 | tail -n 1; done"
    )
}

/// `sh -c script` run by this test process in the pod's network namespace:
/// outside the node's cgroup, so service traffic takes the tc path.
fn in_pod_netns(pod: &Pod, script: &str) -> String {
    let ns = jotasu_tests::e2e::netns_of(pod).expect("a bound pod has a namespace");
    let out = enter(&ns, "busybox")
        .args(["sh", "-c", script])
        .output()
        .expect("running nsenter");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn service<'a>(services: &'a Value, name: &str) -> Option<&'a Value> {
    services["services"]
        .as_array()?
        .iter()
        .find(|s| s["service"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jotactl_shows_a_nodes_services_conntrack_drops_tunnels_and_flows() {
    if !require_root("jotactl_shows_a_nodes_services_conntrack_drops_tunnels_and_flows") {
        return;
    }
    let h = Harness::start(ClusterOptions::spreading(2)).await;
    let nodes = h.node_names();
    let n0 = nodes[0].as_str();
    let mut yaml = String::from(SERVICES);
    yaml += &pinned_pod("web-0", n0, "app: web", HTTPD);
    yaml += &pinned_pod("web-1", &nodes[1], "app: web", HTTPD);
    yaml += &pinned_pod("client", n0, "role: client", "sleep 3600");
    h.apply(&yaml);
    h.ready_pods("app=web", 2).await;
    let client = h.ready_pods("role=client", 1).await.remove(0);
    assert!(ready(&client));
    let vip = h.vip("web").await;
    let empty_vip = h.vip("empty").await;

    // The node programs web with both backends (and empty with none).
    eventually("web programmed on the client's node", SETTLE, || async {
        let out = h.ctl(&["datapath", "services", "--node", n0, "-o", "json"]);
        let v = json(&out);
        let ok = service(&v, "default/web:http")
            .is_some_and(|s| s["backends"].as_array().is_some_and(|b| b.len() == 2))
            && service(&v, "default/empty:http").is_some();
        ok.then_some(())
    })
    .await;

    // A live stream of the node's flows, from before the traffic.
    let seen: Arc<Mutex<Vec<v1::Flow>>> = Arc::default();
    let mut stream = h
        .client
        .datapath()
        .flows(v1::FlowsRequest {
            node: n0.into(),
            follow: true,
            ..Default::default()
        })
        .await
        .expect("following the node's flows")
        .into_inner();
    let sink = Arc::clone(&seen);
    let follower = tokio::spawn(async move {
        while let Ok(Some(m)) = stream.message().await {
            if let Some(v1::flow_message::Message::Flow(f)) = m.message {
                sink.lock().unwrap().push(f);
            }
        }
    });

    // Four flows by the socket programs (the pod is in the node's cgroup),
    // two by from_pod (this process in the pod's namespace), and a refusal
    // by each path to the Service without endpoints.
    let answers = h.ctl(&["exec", "client", "--", "sh", "-c", &gets(&vip, 4)]);
    assert_eq!(answers.lines().count(), 4, "{answers}");
    let answers = in_pod_netns(&client, &gets(&vip, 2));
    assert_eq!(answers.lines().count(), 2, "{answers}");
    let refused = format!("nc -w 2 {empty_vip} 80 </dev/null; echo refused");
    h.ctl(&["exec", "client", "--", "sh", "-c", &refused]);
    in_pod_netns(&client, &refused);

    // Services: six new flows, round-robin over the two backends.
    let out = h.ctl(&["datapath", "services", "--node", n0, "-o", "json"]);
    let v = json(&out);
    let web = service(&v, "default/web:http").expect("web");
    let per_backend: Vec<u64> = web["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["newFlows"].as_u64().unwrap())
        .collect();
    assert_eq!(per_backend, [3, 3], "{out}");
    assert_eq!(web["newFlows"]["socket"], 4, "{out}");
    assert_eq!(web["newFlows"]["tc"], 2, "{out}");
    let empty = service(&v, "default/empty:http").expect("empty");
    assert_eq!(empty["rejected"], 2, "{out}");
    let table = h.ctl(&["datapath", "services", "--node", n0]);
    for want in [
        "default/web:http",
        "default/web-0",
        "default/web-1",
        "default/empty:http",
    ] {
        assert!(table.contains(want), "{want} in:\n{table}");
    }

    // Conntrack: the tc path's two flows, both directions, named.
    let out = h.ctl(&[
        "datapath",
        "conntrack",
        "--node",
        n0,
        "--service",
        "web",
        "-o",
        "json",
    ]);
    let v = json(&out);
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{out}");
    assert!(
        entries.iter().all(|e| e["service"] == "default/web:http"),
        "{out}"
    );
    let forward = entries
        .iter()
        .filter(|e| e["direction"] == "forward")
        .count();
    assert_eq!(forward, 2, "{out}");
    let limited = json(&h.ctl(&[
        "datapath",
        "conntrack",
        "--node",
        n0,
        "--service",
        "web",
        "--limit",
        "1",
        "-o",
        "json",
    ]));
    assert_eq!(limited["entries"].as_array().unwrap().len(), 1);
    assert_eq!(limited["truncated"], true);
    let table = h.ctl(&["datapath", "conntrack", "--node", n0, "--service", "web"]);
    assert!(table.contains(&format!("{vip}:80")), "{table}");

    // Drops: both refusals.
    let v = json(&h.ctl(&["datapath", "drops", "--node", n0, "-o", "json"]));
    assert_eq!(v["drops"]["no_backend"], 2, "{v}");
    assert_eq!(v["drops"]["spoofed_source"], 0, "{v}");
    assert!(v["flowEvents"]["emitted"].as_u64().unwrap() >= 8, "{v}");

    // Tunnels: the other node.
    let table = h.ctl(&["datapath", "tunnels", "--node", n0]);
    assert!(table.contains(&nodes[1]), "{table}");

    // flows: the node's recent events, filtered there.
    let lines = h.ctl(&["flows", "--node", n0, "--service", "web", "--last", "100"]);
    let web_flows: Vec<&str> = lines.lines().filter(|l| l.contains("FORWARDED")).collect();
    assert_eq!(web_flows.len(), 6, "{lines}");
    assert_eq!(
        web_flows
            .iter()
            .filter(|l| l.contains("sock_connect4"))
            .count(),
        4,
        "{lines}"
    );
    assert!(
        web_flows
            .iter()
            .filter(|l| l.contains("sock_connect4"))
            .all(|l| l.contains("default/client")),
        "the socket programs' client, by its cgroup: {lines}"
    );
    assert_eq!(
        web_flows.iter().filter(|l| l.contains("from_pod")).count(),
        2,
        "{lines}"
    );
    let dropped = h.ctl(&[
        "flows",
        "--node",
        n0,
        "--verdict",
        "dropped",
        "--last",
        "100",
    ]);
    let refusals: Vec<&str> = dropped
        .lines()
        .filter(|l| l.contains("DROPPED (no_backend)") && l.contains("[default/empty:http]"))
        .collect();
    assert_eq!(refusals.len(), 2, "{dropped}");
    assert!(!dropped.contains("FORWARDED"), "{dropped}");
    let by_pod = h.ctl(&["flows", "--node", n0, "--pod", "web-1", "--last", "100"]);
    assert_eq!(
        by_pod.lines().count(),
        3,
        "the flows web-1 got: {by_pod}\nall: {lines}"
    );

    // The stream followed from before saw the same flows as they happened.
    let followed = eventually("the followed stream caught up", SETTLE, || async {
        let s = seen.lock().unwrap();
        let web = s
            .iter()
            .filter(|f| f.service == "default/web:http" && f.verdict == "forwarded")
            .count();
        let refused = s
            .iter()
            .filter(|f| f.verdict == "dropped" && f.drop_reason == "no_backend")
            .count();
        (web == 6 && refused == 2).then(|| s.clone())
    })
    .await;
    assert!(followed.iter().all(|f| f.node == n0));
    follower.abort();

    // And Prometheus has the same counters.
    let metrics = h.metrics(0);
    assert!(
        metrics.contains("jotasu_agent_datapath_flow_events_total{outcome=\"emitted\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("jotasu_agent_flow_stream_events_total{outcome=\"received\"}"));
}
