//! The overlay end to end: a real control plane, containerd and three nodes
//! running `jotasu-agent`, each node in its own network namespace on one
//! underlay bridge ([`jotasu_tests::cluster::LocalCluster`]). Pods on
//! different nodes reach each other through the nodes' VXLAN devices, which
//! the eBPF programs drive (`from_pod` encapsulates, `from_overlay`
//! delivers).
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use jotasu_agent::overlay::tunnel_of;
use jotasu_api::{Kind, Object, Pod};
use jotasu_ebpf::{DEFAULT_BPFFS, Overlay};
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::e2e::{Harness, SETTLE, ready, sample};
use jotasu_tests::lab::testbin_path;
use jotasu_tests::netns::enter;
use jotasu_tests::privilege::require_root;
use jotasu_tests::process::Spawned;
use jotasu_tests::wait::eventually;

/// A pod pinned to node `node` running `command` (a shell line).
fn pinned_pod(name: &str, node: &str, labels: &str, command: &str) -> String {
    jotasu_tests::e2e::pinned_pod(name, node, labels, command, "")
}

const WEB_SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 80}
"#;

/// An httpd answering with its pod's name.
const HTTPD: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www";

fn pod_ip(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("a running pod has an IP")
}

fn node_of(p: &Pod) -> String {
    p.spec.node_name.clone().expect("a bound pod has a node")
}

/// `sh -c script` in pod `pod`'s container; (exit code, stdout).
fn exec(h: &Harness, pod: &str, script: &str) -> (i32, String) {
    let run = h
        .ctl
        .at(&h.server, &["exec", pod, "--", "sh", "-c", script]);
    (run.code, run.stdout)
}

/// The pod's network namespace, as the agent names it.
fn netns_of(pod: &Pod) -> String {
    jotasu_tests::e2e::netns_of(pod).expect("a bound pod has a namespace")
}

/// `sh -c script` run by this test process inside pod `pod`'s network
/// namespace, with busybox's tools: outside the node's cgroup, so service
/// traffic takes the tc path (DNAT at `from_pod`, reverse NAT of replies
/// from other nodes at `from_overlay`) instead of the socket programs.
fn in_pod_netns(pod: &Pod, script: &str) -> (i32, String) {
    let out = enter(&netns_of(pod), "busybox")
        .args(["sh", "-c", script])
        .output()
        .expect("running nsenter");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Request i answered by the same pod as request i−n, and all n pods seen.
fn strictly_round_robin(answers: &[String], n: usize) -> bool {
    let distinct: BTreeSet<&String> = answers.iter().collect();
    distinct.len() == n && answers.windows(n + 1).all(|w| w[0] == w[n])
}

/// Pod to pod across nodes (TCP, UDP, ping, 50 MB intact), and a service
/// whose backends sit on all three nodes, balanced round-robin both by the
/// socket programs and by the tc path with reverse NAT at the client's node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_and_services_span_nodes() {
    if !require_root("pods_and_services_span_nodes") {
        return;
    }
    let h = Harness::start(ClusterOptions {
        nodes: 3,
        ..ClusterOptions::default()
    })
    .await;
    let nodes = h.node_names();
    let mut yaml = String::from(WEB_SERVICE);
    yaml.push_str("---\n");
    for (i, node) in nodes.iter().enumerate() {
        yaml.push_str(&pinned_pod(&format!("web-{i}"), node, "app: web", HTTPD));
    }
    yaml.push_str(&pinned_pod(
        "client",
        &nodes[0],
        "role: client",
        "sleep 3600",
    ));
    yaml.push_str(&pinned_pod(
        "udp-sink",
        &nodes[1],
        "role: sink",
        "sleep 3600",
    ));
    yaml.push_str(&pinned_pod(
        "blob",
        &nodes[2],
        "role: blob",
        "dd if=/dev/urandom of=/tmp/blob bs=1M count=50 2>/dev/null && sha256sum < /tmp/blob > /tmp/sum && exec nc -l -p 9001 < /tmp/blob",
    ));
    h.apply(&yaml);
    let web = h.ready_pods("app=web", 3).await;
    let client = h.ready_pods("role=client", 1).await.remove(0);
    let sink = h.ready_pods("role=sink", 1).await.remove(0);
    let by_node: BTreeMap<String, String> = web.iter().map(|p| (node_of(p), pod_ip(p))).collect();
    assert_eq!(by_node.len(), 3, "one web pod per node: {by_node:?}");
    let remote_web = &by_node[&nodes[1]];

    // TCP, pod to pod, to a pod on another node.
    let (code, body) = exec(
        &h,
        "client",
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {remote_web} 80 | tail -n 1"),
    );
    assert_eq!((code, body.trim()), (0, "web-1"), "TCP across nodes");

    // ICMP both ways (echo and reply cross the overlay).
    let (code, out) = exec(&h, "client", &format!("ping -c 3 -W 2 {remote_web}"));
    assert_eq!(code, 0, "ping across nodes: {out}");
    assert!(out.contains("3 packets received"), "{out}");

    // UDP both ways: busybox has no UDP tool, so the test's echo server
    // and client run in the two pods' network namespaces.
    let sink_ip = pod_ip(&sink);
    let testbin = testbin_path().expect("jotasu-testbin");
    let mut serve = enter(&netns_of(&sink), &testbin);
    serve.args(["serve", "--name", "sink", "--ports", "9000"]);
    let _server = Spawned::until_ready(serve, "ready").expect("the UDP echo server starts");
    let out = enter(&netns_of(&client), &testbin)
        .args([
            "connect",
            "--udp",
            "--count",
            "3",
            "--to",
            &format!("{sink_ip}:9000"),
        ])
        .output()
        .expect("running the UDP client");
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "UDP client: {lines}");
    assert_eq!(
        lines.lines().filter(|l| l.starts_with("sink ")).count(),
        3,
        "3 UDP answers across nodes: {lines}"
    );

    // 50 MB from node 2 to node 0, intact (full-size segments fit the MTU).
    let blob = h.ready_pods("role=blob", 1).await.remove(0);
    let blob_ip = pod_ip(&blob);
    let want = eventually("the blob's checksum", SETTLE, || async {
        let (code, sum) = exec(&h, "blob", "cat /tmp/sum");
        (code == 0 && sum.len() > 64).then_some(sum)
    })
    .await;
    let (code, got) = exec(
        &h,
        "client",
        // busybox nc quits soon after its stdin ends: hold it open with a FIFO.
        &format!(
            "mkfifo /tmp/hold; (nc {blob_ip} 9001 < /tmp/hold > /tmp/got) & exec 3> /tmp/hold; wait $!; \
             wc -c < /tmp/got; sha256sum < /tmp/got; rm /tmp/got /tmp/hold"
        ),
    );
    assert_eq!(code, 0, "{got}");
    assert_eq!(
        got,
        format!("52428800\n{want}"),
        "50 MB crossed the overlay intact"
    );

    // Nothing was dropped on the way: no VXLAN device dropped or failed to
    // send a packet, and the devices' MTU is the pods' (1450).
    for n in h.cluster.nodes() {
        let out = n
            .netns()
            .ip(&["-j", "-s", "link", "show", "jotasu_vxlan"])
            .expect("the node's VXLAN device");
        let link: serde_json::Value = serde_json::from_str(&out).expect("ip's JSON");
        let link = &link[0];
        assert_eq!(link["mtu"], 1450, "{}: {link}", n.name());
        for dir in ["tx", "rx"] {
            for what in ["dropped", "errors"] {
                assert_eq!(
                    link["stats64"][dir][what],
                    0,
                    "{} jotasu_vxlan {dir} {what}: {link}",
                    n.name()
                );
            }
        }
    }

    // The service: backends on three nodes, strict round-robin from node 0
    // (socket programs: the client's connect goes straight to a backend).
    let vip = h.vip("web").await;
    eventually("3 endpoints", SETTLE, || async {
        (h.endpoint_ips("web").await.len() == 3).then_some(())
    })
    .await;
    let answers = h.get_through(&vip, 30).expect("30 answers through the VIP");
    assert!(
        strictly_round_robin(&answers, 3),
        "socket path round-robin over pods on three nodes: {answers:?}"
    );

    // The tc path: the same from outside the node's cgroup; replies from
    // backends on nodes 1 and 2 are reverse-NATed at node 0's from_overlay.
    let script = format!(
        "for i in $(seq 30); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 2 {vip} 80 | tail -n 1; done"
    );
    let (code, out) = in_pod_netns(&client, &script);
    let answers: Vec<String> = out.lines().map(str::to_owned).collect();
    assert_eq!(code, 0);
    assert_eq!(answers.len(), 30, "every tc-path request answered: {out}");
    assert!(
        strictly_round_robin(&answers, 3),
        "tc path round-robin over pods on three nodes: {answers:?}"
    );
    let names: BTreeSet<&str> = answers.iter().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(["web-0", "web-1", "web-2"]));

    // The traffic went through the overlay: node 0 encapsulated, node 1
    // received and delivered; every node routes to the two others.
    let event = |e: &str| format!("jotasu_agent_datapath_events_total{{event=\"{e}\"}}");
    let m0 = h.metrics(0);
    let m1 = h.metrics(1);
    assert_eq!(
        sample(&m0, "jotasu_agent_overlay_tunnels"),
        Some(2.0),
        "{m0}"
    );
    assert!(
        sample(&m0, &event("encapsulated")).is_some_and(|v| v > 0.0),
        "{m0}"
    );
    assert!(
        sample(&m1, &event("from_overlay")).is_some_and(|v| v > 0.0),
        "{m1}"
    );
    assert!(
        sample(&m1, &event("overlay_delivered")).is_some_and(|v| v > 0.0),
        "{m1}"
    );

    // Real pods (containerd, the CNI plugin) lost nothing to the source
    // checks: every packet came from its pod's own address, every VXLAN
    // packet from a known node.
    for i in 0..3 {
        let m = h.metrics(i);
        for reason in ["spoofed_source", "unknown_overlay_peer", "malformed"] {
            let series = format!("jotasu_agent_datapath_drops_total{{reason=\"{reason}\"}}");
            assert_eq!(sample(&m, &series), Some(0.0), "node {i}: {series}\n{m}");
        }
    }
}

/// Node `node`'s tunnel map, read from its pins.
fn tunnels_of(node: &str) -> BTreeMap<String, String> {
    Overlay::open_in(Path::new(DEFAULT_BPFFS), node)
        .and_then(|o| o.tunnels())
        .map(|t| {
            t.into_iter()
                .map(|(cidr, ip)| (cidr.to_string(), ip.to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// What node `node`'s tunnel map must hold: every other node's CIDR → IP.
async fn expected_tunnels(h: &Harness, node: &str) -> BTreeMap<String, String> {
    let list = h
        .client
        .list(Kind::Node, None, "")
        .await
        .expect("list nodes");
    list.items
        .into_iter()
        .filter_map(|o| match o {
            Object::Node(n) if n.metadata.name() != node => Some(n),
            _ => None,
        })
        .filter_map(|n| tunnel_of(&n))
        .map(|(cidr, ip)| (cidr.to_string(), ip.to_string()))
        .collect()
}

/// Waits until every node's tunnel map names exactly the other nodes.
async fn tunnels_converge(h: &Harness, nodes: usize) {
    eventually(
        &format!("every node routes to the {} others", nodes - 1),
        SETTLE,
        || async {
            for n in h.cluster.nodes() {
                let want = expected_tunnels(h, n.name()).await;
                if want.len() != nodes - 1 || tunnels_of(n.name()) != want {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
}

/// A node that joins gets routes on every node and its pods are reached
/// across the overlay; a node that leaves loses its routes everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_joining_and_leaving_update_every_node() {
    if !require_root("nodes_joining_and_leaving_update_every_node") {
        return;
    }
    let mut h = Harness::start(ClusterOptions {
        nodes: 2,
        ..ClusterOptions::default()
    })
    .await;
    tunnels_converge(&h, 2).await;

    let joined = h.cluster.add_node().await.expect("a node joins");
    let newcomer = h.cluster.nodes()[joined].name().to_owned();
    tunnels_converge(&h, 3).await;
    // Its pods are reachable from a pod on the first node, through the overlay.
    let first = h.cluster.nodes()[0].name().to_owned();
    let mut yaml = pinned_pod("client", &first, "role: client", "sleep 3600");
    yaml.push_str(&pinned_pod("fresh", &newcomer, "role: fresh", HTTPD));
    h.apply(&yaml);
    h.ready_pods("role=client", 1).await;
    let fresh = h.ready_pods("role=fresh", 1).await.remove(0);
    let (code, body) = exec(
        &h,
        "client",
        &format!(
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {} 80 | tail -n 1",
            pod_ip(&fresh)
        ),
    );
    assert_eq!(
        (code, body.trim()),
        (0, "fresh"),
        "the newcomer's pod answers"
    );

    h.cluster
        .remove_node(joined)
        .await
        .expect("the node leaves");
    tunnels_converge(&h, 2).await;
    for n in h.cluster.nodes() {
        assert!(
            !tunnels_of(n.name()).values().any(|ip| *ip
                == fresh
                    .status
                    .as_ref()
                    .and_then(|s| s.host_ip.clone())
                    .unwrap_or_default()),
            "{} still routes to the node that left",
            n.name()
        );
    }
}

/// Three nodes, a 6-replica Deployment spread over them behind a Service;
/// one node stops (agent and pods): its pods leave the Endpoints when the
/// node's grace runs out (before they are evicted), replacements start on
/// the other nodes and become Ready, and a client on a surviving node sees
/// no failed request once the endpoints have changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_heals_onto_the_others() {
    if !require_root("a_stopped_node_heals_onto_the_others") {
        return;
    }
    let mut h = Harness::start(ClusterOptions::spreading(3)).await;
    let nodes = h.node_names();
    let mut yaml = format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 6
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: jotasu.local/busybox:latest
        command: ["sh", "-c", {HTTPD:?}]
        readinessProbe:
          tcpSocket: {{port: 80}}
          periodSeconds: 1
---
{WEB_SERVICE}
---
"#
    );
    yaml.push_str(&pinned_pod(
        "client",
        &nodes[0],
        "role: client",
        "sleep 3600",
    ));
    h.apply(&yaml);
    let pods = h.ready_pods("app=web", 6).await;
    h.ready_pods("role=client", 1).await;
    let spread: BTreeMap<String, usize> = pods.iter().fold(BTreeMap::new(), |mut m, p| {
        *m.entry(node_of(p)).or_default() += 1;
        m
    });
    assert_eq!(
        spread.len(),
        3,
        "the replicas spread over the nodes: {spread:?}"
    );
    let vip = h.vip("web").await;
    eventually("6 endpoints", SETTLE, || async {
        (h.endpoint_ips("web").await.len() == 6).then_some(())
    })
    .await;
    assert!(
        h.get_through(&vip, 12).is_some(),
        "the service answers before the stop"
    );

    // Stop node 2: its agent and its pods die, its link goes down.
    let victim = nodes[2].clone();
    let doomed: BTreeSet<String> = pods
        .iter()
        .filter(|p| node_of(p) == victim)
        .map(pod_ip)
        .collect();
    let doomed_names: BTreeSet<String> = pods
        .iter()
        .filter(|p| node_of(p) == victim)
        .map(|p| p.metadata.name().to_owned())
        .collect();
    let stopped = std::time::Instant::now();
    h.cluster.stop_node(2).await.expect("stopping node 2");

    // Its pods leave the Endpoints while they still exist (NotReady at the
    // node's grace, before eviction deletes them).
    eventually(
        "the stopped node's pods leave the Endpoints",
        SETTLE,
        || async {
            let eps = h.endpoint_ips("web").await;
            eps.is_disjoint(&doomed).then_some(())
        },
    )
    .await;
    let left_after = stopped.elapsed();
    let still_there = h
        .pods("app=web")
        .await
        .iter()
        .filter(|p| doomed_names.contains(p.metadata.name()))
        .count();
    assert_eq!(
        still_there,
        doomed_names.len(),
        "the pods left the Endpoints through the grace, not by deletion"
    );
    eprintln!("the stopped node's pods left the Endpoints {left_after:?} after the stop");

    // Once the endpoints changed, no request fails — while replacements
    // start and join, and after.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let mut rounds = 0;
    let replaced = loop {
        let answers = h.get_through(&vip, 10);
        assert!(
            answers
                .as_ref()
                .is_some_and(|a| a.iter().all(|l| l.starts_with("web-"))),
            "a request failed after the endpoints changed (round {rounds}): {answers:?}"
        );
        rounds += 1;
        let ready: Vec<Pod> = h
            .pods("app=web")
            .await
            .into_iter()
            .filter(|p| ready(p) && p.metadata.deletion_timestamp.is_none())
            .collect();
        if ready.len() == 6 && ready.iter().all(|p| node_of(p) != victim) {
            break ready;
        }
        assert!(rounds < 200, "the replacements never became Ready");
    };
    eprintln!(
        "6 replicas Ready on the surviving nodes {:?} after the stop ({rounds} request rounds, none failed)",
        stopped.elapsed()
    );
    eventually("6 endpoints on the surviving nodes", SETTLE, || async {
        let eps = h.endpoint_ips("web").await;
        (eps.len() == 6 && eps.is_disjoint(&doomed)).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let answers = h.get_through(&vip, 30).expect("30 answers after healing");
    let names: BTreeSet<&str> = answers.iter().map(String::as_str).collect();
    let want: BTreeSet<&str> = replaced.iter().map(|p| p.metadata.name()).collect();
    assert_eq!(names, want, "every replica answers, round-robin");
}
