//! Tests of the security settings and of the OCI spec they make: uid and
//! gids, runAsNonRoot, capabilities, no_new_privileges, a read-only root,
//! privileged.

use jotasu_api::kinds::pod::{Capabilities, PodSecurityContext, SecurityContext};
use serde_json::{Value, json};

use super::*;
use crate::containerd::ImageConfig;
use crate::pod::spec::runtime_spec;
use crate::pod::spec::tests::{busybox, container, json_of, mount_at, pod, setup};

fn secured(pod_sc: Option<PodSecurityContext>, sc: Option<SecurityContext>) -> (Pod, Container) {
    let mut p = pod();
    p.spec.security_context = pod_sc;
    let mut c = container();
    c.security_context = sc;
    p.spec.containers = vec![c.clone()];
    (p, c)
}

fn caps(v: &Value, set: &str) -> Vec<String> {
    let mut out: Vec<String> = v["process"]["capabilities"][set]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn users_and_groups_from_the_pod_and_the_container() {
    let (p, c) = secured(
        Some(PodSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(3000),
            fs_group: Some(2000),
            supplemental_groups: vec![4000, 2000],
            ..PodSecurityContext::default()
        }),
        Some(SecurityContext {
            run_as_user: Some(1001),
            ..SecurityContext::default()
        }),
    );
    let image = busybox();
    let spec = json_of(&setup(&p, &c, &image));
    assert_eq!(
        spec["process"]["user"],
        json!({"uid": 1001, "gid": 3000, "additionalGids": [2000, 4000]})
    );
}

#[test]
fn the_image_user_applies_without_run_as_user() {
    let (p, c) = secured(None, None);
    let mut image = busybox();
    image.user = "65534:65533".into();
    let spec = json_of(&setup(&p, &c, &image));
    assert_eq!(spec["process"]["user"]["uid"], 65534);
    assert_eq!(spec["process"]["user"]["gid"], 65533);
}

#[test]
fn run_as_non_root_refuses_root_with_the_kubelets_words() {
    let non_root = |user: Option<i64>| {
        Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: user,
            ..PodSecurityContext::default()
        })
    };
    let image = busybox();
    let err = |p: &Pod, c: &Container, image: &ImageConfig| {
        runtime_spec(&setup(p, c, image))
            .expect_err("refused")
            .to_string()
    };
    let (p, c) = secured(non_root(None), None);
    assert_eq!(
        err(&p, &c, &image),
        r#"container has runAsNonRoot and image will run as root (pod: "web-1_shop(u-1)", container: app)"#
    );
    let (p, c) = secured(non_root(Some(0)), None);
    assert_eq!(
        err(&p, &c, &image),
        r#"container's runAsUser breaks non-root policy (pod: "web-1_shop(u-1)", container: app)"#
    );
    let mut named = busybox();
    named.user = "nobody".into();
    let (p, c) = secured(non_root(None), None);
    assert!(err(&p, &c, &named).contains("image has non-numeric user (nobody)"));
    // A non-root uid passes, from the pod or the image.
    let (p, c) = secured(non_root(Some(1000)), None);
    assert!(runtime_spec(&setup(&p, &c, &image)).is_ok());
    let mut numeric = busybox();
    numeric.user = "1000".into();
    let (p, c) = secured(non_root(None), None);
    assert!(runtime_spec(&setup(&p, &c, &numeric)).is_ok());
}

#[test]
fn capabilities_add_and_drop_as_containerd() {
    let with = |add: &[&str], drop: &[&str]| {
        let (p, c) = secured(
            None,
            Some(SecurityContext {
                capabilities: Some(Capabilities {
                    add: add.iter().map(|s| (*s).to_owned()).collect(),
                    drop: drop.iter().map(|s| (*s).to_owned()).collect(),
                }),
                ..SecurityContext::default()
            }),
        );
        let image = busybox();
        json_of(&setup(&p, &c, &image))
    };
    let spec = with(&["NET_BIND_SERVICE", "cap_net_admin"], &["ALL"]);
    assert_eq!(
        caps(&spec, "effective"),
        ["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"]
    );
    assert_eq!(caps(&spec, "bounding"), caps(&spec, "permitted"));
    let spec = with(&[], &["CHOWN", "CAP_KILL"]);
    let eff = caps(&spec, "effective");
    assert_eq!(eff.len(), DEFAULT_CAPABILITIES.len() - 2);
    assert!(!eff.contains(&"CAP_CHOWN".to_owned()) && !eff.contains(&"CAP_KILL".to_owned()));
    let spec = with(&["ALL"], &["SYS_ADMIN"]);
    let eff = caps(&spec, "effective");
    assert!(eff.contains(&"CAP_CHOWN".to_owned()), "{eff:?}");
    assert!(!eff.contains(&"CAP_SYS_ADMIN".to_owned()));
    assert_eq!(
        parse_cap_bnd("Name:\tx\nCapBnd:\t000001ffffffffff\nCapAmb:\t0\n"),
        Some(0x1ff_ffff_ffff)
    );
    assert!(spec["process"]["capabilities"]["ambient"].is_null());
}

#[test]
fn escalation_read_only_root_and_etc_files() {
    let (p, c) = secured(
        None,
        Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            ..SecurityContext::default()
        }),
    );
    let image = busybox();
    let mut s = setup(&p, &c, &image);
    s.hosts = Some("/pods/u-1/etc/hosts".into());
    let spec = json_of(&s);
    assert_eq!(spec["process"]["noNewPrivileges"], true);
    assert_eq!(spec["root"]["readonly"], true);
    let hosts = mount_at(&spec, "/etc/hosts");
    assert!(
        hosts["options"]
            .as_array()
            .is_some_and(|o| o.contains(&json!("ro"))),
        "{hosts}"
    );
    // The defaults: escalation allowed, root writable.
    let (p, c) = secured(None, None);
    let spec = json_of(&setup(&p, &c, &image));
    assert_eq!(spec["process"]["noNewPrivileges"], false);
    assert_eq!(spec["root"]["readonly"], false);
}

#[test]
fn privileged_needs_the_agents_permission() {
    let (p, c) = secured(
        None,
        Some(SecurityContext {
            privileged: Some(true),
            ..SecurityContext::default()
        }),
    );
    let image = busybox();
    let err = runtime_spec(&setup(&p, &c, &image)).expect_err("refused");
    assert_eq!(
        err.to_string(),
        "spec.containers[0].securityContext.privileged: Forbidden: privileged containers are not allowed on this node (its jotasu-agent runs without --allow-privileged)"
    );
    let mut s = setup(&p, &c, &image);
    s.allow_privileged = true;
    let spec = json_of(&s);
    let held = host_bounding_set().map_or(41, |b| b.count_ones() as usize);
    assert_eq!(caps(&spec, "effective").len(), held.min(41));
    assert_eq!(spec["linux"]["maskedPaths"], json!([]));
    assert_eq!(spec["linux"]["resources"]["devices"][0]["allow"], true);
    let sys = mount_at(&spec, "/sys");
    assert!(
        sys["options"]
            .as_array()
            .is_some_and(|o| o.contains(&json!("rw")))
    );
}
