//! The cache's format (libcni's), listing and removal.
#![allow(clippy::unwrap_used)]

use std::{os::unix::fs::PermissionsExt as _, path::PathBuf};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use serde_json::{Value, json};

use super::*;
use crate::spec::Version;

fn runtime() -> (tempfile::TempDir, Runtime) {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::new(vec![], dir.path());
    (dir, rt)
}

fn list(name: &str) -> NetConfList {
    let l = json!({"cniVersion": "1.1.0", "name": name, "disableGC": true,
                   "plugins": [{"type": "bridge", "bridge": "cni0"}, {"type": "portmap"}]});
    NetConfList::parse(l.to_string().as_bytes()).unwrap()
}

fn att(cid: &str) -> Attachment {
    Attachment {
        container_id: cid.into(),
        netns: PathBuf::from("/run/netns/x"),
        ifname: "eth0".into(),
        args: vec![("K8S_POD_NAME".into(), "p".into())],
        capability_args: json!({"portMappings": [{"hostPort": 80}]})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

fn sample_result() -> CniResult {
    let r = json!({"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.5/24"}]});
    CniResult::from_value(&r).unwrap()
}

#[test]
fn an_entry_is_written_in_libcni_format_and_read_back() {
    let (dir, rt) = runtime();
    let l = list("pods");
    rt.cache_add(&l, &att("c1"), &sample_result()).unwrap();
    let results = dir.path().join("results");
    let names: Vec<String> = fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["pods-c1-eth0"], "no temporary file is left");
    let file = results.join("pods-c1-eth0");
    assert_eq!(
        fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let raw: Value = serde_json::from_slice(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(raw["kind"], "cniCacheV1");
    assert_eq!(
        (&raw["containerId"], &raw["ifName"]),
        (&json!("c1"), &json!("eth0"))
    );
    assert_eq!(
        (&raw["networkName"], &raw["netns"]),
        (&json!("pods"), &json!("/run/netns/x"))
    );
    assert_eq!(raw["cniArgs"], json!([["K8S_POD_NAME", "p"]]));
    assert_eq!(raw["capabilityArgs"]["portMappings"][0]["hostPort"], 80);
    assert_eq!(raw["result"]["ips"][0]["address"], "10.0.0.5/24");
    let config = BASE64.decode(raw["config"].as_str().unwrap()).unwrap();
    assert_eq!(NetConfList::parse(&config).unwrap(), l);

    let c = rt.get_cached("pods", "c1", "eth0").unwrap().unwrap();
    assert_eq!((c.network.as_str(), &c.attachment), ("pods", &att("c1")));
    assert_eq!(c.result, Some(sample_result()));
    assert_eq!(c.conflist().unwrap(), l);

    // Rewriting replaces the entry.
    let mut again = att("c1");
    again.args.clear();
    rt.cache_add(&l, &again, &CniResult::default()).unwrap();
    let c = rt.get_cached("pods", "c1", "eth0").unwrap().unwrap();
    assert_eq!(c.attachment, again);
}

#[test]
fn an_entry_libcni_wrote_is_read() {
    let (dir, rt) = runtime();
    fs::create_dir_all(dir.path().join("results")).unwrap();
    // As Go's encoding/json writes libcni's cachedInfo.
    let go = r#"{"kind":"cniCacheV1","containerId":"abc123","config":"eyJjbmlWZXJzaW9uIjoiMS4wLjAiLCJuYW1lIjoicG9kcyIsInBsdWdpbnMiOlt7InR5cGUiOiJicmlkZ2UiLCJicmlkZ2UiOiJjbmkwIn1dfQ==","ifName":"eth0","networkName":"pods","netns":"/var/run/netns/cni-1","cniArgs":[["IgnoreUnknown","1"],["K8S_POD_NAMESPACE","default"]],"capabilityArgs":{"io.kubernetes.cri.pod-annotations":{}},"result":{"cniVersion":"1.0.0","interfaces":[{"name":"cni0","mac":"aa:bb:cc:dd:ee:ff"}],"ips":[{"interface":0,"address":"10.88.0.2/16","gateway":"10.88.0.1"}],"routes":[{"dst":"0.0.0.0/0"}],"dns":{}}}"#;
    fs::write(dir.path().join("results/pods-abc123-eth0"), go).unwrap();
    let c = rt.get_cached("pods", "abc123", "eth0").unwrap().unwrap();
    assert_eq!(c.attachment.netns, PathBuf::from("/var/run/netns/cni-1"));
    assert_eq!(
        c.attachment.cni_args(),
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default"
    );
    assert!(
        c.attachment
            .capability_args
            .contains_key("io.kubernetes.cri.pod-annotations")
    );
    let r = c.result.unwrap();
    assert_eq!((r.ips.len(), r.routes.len()), (1, 1));
    let parsed = CachedAttachment { result: None, ..c }.conflist().unwrap();
    assert_eq!(
        (parsed.version, parsed.plugins[0]["bridge"].clone()),
        (Version::V1_0_0, json!("cni0"))
    );
}

#[test]
fn listing_keeps_the_networks_own_readable_entries() {
    let (dir, rt) = runtime();
    assert!(
        rt.cached_attachments("pods").unwrap().is_empty(),
        "no directory yet"
    );
    rt.cache_add(&list("pods"), &att("c2"), &sample_result())
        .unwrap();
    rt.cache_add(&list("pods"), &att("c1"), &sample_result())
        .unwrap();
    // "pods-b" + "c1" names the file "pods-b-c1-eth0", which looks like
    // network "pods", container "b-c1" by its name alone.
    rt.cache_add(&list("pods-b"), &att("c1"), &sample_result())
        .unwrap();
    let results = dir.path().join("results");
    fs::write(results.join("pods-junk-eth0"), "{not json").unwrap();
    fs::write(results.join("pods-old-eth0"), r#"{"kind":"other"}"#).unwrap();
    fs::write(results.join(".pods-c3-eth0.1.2.tmp"), "{").unwrap();
    let got: Vec<String> = rt
        .cached_attachments("pods")
        .unwrap()
        .into_iter()
        .map(|c| c.attachment.container_id)
        .collect();
    assert_eq!(got, ["c1", "c2"]);
    assert_eq!(rt.cached_attachments("pods-b").unwrap().len(), 1);
    assert_eq!(rt.get_cached("pods", "b-c1", "eth0").unwrap(), None);
    assert_eq!(
        rt.get_cached("pods", "junk", "eth0").unwrap_err().code,
        Code::Decode
    );
    assert_eq!(
        rt.get_cached("pods", "old", "eth0").unwrap_err().code,
        Code::Decode
    );
}

#[test]
fn removal_forgets_and_tolerates_absence() {
    let (_dir, rt) = runtime();
    rt.cache_add(&list("pods"), &att("c1"), &sample_result())
        .unwrap();
    rt.cache_del("pods", &att("c1")).unwrap();
    assert_eq!(rt.get_cached("pods", "c1", "eth0").unwrap(), None);
    rt.cache_del("pods", &att("c1")).unwrap();
    rt.cache_del("nets", &att("c9")).unwrap();
}

#[test]
fn names_that_could_leave_the_directory_are_refused() {
    let (_dir, rt) = runtime();
    assert_eq!(
        rt.get_cached("../x", "c1", "eth0").unwrap_err().code,
        Code::InvalidConfig
    );
    assert_eq!(
        rt.get_cached("pods", "../../x", "eth0").unwrap_err().code,
        Code::InvalidEnvironment
    );
    assert_eq!(
        rt.get_cached("pods", "c1", "a/b").unwrap_err().code,
        Code::InvalidEnvironment
    );
}
