//! Service load balancing with real traffic between network namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
use std::net::{Ipv4Addr, SocketAddr};

use jotasu_ebpf::{Frontend, Service};
use jotasu_tests::{
    lab::{BACKEND_PORT, ClientPath, Lab},
    privilege::require_root,
    traffic::{backends_of, rotation},
};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

#[test]
fn tcp_round_robin_is_exact_through_tc_and_socket_paths() {
    if !require_root("tcp_round_robin_is_exact_through_tc_and_socket_paths") {
        return;
    }
    let mut lab = Lab::new(3, &[BACKEND_PORT]).unwrap();
    let svc = Service::new(Frontend::tcp(VIP, 80), lab.backends(3, BACKEND_PORT));
    lab.dp().upsert_service(&svc).unwrap();
    let to = SocketAddr::from((VIP, 80));

    let tc = lab.connect(ClientPath::Tc, to, 30, &[]).unwrap();
    let expected = rotation(&["pod1", "pod2", "pod3"], 30);
    assert_eq!(backends_of(&tc), expected, "tc path: {tc:?}");
    let c = lab.dp().service_counters(&svc.frontend).unwrap();
    assert_eq!((c.tc_new_flows, c.sock_new_flows), (30, 0));

    // The socket path shares the counter: it continues the rotation at pod1.
    let sock = lab.connect(ClientPath::Socket, to, 30, &[]).unwrap();
    assert_eq!(backends_of(&sock), expected, "socket path: {sock:?}");
    // getpeername shows the VIP, not the backend.
    assert!(
        sock.iter().all(|l| l.ends_with(" 10.96.0.10:80")),
        "{sock:?}"
    );
    let c = lab.dp().service_counters(&svc.frontend).unwrap();
    assert_eq!(
        (c.tc_new_flows, c.sock_new_flows),
        (30, 30),
        "socket flows paid no tc NAT"
    );
}

#[test]
fn udp_round_robin_and_reverse_nat_on_both_paths() {
    if !require_root("udp_round_robin_and_reverse_nat_on_both_paths") {
        return;
    }
    let mut lab = Lab::new(3, &[BACKEND_PORT]).unwrap();
    let svc = Service::new(Frontend::udp(VIP, 53), lab.backends(3, BACKEND_PORT));
    lab.dp().upsert_service(&svc).unwrap();
    let to = SocketAddr::from((VIP, 53));
    let cycle = |n| rotation(&["pod1", "pod2", "pod3"], n);

    for path in [ClientPath::Tc, ClientPath::Socket] {
        // Connected sockets: one new flow each, in rotation.
        let connected = lab.connect(path, to, 9, &["--udp"]).unwrap();
        assert_eq!(
            backends_of(&connected),
            cycle(9),
            "{path:?} connected: {connected:?}"
        );
        // Unconnected sockets: answers appear to come from the VIP (reverse
        // NAT at tc, recvmsg4 at socket level).
        let unconnected = lab
            .connect(path, to, 3, &["--udp", "--unconnected"])
            .unwrap();
        assert_eq!(
            backends_of(&unconnected),
            cycle(3),
            "{path:?} unconnected: {unconnected:?}"
        );
        assert!(
            unconnected.iter().all(|l| l.ends_with(" 10.96.0.10:53")),
            "{path:?}: answers must come from the VIP: {unconnected:?}"
        );
    }
    let c = lab.dp().service_counters(&svc.frontend).unwrap();
    assert_eq!((c.tc_new_flows, c.sock_new_flows), (12, 12));
}

#[test]
fn service_without_backends_refuses_at_once() {
    if !require_root("service_without_backends_refuses_at_once") {
        return;
    }
    let mut lab = Lab::new(1, &[BACKEND_PORT]).unwrap();
    let tcp = Frontend::tcp(VIP, 80);
    let udp = Frontend::udp(VIP, 53);
    lab.dp().upsert_service(&Service::new(tcp, [])).unwrap();
    lab.dp().upsert_service(&Service::new(udp, [])).unwrap();

    for path in [ClientPath::Tc, ClientPath::Socket] {
        // Refused, not timed out: the client's own timeout is 5 s, so a
        // dropped SYN would read "timed out".
        let t = lab
            .connect(path, SocketAddr::from((VIP, 80)), 1, &[])
            .unwrap();
        assert!(
            t[0].starts_with("ERR") && t[0].contains("refused"),
            "{path:?} tcp: {t:?}"
        );
        let u = lab
            .connect(path, SocketAddr::from((VIP, 53)), 1, &["--udp"])
            .unwrap();
        assert!(
            u[0].starts_with("ERR") && u[0].contains("refused"),
            "{path:?} udp: {u:?}"
        );
    }
    assert_eq!(lab.dp().service_counters(&tcp).unwrap().rejected, 2);
    assert_eq!(lab.dp().service_counters(&udp).unwrap().rejected, 2);
    // Each refusal, at tc (RST, ICMP) and at connect (ECONNREFUSED), has its reason.
    let drops = lab.dp().drop_counters().unwrap();
    assert_eq!(drops[&jotasu_ebpf::DropReason::NoBackend], 4, "{drops:?}");

    // Giving the service a backend makes it answer.
    let one = Service::new(tcp, lab.backends(1, BACKEND_PORT));
    lab.dp().upsert_service(&one).unwrap();
    let ok = lab
        .connect(ClientPath::Tc, SocketAddr::from((VIP, 80)), 1, &[])
        .unwrap();
    assert_eq!(backends_of(&ok), ["pod1"]);
}

#[test]
fn a_direct_connection_reusing_an_old_service_tuple_is_not_reverse_natted() {
    if !require_root("a_direct_connection_reusing_an_old_service_tuple_is_not_reverse_natted") {
        return;
    }
    let mut lab = Lab::new(1, &[BACKEND_PORT]).unwrap();
    let svc = Service::new(Frontend::tcp(VIP, 80), lab.backends(1, BACKEND_PORT));
    lab.dp().upsert_service(&svc).unwrap();
    // VIP flows from ports 40000.. leave conntrack entries (reply: pod1:8080
    // -> client:4000x) ...
    let vip = SocketAddr::from((VIP, 80));
    let src = ["--source-port", "40000"];
    let via_vip = lab.connect(ClientPath::Tc, vip, 8, &src).unwrap();
    assert_eq!(backends_of(&via_vip), ["pod1"; 8]);
    // ... which direct connections to pod1 from the same ports must not hit:
    // their replies would be rewritten to come from the VIP, and hang.
    let direct = SocketAddr::from(lab.backends(1, BACKEND_PORT)[0]);
    let answers = lab.connect(ClientPath::Tc, direct, 8, &src).unwrap();
    assert_eq!(backends_of(&answers), ["pod1"; 8], "{answers:?}");
    // The socket path connects directly too.
    let sock = lab
        .connect(ClientPath::Socket, vip, 8, &["--source-port", "40010"])
        .unwrap();
    assert_eq!(backends_of(&sock), ["pod1"; 8], "{sock:?}");
    let tc_again = lab
        .connect(ClientPath::Tc, vip, 8, &["--source-port", "40010"])
        .unwrap();
    assert_eq!(backends_of(&tc_again), ["pod1"; 8], "{tc_again:?}");
}

#[test]
fn client_ip_affinity_holds_then_expires_on_both_paths() {
    if !require_root("client_ip_affinity_holds_then_expires_on_both_paths") {
        return;
    }
    let mut lab = Lab::new(3, &[BACKEND_PORT]).unwrap();
    let reach = jotasu_ebpf::Reach {
        affinity_timeout_s: 2,
        ..jotasu_ebpf::Reach::default()
    };
    let svc = Service::new(Frontend::tcp(VIP, 80), lab.backends(3, BACKEND_PORT)).with_reach(reach);
    lab.dp().upsert_service(&svc).unwrap();
    assert_eq!(lab.dp().services().unwrap()[0].service.reach, reach);
    let to = SocketAddr::from((VIP, 80));
    for (path, first, then) in [
        (ClientPath::Tc, "pod1", "pod2"),
        (ClientPath::Socket, "pod3", "pod1"),
    ] {
        // One client: every new connection goes to its first backend...
        let held = lab.connect(path, to, 6, &[]).unwrap();
        assert_eq!(backends_of(&held), vec![first; 6], "{path:?}: {held:?}");
        // ... until it has been idle for longer than the timeout: the next
        // one is balanced again (round-robin moves on) and then holds.
        std::thread::sleep(std::time::Duration::from_secs(4));
        let after = lab.connect(path, to, 3, &[]).unwrap();
        assert_eq!(backends_of(&after), vec![then; 3], "{path:?}: {after:?}");
        std::thread::sleep(std::time::Duration::from_secs(4));
    }
    // Affinity off: plain round-robin again.
    lab.dp()
        .upsert_service(&svc.clone().with_reach(jotasu_ebpf::Reach::default()))
        .unwrap();
    let plain = lab.connect(ClientPath::Tc, to, 3, &[]).unwrap();
    let names: std::collections::BTreeSet<&str> = backends_of(&plain).into_iter().collect();
    assert_eq!(names.len(), 3, "{plain:?}");
}
