//! The Rust mirrors in `abi.rs` match the C structs in `jotasu_maps.h`, as
//! compiled: every struct's size, and every member's name, offset and size,
//! read from the embedded objects' BTF (through `bpftool btf dump -j`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design
use std::{collections::HashMap, mem, process::Command};

use jotasu_ebpf::{abi, objects};
use serde_json::Value;

/// (name, offset, size) of each member of a Rust mirror, in declaration order.
type Layout = Vec<(&'static str, usize, usize)>;

macro_rules! layout {
    ($t:ty { $($f:ident),* $(,)? }) => {{
        fn size_of_field<T, F>(_: fn(&T) -> &F) -> usize { mem::size_of::<F>() }
        let fields: Layout = vec![$((
            stringify!($f),
            mem::offset_of!($t, $f),
            size_of_field(|v: &$t| &v.$f),
        )),*];
        (mem::size_of::<$t>(), fields)
    }};
}

fn mirrors() -> Vec<(&'static str, (usize, Layout))> {
    vec![
        (
            "svc_key",
            layout!(abi::SvcKey {
                vip,
                port,
                proto,
                pad
            }),
        ),
        ("svc_value", layout!(abi::SvcValue { id, count, flags })),
        ("backend_key", layout!(abi::BackendKey { svc_id, slot })),
        (
            "backend_value",
            layout!(abi::BackendValue { addr, port, pad }),
        ),
        (
            "ct_key",
            layout!(abi::CtKey {
                saddr,
                daddr,
                sport,
                dport,
                proto,
                pad
            }),
        ),
        (
            "ct_value",
            layout!(abi::CtValue {
                nat_addr,
                nat_port,
                dir,
                flags,
                svc_id,
                created_s,
                last_seen_s,
                peer_addr,
                peer_port,
                pad
            }),
        ),
        ("affinity_key", layout!(abi::AffinityKey { svc_id, client })),
        (
            "affinity_value",
            layout!(abi::AffinityValue {
                addr,
                port,
                slot,
                last_seen_s
            }),
        ),
        ("host_config", layout!(abi::HostConfig { addr, ifindex })),
        (
            "sock_key",
            layout!(abi::SockKey {
                cookie,
                addr,
                port,
                proto,
                pad
            }),
        ),
        ("sock_value", layout!(abi::SockValue { addr, port, pad })),
        (
            "endpoint_value",
            layout!(abi::EndpointValue {
                ifindex,
                pod_mac,
                host_mac
            }),
        ),
        (
            "svc_stats",
            layout!(abi::SvcStats {
                tc_new_flows,
                sock_new_flows,
                rejected
            }),
        ),
        ("tunnel_key", layout!(abi::TunnelKey { prefixlen, addr })),
        ("tunnel_value", layout!(abi::TunnelValue { node_ip })),
        (
            "overlay_config",
            layout!(abi::OverlayConfig { ifindex, vni }),
        ),
        ("dns_name", layout!(abi::DnsName { wire })),
        ("dns_answer", layout!(abi::DnsAnswer { addr })),
        (
            "dns_frontend",
            layout!(abi::DnsFrontend { addr, port, pad }),
        ),
        (
            "flow_config",
            layout!(abi::FlowConfig {
                flags,
                new_flow_sample,
                drop_sample,
                max_per_cpu_s,
            }),
        ),
        (
            "flow_event_stats",
            layout!(abi::FlowEventStats {
                emitted,
                lost,
                rate_limited,
                sampled_out,
                new_seen,
                drop_seen,
                window_s,
                window_count,
            }),
        ),
        (
            "flow_event",
            layout!(abi::FlowEvent {
                ts_ns,
                kind,
                hook,
                proto,
                reason,
                ifindex,
                svc_id,
                saddr,
                daddr,
                sport,
                dport,
                backend_addr,
                backend_port,
                pad,
                cgroup_id,
            }),
        ),
    ]
}

/// The object's BTF types by id, from bpftool.
fn btf_types(object: &[u8], name: &str) -> HashMap<u64, Value> {
    let dir = std::env::temp_dir().join(format!("jotasu-btf-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.o"));
    std::fs::write(&path, object).unwrap();
    let out = Command::new("bpftool")
        .args(["-j", "btf", "dump", "file"])
        .arg(&path)
        .output()
        .expect("bpftool is needed for this test: run scripts/bootstrap.sh");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success(),
        "bpftool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["id"].as_u64().unwrap(), t.clone()))
        .collect()
}

/// Byte size of a BTF type, through typedefs and qualifiers.
fn type_size(types: &HashMap<u64, Value>, id: u64) -> usize {
    let t = &types[&id];
    match t["kind"].as_str().unwrap() {
        "INT" | "STRUCT" | "UNION" | "ENUM" => t["size"].as_u64().unwrap() as usize,
        "ARRAY" => {
            t["nr_elems"].as_u64().unwrap() as usize
                * type_size(types, t["type_id"].as_u64().unwrap())
        }
        _ => type_size(types, t["type_id"].as_u64().unwrap()),
    }
}

fn check(object: &[u8], object_name: &str, required: &[&str]) {
    let types = btf_types(object, object_name);
    let structs: HashMap<&str, &Value> = types
        .values()
        .filter(|t| t["kind"] == "STRUCT")
        .map(|t| (t["name"].as_str().unwrap(), t))
        .collect();
    for (name, (size, fields)) in mirrors() {
        let Some(c) = structs.get(name) else {
            assert!(
                !required.contains(&name),
                "{object_name}: struct {name} missing from BTF"
            );
            continue;
        };
        assert_eq!(
            c["size"].as_u64().unwrap() as usize,
            size,
            "{object_name}: size of {name}"
        );
        let members = c["members"].as_array().unwrap();
        let c_fields: Layout = members
            .iter()
            .map(|m| {
                let name: &'static str = m["name"].as_str().unwrap().to_owned().leak();
                let off = m["bits_offset"].as_u64().unwrap() as usize / 8;
                (name, off, type_size(&types, m["type_id"].as_u64().unwrap()))
            })
            .collect();
        assert_eq!(
            c_fields, fields,
            "{object_name}: members of {name} (C left, Rust right)"
        );
    }
}

#[test]
fn rust_mirrors_match_the_tc_object() {
    check(
        objects::TC,
        "tc",
        &[
            "svc_key",
            "svc_value",
            "backend_key",
            "backend_value",
            "ct_key",
            "ct_value",
            "affinity_key",
            "affinity_value",
            "host_config",
            "endpoint_value",
            "svc_stats",
            "tunnel_key",
            "tunnel_value",
            "overlay_config",
            "dns_name",
            "dns_answer",
            "dns_frontend",
            "flow_config",
            "flow_event_stats",
            "flow_event",
        ],
    );
}

#[test]
fn rust_mirrors_match_the_socket_object() {
    check(
        objects::SOCK,
        "sock",
        &[
            "svc_key",
            "svc_value",
            "sock_key",
            "sock_value",
            "affinity_key",
            "affinity_value",
            "flow_config",
            "flow_event_stats",
            "flow_event",
        ],
    );
}

/// `enum drop_reason` in the object's BTF: (name, value) in declaration order.
fn drop_reason_enum(object: &[u8], object_name: &str) -> Vec<(String, u64)> {
    // A scratch name of its own: the struct tests dump the same objects in parallel.
    let types = btf_types(object, &format!("{object_name}-enums"));
    let e = types
        .values()
        .find(|t| t["kind"] == "ENUM" && t["name"] == "drop_reason")
        .unwrap_or_else(|| panic!("{object_name}: enum drop_reason missing from BTF"));
    assert_eq!(e["size"], 4, "{object_name}: enum drop_reason is 4 bytes");
    e["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                v["val"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Every `DropReason` is the C enum's value of the same name (the C name is
/// `DROP_` and the Rust name uppercased), and `DROP_MAX` follows the last.
#[test]
fn drop_reasons_match_both_objects() {
    use jotasu_ebpf::{DropReason, drops::DROP_SLOTS};

    let mut want: Vec<(String, u64)> = DropReason::ALL
        .iter()
        .map(|r| {
            (
                format!("DROP_{}", r.as_str().to_ascii_uppercase()),
                u64::from(r.index()),
            )
        })
        .collect();
    want.push(("DROP_MAX".to_owned(), DropReason::ALL.len() as u64));
    assert!(DropReason::ALL.len() <= DROP_SLOTS as usize);
    for (object, name) in [(objects::TC, "tc"), (objects::SOCK, "sock")] {
        assert_eq!(
            drop_reason_enum(object, name),
            want,
            "{name}: enum drop_reason (C left, Rust right)"
        );
    }
}
