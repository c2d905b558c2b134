//! Every drop has a reason: the tc programs run by the kernel on hand-built
//! frames (BPF_PROG_TEST_RUN), each reason provoked, and the per-reason
//! counters ([`jotasu_ebpf::Drops`]) read back exactly: the reason provoked
//! rises by the frames dropped, every other stays at zero.
//!
//! Each test has a node of its own (its own pinned maps, its own namespace
//! for the pods' host-side interfaces, [`TcNode`]).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};

use aya::maps::{HashMap, Map, MapData};
use jotasu_ebpf::{DropCounters, DropReason, Frontend, Service, Tunnels, abi};
use jotasu_tests::{
    packet::{
        ETH_HLEN, HOST_MAC, ICMP_ECHO, POD_MAC, Packet, TCP_ACK, TCP_SYN, arp_request, ipv6_udp,
    },
    privilege::require_root,
    tc_run::TcNode,
};

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 5);
/// Another pod of the node.
const NEIGHBOUR: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 6);
/// An address no pod has.
const NOBODY: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 200);

fn backend(n: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 244, 0, 10 + n), 8080)
}

fn web(backends: u8) -> Service {
    Service::new(Frontend::tcp(VIP, 80), (1..=backends).map(backend))
}

fn syn(src: Ipv4Addr, sport: u16, dst: SocketAddrV4) -> Packet {
    Packet::tcp(SocketAddrV4::new(src, sport), dst, TCP_SYN, 1000, 0)
}

/// A node whose pods are the client (on the frames' MACs) and a neighbour.
struct Node {
    tc: TcNode,
    client_if: u32,
    neighbour_if: u32,
}

impl Node {
    fn new(services: &[Service]) -> Self {
        let mut tc = TcNode::new();
        let client_if = tc.add_pod(CLIENT, POD_MAC, HOST_MAC).ifindex;
        let neighbour_if = tc
            .add_pod(
                NEIGHBOUR,
                [0x0a, 0x58, 0, 0, 0, 6],
                [0x0e, 0xee, 0, 0, 0, 6],
            )
            .ifindex;
        for svc in services {
            tc.dp.upsert_service(svc).expect("programming a service");
        }
        Self {
            tc,
            client_if,
            neighbour_if,
        }
    }

    fn drops(&self) -> DropCounters {
        self.tc.dp.drop_counters().expect("drop counters")
    }

    /// Asserts the counters are exactly `want`, every other reason zero.
    fn assert_drops(&self, want: &[(DropReason, u64)]) {
        let mut expected: DropCounters = DropReason::ALL.into_iter().map(|r| (r, 0)).collect();
        expected.extend(want.iter().copied());
        assert_eq!(self.drops(), expected);
    }

    /// Runs `from_pod` on `frame` in on interface `ifindex`; asserts it is dropped.
    fn expect_dropped_on(&self, ifindex: u32, frame: &[u8], what: &str) {
        let (rc, _) = self.tc.run_on(ifindex, frame);
        assert_eq!(rc, TC_ACT_SHOT, "{what} must be dropped");
    }
}

#[test]
fn a_fresh_node_has_every_reason_at_zero() {
    if !require_root("a_fresh_node_has_every_reason_at_zero") {
        return;
    }
    let node = Node::new(&[]);
    let drops = node.drops();
    assert_eq!(
        drops.keys().copied().collect::<Vec<_>>(),
        DropReason::ALL,
        "every reason is reported"
    );
    node.assert_drops(&[]);
}

/// A pod may send only from its own address, on its own veth: anything
/// else is dropped before it is balanced, delivered or answered.
#[test]
fn a_pod_sending_from_an_address_not_its_own_is_dropped_as_spoofed() {
    if !require_root("a_pod_sending_from_an_address_not_its_own_is_dropped_as_spoofed") {
        return;
    }
    let mut node = Node::new(&[web(3)]);
    let foreign_if = node.tc.add_interface();
    let to_vip = SocketAddrV4::new(VIP, 80);
    let forged = [
        (
            node.client_if,
            syn(NOBODY, 40000, to_vip),
            "an address no pod has",
        ),
        (
            node.client_if,
            syn(NEIGHBOUR, 40001, to_vip),
            "the neighbour pod's address",
        ),
        (
            node.neighbour_if,
            syn(CLIENT, 40002, backend(1)),
            "the client's address on the neighbour's veth",
        ),
        (
            foreign_if,
            syn(CLIENT, 40003, to_vip),
            "the client's address on a veth of no pod",
        ),
        (
            node.client_if,
            Packet::icmp(NOBODY, CLIENT, ICMP_ECHO, 0, [0, 1, 0, 1]),
            "ICMP from an address no pod has",
        ),
        (
            node.client_if,
            Packet::udp(
                SocketAddrV4::new(NEIGHBOUR, 53),
                SocketAddrV4::new(CLIENT, 5353),
            ),
            "UDP to a local pod from the neighbour's address",
        ),
    ];
    for (ifindex, p, what) in &forged {
        node.expect_dropped_on(*ifindex, &p.to_bytes(), what);
    }
    node.assert_drops(&[(DropReason::SpoofedSource, forged.len() as u64)]);
    let counters = node.tc.dp.service_counters(&web(0).frontend).unwrap();
    assert_eq!(counters.tc_new_flows, 0, "no forged SYN was balanced");
    assert_eq!(node.tc.dp.conntrack().unwrap(), [], "no flow opened");

    // The client's own address on its own veth: balanced, to backend 1
    // (the forged SYNs did not advance the rotation).
    let own = syn(CLIENT, 40010, to_vip);
    let (rc, out) = node.tc.run_on(node.client_if, &own.to_bytes());
    assert_eq!(rc, TC_ACT_OK);
    assert_eq!(Packet::parse(&out).unwrap().dst, backend(1));
    node.assert_drops(&[(DropReason::SpoofedSource, forged.len() as u64)]);
}

/// jotasu is IPv4-only: a pod's IPv6 (or any other EtherType but ARP) is
/// dropped, not handed to the node's stack.
#[test]
fn a_pod_sending_neither_ipv4_nor_arp_is_dropped_as_unsupported() {
    if !require_root("a_pod_sending_neither_ipv4_nor_arp_is_dropped_as_unsupported") {
        return;
    }
    let node = Node::new(&[]);
    let v6 = ipv6_udp(
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 5),
        40000,
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 10),
        80,
        b"v6",
    );
    node.expect_dropped_on(node.client_if, &v6, "IPv6");
    let mut lldp = arp_request(CLIENT, VIP);
    lldp[12..14].copy_from_slice(&0x88ccu16.to_be_bytes());
    node.expect_dropped_on(node.client_if, &lldp, "an LLDP frame");
    // ARP passes byte for byte, whichever address it asks about.
    for arp in [arp_request(CLIENT, VIP), arp_request(NOBODY, CLIENT)] {
        assert_eq!(node.tc.run_on(node.client_if, &arp), (TC_ACT_OK, arp));
    }
    node.assert_drops(&[(DropReason::UnsupportedL3, 2)]);
}

/// IPv4 whose header, or whose TCP/UDP header, cannot be read is dropped by
/// from_pod (and from_overlay), never half-parsed; to_pod, which carries the
/// node's own traffic, leaves it alone.
#[test]
fn unreadable_headers_are_dropped_as_malformed() {
    if !require_root("unreadable_headers_are_dropped_as_malformed") {
        return;
    }
    let node = Node::new(&[web(3)]);
    let whole = syn(CLIENT, 40000, SocketAddrV4::new(VIP, 80)).to_bytes();
    // (BPF_PROG_TEST_RUN refuses IPv4 frames without a whole IPv4 header.)
    let cut_tcp = whole[..ETH_HLEN + 20 + 2].to_vec();
    let udp = Packet::udp(SocketAddrV4::new(CLIENT, 5353), SocketAddrV4::new(VIP, 53)).to_bytes();
    let cut_udp = udp[..ETH_HLEN + 20 + 3].to_vec();
    let mut short_ihl = whole.clone();
    short_ihl[ETH_HLEN] = 0x44; // version 4, header length 4 words
    let mut not_v4 = whole.clone();
    not_v4[ETH_HLEN] = 0x65; // version 6 in an IPv4 EtherType
    let frames = [
        (cut_tcp, "a TCP header cut short"),
        (cut_udp, "a UDP header cut short"),
        (short_ihl, "an IPv4 header length of 4 words"),
        (not_v4, "IP version 6 under the IPv4 EtherType"),
    ];
    for (frame, what) in &frames {
        node.expect_dropped_on(node.client_if, frame, what);
    }
    node.assert_drops(&[(DropReason::Malformed, frames.len() as u64)]);
    for (frame, what) in &frames {
        assert_eq!(
            node.tc.run_program("to_pod", node.client_if, frame),
            (TC_ACT_OK, frame.clone()),
            "to_pod leaves {what} alone"
        );
    }
    node.assert_drops(&[(DropReason::Malformed, frames.len() as u64)]);
    assert_eq!(node.tc.dp.conntrack().unwrap(), [], "no flow opened");
}

/// A service without backends: its refusals (RST, port unreachable) and
/// the segments it cannot answer count as no_backend.
#[test]
fn refusals_for_a_service_without_backends_count_as_no_backend() {
    if !require_root("refusals_for_a_service_without_backends_count_as_no_backend") {
        return;
    }
    let dns = Service::new(Frontend::udp(VIP, 53), []);
    let node = Node::new(&[web(0), dns]);
    let to_web = SocketAddrV4::new(VIP, 80);
    let to_dns = SocketAddrV4::new(VIP, 53);
    let (rc, _) = node.tc.run(&syn(CLIENT, 40000, to_web).to_bytes());
    assert_eq!(rc, TC_ACT_REDIRECT, "a SYN is answered with RST");
    let query = Packet::udp(SocketAddrV4::new(CLIENT, 5353), to_dns).with_payload(*b"q");
    let (rc, _) = node.tc.run(&query.to_bytes());
    assert_eq!(rc, TC_ACT_REDIRECT, "a datagram is answered with ICMP");
    node.assert_drops(&[(DropReason::NoBackend, 2)]);
    let stray = Packet::tcp(SocketAddrV4::new(CLIENT, 40001), to_web, TCP_ACK, 5, 6);
    node.expect_dropped_on(node.client_if, &stray.to_bytes(), "a stray segment");
    let with_options = Packet {
        ip_options: vec![1, 1, 1, 0],
        ..query
    };
    node.expect_dropped_on(
        node.client_if,
        &with_options.to_bytes(),
        "a datagram with IP options (not quoted)",
    );
    node.assert_drops(&[(DropReason::NoBackend, 4)]);
}

/// A service whose count promises a slot the backends map lacks (never
/// written so by the agent, whose writes publish slots first): the new flow
/// that lands on the missing slot is dropped and counted.
#[test]
fn a_missing_backend_slot_is_dropped_as_no_backend_slot() {
    if !require_root("a_missing_backend_slot_is_dropped_as_no_backend_slot") {
        return;
    }
    let node = Node::new(&[web(2)]);
    let id = node.tc.dp.services().unwrap()[0].id;
    let pin = node.tc.dp.pin_dir().join("backends");
    let mut backends: HashMap<MapData, abi::BackendKey, abi::BackendValue> =
        HashMap::try_from(Map::HashMap(MapData::from_pin(&pin).unwrap())).unwrap();
    backends
        .remove(&abi::BackendKey {
            svc_id: id,
            slot: 1,
        })
        .unwrap();

    let to_web = SocketAddrV4::new(VIP, 80);
    let (rc, out) = node.tc.run(&syn(CLIENT, 40000, to_web).to_bytes());
    assert_eq!(
        (rc, Packet::parse(&out).unwrap().dst),
        (TC_ACT_OK, backend(1))
    );
    node.expect_dropped_on(
        node.client_if,
        &syn(CLIENT, 40001, to_web).to_bytes(),
        "a SYN whose slot is missing",
    );
    node.assert_drops(&[(DropReason::NoBackendSlot, 1)]);
    let events = node.tc.dp.node_counters().unwrap();
    assert!(
        events.contains(&("no_backend_slot", 1)),
        "the node-wide counter stays: {events:?}"
    );
}

/// from_overlay takes only what a known node's VXLAN carried: a frame
/// without tunnel metadata (whose sender cannot be known) is dropped, even
/// for a local pod and with peers known.
#[test]
fn from_overlay_drops_what_no_known_node_sent() {
    if !require_root("from_overlay_drops_what_no_known_node_sent") {
        return;
    }
    let mut node = Node::new(&[]);
    let tunnels: Tunnels = [(
        "10.244.2.0/24".parse().unwrap(),
        Ipv4Addr::new(192, 168, 79, 2),
    )]
    .into();
    node.tc
        .dp
        .overlay_mut()
        .reconcile_tunnels(&tunnels)
        .unwrap();
    let p = Packet::icmp(Ipv4Addr::new(10, 244, 2, 7), CLIENT, ICMP_ECHO, 0, [0; 4]);
    let (rc, _) = node
        .tc
        .run_program("from_overlay", node.client_if, &p.to_bytes());
    assert_eq!(rc, TC_ACT_SHOT);
    node.assert_drops(&[(DropReason::UnknownOverlayPeer, 1)]);
}

/// The known peers follow the tunnel map through every reconcile: one per
/// node the tunnels lead to, added with its first tunnel, removed with its
/// last.
#[test]
fn known_peers_follow_the_tunnels() {
    if !require_root("known_peers_follow_the_tunnels") {
        return;
    }
    let mut node = Node::new(&[]);
    let overlay = node.tc.dp.overlay_mut();
    let ip = |last| Ipv4Addr::new(192, 168, 79, last);
    let cidr = |third| format!("10.244.{third}.0/24").parse().unwrap();
    let steps: [(Tunnels, &[u8], (usize, usize)); 4] = [
        ([(cidr(2), ip(2)), (cidr(3), ip(3))].into(), &[2, 3], (2, 0)),
        // A second CIDR of node .2, and node .3 moved to .4.
        (
            [(cidr(2), ip(2)), (cidr(9), ip(2)), (cidr(3), ip(4))].into(),
            &[2, 4],
            (1, 1),
        ),
        // Node .2 keeps one CIDR: still a peer.
        ([(cidr(9), ip(2)), (cidr(3), ip(4))].into(), &[2, 4], (0, 0)),
        (Tunnels::new(), &[], (0, 2)),
    ];
    for (tunnels, peers, (added, removed)) in steps {
        let s = overlay.reconcile_tunnels(&tunnels).unwrap();
        let want: Vec<Ipv4Addr> = peers.iter().map(|&l| ip(l)).collect();
        assert_eq!(
            overlay.peers().unwrap().into_iter().collect::<Vec<_>>(),
            want
        );
        assert_eq!((s.peers_added, s.peers_removed), (added, removed));
    }
}
