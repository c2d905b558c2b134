//! Traffic from outside the cluster, end to end: a host on the underlay
//! (a namespace on the nodes' bridge, no node of the cluster) reaches
//! Services through their node ports on every node, through an external
//! IP routed to a node, and a pod through its host port; both external
//! traffic policies are checked by the client address the backend saw
//! (busybox httpd's CGI `REMOTE_ADDR`), and ClientIP affinity holds a
//! client on one backend until its timeout passes.
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::e2e::{Harness, SETTLE, pinned_pod};
use jotasu_tests::netns::NetNs;
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;

/// An httpd answering `/cgi-bin/who` with its pod's name and the client
/// address it saw.
const WHO: &str = r#"mkdir -p /www/cgi-bin && printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho "$(hostname) $REMOTE_ADDR"\n' > /www/cgi-bin/who && chmod +x /www/cgi-bin/who && exec httpd -f -p 80 -h /www"#;

/// A pod pinned to `node`, labelled `app: <app>`, running [`WHO`];
/// `host_port` maps that node port to its port 80.
fn pod(name: &str, node: &str, app: &str, host_port: Option<u16>) -> String {
    let ports = host_port.map_or_else(String::new, |hp| {
        format!("\n    ports:\n    - {{containerPort: 80, hostPort: {hp}}}")
    });
    let probe = "\n    readinessProbe:\n      tcpSocket: {port: 80}\n      periodSeconds: 1";
    pinned_pod(
        name,
        node,
        &format!("app: {app}"),
        WHO,
        &format!("{probe}{ports}"),
    )
}

/// A Service of type NodePort over `app: <app>` with `extra` spec lines.
fn service(name: &str, app: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  type: NodePort
  selector: {{app: {app}}}
  ports:
  - {{name: http, port: 80, targetPort: 80}}
{extra}
---
"#
    )
}

/// One GET of `/cgi-bin/who` from the external host: (pod, client address
/// it saw), or None when the request failed.
fn who(host: &NetNs, addr: Ipv4Addr, port: u16) -> Option<(String, String)> {
    let script = format!(
        "printf 'GET /cgi-bin/who HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 3 {addr} {port} | tail -n 1"
    );
    let out = host
        .command("busybox")
        .args(["sh", "-c", &script])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (pod, seen) = line.split_once(' ')?;
    // httpd listens dual-stack: IPv4 clients show as [::ffff:a.b.c.d].
    let seen = seen.trim_start_matches("[::ffff:").trim_end_matches(']');
    Some((pod.to_owned(), seen.to_owned()))
}

/// `n` GETs; every one must answer.
fn whos(host: &NetNs, addr: Ipv4Addr, port: u16, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            who(host, addr, port)
                .unwrap_or_else(|| panic!("request {i} to {addr}:{port} from outside failed"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn outside_clients_reach_node_ports_external_ips_and_host_ports() {
    if !require_root("outside_clients_reach_node_ports_external_ips_and_host_ports") {
        return;
    }
    let h = Harness::start(ClusterOptions::spreading(2)).await;
    let names = h.node_names();
    let ips: Vec<Ipv4Addr> = h.cluster.nodes().iter().map(|n| n.ip()).collect();
    let external_ip = Ipv4Addr::new(192, 168, 78, 10);
    let mut manifest = String::new();
    manifest += &pod("web-a", &names[0], "web", None);
    manifest += &pod("web-b", &names[1], "web", None);
    manifest += &pod("solo", &names[0], "solo", None);
    manifest += &pod("hp", &names[1], "hp", Some(8080));
    manifest += &service(
        "web-cluster",
        "web",
        &format!("  externalIPs: [\"{external_ip}\"]"),
    );
    manifest += &service("web-local", "web", "  externalTrafficPolicy: Local");
    manifest += &service("solo-local", "solo", "  externalTrafficPolicy: Local");
    manifest += &service(
        "web-sticky",
        "web",
        "  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 3}}",
    );
    h.apply(&manifest);
    for app in ["web", "solo", "hp"] {
        h.ready_pods(&format!("app={app}"), if app == "web" { 2 } else { 1 })
            .await;
    }
    let (host, client) = h
        .cluster
        .external_host(0)
        .expect("the external host is made");
    host.ip(&[
        "route",
        "add",
        &format!("{external_ip}/32"),
        "via",
        &ips[1].to_string(),
    ])
    .expect("the external IP is routed to node 1");
    let cluster_np = h.node_port("web-cluster", 0).await.expect("a node port");
    let local_np = h.node_port("web-local", 0).await.expect("a node port");
    let solo_np = h.node_port("solo-local", 0).await.expect("a node port");
    let sticky_np = h.node_port("web-sticky", 0).await.expect("a node port");
    // The agents program the frontends as the endpoints arrive.
    let (host_ref, node0) = (&host, ips[0]);
    eventually("node port on node 0 answers", SETTLE, || async move {
        who(host_ref, node0, cluster_np)
    })
    .await;
    let both: BTreeSet<String> = ["web-a", "web-b"].map(String::from).into();

    // Cluster: every node balances over every endpoint; the backend sees
    // the node the client connected to (SNAT), so replies return through it.
    for ip in &ips {
        let got = whos(&host, *ip, cluster_np, 6);
        let pods: BTreeSet<String> = got.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(pods, both, "node port on {ip}: {got:?}");
        assert!(
            got.iter().all(|(_, seen)| *seen == ip.to_string()),
            "Cluster policy: the backend sees node {ip}: {got:?}"
        );
    }
    // Local: each node answers with its own endpoint, and the backend sees
    // the client's own address.
    for (i, ip) in ips.iter().enumerate() {
        let got = whos(&host, *ip, local_np, 4);
        let want = if i == 0 { "web-a" } else { "web-b" };
        assert!(
            got.iter()
                .all(|(p, seen)| p == want && *seen == client.to_string()),
            "Local policy on node {i}: {got:?}"
        );
    }
    // Local on a node without an endpoint: refused; the node with one answers.
    assert_eq!(
        whos(&host, ips[0], solo_np, 2)[0],
        ("solo".to_owned(), client.to_string())
    );
    assert_eq!(
        who(&host, ips[1], solo_np),
        None,
        "node 1 has no solo endpoint: it refuses"
    );
    // An external IP routed to node 1: balanced, SNATed to node 1.
    let got = whos(&host, external_ip, 80, 6);
    let pods: BTreeSet<String> = got.iter().map(|(p, _)| p.clone()).collect();
    assert_eq!(pods, both, "external IP: {got:?}");
    assert!(
        got.iter().all(|(_, seen)| *seen == ips[1].to_string()),
        "{got:?}"
    );
    // A host port: node 1's address and port 8080 reach pod hp, the client's
    // address kept; node 0 has no such port.
    assert_eq!(
        whos(&host, ips[1], 8080, 2)[1],
        ("hp".to_owned(), client.to_string())
    );
    assert_eq!(who(&host, ips[0], 8080), None, "the host port is node 1's");

    // ClientIP affinity: one backend while the client keeps coming...
    let held = whos(&host, ips[0], sticky_np, 6);
    let first = held[0].0.clone();
    assert!(
        held.iter().all(|(p, _)| *p == first),
        "affinity holds: {held:?}"
    );
    // ... and, once its timeout (3 s) has passed idle, the next new flow is
    // balanced again: round-robin moves on to the other backend, which then holds.
    std::thread::sleep(std::time::Duration::from_secs(5));
    let after = whos(&host, ips[0], sticky_np, 4);
    assert!(
        after.iter().all(|(p, _)| *p != first),
        "affinity expired: {first} then {after:?}"
    );
    drop(host);
}
