//! Cluster DNS record by record: Debian's `dig`, run as a process of client
//! pods on two nodes, asks 10.96.0.10 for every kind of record the
//! "Kubernetes DNS-Based Service Discovery" specification names; each node's
//! resolver answers from its own view (A, headless A per ready endpoint,
//! per-pod names, SRV, PTR, pod A records, NODATA, NXDOMAIN with the SOA,
//! truncation over UDP and the whole answer over TCP).
use std::collections::BTreeMap;

use jotasu_api::Pod;
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::dns::{PodPlace, app_pod, clients_on_every_node, dashed, pod_ip, reverse, set};
use jotasu_tests::e2e::{Harness, SETTLE};
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;

/// `web` (ClusterIP) and `pets` (headless) select the same pods.
const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: pet}
  ports:
  - {name: http, port: 80, targetPort: http}
---
apiVersion: v1
kind: Service
metadata:
  name: pets
spec:
  clusterIP: None
  selector: {app: pet}
  ports:
  - {name: http, port: 80, targetPort: http}
"#;

const SVC: &str = "default.svc.cluster.local";

/// Two Services, three pods behind them — `alpha` (node 0) and `beta`
/// (node 1) with hostnames in the `pets` subdomain, `pet-c` (node 0)
/// without — and a client on each node: the clients' places and the pods.
async fn pets(h: &Harness) -> (Vec<PodPlace>, BTreeMap<String, Pod>) {
    let nodes = h.node_names();
    h.apply(SERVICES);
    h.apply(
        &[
            app_pod("pet-a", "pet", &nodes[0], Some(("alpha", "pets"))),
            app_pod("pet-b", "pet", &nodes[1], Some(("beta", "pets"))),
            app_pod("pet-c", "pet", &nodes[0], None),
        ]
        .join("---\n"),
    );
    let clients = clients_on_every_node(h).await;
    let pods = h
        .ready_pods("app=pet", 3)
        .await
        .into_iter()
        .map(|p| (p.metadata.name().to_owned(), p))
        .collect();
    (clients, pods)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_gets_every_kind_of_record_on_every_node() {
    if !require_root("dig_gets_every_kind_of_record_on_every_node") {
        return;
    }
    let h = Harness::start(ClusterOptions::spreading(2)).await;
    let (clients, pods) = pets(&h).await;
    let vip = h.vip("web").await;
    let ip = |name: &str| pod_ip(&pods[name]);
    let (a, b, c) = (ip("pet-a"), ip("pet-b"), ip("pet-c"));
    for client in &clients {
        // A headless Service: one A per ready endpoint (once the node has them).
        client
            .until_answers(
                &format!("pets.{SVC}"),
                "A",
                &[a.clone(), b.clone(), c.clone()],
            )
            .await;

        // A ClusterIP Service: its cluster IP, authoritative, TTL 5 s.
        let d = client.dig(&[&format!("web.{SVC}"), "A"]);
        assert!(d.answers("A", &set([&vip])), "{}", d.output);
        assert!(d.flags.contains("aa"), "{}", d.output);
        assert!(d.answer.iter().all(|r| r.ttl == 5), "{}", d.output);

        // Per-pod names of pods whose subdomain is the headless Service.
        let d = client.dig(&[&format!("alpha.pets.{SVC}"), "A"]);
        assert!(d.answers("A", &set([&a])), "{}", d.output);
        let d = client.dig(&[&format!("beta.pets.{SVC}"), "A"]);
        assert!(d.answers("A", &set([&b])), "{}", d.output);

        // SRV of a named port: the ClusterIP Service's port and name...
        let d = client.dig(&[&format!("_http._tcp.web.{SVC}"), "SRV"]);
        assert!(
            d.answers("SRV", &set([format!("0 100 80 web.{SVC}.")])),
            "{}",
            d.output
        );
        // ... and, headless, one per endpoint: its own name (dashed
        // without a hostname) and the endpoint's port.
        let d = client.dig(&[&format!("_http._tcp.pets.{SVC}"), "SRV"]);
        let targets = [
            format!("alpha.pets.{SVC}"),
            format!("beta.pets.{SVC}"),
            format!("{}.pets.{SVC}", dashed(&c)),
        ];
        assert!(
            d.answers(
                "SRV",
                &set(targets.iter().map(|t| format!("0 100 80 {t}.")))
            ),
            "{}",
            d.output
        );
        // The endpoint name of the pod without a hostname resolves too.
        let d = client.dig(&[&targets[2], "A"]);
        assert!(d.answers("A", &set([&c])), "{}", d.output);

        // PTR: a cluster IP names its Service, a headless endpoint with a
        // hostname its own name.
        let d = client.dig(&["-x", &vip]);
        assert!(
            d.answers("PTR", &set([format!("web.{SVC}.")])),
            "{}",
            d.output
        );
        assert!(
            d.answer.iter().all(|r| r.name == reverse(&vip)),
            "{}",
            d.output
        );
        let d = client.dig(&["-x", &a]);
        assert!(
            d.answers("PTR", &set([format!("alpha.pets.{SVC}.")])),
            "{}",
            d.output
        );

        // Pod A records: the dashed form of real pod IPs, either node's.
        for p in [&a, &b] {
            let d = client.dig(&[&format!("{}.default.pod.cluster.local", dashed(p)), "A"]);
            assert!(d.answers("A", &set([p])), "{}", d.output);
        }

        // AAAA of an existing name: NOERROR, no answer, the zone's SOA.
        let d = client.dig(&[&format!("web.{SVC}"), "AAAA"]);
        assert_eq!(d.status(), "NOERROR", "{}", d.output);
        assert!(d.answer.is_empty(), "{}", d.output);
        assert_soa(&d.authority, &d.output);

        // An unknown name in the cluster domain: NXDOMAIN, the SOA.
        let d = client.dig(&[&format!("nope.{SVC}"), "A"]);
        assert_eq!(d.status(), "NXDOMAIN", "{}", d.output);
        assert!(
            d.answer.is_empty() && d.flags.contains("aa"),
            "{}",
            d.output
        );
        assert_soa(&d.authority, &d.output);

        // The schema version.
        let d = client.dig(&["dns-version.cluster.local", "TXT"]);
        assert!(d.answers("TXT", &set(["\"1.1.0\""])), "{}", d.output);
    }
}

/// One SOA of `cluster.local.` as CoreDNS writes it.
fn assert_soa(authority: &[jotasu_tests::dns::Record], output: &str) {
    let [soa] = authority else {
        panic!("one SOA in authority: {output}")
    };
    assert_eq!(
        (soa.name.as_str(), soa.rtype.as_str()),
        ("cluster.local.", "SOA"),
        "{output}"
    );
    assert!(
        soa.data
            .starts_with("ns.dns.cluster.local. hostmaster.cluster.local. "),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_turns_unready_leaves_the_headless_answer() {
    if !require_root("an_endpoint_that_turns_unready_leaves_the_headless_answer") {
        return;
    }
    let h = Harness::start(ClusterOptions::spreading(2)).await;
    let (clients, pods) = pets(&h).await;
    let ip = |name: &str| pod_ip(&pods[name]);
    let (a, b, c) = (ip("pet-a"), ip("pet-b"), ip("pet-c"));
    let all = [a.clone(), b.clone(), c.clone()];
    for client in &clients {
        client
            .until_answers(&format!("pets.{SVC}"), "A", &all)
            .await;
    }
    // beta's readiness probe fails: it leaves the answer on every node,
    // its own name with it.
    h.ctl(&["exec", "pet-b", "--", "rm", "/tmp/ready"]);
    for client in &clients {
        client
            .until_answers(&format!("pets.{SVC}"), "A", &[a.clone(), c.clone()])
            .await;
        let d = client.dig(&[&format!("beta.pets.{SVC}"), "A"]);
        assert_eq!(d.status(), "NXDOMAIN", "{}", d.output);
        let d = client.dig(&[&format!("_http._tcp.pets.{SVC}"), "SRV"]);
        assert_eq!(d.data("SRV").len(), 2, "{}", d.output);
        assert!(
            !d.output.contains(&format!("beta.pets.{SVC}")),
            "{}",
            d.output
        );
    }
    // Ready again: back in the answer.
    h.ctl(&["exec", "pet-b", "--", "touch", "/tmp/ready"]);
    for client in &clients {
        client
            .until_answers(&format!("pets.{SVC}"), "A", &all)
            .await;
        client
            .until_answers(&format!("beta.pets.{SVC}"), "A", std::slice::from_ref(&b))
            .await;
    }
}

/// A headless Service without a selector, its 40 ready addresses written
/// by hand (as for endpoints outside the cluster): an A answer of about
/// 700 bytes, an SRV answer of about 1.3 KB.
fn many(n: usize) -> String {
    let addresses: Vec<String> = (0..n)
        .map(|i| format!("  - ip: 10.244.0.{}\n", 100 + i))
        .collect();
    format!(
        r#"
apiVersion: v1
kind: Service
metadata:
  name: many
spec:
  clusterIP: None
  ports:
  - {{name: http, port: 80}}
---
apiVersion: v1
kind: Endpoints
metadata:
  name: many
subsets:
- ports:
  - {{name: http, port: 80}}
  addresses:
{}"#,
        addresses.concat()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_answer_is_truncated_over_udp_and_whole_over_tcp() {
    if !require_root("a_large_answer_is_truncated_over_udp_and_whole_over_tcp") {
        return;
    }
    const N: usize = 40;
    let h = Harness::start(ClusterOptions::default()).await;
    h.apply(&many(N));
    let client = &clients_on_every_node(&h).await[0];
    let name = format!("many.{SVC}");
    let all: Vec<String> = (0..N).map(|i| format!("10.244.0.{}", 100 + i)).collect();
    // Over TCP: the whole answer (once the node has the Endpoints).
    let want = set(&all);
    eventually("the whole answer over TCP", SETTLE, || async {
        let d = client.dig(&["+noedns", "+tcp", &name, "A"]);
        d.answers("A", &want).then_some(())
    })
    .await;
    // Over UDP without EDNS (512 bytes): TC set, no records.
    let d = client.dig(&["+noedns", "+ignore", &name, "A"]);
    assert_eq!(d.status(), "NOERROR", "{}", d.output);
    assert!(d.flags.contains("tc"), "{}", d.output);
    assert!(d.answer.is_empty(), "{}", d.output);
    // dig on its own retries the truncated answer over TCP and gets it all.
    let d = client.dig(&["+noedns", &name, "A"]);
    assert!(
        d.output.contains("Truncated, retrying in TCP mode"),
        "{}",
        d.output
    );
    assert!(d.answers("A", &want), "{}", d.output);
    // With EDNS (dig offers 1232 bytes) the A answer fits in one datagram.
    let d = client.dig(&["+ignore", &name, "A"]);
    assert!(!d.flags.contains("tc"), "{}", d.output);
    assert!(d.answers("A", &want), "{}", d.output);
    // Many SRV records: past 1232 bytes, truncated even with EDNS; whole over TCP.
    let srv = format!("_http._tcp.many.{SVC}");
    let d = client.dig(&["+ignore", &srv, "SRV"]);
    assert!(
        d.flags.contains("tc") && d.answer.is_empty(),
        "{}",
        d.output
    );
    let d = client.dig(&["+tcp", &srv, "SRV"]);
    assert_eq!(d.data("SRV").len(), N, "{}", d.output);
}
