//! The runtime against fake plugins ([`super::fake`]): order, `prevResult`
//! chaining, `runtimeConfig`, errors, the cache, GC and STATUS.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde_json::{Value, json};

use super::{Attachment, Runtime, fake::Plugins};
use crate::spec::{CniResult, Code, NetConfList, Version};

const R1: &str = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/t"}],
    "ips":[{"address":"10.0.0.5/24","gateway":"10.0.0.1","interface":0}]}"#;
const R2: &str = r#"{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","sandbox":"/run/netns/t"}],
    "ips":[{"address":"10.0.0.5/24","gateway":"10.0.0.1","interface":0}],
    "dns":{"nameservers":["10.96.0.10"]}}"#;

struct Setup {
    plugins: Plugins,
    cache: tempfile::TempDir,
    rt: Runtime,
}

/// Fake plugins `a` then `b`; `a` declares `portMappings`, `b` nothing.
fn setup() -> Setup {
    let plugins = Plugins::new(&["a", "b"]);
    plugins.answer("a", R1);
    plugins.answer("b", R2);
    let cache = tempfile::tempdir().unwrap();
    let rt = Runtime::new(plugins.path(), cache.path());
    Setup { plugins, cache, rt }
}

fn list(versions: Value, extra: Value) -> NetConfList {
    let mut l = json!({
        "name": "pods",
        "plugins": [
            {"type": "a", "capabilities": {"portMappings": true, "dns": false}},
            {"type": "b", "mtu": 1400}
        ]
    });
    match versions {
        Value::Array(_) => l["cniVersions"] = versions,
        v => l["cniVersion"] = v,
    }
    l.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    NetConfList::parse(l.to_string().as_bytes()).unwrap()
}

fn v11() -> NetConfList {
    list(json!(["1.0.0", "1.1.0"]), json!({}))
}

fn att(cid: &str) -> Attachment {
    let caps = json!({"portMappings": [{"hostPort": 8080, "containerPort": 80}],
                      "bandwidth": {"ingressRate": 1000}, "dns": {"servers": ["1.1.1.1"]}});
    Attachment {
        container_id: cid.into(),
        netns: PathBuf::from("/run/netns/t"),
        ifname: "eth0".into(),
        args: vec![
            ("IgnoreUnknown".into(), "1".into()),
            ("K8S_POD_NAME".into(), "p".into()),
        ],
        capability_args: caps.as_object().cloned().unwrap_or_default(),
    }
}

fn result(s: &str) -> CniResult {
    CniResult::from_value(&serde_json::from_str(s).unwrap()).unwrap()
}

#[test]
fn add_runs_in_order_chaining_results_at_the_negotiated_version() {
    let s = setup();
    let got = s.rt.add(&v11(), &att("c1")).unwrap();
    assert_eq!(got, result(R2));
    assert_eq!(s.plugins.take_calls(), ["a ADD c1", "b ADD c1"]);
    let a = s.plugins.stdin("a", "ADD");
    assert!(a.get("prevResult").is_none());
    assert_eq!(
        (&a["name"], &a["cniVersion"]),
        (&json!("pods"), &json!("1.1.0"))
    );
    let b = s.plugins.stdin("b", "ADD");
    assert_eq!(b["prevResult"], result(R1).to_value(Version::V1_1_0));
    assert_eq!(b["prevResult"]["cniVersion"], "1.1.0");
    assert_eq!(b["mtu"], 1400);
    let env = s.plugins.env("a", "ADD");
    assert_eq!(env["CNI_COMMAND"], "ADD");
    assert_eq!(env["CNI_CONTAINERID"], "c1");
    assert_eq!(env["CNI_IFNAME"], "eth0");
    assert_eq!(env["CNI_NETNS"], "/run/netns/t");
    assert_eq!(env["CNI_ARGS"], "IgnoreUnknown=1;K8S_POD_NAME=p");
    assert!(env["CNI_PATH"].ends_with(&*s.plugins.dir().to_string_lossy()));
    assert!(s.cache.path().join("results/pods-c1-eth0").is_file());
}

#[test]
fn runtime_config_carries_only_the_declared_and_enabled_capabilities() {
    let s = setup();
    s.rt.add(&v11(), &att("c1")).unwrap();
    let a = s.plugins.stdin("a", "ADD");
    assert_eq!(
        a["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 8080, "containerPort": 80}]})
    );
    assert!(s.plugins.stdin("b", "ADD").get("runtimeConfig").is_none());
}

#[test]
fn a_0_4_0_list_passes_prev_results_in_0_4_0_form() {
    let s = setup();
    s.rt.add(&list(json!("0.4.0"), json!({})), &att("c1"))
        .unwrap();
    let b = s.plugins.stdin("b", "ADD");
    assert_eq!(b["prevResult"]["cniVersion"], "0.4.0");
    assert_eq!(b["prevResult"]["ips"][0]["version"], "4");
}

#[test]
fn a_failing_plugin_stops_add_with_its_error_and_nothing_is_cached() {
    let s = setup();
    s.plugins.fail("a", "ADD", 7, "bad subnet");
    let e = s.rt.add(&v11(), &att("c1")).unwrap_err();
    assert_eq!(e.code, Code::InvalidConfig);
    assert!(e.msg.contains("bad subnet"), "{e}");
    assert_eq!(s.plugins.take_calls(), ["a ADD c1"]);
    assert_eq!(s.rt.get_cached("pods", "c1", "eth0").unwrap(), None);

    s.plugins.heal("a", "ADD");
    s.plugins.answer("b", "not json");
    let e = s.rt.add(&v11(), &att("c1")).unwrap_err();
    assert_eq!(e.code, Code::Decode);
    assert!(e.msg.contains("plugin b"), "{e}");
}

#[test]
fn del_runs_in_reverse_with_the_cached_result_then_forgets_it() {
    let s = setup();
    let l = v11();
    s.rt.add(&l, &att("c1")).unwrap();
    s.plugins.take_calls();
    let mut gone = att("c1");
    gone.netns = PathBuf::new();
    s.rt.del(&l, &gone).unwrap();
    assert_eq!(s.plugins.take_calls(), ["b DEL c1", "a DEL c1"]);
    let cached = result(R2).to_value(Version::V1_1_0);
    for p in ["a", "b"] {
        assert_eq!(s.plugins.stdin(p, "DEL")["prevResult"], cached, "{p}");
    }
    assert!(s.plugins.stdin("a", "DEL")["runtimeConfig"]["portMappings"].is_array());
    assert!(!s.plugins.env("a", "DEL").contains_key("CNI_NETNS"));
    assert_eq!(s.rt.get_cached("pods", "c1", "eth0").unwrap(), None);

    // Again, as if never added: no prevResult, still fine.
    s.rt.del(&l, &att("c1")).unwrap();
    assert!(s.plugins.stdin("a", "DEL").get("prevResult").is_none());
}

#[test]
fn a_failed_del_keeps_the_cache_so_it_can_be_retried() {
    let s = setup();
    let l = v11();
    s.rt.add(&l, &att("c1")).unwrap();
    s.plugins.take_calls();
    s.plugins.fail("b", "DEL", 11, "busy");
    let e = s.rt.del(&l, &att("c1")).unwrap_err();
    assert_eq!(
        (e.code, e.msg.contains("busy")),
        (Code::TryAgainLater, true)
    );
    assert_eq!(s.plugins.take_calls(), ["b DEL c1"]);
    assert!(s.rt.get_cached("pods", "c1", "eth0").unwrap().is_some());
    s.plugins.heal("b", "DEL");
    s.rt.del(&l, &att("c1")).unwrap();
    assert_eq!(
        s.plugins.stdin("a", "DEL")["prevResult"]["dns"]["nameservers"][0],
        "10.96.0.10"
    );
    assert_eq!(s.rt.get_cached("pods", "c1", "eth0").unwrap(), None);
}

#[test]
fn check_gives_every_plugin_the_cached_result_in_order() {
    let s = setup();
    let l = v11();
    s.rt.add(&l, &att("c1")).unwrap();
    s.plugins.take_calls();
    s.rt.check(&l, &att("c1")).unwrap();
    assert_eq!(s.plugins.take_calls(), ["a CHECK c1", "b CHECK c1"]);
    let cached = result(R2).to_value(Version::V1_1_0);
    assert_eq!(s.plugins.stdin("a", "CHECK")["prevResult"], cached);
    assert_eq!(s.plugins.stdin("b", "CHECK")["prevResult"], cached);

    s.plugins.fail("a", "CHECK", 103, "veth gone");
    let e = s.rt.check(&l, &att("c1")).unwrap_err();
    assert_eq!(e.code, Code::CheckFailed);
    assert_eq!(s.plugins.take_calls(), ["a CHECK c1"]);

    let e = s.rt.check(&l, &att("c9")).unwrap_err();
    assert_eq!(e.code, Code::Io);
    assert!(e.msg.contains("no cached result"), "{e}");
    let off = list(json!("1.1.0"), json!({"disableCheck": true}));
    s.rt.check(&off, &att("c9")).unwrap();
    assert!(s.plugins.take_calls().is_empty());
}

#[test]
fn gc_deletes_stale_attachments_and_passes_the_valid_ones() {
    let s = setup();
    let l = v11();
    s.rt.add(&l, &att("c1")).unwrap();
    s.rt.add(&l, &att("c2")).unwrap();
    s.plugins.take_calls();
    s.rt.gc(&l, &[("c1".into(), "eth0".into())]).unwrap();
    assert_eq!(
        s.plugins.take_calls(),
        ["b DEL c2", "a DEL c2", "a GC", "b GC"]
    );
    let gc = s.plugins.stdin("a", "GC");
    let valid = json!([{"containerID": "c1", "ifname": "eth0"}]);
    assert_eq!(gc[super::VALID_ATTACHMENTS], valid);
    assert_eq!(
        (&gc["name"], &gc["cniVersion"]),
        (&json!("pods"), &json!("1.1.0"))
    );
    assert!(gc.get("prevResult").is_none() && gc.get("runtimeConfig").is_none());
    let env = s.plugins.env("b", "GC");
    assert!(!env.contains_key("CNI_NETNS"));
    assert_eq!(env["CNI_CONTAINERID"], "");
    // The stale one was DELeted as ADD left it: its netns and prevResult.
    assert_eq!(s.plugins.env("a", "DEL")["CNI_NETNS"], "/run/netns/t");
    assert!(s.plugins.stdin("a", "DEL")["prevResult"].is_object());
    let left: Vec<String> =
        s.rt.cached_attachments("pods")
            .unwrap()
            .into_iter()
            .map(|c| c.attachment.container_id)
            .collect();
    assert_eq!(left, ["c1"]);
}

#[test]
fn gc_carries_on_past_failures_and_reports_them_all() {
    let s = setup();
    let l = v11();
    s.rt.add(&l, &att("c1")).unwrap();
    s.plugins.take_calls();
    s.plugins.fail("b", "DEL", 11, "busy");
    s.plugins.fail("a", "GC", 5, "disk");
    let e = s.rt.gc(&l, &[]).unwrap_err();
    assert_eq!(e.code, Code::TryAgainLater);
    assert!(
        e.msg.contains("stale attachment c1 eth0") && e.msg.contains("disk"),
        "{e}"
    );
    assert_eq!(s.plugins.take_calls(), ["b DEL c1", "a GC", "b GC"]);
    assert_eq!(s.rt.cached_attachments("pods").unwrap().len(), 1);
}

#[test]
fn lists_before_1_1_have_no_gc_or_status_verb_and_disable_gc_does_nothing() {
    let s = setup();
    let old = list(json!("1.0.0"), json!({}));
    s.rt.add(&old, &att("c1")).unwrap();
    s.plugins.take_calls();
    s.rt.status(&old).unwrap();
    assert!(s.plugins.take_calls().is_empty());
    s.rt.gc(&old, &[("c1".into(), "eth0".into())]).unwrap();
    assert!(s.plugins.take_calls().is_empty());
    // Stale attachments are still DELeted (libcni does so for every version).
    s.rt.gc(&old, &[]).unwrap();
    assert_eq!(s.plugins.take_calls(), ["b DEL c1", "a DEL c1"]);

    let off = list(json!("1.1.0"), json!({"disableGC": true}));
    s.rt.add(&off, &att("c1")).unwrap();
    s.plugins.take_calls();
    s.rt.gc(&off, &[]).unwrap();
    assert!(s.plugins.take_calls().is_empty());
    assert_eq!(s.rt.cached_attachments("pods").unwrap().len(), 1);
}

#[test]
fn status_asks_each_plugin_and_returns_the_first_failure() {
    let s = setup();
    let l = v11();
    s.rt.status(&l).unwrap();
    assert_eq!(s.plugins.take_calls(), ["a STATUS", "b STATUS"]);
    assert!(
        s.plugins
            .stdin("b", "STATUS")
            .get("runtimeConfig")
            .is_none()
    );
    s.plugins.fail("a", "STATUS", 50, "no IPs left");
    let e = s.rt.status(&l).unwrap_err();
    assert_eq!(e.code, Code::NotAvailable);
    assert_eq!(s.plugins.take_calls(), ["a STATUS"]);
}

#[test]
fn the_cache_outlives_the_runtime_instance() {
    let s = setup();
    let l = v11();
    s.rt.add(&l, &att("c1")).unwrap();
    s.plugins.take_calls();
    let reopened = Runtime::new(s.plugins.path(), s.cache.path());
    let c = reopened.get_cached("pods", "c1", "eth0").unwrap().unwrap();
    assert_eq!(c.attachment, att("c1"));
    assert_eq!(c.result, Some(result(R2)));
    assert_eq!(c.conflist().unwrap(), l);
    reopened.del(&c.conflist().unwrap(), &c.attachment).unwrap();
    assert_eq!(
        s.plugins.stdin("b", "DEL")["prevResult"],
        result(R2).to_value(Version::V1_1_0)
    );
    assert!(reopened.cached_attachments("pods").unwrap().is_empty());
}

#[test]
fn plugin_versions_reads_supported_versions() {
    let s = setup();
    assert_eq!(
        s.rt.plugin_versions("a").unwrap(),
        ["0.4.0", "1.0.0", "1.1.0"]
    );
    assert_eq!(s.rt.plugin_versions("zz").unwrap_err().code, Code::Io);
    let stdin = s.plugins.stdin("a", "VERSION");
    assert_eq!(stdin, json!({"cniVersion": "1.1.0"}));
}

#[test]
fn bad_names_are_refused_before_any_plugin_runs() {
    let s = setup();
    let l = v11();
    let with = |cid: &str, ifname: &str| Attachment {
        container_id: cid.into(),
        ifname: ifname.into(),
        ..att("x")
    };
    let code = |a: Attachment| s.rt.add(&l, &a).unwrap_err().code;
    assert_eq!(code(with("", "eth0")), Code::UnknownContainer);
    assert_eq!(code(with("../x", "eth0")), Code::InvalidEnvironment);
    assert_eq!(code(with("c1", "eth0/x")), Code::InvalidEnvironment);
    assert_eq!(
        code(with("c1", "a-very-long-ifname")),
        Code::InvalidEnvironment
    );
    assert_eq!(
        s.rt.del(&l, &with("c1", "..")).unwrap_err().code,
        Code::InvalidEnvironment
    );
    let mut bad = l.clone();
    bad.name = "a/b".into();
    assert_eq!(
        s.rt.add(&bad, &att("c1")).unwrap_err().code,
        Code::InvalidConfig
    );
    assert!(s.plugins.take_calls().is_empty());
}
