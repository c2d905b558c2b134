//! A map pinned with another layout than this version defines is refused at
//! open, with a message naming the map, both layouts and the way out, and
//! nothing pinned is touched; a map missing from the pins is created.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
use std::{
    collections::BTreeMap,
    fs,
    net::{Ipv4Addr, SocketAddrV4},
    os::unix::fs::MetadataExt as _,
    path::Path,
    process::Command,
};

use jotasu_ebpf::{DEFAULT_BPFFS, Datapath, DatapathError, Frontend, Service};
use jotasu_tests::{pins::NodePins, privilege::require_root};

/// Every pin under `dir` (maps, programs, links), by relative path → inode:
/// a pin replaced (pinned anew, renamed over) gets another inode.
fn pins(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                todo.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, meta.ino());
            }
        }
    }
    out
}

fn bpftool(args: &[&str]) {
    let out = Command::new("bpftool").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "bpftool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_changed_map_layout_is_refused_and_leaves_every_pin_as_it_was() {
    if !require_root("a_changed_map_layout_is_refused_and_leaves_every_pin_as_it_was") {
        return;
    }
    let node = NodePins::fresh();
    let dir = Path::new(DEFAULT_BPFFS).join("jotasu").join(node.name());
    let svc = Service::new(
        Frontend::tcp(Ipv4Addr::new(10, 96, 7, 1), 80),
        [SocketAddrV4::new(Ipv4Addr::new(10, 244, 7, 2), 8080)],
    );
    {
        let mut dp = Datapath::open(node.name()).unwrap();
        dp.upsert_service(&svc).unwrap();
    }
    // Its own pins pass the check: the layouts as created equal the wanted ones.
    drop(Datapath::open(node.name()).unwrap());

    // An "older version" pinned affinity_timeouts with 8-byte values.
    let pin = dir.join("affinity_timeouts");
    fs::remove_file(&pin).unwrap();
    bpftool(&[
        "map",
        "create",
        pin.to_str().unwrap(),
        "type",
        "array",
        "key",
        "4",
        "value",
        "8",
        "entries",
        "16",
        "name",
        "affinity_timeou",
    ]);
    let before = pins(&dir);
    assert!(before.contains_key("progs/from_pod"), "{before:?}");

    let err = Datapath::open(node.name()).unwrap_err();
    let DatapathError::MapLayoutChanged { mismatches, .. } = &err else {
        panic!("expected a layout refusal, got {err}");
    };
    assert_eq!(mismatches.len(), 1, "{err}");
    let m = &mismatches[0];
    assert_eq!(m.map, "affinity_timeouts");
    assert_eq!((m.pinned.value_size, m.pinned.max_entries), (8, 16));
    assert_eq!(m.wanted.value_size, 4);
    let msg = err.to_string();
    for part in [
        "map `affinity_timeouts`: pinned array, key 4 B, value 8 B, 16 entries, flags 0x0; \
         this version wants array, key 4 B, value 4 B,",
        &format!("jotactl drain {}", node.name()),
        "--reset-datapath",
        &dir.display().to_string(),
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    assert_eq!(pins(&dir), before, "a refused open changed the pins");

    // A map missing from the pins is new in this version: it is created.
    fs::remove_file(&pin).unwrap();
    fs::remove_file(dir.join("dns_stats")).unwrap();
    let dp = Datapath::open(node.name()).unwrap();
    assert!(dir.join("affinity_timeouts").exists() && dir.join("dns_stats").exists());
    let services: Vec<Service> = dp
        .services()
        .unwrap()
        .into_iter()
        .map(|s| s.service)
        .collect();
    assert_eq!(services, vec![svc], "the services map was reused");
}
