//! Packet-level tests of the tc program `from_pod`: the kernel runs it on
//! hand-built frames through BPF_PROG_TEST_RUN, and every byte that comes back
//! is checked, checksums recomputed independently ([`jotasu_tests::packet`]).
//!
//! Each test has a node of its own (its own pinned maps), programmed through
//! [`Datapath`]; a second copy of `from_pod` is loaded on the same pins to run.
//! The client is a pod of the node (from_pod admits a pod's own address
//! only, on its own veth); backends are pods of other nodes unless a test
//! makes them local, and then what goes to them is delivered straight in.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
use std::net::{Ipv4Addr, SocketAddrV4};

use jotasu_ebpf::{Frontend, Service};
use jotasu_tests::{
    packet::{
        ETH_HLEN, HOST_MAC, ICMP_DEST_UNREACH, ICMP_ECHO, ICMP_PORT_UNREACH, IP_DF, POD_MAC,
        Packet, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, Transport, arp_request,
    },
    privilege::require_root,
    tc_run::TcNode,
};

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 5);
const BACKEND_PORT: u16 = 8080;
/// TCP options of a Linux SYN: MSS 1460, SACK permitted, timestamps, window scale 7.
const SYN_OPTIONS: [u8; 20] = [
    2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0x1f, 0x40, 0, 0, 0, 0, 1, 3, 3, 7,
];
/// Where the UDP checksum of an IPv4 frame without options is.
const UDP_CHECKSUM_AT: usize = ETH_HLEN + 20 + 6;

/// A conntrack entry as compared here: protocol, source, destination, whether
/// it is the forward (DNAT) entry, and the address it writes.
type CtEntry = (u8, SocketAddrV4, SocketAddrV4, bool, SocketAddrV4);

/// A fresh node's data plane, with a second copy of `from_pod` loaded on its
/// pinned maps for BPF_PROG_TEST_RUN.
struct Node(TcNode);

impl std::ops::Deref for Node {
    type Target = TcNode;
    fn deref(&self) -> &TcNode {
        &self.0
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut TcNode {
        &mut self.0
    }
}

impl Node {
    /// A node whose only pod is the client (with the MACs of the frames built here).
    fn new() -> Self {
        let mut node = Self(TcNode::new());
        node.add_pod(CLIENT, POD_MAC, HOST_MAC);
        node
    }

    /// Makes backends 1..=count pods of this node.
    fn local_backends(mut self, count: u8) -> Self {
        for n in 1..=count {
            let (pod_mac, host_mac) = backend_macs(n);
            self.add_pod(*backend(n).ip(), pod_mac, host_mac);
        }
        self
    }

    /// A node with `services` programmed.
    fn with(services: &[Service]) -> Self {
        let mut node = Self::new();
        for svc in services {
            node.dp.upsert_service(svc).expect("programming a service");
        }
        node
    }

    /// Runs `input` and asserts that `from_pod` answers `verdict` with exactly
    /// `expected`, whose checksums are verified independently.
    fn expect(&self, input: &Packet, verdict: u32, expected: &Packet) {
        let (rc, out) = self.run(&input.to_bytes());
        let got = Packet::parse(&out)
            .unwrap_or_else(|e| panic!("{e:#}\n  input: {input:?}\n  frame out: {out:02x?}"));
        assert_eq!(got, *expected, "input: {input:?}");
        assert_eq!(out, expected.to_bytes(), "same fields, different bytes");
        assert_eq!(rc, verdict, "verdict for {input:?}");
    }

    /// Asserts that `from_pod` passes `frame` on (TC_ACT_OK) byte for byte.
    fn expect_untouched(&self, frame: &[u8], what: &str) {
        assert_eq!(self.run(frame), (TC_ACT_OK, frame.to_vec()), "{what}");
    }

    fn counters(&self, frontend: Frontend) -> jotasu_ebpf::ServiceCounters {
        self.dp
            .service_counters(&frontend)
            .expect("service counters")
    }

    fn node_counter(&self, name: &str) -> u64 {
        let all = self.dp.node_counters().expect("node counters");
        all.iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no counter {name}"))
            .1
    }

    /// The conntrack table, sorted.
    fn conntrack(&self) -> Vec<CtEntry> {
        let ct = self.dp.conntrack().expect("reading conntrack");
        let mut ct: Vec<CtEntry> = ct
            .iter()
            .map(|e| (e.proto, e.src, e.dst, e.forward, e.nat))
            .collect();
        ct.sort();
        ct
    }
}

fn vip(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(VIP, port)
}

fn client(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(CLIENT, port)
}

/// Backend `n` (1-based): 10.244.0.1n:8080.
fn backend(n: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 244, 0, 10 + n), BACKEND_PORT)
}

/// The MACs of backend `n`'s veth when it is a pod of the node: (pod, host side).
fn backend_macs(n: u8) -> ([u8; 6], [u8; 6]) {
    ([0x0a, 0x58, 0, 0, 0, n], [0x0e, 0xee, 0, 0, 0, n])
}

/// `p` delivered into a local pod with these MACs (pod, host side).
fn deliver(p: &Packet, (pod_mac, host_mac): ([u8; 6], [u8; 6])) -> Packet {
    Packet {
        dst_mac: pod_mac,
        src_mac: host_mac,
        ..p.clone()
    }
}

/// `p` delivered into local backend `n`.
fn to_backend(p: &Packet, n: u8) -> Packet {
    deliver(p, backend_macs(n))
}

/// `p` delivered into the client pod.
fn to_client(p: &Packet) -> Packet {
    deliver(p, (POD_MAC, HOST_MAC))
}

/// `frontend` balanced over backends 1..=count.
fn service(frontend: Frontend, count: u8) -> Service {
    Service::new(frontend, (1..=count).map(backend))
}

fn web() -> Frontend {
    Frontend::tcp(VIP, 80)
}

fn dns() -> Frontend {
    Frontend::udp(VIP, 53)
}

/// A client's SYN, with the options Linux sends.
fn syn(sport: u16, dst: SocketAddrV4) -> Packet {
    Packet {
        tcp_options: SYN_OPTIONS.to_vec(),
        ..Packet::tcp(client(sport), dst, TCP_SYN, 1000 + u32::from(sport), 0)
    }
}

/// `p` with its destination rewritten to `to` (DNAT).
fn dnat(p: &Packet, to: SocketAddrV4) -> Packet {
    Packet {
        dst: to,
        ..p.clone()
    }
}

/// `p` with its source rewritten to `from` (reverse NAT).
fn snat(p: &Packet, from: SocketAddrV4) -> Packet {
    Packet {
        src: from,
        ..p.clone()
    }
}

/// A later packet of the flow `p` opened, carrying `flags` and `payload`.
fn follow_up(p: &Packet, flags: u8, payload: &[u8]) -> Packet {
    let transport = match p.transport {
        Transport::Tcp { seq, .. } => Transport::Tcp {
            seq: seq + 1,
            ack: 5001,
            flags,
            window: 502,
        },
        other => other,
    };
    Packet {
        transport,
        ip_id: p.ip_id + 1,
        tcp_options: Vec::new(),
        ..p.clone()
    }
    .with_payload(payload)
}

/// The backend's answer to `p` (a packet of a flow to `backend`): addresses
/// and ports swapped, MACs of the backend pod's veth.
fn answer(p: &Packet, backend: SocketAddrV4, flags: u8, payload: &[u8]) -> Packet {
    let transport = match p.transport {
        Transport::Tcp { seq, .. } => Transport::Tcp {
            seq: 7000,
            ack: seq + 1,
            flags,
            window: 65160,
        },
        other => other,
    };
    Packet {
        src: backend,
        dst: p.src,
        transport,
        ip_id: 0x3e00,
        tcp_options: Vec::new(),
        ..p.clone()
    }
    .with_payload(payload)
}

/// A datagram `payload` from the client's `sport` to `dst`.
fn datagram(sport: u16, dst: SocketAddrV4, payload: &[u8]) -> Packet {
    Packet::udp(client(sport), dst).with_payload(payload)
}

#[test]
fn new_tcp_flows_rotate_over_the_backends_in_order() {
    if !require_root("new_tcp_flows_rotate_over_the_backends_in_order") {
        return;
    }
    let node = Node::with(&[service(web(), 3)]);
    for (sport, n) in (40000..).zip([1, 2, 3, 1, 2, 3, 1]) {
        let s = syn(sport, vip(80));
        node.expect(&s, TC_ACT_OK, &dnat(&s, backend(n)));
    }
    assert_eq!(node.counters(web()).tc_new_flows, 7);
}

#[test]
fn established_tcp_flows_keep_their_backend() {
    if !require_root("established_tcp_flows_keep_their_backend") {
        return;
    }
    let node = Node::with(&[service(web(), 3)]);
    let flows: Vec<Packet> = (40000..40003).map(|sport| syn(sport, vip(80))).collect();
    for (s, n) in flows.iter().zip(1..) {
        node.expect(s, TC_ACT_OK, &dnat(s, backend(n)));
    }
    // The counter stands at backend 1 again; flow 2's packets must not follow it.
    for (flags, payload) in [
        (TCP_ACK, &b""[..]),
        (TCP_PSH | TCP_ACK, b"GET / HTTP/1.1\r\n\r\n"),
        (TCP_FIN | TCP_ACK, b""),
    ] {
        let p = follow_up(&flows[1], flags, payload);
        node.expect(&p, TC_ACT_OK, &dnat(&p, backend(2)));
    }
    // A retransmitted SYN is the same flow, not a new one.
    node.expect(&flows[2], TC_ACT_OK, &dnat(&flows[2], backend(3)));
    assert_eq!(
        node.counters(web()).tc_new_flows,
        3,
        "only SYNs of new flows count"
    );
    let next = syn(40010, vip(80));
    node.expect(&next, TC_ACT_OK, &dnat(&next, backend(1)));
}

#[test]
fn tcp_replies_come_back_from_the_vip() {
    if !require_root("tcp_replies_come_back_from_the_vip") {
        return;
    }
    let node = Node::with(&[service(web(), 3)]).local_backends(3);
    let (first, second) = (syn(40000, vip(80)), syn(40001, vip(80)));
    node.expect(
        &first,
        TC_ACT_REDIRECT,
        &to_backend(&dnat(&first, backend(1)), 1),
    );
    node.expect(
        &second,
        TC_ACT_REDIRECT,
        &to_backend(&dnat(&second, backend(2)), 2),
    );
    for (s, n) in [(&second, 2), (&first, 1)] {
        let reply = answer(s, backend(n), TCP_SYN | TCP_ACK, b"");
        node.expect(&reply, TC_ACT_REDIRECT, &to_client(&snat(&reply, vip(80))));
        let data = answer(s, backend(n), TCP_PSH | TCP_ACK, b"HTTP/1.1 200 OK\r\n\r\n");
        node.expect(&data, TC_ACT_REDIRECT, &to_client(&snat(&data, vip(80))));
    }
    // The backend answering a port that never talked to the service: not
    // ours to translate, only to deliver.
    let stranger = answer(&syn(41000, vip(80)), backend(2), TCP_SYN | TCP_ACK, b"");
    node.expect(&stranger, TC_ACT_REDIRECT, &to_client(&stranger));
}

#[test]
fn udp_flows_rotate_stick_and_are_answered_from_the_vip() {
    if !require_root("udp_flows_rotate_stick_and_are_answered_from_the_vip") {
        return;
    }
    let node = Node::with(&[service(dns(), 3)]).local_backends(3);
    let flows: Vec<Packet> = (50000..50004)
        .map(|sport| datagram(sport, vip(53), b"query"))
        .collect();
    for (d, n) in flows.iter().zip([1, 2, 3, 1]) {
        node.expect(d, TC_ACT_REDIRECT, &to_backend(&dnat(d, backend(n)), n));
    }
    let again = follow_up(&flows[1], 0, b"second query");
    node.expect(
        &again,
        TC_ACT_REDIRECT,
        &to_backend(&dnat(&again, backend(2)), 2),
    );
    let reply = answer(&flows[1], backend(2), 0, b"answer");
    node.expect(&reply, TC_ACT_REDIRECT, &to_client(&snat(&reply, vip(53))));
    assert_eq!(node.counters(dns()).tc_new_flows, 4);
}

#[test]
fn udp_without_checksum_stays_without_checksum() {
    if !require_root("udp_without_checksum_stays_without_checksum") {
        return;
    }
    let node = Node::with(&[service(dns(), 3)]).local_backends(1);
    let bare = |p: Packet| Packet {
        transport: Transport::Udp { checksum: false },
        ..p
    };
    let query = bare(datagram(50000, vip(53), b"query"));
    node.expect(
        &query,
        TC_ACT_REDIRECT,
        &to_backend(&dnat(&query, backend(1)), 1),
    );
    let reply = bare(answer(&query, backend(1), 0, b"answer"));
    node.expect(&reply, TC_ACT_REDIRECT, &to_client(&snat(&reply, vip(53))));
}

/// Traffic that is not a service flow passes byte for byte and opens no flow.
/// (IPv6 and cut-short headers are dropped: `tests/drops.rs`.)
#[test]
fn other_traffic_is_untouched() {
    if !require_root("other_traffic_is_untouched") {
        return;
    }
    let node = Node::with(&[service(web(), 3)]);
    let non_first_fragment = Packet {
        frag: 185,
        ..syn(40000, vip(80))
    };
    let frames = [
        (syn(40000, backend(1)).to_bytes(), "TCP straight to a pod"),
        (
            syn(40000, vip(81)).to_bytes(),
            "TCP to the VIP on another port",
        ),
        (
            datagram(40000, vip(80), b"x").to_bytes(),
            "UDP to a TCP-only service port",
        ),
        (
            Packet::icmp(CLIENT, VIP, ICMP_ECHO, 0, [0, 7, 0, 1])
                .with_payload(*b"ping")
                .to_bytes(),
            "ICMP echo to the VIP",
        ),
        (
            non_first_fragment.to_bytes(),
            "a non-first fragment to the VIP",
        ),
        (arp_request(CLIENT, VIP), "ARP for the VIP"),
    ];
    for (frame, what) in &frames {
        node.expect_untouched(frame, what);
    }
    assert_eq!(node.conntrack(), [], "no flow opened");
    assert_eq!(node.counters(web()).tc_new_flows, 0);
}

#[test]
fn rewritten_packets_carry_valid_checksums() {
    if !require_root("rewritten_packets_carry_valid_checksums") {
        return;
    }
    // Backend 1 is local (its replies pass here), backend 2 remote.
    let node = Node::with(&[service(web(), 3), service(dns(), 3)]).local_backends(1);
    // IP options move the transport header: the rewrite must follow it.
    let s = Packet {
        ip_options: vec![1, 1, 1, 0],
        ..syn(65535, vip(80))
    };
    node.expect(&s, TC_ACT_REDIRECT, &to_backend(&dnat(&s, backend(1)), 1));
    // Odd payload lengths, so the checksums end on a padded byte.
    let payload: Vec<u8> = (0..1001u32).map(|i| (i * 7) as u8).collect();
    let data = follow_up(&s, TCP_PSH | TCP_ACK, &payload);
    node.expect(
        &data,
        TC_ACT_REDIRECT,
        &to_backend(&dnat(&data, backend(1)), 1),
    );
    let reply = answer(&s, backend(1), TCP_PSH | TCP_ACK, &payload[..777]);
    node.expect(&reply, TC_ACT_REDIRECT, &to_client(&snat(&reply, vip(80))));
    let d = datagram(50000, vip(53), &payload[..333]);
    node.expect(&d, TC_ACT_REDIRECT, &to_backend(&dnat(&d, backend(1)), 1));
    let reply = answer(&d, backend(1), 0, &payload[..99]);
    node.expect(&reply, TC_ACT_REDIRECT, &to_client(&snat(&reply, vip(53))));
    // A datagram whose checksum after DNAT computes to 0 must carry 0xffff,
    // not 0, which would mean "no checksum".
    let d = datagram(
        50001,
        vip(53),
        &zero_sum_payload(dnat(&datagram(50001, vip(53), b""), backend(2))),
    );
    let out = dnat(&d, backend(2));
    assert_eq!(
        out.to_bytes()[UDP_CHECKSUM_AT..UDP_CHECKSUM_AT + 2],
        [0xff, 0xff],
        "test setup"
    );
    node.expect(&d, TC_ACT_OK, &out);
}

/// Two payload bytes that make UDP packet `p` (empty payload) sum to a
/// checksum of 0 once appended.
fn zero_sum_payload(p: Packet) -> [u8; 2] {
    let bytes = p.with_payload(*b"\0\0").to_bytes();
    match u16::from_be_bytes([bytes[UDP_CHECKSUM_AT], bytes[UDP_CHECKSUM_AT + 1]]) {
        0xffff => [0, 0], // already 0, sent as 0xffff
        sum => sum.to_be_bytes(),
    }
}

/// What `from_pod` sends back to refuse `p`: a fresh IPv4 header (id 0, DF,
/// TTL 64) from where `p` went to where it came from, MACs swapped.
fn refusal(p: &Packet, transport: Transport, payload: &[u8]) -> Packet {
    let port = |sa: SocketAddrV4| match transport {
        Transport::Icmp { .. } => SocketAddrV4::new(*sa.ip(), 0),
        _ => sa,
    };
    Packet {
        dst_mac: p.src_mac,
        src_mac: p.dst_mac,
        src: port(p.dst),
        dst: port(p.src),
        ttl: 64,
        ip_id: 0,
        frag: IP_DF,
        ip_options: Vec::new(),
        tcp_options: Vec::new(),
        transport,
        payload: payload.to_vec(),
    }
}

#[test]
fn tcp_syn_to_a_service_without_backends_gets_rst_ack() {
    if !require_root("tcp_syn_to_a_service_without_backends_gets_rst_ack") {
        return;
    }
    let node = Node::with(&[service(web(), 0)]);
    let syns = [
        syn(40000, vip(80)),
        Packet {
            ip_options: vec![1, 1, 1, 0],
            ..syn(40001, vip(80))
        },
        Packet::tcp(client(40002), vip(80), TCP_SYN, u32::MAX, 0),
        // A Fast Open SYN: the RST acknowledges its data too.
        syn(40003, vip(80)).with_payload(&b"GET / HTTP/1.1\r\n\r\n"[..]),
    ];
    for s in &syns {
        let Transport::Tcp { seq, .. } = s.transport else {
            unreachable!()
        };
        let ack = seq.wrapping_add(1).wrapping_add(s.payload.len() as u32);
        let rst = Transport::Tcp {
            seq: 0,
            ack,
            flags: TCP_RST | TCP_ACK,
            window: 0,
        };
        node.expect(s, TC_ACT_REDIRECT, &refusal(s, rst, b""));
    }
    assert_eq!(node.counters(web()).rejected, 4);
    let (rc, _) = node.run(&follow_up(&syns[0], TCP_ACK, b"").to_bytes());
    assert_eq!(rc, TC_ACT_SHOT, "only connection attempts are answered");
    assert_eq!(
        node.counters(web()).rejected,
        4,
        "a stray segment is no refused connection"
    );
    assert_eq!(node.conntrack(), [], "no flow opened");
}

#[test]
fn udp_to_a_service_without_backends_gets_port_unreachable() {
    if !require_root("udp_to_a_service_without_backends_gets_port_unreachable") {
        return;
    }
    let node = Node::with(&[service(dns(), 0)]);
    // The answer is longer than an empty datagram and shorter than a big one.
    for d in [
        datagram(50000, vip(53), b""),
        datagram(50001, vip(53), &[0x5a; 300]),
    ] {
        let unreach = Transport::Icmp {
            kind: ICMP_DEST_UNREACH,
            code: ICMP_PORT_UNREACH,
            rest: [0; 4],
        };
        // The quote: the datagram's IP header and UDP header, as the client sent them.
        let quote = &d.to_bytes()[ETH_HLEN..ETH_HLEN + 28];
        node.expect(&d, TC_ACT_REDIRECT, &refusal(&d, unreach, quote));
    }
    assert_eq!(node.counters(dns()).rejected, 2);
    assert_eq!(node.conntrack(), [], "no flow opened");
}

#[test]
fn local_destinations_are_handed_to_the_pod_with_its_macs() {
    if !require_root("local_destinations_are_handed_to_the_pod_with_its_macs") {
        return;
    }
    let node = Node::with(&[service(web(), 3)]).local_backends(1);

    let local = syn(40000, vip(80));
    node.expect(
        &local,
        TC_ACT_REDIRECT,
        &to_backend(&dnat(&local, backend(1)), 1),
    );
    let remote = syn(40001, vip(80));
    node.expect(&remote, TC_ACT_OK, &dnat(&remote, backend(2)));
    let reply = answer(&local, backend(1), TCP_SYN | TCP_ACK, b"");
    node.expect(&reply, TC_ACT_REDIRECT, &to_client(&snat(&reply, vip(80))));
    let direct = syn(40002, backend(1));
    node.expect(&direct, TC_ACT_REDIRECT, &to_backend(&direct, 1));
    assert_eq!(node.node_counter("local_redirect"), 3);
}

#[test]
fn each_new_flow_writes_a_forward_and_a_reply_entry() {
    if !require_root("each_new_flow_writes_a_forward_and_a_reply_entry") {
        return;
    }
    let node = Node::with(&[service(web(), 3), service(dns(), 3)]);
    let flows = [
        (syn(40000, vip(80)), backend(1)),
        (syn(40001, vip(80)), backend(2)),
        (datagram(40000, vip(53), b"query"), backend(1)),
    ];
    let mut expected = Vec::new();
    for (p, to) in &flows {
        node.expect(p, TC_ACT_OK, &dnat(p, *to));
        expected.push((p.protocol(), p.src, p.dst, true, *to));
        expected.push((p.protocol(), *to, p.src, false, p.dst));
    }
    expected.sort();
    assert_eq!(node.conntrack(), expected);
    // Later packets of the flows add nothing.
    let ack = follow_up(&flows[0].0, TCP_ACK, b"");
    node.expect(&ack, TC_ACT_OK, &dnat(&ack, backend(1)));
    assert_eq!(node.conntrack(), expected);
}
