//! The kernel's DNS fast path against the node's resolver, byte for byte:
//! `from_pod` runs on hand-built queries (BPF_PROG_TEST_RUN) with the names
//! the agent programs from a resolver index, and every answer it gives must
//! be exactly the DNS message the resolver's answer function encodes for
//! the same query; every query it cannot answer so must leave untouched,
//! for the resolver. Then on a real node: a pod's queries answered by the
//! kernel carry the same bytes as the resolver's answers over TCP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use jotasu_agent::dns::{self, Answer, DnsIndex};
use jotasu_agent::watch::ClusterView;
use jotasu_api::{Endpoints, Service};
use jotasu_ebpf::DnsCounters;
use jotasu_tests::{
    cluster::ClusterOptions,
    dns::wire::wire_name as wire,
    e2e::{Harness, netns_of, sample},
    packet::{HOST_MAC, IP_DF, POD_MAC, Packet, Transport},
    privilege::require_root,
    tc_run::TcNode,
    wait::eventually,
};
use serde_json::json;

const TC_ACT_OK: u32 = 0;
const TC_ACT_REDIRECT: u32 = 7;

const CLUSTER_DNS: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 96, 0, 10), 53);
const RESOLVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 168, 77, 10), 53);
const CLIENT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 244, 1, 5), 40_123);

const A: u16 = 1;
const TXT: u16 = 16;
const AAAA: u16 = 28;
const SRV: u16 = 33;
const IN: u16 = 1;
const CHAOS: u16 = 3;

/// A view with `web` (ClusterIP 10.96.0.20, port `http`) and the headless
/// `db` (two ready endpoints, `db-0` named) in `default`.
fn index() -> DnsIndex {
    let mut view = ClusterView::default();
    let svc = |name: &str, ip: &str, port: &str| -> Service {
        serde_json::from_value(json!({
            "metadata": {"namespace": "default", "name": name},
            "spec": {"clusterIP": ip, "ports": [{"name": port, "port": 80}]},
        }))
        .unwrap()
    };
    let eps: Endpoints = serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "db"},
        "subsets": [{
            "addresses": [{"ip": "10.244.1.7", "hostname": "db-0"}, {"ip": "10.244.2.8"}],
            "ports": [{"name": "pg", "port": 5432}],
        }],
    }))
    .unwrap();
    let key = |n: &str| ("default".to_owned(), n.to_owned());
    view.services
        .insert(key("web"), svc("web", "10.96.0.20", "http"));
    view.services.insert(key("db"), svc("db", "None", "pg"));
    view.endpoints.insert(key("db"), eps);
    DnsIndex::build(&view, "cluster.local", None)
}

/// A query message, field by field.
#[derive(Clone, Debug)]
struct Query {
    id: u16,
    flags: [u8; 2],
    qdcount: u16,
    name: Vec<u8>,
    qtype: u16,
    qclass: u16,
    /// An OPT record: (payload size, version, DO, options).
    edns: Option<(u16, u8, bool, Vec<u8>)>,
    trailer: Vec<u8>,
}

impl Query {
    /// A query for `name` as glibc sends it (RD, no EDNS).
    fn new(name: &str, qtype: u16) -> Self {
        Self {
            id: 0xbeef,
            flags: [0x01, 0x00],
            qdcount: 1,
            name: wire(name),
            qtype,
            qclass: IN,
            edns: None,
            trailer: Vec::new(),
        }
    }

    /// As dig sends it: RD and AD, EDNS with 1232 bytes and a cookie.
    fn dig(name: &str) -> Self {
        let cookie = [0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8].to_vec();
        Self {
            flags: [0x01, 0x20],
            edns: Some((1232, 0, false, cookie)),
            ..Self::new(name, A)
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut m = self.id.to_be_bytes().to_vec();
        m.extend_from_slice(&self.flags);
        let ar = u16::from(self.edns.is_some());
        for count in [self.qdcount, 0, 0, ar] {
            m.extend_from_slice(&count.to_be_bytes());
        }
        m.extend_from_slice(&self.name);
        m.extend_from_slice(&self.qtype.to_be_bytes());
        m.extend_from_slice(&self.qclass.to_be_bytes());
        if let Some((payload, version, dnssec_ok, options)) = &self.edns {
            m.extend_from_slice(&[0, 0, 41]);
            m.extend_from_slice(&payload.to_be_bytes());
            m.extend_from_slice(&[0, *version, if *dnssec_ok { 0x80 } else { 0 }, 0]);
            m.extend_from_slice(&(options.len() as u16).to_be_bytes());
            m.extend_from_slice(options);
        }
        m.extend_from_slice(&self.trailer);
        m
    }
}

/// What the resolver sends back over UDP for `query` (the server's own
/// steps: parse, answer from the index, encode within the client's size).
fn resolver_reply(index: &DnsIndex, query: &[u8]) -> Vec<u8> {
    let message = dns::parse(query).expect("the resolver parses the query");
    let Answer::Reply(reply) = dns::answer(index, &message) else {
        panic!("the resolver would forward {query:02x?}");
    };
    dns::encode(&reply, dns::udp_limit(&message)).expect("encoding")
}

/// A node with the fast path on, fed from `index` as the agent feeds it.
fn node(index: &DnsIndex) -> TcNode {
    let mut node = TcNode::new();
    // The client is a pod of the node: from_pod admits only its own address.
    node.add_pod(*CLIENT.ip(), POD_MAC, HOST_MAC);
    let fast = node.dp.dns_mut();
    fast.set_frontends(&[CLUSTER_DNS, RESOLVER])
        .expect("frontends");
    fast.reconcile(&index.single_a_names()).expect("names");
    node
}

fn counters(node: &TcNode) -> DnsCounters {
    node.dp.dns().counters().expect("DNS counters")
}

/// Sends `query` to `frontend`; asserts the kernel answers it with exactly
/// the resolver's bytes, turned around to the client.
fn expect_answered(node: &TcNode, index: &DnsIndex, frontend: SocketAddrV4, query: &Query) {
    let bytes = query.bytes();
    let frame = Packet::udp(CLIENT, frontend).with_payload(bytes.clone());
    let (rc, out) = node.run(&frame.to_bytes());
    assert_eq!(rc, TC_ACT_REDIRECT, "not answered in the kernel: {query:?}");
    let got = Packet::parse(&out).unwrap_or_else(|e| panic!("{e:#}: {out:02x?}"));
    let expected = Packet {
        dst_mac: POD_MAC,
        src_mac: HOST_MAC,
        src: frontend,
        dst: CLIENT,
        ttl: 64,
        ip_id: 0,
        frag: IP_DF,
        ip_options: Vec::new(),
        tcp_options: Vec::new(),
        transport: Transport::Udp { checksum: false },
        payload: resolver_reply(index, &bytes),
    };
    assert_eq!(
        got.payload, expected.payload,
        "the DNS message differs from the resolver's for {query:?}"
    );
    assert_eq!(got, expected, "headers of the answer to {query:?}");
    assert_eq!(out, expected.to_bytes());
}

/// Asserts the kernel leaves `bytes` sent to `frontend` untouched.
fn expect_passed(node: &TcNode, frontend: SocketAddrV4, bytes: &[u8], what: &str) {
    let frame = Packet::udp(CLIENT, frontend)
        .with_payload(bytes.to_vec())
        .to_bytes();
    assert_eq!(
        node.run(&frame),
        (TC_ACT_OK, frame.clone()),
        "{what} must go on to the resolver untouched"
    );
}

#[test]
fn a_queries_for_known_names_are_answered_as_the_resolver_answers_them() {
    if !require_root("a_queries_for_known_names_are_answered_as_the_resolver_answers_them") {
        return;
    }
    let index = index();
    let node = node(&index);
    let web = "web.default.svc.cluster.local";
    let cases = [
        Query::new(web, A),
        Query::dig(web),
        Query {
            name: wire("WeB.DeFault.SVC.Cluster.LOCAL"),
            ..Query::new(web, A)
        },
        Query {
            flags: [0x00, 0x00],
            ..Query::new(web, A)
        },
        Query {
            flags: [0x01, 0x30],
            ..Query::new(web, A)
        },
        Query {
            edns: Some((4096, 0, true, Vec::new())),
            ..Query::new(web, A)
        },
        Query {
            edns: Some((512, 0, false, [0, 12, 0, 2, 0, 0, 0, 10, 0, 0].to_vec())),
            ..Query::new(web, A)
        },
        Query::new("db-0.db.default.svc.cluster.local", A),
        Query::new("10-244-2-8.db.default.svc.cluster.local.", A),
    ];
    for (i, query) in cases.iter().enumerate() {
        let query = Query {
            id: 0x1000 + i as u16,
            ..query.clone()
        };
        expect_answered(&node, &index, CLUSTER_DNS, &query);
        expect_answered(&node, &index, RESOLVER, &query);
    }
    let n = 2 * cases.len() as u64;
    assert_eq!(
        counters(&node),
        DnsCounters {
            answered: n,
            passed: 0
        }
    );
}

#[test]
fn every_other_query_goes_on_to_the_resolver_untouched() {
    if !require_root("every_other_query_goes_on_to_the_resolver_untouched") {
        return;
    }
    let index = index();
    let mut node = node(&index);
    let web = "web.default.svc.cluster.local";
    let mut compressed = Query::new(web, A).bytes();
    compressed.truncate(12);
    compressed.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    let mut cut = Query::new(web, A).bytes();
    cut.truncate(cut.len() - 3);
    let long_label = format!("{}.default.svc.cluster.local", "x".repeat(64));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("AAAA", Query::new(web, AAAA).bytes()),
        (
            "SRV",
            Query::new("_http._tcp.web.default.svc.cluster.local", SRV).bytes(),
        ),
        ("TXT", Query::new("dns-version.cluster.local", TXT).bytes()),
        (
            "an unknown name",
            Query::new("nope.default.svc.cluster.local", A).bytes(),
        ),
        (
            "a headless name with two addresses",
            Query::new("db.default.svc.cluster.local", A).bytes(),
        ),
        (
            "a name outside the cluster",
            Query::new("example.org", A).bytes(),
        ),
        (
            "a search-path miss",
            Query::new("web.default.svc.cluster.local.default.svc.cluster.local", A).bytes(),
        ),
        (
            "class CHAOS",
            Query {
                qclass: CHAOS,
                ..Query::new(web, A)
            }
            .bytes(),
        ),
        ("a compression pointer", compressed),
        ("a cut question", cut),
        ("a label over 63 bytes", Query::new(&long_label, A).bytes()),
        (
            "trailing bytes",
            Query {
                trailer: vec![0; 4],
                ..Query::new(web, A)
            }
            .bytes(),
        ),
        (
            "EDNS version 1",
            Query {
                edns: Some((1232, 1, false, Vec::new())),
                ..Query::new(web, A)
            }
            .bytes(),
        ),
        (
            "an EDNS client subnet",
            Query {
                edns: Some((
                    1232,
                    0,
                    false,
                    [0, 8, 0, 7, 0, 1, 24, 0, 10, 244, 1].to_vec(),
                )),
                ..Query::new(web, A)
            }
            .bytes(),
        ),
        (
            "an EDNS option longer than the record",
            Query {
                edns: Some((1232, 0, false, [0, 10, 0, 9, 1, 2].to_vec())),
                ..Query::new(web, A)
            }
            .bytes(),
        ),
        (
            "a response",
            Query {
                flags: [0x81, 0x80],
                ..Query::new(web, A)
            }
            .bytes(),
        ),
        (
            "opcode STATUS",
            Query {
                flags: [0x11, 0x00],
                ..Query::new(web, A)
            }
            .bytes(),
        ),
        (
            "two questions",
            Query {
                qdcount: 2,
                ..Query::new(web, A)
            }
            .bytes(),
        ),
        ("a header alone", Query::new(web, A).bytes()[..12].to_vec()),
        ("garbage", vec![0xff; 40]),
    ];
    for (what, bytes) in &cases {
        expect_passed(&node, CLUSTER_DNS, bytes, what);
    }
    assert_eq!(
        counters(&node),
        DnsCounters {
            answered: 0,
            passed: cases.len() as u64
        }
    );
    // Not a frontend: not even looked at.
    let elsewhere = SocketAddrV4::new(*CLUSTER_DNS.ip(), 5353);
    expect_passed(
        &node,
        elsewhere,
        &Query::new(web, A).bytes(),
        "another port",
    );
    assert_eq!(counters(&node).passed, cases.len() as u64);

    // A name taken out of the map is the resolver's again; the fast path
    // turned off leaves every query to it.
    node.dp
        .dns_mut()
        .reconcile(&Default::default())
        .expect("no names");
    expect_passed(
        &node,
        CLUSTER_DNS,
        &Query::new(web, A).bytes(),
        "a removed name",
    );
    node.dp.dns_mut().set_frontends(&[]).expect("no frontends");
    expect_passed(
        &node,
        RESOLVER,
        &Query::new(web, A).bytes(),
        "the fast path off",
    );
}

/// `query` over UDP to `to` from inside namespace `netns`: the reply's bytes.
fn ask_udp(netns: &str, to: SocketAddrV4, query: Vec<u8>) -> Option<Vec<u8>> {
    jotasu_dev::netns::run_in(netns, move || {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        socket.connect(to).ok()?;
        socket.send(&query).ok()?;
        let mut buf = vec![0u8; 65_535];
        let n = socket.recv(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    })
    .expect("the pod's namespace")
}

/// `query` over TCP to `to` from inside namespace `netns` (the resolver
/// answers TCP itself: the fast path is UDP only).
fn ask_tcp(netns: &str, to: SocketAddrV4, query: Vec<u8>) -> Option<Vec<u8>> {
    use std::io::{Read as _, Write as _};
    jotasu_dev::netns::run_in(netns, move || {
        let mut s =
            std::net::TcpStream::connect_timeout(&to.into(), Duration::from_secs(3)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        let mut framed = (query.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&query);
        s.write_all(&framed).ok()?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).ok()?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf).ok()?;
        Some(buf)
    })
    .expect("the pod's namespace")
}

fn answered(metrics: &str) -> f64 {
    sample(
        metrics,
        "jotasu_agent_dns_fast_path_queries_total{outcome=\"answered\"}",
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_node_answers_in_the_kernel_what_its_resolver_answers() {
    if !require_root("a_real_node_answers_in_the_kernel_what_its_resolver_answers") {
        return;
    }
    let h = Harness::start(ClusterOptions::default()).await;
    h.apply(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80}]\n",
    );
    let pod = h.client_pod().await;
    let netns = netns_of(&pod).expect("the client pod is bound");
    let node_ip = h.cluster.nodes()[0].ip();
    let resolver = SocketAddrV4::new(node_ip, 53);
    let vip: Ipv4Addr = h.vip("web").await.parse().expect("a ClusterIP");
    let web = "web.default.svc.cluster.local";

    // The kernel has the name once the agent's index has the Service.
    let before = answered(&h.metrics(0));
    let fast = eventually(
        "the fast path answers web",
        Duration::from_secs(20),
        || async {
            let reply = ask_udp(&netns, CLUSTER_DNS, Query::new(web, A).bytes())?;
            (answered(&h.metrics(0)) > before).then_some(reply)
        },
    )
    .await;
    assert_eq!(
        &fast[fast.len() - 4..],
        &vip.octets(),
        "the A record's address"
    );

    // The same queries through the kernel (UDP, at the cluster DNS address
    // and at the resolver's) and through the resolver (TCP): identical bytes.
    for (i, query) in [
        Query::new(web, A),
        Query::dig(web),
        Query {
            name: wire("WEB.default.SVC.cluster.local"),
            ..Query::new(web, A)
        },
    ]
    .into_iter()
    .enumerate()
    {
        let query = Query {
            id: 0x2000 + i as u16,
            ..query
        };
        let before = answered(&h.metrics(0));
        let kernel_vip =
            ask_udp(&netns, CLUSTER_DNS, query.bytes()).expect("an answer at 10.96.0.10");
        let kernel_node = ask_udp(&netns, resolver, query.bytes()).expect("an answer at the node");
        assert_eq!(
            answered(&h.metrics(0)),
            before + 2.0,
            "both answered in the kernel"
        );
        let resolver_bytes =
            ask_tcp(&netns, resolver, query.bytes()).expect("the resolver answers");
        assert_eq!(
            kernel_vip, resolver_bytes,
            "kernel (at the VIP) and resolver differ for {query:?}"
        );
        assert_eq!(
            kernel_node, resolver_bytes,
            "kernel (at the node) and resolver differ for {query:?}"
        );
    }

    // What the kernel does not answer, the resolver does (over UDP too).
    let before = answered(&h.metrics(0));
    let aaaa = ask_udp(&netns, resolver, Query::new(web, AAAA).bytes()).expect("AAAA answered");
    assert_eq!(aaaa[3] & 0x0f, 0, "NOERROR");
    assert_eq!(&aaaa[6..8], &[0, 0], "no answer records");
    let nx = ask_udp(
        &netns,
        resolver,
        Query::new("nope.default.svc.cluster.local", A).bytes(),
    )
    .expect("NXDOMAIN answered");
    assert_eq!(nx[3] & 0x0f, 3, "NXDOMAIN");
    assert_eq!(answered(&h.metrics(0)), before, "both were the resolver's");

    // A deleted Service leaves the kernel's names. (Asked at the node's
    // address: a process outside the pod's cgroup, as this test's thread,
    // reaches the resolver through 10.96.0.10 only for what the kernel
    // answers; pods' processes are translated by the socket programs.)
    h.ctl(&["delete", "service", "web"]);
    eventually("web is NXDOMAIN", Duration::from_secs(20), || async {
        let reply = ask_udp(&netns, resolver, Query::new(web, A).bytes())?;
        (reply[3] & 0x0f == 3).then_some(())
    })
    .await;
}
