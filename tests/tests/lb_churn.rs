//! Removing a backend while traffic flows: no established connection breaks,
//! no new connection goes to the removed backend.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{Ipv4Addr, SocketAddr},
    process::Stdio,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use jotasu_ebpf::{Frontend, Service};
use jotasu_tests::{
    lab::{BACKEND_PORT, ClientPath, Lab},
    privilege::require_root,
    traffic::{self, ChurnReport},
};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
const SETTLE: Duration = Duration::from_millis(400);

/// A lab with VIP:80 -> pod1, pod2, pod3, and the same service without pod2.
fn setup() -> (Lab, Service) {
    let mut lab = Lab::new(3, &[BACKEND_PORT]).unwrap();
    let all = Service::new(Frontend::tcp(VIP, 80), lab.backends(3, BACKEND_PORT));
    lab.dp().upsert_service(&all).unwrap();
    let mut without_pod2 = all;
    without_pod2.backends.remove(1);
    (lab, without_pod2)
}

fn check(report: &ChurnReport, path: &str) {
    assert!(
        report.held_failures.is_empty(),
        "{path}: held connections broke: {report:?}"
    );
    assert!(
        report.held_requests > 0,
        "{path}: no traffic on held connections"
    );
    assert!(
        report.new_failures.is_empty(),
        "{path}: new connections failed: {report:?}"
    );
    assert!(
        report.before_mark.iter().any(|b| b == "pod2"),
        "{path}: pod2 never used before"
    );
    assert!(
        !report.after_mark.is_empty(),
        "{path}: no new connection after the removal"
    );
    assert!(
        report.after_mark.iter().all(|b| b != "pod2"),
        "{path}: new connections went to the removed backend: {:?}",
        report.after_mark
    );
}

#[test]
fn removing_a_backend_under_load_tc_path() {
    if !require_root("removing_a_backend_under_load_tc_path") {
        return;
    }
    let (mut lab, without_pod2) = setup();

    let (marked, stop) = (AtomicBool::new(false), AtomicBool::new(false));
    let client_ns = &lab.node.pods[0].ns;
    let dp = lab.datapath.as_mut().unwrap();
    let report = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            client_ns.run(|| {
                let deadline = Instant::now() + Duration::from_secs(30);
                traffic::churn(
                    SocketAddr::from((VIP, 80)),
                    6,
                    &marked,
                    &stop,
                    deadline,
                    || {},
                )
            })
        });
        std::thread::sleep(SETTLE);
        dp.upsert_service(&without_pod2).unwrap();
        marked.store(true, Ordering::Release);
        std::thread::sleep(SETTLE);
        stop.store(true, Ordering::Release);
        worker.join().unwrap().unwrap().unwrap()
    });
    check(&report, "tc");
}

#[test]
fn removing_a_backend_under_load_socket_path() {
    if !require_root("removing_a_backend_under_load_socket_path") {
        return;
    }
    let (mut lab, without_pod2) = setup();

    let mut cmd = lab.client_command(ClientPath::Socket);
    cmd.args(["churn", "--to", "10.96.0.20:80", "--held", "6"]);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "started");
    std::thread::sleep(SETTLE);
    lab.dp().upsert_service(&without_pod2).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"mark\n").unwrap();
    std::thread::sleep(SETTLE);
    drop(stdin);
    line.clear();
    out.read_line(&mut line).unwrap();
    assert!(child.wait().unwrap().success());
    let report: ChurnReport = serde_json::from_str(&line).unwrap();
    check(&report, "socket");
}
