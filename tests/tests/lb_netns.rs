//! Service load balancing with real traffic between network namespaces.
use std::net::{Ipv4Addr, SocketAddr};

use jotasu_ebpf::{Frontend, Service};
use jotasu_tests::{
    lab::{BACKEND_PORT, ClientPath, Lab},
    privilege::require_root,
};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

fn names(lines: &[String]) -> Vec<&str> {
    lines.iter().map(|l| l.split(' ').next().unwrap_or("")).collect()
}

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
    let expected: Vec<&str> = ["pod1", "pod2", "pod3"].iter().cycle().take(30).copied().collect();
    assert_eq!(names(&tc), expected, "tc path: {tc:?}");
    let c = lab.dp().service_counters(&svc.frontend).unwrap();
    assert_eq!((c.tc_new_flows, c.sock_new_flows), (30, 0));

    // The socket path shares the counter: it continues the rotation at pod1.
    let sock = lab.connect(ClientPath::Socket, to, 30, &[]).unwrap();
    assert_eq!(names(&sock), expected, "socket path: {sock:?}");
    // getpeername shows the VIP, not the backend.
    assert!(sock.iter().all(|l| l.ends_with(" 10.96.0.10:80")), "{sock:?}");
    let c = lab.dp().service_counters(&svc.frontend).unwrap();
    assert_eq!((c.tc_new_flows, c.sock_new_flows), (30, 30), "socket flows paid no tc NAT");
}
