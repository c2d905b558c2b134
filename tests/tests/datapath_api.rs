//! The Datapath API against real pinned maps: bad input is a typed error and
//! changes nothing; reconcile writes only the difference; reopening sees it all.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
use std::net::{Ipv4Addr, SocketAddrV4};

use jotasu_ebpf::{Datapath, DatapathError, Frontend, ReconcileSummary, Service, ServiceError};
use jotasu_tests::{pins::NodePins, privilege::require_root};

fn svc(n: u8, backends: &[u8]) -> Service {
    Service::new(
        Frontend::tcp(Ipv4Addr::new(10, 96, 1, n), 80),
        backends
            .iter()
            .map(|&b| SocketAddrV4::new(Ipv4Addr::new(10, 244, 1, b), 8080)),
    )
}

fn programmed(dp: &Datapath) -> Vec<Service> {
    dp.services()
        .unwrap()
        .into_iter()
        .map(|s| s.service)
        .collect()
}

#[test]
fn bad_input_is_a_typed_error_and_writes_nothing() {
    if !require_root("bad_input_is_a_typed_error_and_writes_nothing") {
        return;
    }
    let pins = NodePins::fresh();
    let mut dp = Datapath::open(pins.name()).unwrap();
    dp.upsert_service(&svc(1, &[1, 2])).unwrap();
    let before = programmed(&dp);

    let err = dp.upsert_service(&svc(1, &[1, 1])).unwrap_err();
    assert!(
        matches!(
            err,
            DatapathError::Service(ServiceError::DuplicateBackend { .. })
        ),
        "{err}"
    );
    let zero = Service::new(Frontend::tcp(Ipv4Addr::new(10, 96, 1, 9), 0), []);
    assert!(matches!(
        dp.upsert_service(&zero).unwrap_err(),
        DatapathError::Service(ServiceError::ZeroPort { .. })
    ));
    let err = dp.remove_service(&svc(7, &[]).frontend).unwrap_err();
    assert_eq!(
        err.to_string(),
        "service 10.96.1.7:80/TCP is not programmed on this node"
    );
    // One bad service in a desired set: the whole reconcile writes nothing.
    let err = dp.reconcile(&[svc(2, &[1]), svc(3, &[4, 4])]).unwrap_err();
    assert!(matches!(
        err,
        DatapathError::Service(ServiceError::DuplicateBackend { .. })
    ));
    assert_eq!(programmed(&dp), before);

    assert!(matches!(
        Datapath::open("../escape").unwrap_err(),
        DatapathError::InvalidNodeName { .. }
    ));
}

#[test]
fn reconcile_writes_the_difference_and_a_reopen_sees_it() {
    if !require_root("reconcile_writes_the_difference_and_a_reopen_sees_it") {
        return;
    }
    let pins = NodePins::fresh();
    let mut dp = Datapath::open(pins.name()).unwrap();
    let first = [svc(1, &[1, 2]), svc(2, &[3])];
    assert_eq!(
        dp.reconcile(&first).unwrap(),
        ReconcileSummary {
            added: 2,
            ..Default::default()
        }
    );
    let second = [svc(1, &[1, 2]), svc(3, &[5, 6, 7])];
    assert_eq!(
        dp.reconcile(&second).unwrap(),
        ReconcileSummary {
            added: 1,
            removed: 1,
            unchanged: 1,
            updated: 0
        }
    );
    assert_eq!(dp.reconcile(&second).unwrap().unchanged, 2);
    drop(dp);

    let dp = Datapath::open(pins.name()).unwrap();
    let mut want = second.to_vec();
    want.sort_by_key(|s| s.frontend);
    assert_eq!(programmed(&dp), want);
}
