//! The data plane outlives the process that loaded it, and a new process
//! finds it again; test fixtures leave nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
use std::{
    io::Write as _,
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    process::Stdio,
};

use jotasu_ebpf::{DEFAULT_BPFFS, Datapath, Frontend, Service};
use jotasu_tests::{
    lab::{BACKEND_PORT, ClientPath, Lab},
    privilege::require_root,
    traffic::{backends_of, rotation},
};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 30);

#[test]
fn traffic_keeps_flowing_after_the_loader_exits_and_a_new_process_updates_it() {
    if !require_root("traffic_keeps_flowing_after_the_loader_exits") {
        return;
    }
    let mut lab = Lab::without_datapath(3, &[BACKEND_PORT]).unwrap();
    let svc = Service::new(Frontend::tcp(VIP, 80), lab.backends(3, BACKEND_PORT));
    let spec = lab.spec(std::slice::from_ref(&svc));

    // Another process loads, attaches and programs everything, then exits.
    let mut loader = std::process::Command::new(lab.testbin());
    loader.args(["datapath-apply", "--netns", lab.node.ns.name()]);
    loader.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = loader.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(&spec).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "loader failed");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "applied");

    // Nobody holds the programs now but their pinned links.
    let to = SocketAddr::from((VIP, 80));
    let tc = lab.connect(ClientPath::Tc, to, 30, &[]).unwrap();
    assert_eq!(backends_of(&tc), rotation(&["pod1", "pod2", "pod3"], 30));
    let sock = lab.connect(ClientPath::Socket, to, 30, &[]).unwrap();
    assert_eq!(backends_of(&sock), rotation(&["pod1", "pod2", "pod3"], 30));

    // This process reopens the pins: it sees what the loader programmed ...
    let mut dp = Datapath::open(lab.node.name()).unwrap();
    let services = dp.services().unwrap();
    assert_eq!(services.len(), 1);
    assert_eq!(services[0].service, svc);
    assert_eq!(services[0].counters.tc_new_flows, 30);
    assert_eq!(services[0].counters.sock_new_flows, 30);
    // ... and updates it; the programs (still the loader's) follow the maps.
    let mut two = svc.clone();
    two.backends.remove(1);
    dp.upsert_service(&two).unwrap();
    let after = lab.connect(ClientPath::Tc, to, 10, &[]).unwrap();
    assert_eq!(
        backends_of(&after),
        rotation(&["pod1", "pod3"], 10),
        "{after:?}"
    );
    // Re-attaching from this process adopts the pinned links, no duplicates.
    drop(dp);
    let spec2 = lab.spec(std::slice::from_ref(&two));
    let dp2 = lab.node.ns.run(|| spec2.apply()).unwrap().unwrap();
    let again = lab.connect(ClientPath::Tc, to, 4, &[]).unwrap();
    assert_eq!(
        backends_of(&again),
        rotation(&["pod1", "pod3"], 4),
        "one program per interface: {again:?}"
    );
    lab.datapath = Some(dp2);
}

#[test]
fn fixtures_remove_everything_even_when_a_test_panics() {
    if !require_root("fixtures_remove_everything_even_when_a_test_panics") {
        return;
    }
    let mut made = Vec::new();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::new(2, &[BACKEND_PORT]).unwrap();
        made.push(lab.node.name().to_owned());
        made.extend(lab.node.pods.iter().map(|p| p.ns.name().to_owned()));
        made.push(lab.node.ns.name().to_owned());
        made.push(lab.node.cgroup.path().display().to_string());
        panic!("deliberate failure inside a test");
    }));
    assert!(outcome.is_err());
    let node = &made[0];
    let netns = jotasu_tests::cmd::ip(&["netns", "list"]).unwrap();
    for ns in &made[1..made.len() - 1] {
        assert!(!netns.contains(ns.as_str()), "netns {ns} left behind");
    }
    assert!(
        !Path::new(made.last().unwrap()).exists(),
        "cgroup left behind"
    );
    assert!(
        !Path::new(DEFAULT_BPFFS).join("jotasu").join(node).exists(),
        "pins left behind"
    );
}
