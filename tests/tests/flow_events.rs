//! Flow events and per-backend counters, with the kernel running the tc
//! programs on hand-built frames (BPF_PROG_TEST_RUN): a new service flow
//! and a drop each put one record in the `flow_events` ring buffer, named
//! as they happened; sampling, the per-CPU rate limit and the off switch
//! hold; each backend slot counts the new flows it got, and starts again
//! when another backend takes the slot.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
use std::net::{Ipv4Addr, SocketAddrV4};

use jotasu_ebpf::{
    DropReason, FlowEvent, FlowEventConfig, FlowHook, FlowReader, FlowVerdict, Frontend, Service,
};
use jotasu_tests::{
    packet::{HOST_MAC, POD_MAC, Packet, TCP_SYN},
    privilege::require_root,
    tc_run::TcNode,
};

const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const EMPTY_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 11);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 5);
const NOBODY: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 200);

fn backend(n: u8) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 244, 0, 10 + n), 8080)
}

fn web(backends: &[u8]) -> Service {
    Service::new(Frontend::tcp(VIP, 80), backends.iter().map(|n| backend(*n)))
}

fn syn(src: Ipv4Addr, sport: u16, dst: SocketAddrV4) -> Vec<u8> {
    Packet::tcp(SocketAddrV4::new(src, sport), dst, TCP_SYN, 1000, 0).to_bytes()
}

struct Node {
    tc: TcNode,
    client_if: u32,
    events: FlowReader,
}

impl Node {
    fn new() -> Self {
        let mut tc = TcNode::new();
        let client_if = tc.add_pod(CLIENT, POD_MAC, HOST_MAC).ifindex;
        tc.dp.upsert_service(&web(&[1, 2])).unwrap();
        tc.dp
            .upsert_service(&Service::new(Frontend::tcp(EMPTY_VIP, 80), []))
            .unwrap();
        let events = FlowReader::open_dir(tc.dp.pin_dir()).expect("the ring buffer's pin");
        Self {
            tc,
            client_if,
            events,
        }
    }

    fn configure(&mut self, config: FlowEventConfig) {
        self.tc.dp.flow_events_mut().set_config(config).unwrap();
    }

    fn drain(&mut self) -> Vec<FlowEvent> {
        self.events
            .drain(1000)
            .into_iter()
            .map(|r| r.expect("every record decodes"))
            .collect()
    }

    fn id_of(&self, vip: Ipv4Addr) -> u32 {
        self.tc
            .dp
            .services()
            .unwrap()
            .into_iter()
            .find(|s| s.service.frontend.vip == vip)
            .unwrap()
            .id
    }

    fn new_flow(&self, sport: u16) {
        let (rc, _) = self.tc.run_on(
            self.client_if,
            &syn(CLIENT, sport, SocketAddrV4::new(VIP, 80)),
        );
        assert_eq!(rc, TC_ACT_OK, "a new flow is balanced");
    }
}

#[test]
fn a_new_flow_and_drops_put_named_records_in_the_ring_buffer() {
    if !require_root("a_new_flow_and_drops_put_named_records_in_the_ring_buffer") {
        return;
    }
    let mut node = Node::new();
    // A fresh node's config is zeroed: off.
    node.new_flow(40000);
    assert_eq!(node.drain(), [], "nothing is written while off");
    node.configure(FlowEventConfig::default());

    node.new_flow(40001);
    let web_id = node.id_of(VIP);
    let events = node.drain();
    assert_eq!(events.len(), 1, "{events:?}");
    let e = events[0];
    assert_eq!(e.hook, FlowHook::FromPod);
    assert_eq!(e.ifindex, node.client_if);
    assert_eq!(e.proto, 6);
    assert_eq!(e.service_id, Some(web_id));
    assert_eq!(e.src, SocketAddrV4::new(CLIENT, 40001));
    assert_eq!(e.dst, SocketAddrV4::new(VIP, 80), "the frontend as sent");
    assert_eq!(e.cgroup_id, None);
    assert_eq!(
        e.verdict,
        FlowVerdict::Forwarded {
            backend: backend(2)
        },
        "the second flow went to the second backend"
    );
    assert!(e.monotonic_ns > 0);

    // A refusal (no backend): the client's flow, with the service.
    let (rc, _) = node.tc.run_on(
        node.client_if,
        &syn(CLIENT, 40002, SocketAddrV4::new(EMPTY_VIP, 80)),
    );
    assert_eq!(rc, TC_ACT_REDIRECT, "refused with a RST");
    // A spoofed source: the packet's addresses, no service.
    let (rc, _) = node.tc.run_on(
        node.client_if,
        &syn(NOBODY, 40003, SocketAddrV4::new(VIP, 80)),
    );
    assert_eq!(rc, TC_ACT_SHOT);
    let events = node.drain();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[0].verdict,
        FlowVerdict::Dropped {
            reason: Ok(DropReason::NoBackend)
        }
    );
    assert_eq!(events[0].service_id, Some(node.id_of(EMPTY_VIP)));
    assert_eq!(events[0].src, SocketAddrV4::new(CLIENT, 40002));
    assert_eq!(events[0].dst, SocketAddrV4::new(EMPTY_VIP, 80));
    assert_eq!(
        events[1].verdict,
        FlowVerdict::Dropped {
            reason: Ok(DropReason::SpoofedSource)
        }
    );
    assert_eq!(
        events[1].hook,
        FlowHook::Tc,
        "a shared drop path: the device tells"
    );
    assert_eq!(events[1].ifindex, node.client_if);
    assert_eq!(events[1].service_id, None);
    assert_eq!(events[1].src, SocketAddrV4::new(NOBODY, 40003));
    assert_eq!(events[1].dst, SocketAddrV4::new(VIP, 80));

    let c = node.tc.dp.flow_events().counters().unwrap();
    assert_eq!(
        (c.emitted, c.lost, c.rate_limited, c.sampled_out),
        (3, 0, 0, 0)
    );
}

#[test]
fn sampling_the_rate_limit_and_the_off_switch_hold() {
    if !require_root("sampling_the_rate_limit_and_the_off_switch_hold") {
        return;
    }
    let mut node = Node::new();
    node.configure(FlowEventConfig {
        new_flow_sample: 4,
        ..FlowEventConfig::default()
    });
    for port in 0..8 {
        node.new_flow(41000 + port);
    }
    let sampled = node.drain().len() as u64;
    let c = node.tc.dp.flow_events().counters().unwrap();
    // 1 in 4 per CPU: the test thread may move between CPUs once or twice.
    assert!((2..=4).contains(&sampled), "{sampled} of 8 with 1 in 4");
    assert_eq!(c.emitted + c.sampled_out, 8, "{c:?}");

    node.configure(FlowEventConfig {
        max_per_cpu_s: 1,
        ..FlowEventConfig::default()
    });
    let before = node.tc.dp.flow_events().counters().unwrap();
    for port in 0..6 {
        node.new_flow(42000 + port);
    }
    let after = node.tc.dp.flow_events().counters().unwrap();
    let written = node.drain().len() as u64;
    assert_eq!(written, after.emitted - before.emitted);
    assert_eq!(written + after.rate_limited - before.rate_limited, 6);
    assert!(after.rate_limited > before.rate_limited, "{after:?}");

    node.configure(FlowEventConfig::OFF);
    for port in 0..3 {
        node.new_flow(43000 + port);
    }
    assert_eq!(node.drain(), [], "off writes nothing");
    assert_eq!(
        node.tc.dp.flow_events().counters().unwrap(),
        after,
        "nor counts"
    );
}

#[test]
fn each_backend_counts_its_new_flows_until_another_takes_its_slot() {
    if !require_root("each_backend_counts_its_new_flows_until_another_takes_its_slot") {
        return;
    }
    let mut node = Node::new();
    let id = node.id_of(VIP);
    assert_eq!(node.tc.dp.backend_new_flows(id, 2).unwrap(), [0, 0]);
    for port in 0..5 {
        node.new_flow(44000 + port);
    }
    assert_eq!(
        node.tc.dp.backend_new_flows(id, 2).unwrap(),
        [3, 2],
        "round-robin"
    );
    // Slot 1 gets another backend: its count starts again; slot 0 keeps its own.
    node.tc.dp.upsert_service(&web(&[1, 3])).unwrap();
    assert_eq!(node.tc.dp.backend_new_flows(id, 2).unwrap(), [3, 0]);
    // Removed and re-added: the id's slots start from zero.
    node.tc.dp.remove_service(&web(&[]).frontend).unwrap();
    node.tc.dp.upsert_service(&web(&[1, 2])).unwrap();
    let id = node.id_of(VIP);
    assert_eq!(node.tc.dp.backend_new_flows(id, 2).unwrap(), [0, 0]);
}
