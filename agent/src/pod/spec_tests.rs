//! Tests of the OCI runtime spec (checked on its JSON, as runc reads it).

use std::collections::BTreeMap;

use jotasu_api::kinds::pod::ResourceRequirements;
use jotasu_api::meta::ObjectMeta;
use jotasu_api::quantity::Quantity;
use serde_json::{Value, json};

use super::*;

pub(crate) fn pod() -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web-1".into()),
            namespace: Some("shop".into()),
            uid: Some("u-1".into()),
            ..ObjectMeta::default()
        },
        ..Pod::default()
    }
}

pub(crate) fn busybox() -> ImageConfig {
    ImageConfig {
        name: "docker.io/library/busybox:latest".into(),
        cmd: vec!["sh".into()],
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        ..ImageConfig::default()
    }
}

pub(crate) fn container() -> Container {
    Container {
        name: "app".into(),
        image: "busybox".into(),
        command: vec!["httpd".into(), "-f".into(), "-p".into(), "$(PORT)".into()],
        ..Container::default()
    }
}

pub(crate) fn setup<'a>(
    pod: &'a Pod,
    c: &'a Container,
    image: &'a ImageConfig,
) -> ContainerSetup<'a> {
    ContainerSetup {
        pod,
        container: c,
        image,
        env: vec![("PORT".into(), "8080".into())],
        mounts: vec![],
        netns: "/var/run/netns/jt-web-1".into(),
        cgroups_path: "/jotasu/node-1/podu-1/app".into(),
        hostname: String::new(),
        resolv_conf: None,
        hosts: None,
        hostname_file: None,
        oom_score_adj: None,
        limit_swap: false,
        allow_privileged: false,
    }
}

pub(crate) fn json_of(s: &ContainerSetup<'_>) -> Value {
    runtime_spec_json(s).expect("spec")
}

fn destinations(spec: &Value) -> Vec<String> {
    spec["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| m["destination"].as_str().expect("destination").to_owned())
        .collect()
}

pub(crate) fn mount_at<'v>(spec: &'v Value, dest: &str) -> &'v Value {
    spec["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| m["destination"] == dest)
        .unwrap_or_else(|| panic!("no mount at {dest}"))
}

#[test]
fn process_comes_from_pod_and_image() {
    let (p, c, i) = (pod(), container(), busybox());
    let spec = json_of(&setup(&p, &c, &i));
    let proc = &spec["process"];
    assert_eq!(proc["args"], json!(["httpd", "-f", "-p", "8080"]));
    assert_eq!(
        proc["env"],
        json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME=web-1",
            "PORT=8080"
        ])
    );
    assert_eq!(proc["cwd"], "/");
    assert_eq!(proc["user"], json!({"uid": 0, "gid": 0}));
    assert_eq!(proc["terminal"], false);
    assert_eq!(proc["noNewPrivileges"], false);
    assert_eq!(
        proc["rlimits"],
        json!([{"type": "RLIMIT_NOFILE", "hard": nofile_limit(), "soft": nofile_limit()}])
    );
    assert!(proc.get("oomScoreAdj").is_none());
    assert_eq!(spec["hostname"], "web-1");
    assert_eq!(spec["root"], json!({"path": "rootfs", "readonly": false}));
    assert_eq!(spec["ociVersion"], OCI_VERSION);
}

#[test]
fn image_user_and_workdir() {
    let (p, c) = (pod(), container());
    let i = ImageConfig {
        user: "1000:1001".into(),
        working_dir: "/srv".into(),
        ..busybox()
    };
    let spec = json_of(&setup(&p, &c, &i));
    assert_eq!(spec["process"]["user"], json!({"uid": 1000, "gid": 1001}));
    assert_eq!(spec["process"]["cwd"], "/srv");
    let named = ImageConfig {
        user: "nobody".into(),
        ..busybox()
    };
    let spec = json_of(&setup(&p, &c, &named));
    assert_eq!(spec["process"]["user"], json!({"uid": 0, "gid": 0}));
}

#[test]
fn default_capabilities_in_three_sets() {
    let (p, c, i) = (pod(), container(), busybox());
    let spec = json_of(&setup(&p, &c, &i));
    let caps = &spec["process"]["capabilities"];
    let want: std::collections::BTreeSet<&str> = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]
    .into();
    for set in ["bounding", "effective", "permitted"] {
        let got: std::collections::BTreeSet<&str> = caps[set]
            .as_array()
            .expect(set)
            .iter()
            .map(|v| v.as_str().expect("cap"))
            .collect();
        assert_eq!(got, want, "{set}");
    }
    assert!(caps.get("inheritable").is_none());
    assert!(caps.get("ambient").is_none());
}

#[test]
fn namespaces_and_cgroup() {
    let (p, c, i) = (pod(), container(), busybox());
    let spec = json_of(&setup(&p, &c, &i));
    assert_eq!(
        spec["linux"]["namespaces"],
        json!([
            {"type": "pid"},
            {"type": "ipc"},
            {"type": "uts"},
            {"type": "mount"},
            {"type": "network", "path": "/var/run/netns/jt-web-1"}
        ])
    );
    assert_eq!(spec["linux"]["cgroupsPath"], "/jotasu/node-1/podu-1/app");
    assert_eq!(
        spec["linux"]["maskedPaths"]
            .as_array()
            .expect("masked")
            .len(),
        11
    );
    assert!(
        spec["linux"]["readonlyPaths"]
            .as_array()
            .expect("ro")
            .contains(&json!("/proc/sys"))
    );
}

#[test]
fn default_mounts_in_parent_first_order() {
    let (p, c, i) = (pod(), container(), busybox());
    let spec = json_of(&setup(&p, &c, &i));
    assert_eq!(
        destinations(&spec),
        vec![
            "/proc",
            "/dev",
            "/sys",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys/fs/cgroup"
        ]
    );
    assert_eq!(
        mount_at(&spec, "/sys"),
        &json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"]})
    );
    assert_eq!(mount_at(&spec, "/sys/fs/cgroup")["type"], "cgroup");
    assert!(
        mount_at(&spec, "/sys/fs/cgroup")["options"]
            .as_array()
            .expect("options")
            .contains(&json!("ro"))
    );
}

#[test]
fn etc_files_and_volumes_are_bind_mounts() {
    let (p, c, i) = (pod(), container(), busybox());
    let mut s = setup(&p, &c, &i);
    s.hosts = Some("/pods/u-1/etc-hosts".into());
    s.resolv_conf = Some("/pods/u-1/resolv.conf".into());
    s.hostname_file = Some("/pods/u-1/hostname".into());
    s.mounts = vec![
        MountSpec::bind("/pods/u-1/volumes/configmap/cfg", "/etc/app/conf.d", true),
        MountSpec::bind("/pods/u-1/volumes/empty-dir/data", "/data", false),
        MountSpec::bind("/pods/u-1/volumes/empty-dir/data/sub", "/etc/app", false),
    ];
    let spec = json_of(&s);
    assert_eq!(
        mount_at(&spec, "/etc/hosts"),
        &json!({"destination": "/etc/hosts", "type": "bind", "source": "/pods/u-1/etc-hosts",
                "options": ["rbind", "rprivate", "rw"]})
    );
    assert_eq!(
        mount_at(&spec, "/etc/resolv.conf")["source"],
        "/pods/u-1/resolv.conf"
    );
    assert_eq!(
        mount_at(&spec, "/etc/hostname")["source"],
        "/pods/u-1/hostname"
    );
    assert_eq!(
        mount_at(&spec, "/etc/app/conf.d")["options"],
        json!(["rbind", "rprivate", "ro"])
    );
    let d = destinations(&spec);
    let pos = |x: &str| d.iter().position(|m| m == x).expect(x);
    assert!(pos("/etc/app") < pos("/etc/app/conf.d"), "{d:?}");
    assert!(pos("/data") < pos("/etc/hosts"), "{d:?}");
}

#[test]
fn a_volume_on_a_default_place_replaces_it() {
    let (p, c, i) = (pod(), container(), busybox());
    let mut s = setup(&p, &c, &i);
    s.hosts = Some("/pods/u-1/etc-hosts".into());
    s.mounts = vec![
        MountSpec::bind("/pods/u-1/volumes/empty-dir/shm", "/dev/shm/", false),
        MountSpec::bind("/pods/u-1/volumes/configmap/h", "/etc/hosts", true),
    ];
    let spec = json_of(&s);
    let d = destinations(&spec);
    assert_eq!(d.iter().filter(|x| x.starts_with("/dev/shm")).count(), 1);
    assert_eq!(mount_at(&spec, "/dev/shm/")["type"], "bind");
    assert_eq!(d.iter().filter(|x| *x == "/etc/hosts").count(), 1);
    assert_eq!(
        mount_at(&spec, "/etc/hosts")["source"],
        "/pods/u-1/volumes/configmap/h"
    );
}

fn with_resources(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
    let map = |v: &[(&str, &str)]| -> BTreeMap<String, Quantity> {
        v.iter()
            .map(|(k, s)| ((*k).to_owned(), Quantity::parse(s).expect("quantity")))
            .collect()
    };
    Container {
        resources: Some(ResourceRequirements {
            requests: map(requests),
            limits: map(limits),
        }),
        ..container()
    }
}

#[test]
fn resources_from_requests_and_limits() {
    let (p, i) = (pod(), busybox());
    let c = with_resources(&[("cpu", "250m")], &[("cpu", "500m"), ("memory", "64Mi")]);
    let spec = json_of(&setup(&p, &c, &i));
    let r = &spec["linux"]["resources"];
    assert_eq!(r["devices"], json!([{"allow": false, "access": "rwm"}]));
    assert_eq!(
        r["cpu"],
        json!({"shares": 256, "quota": 50_000, "period": 100_000})
    );
    assert_eq!(r["memory"], json!({"limit": 67_108_864}));
    assert!(r.get("pids").is_none());

    let mut s = setup(&p, &c, &i);
    s.limit_swap = true;
    s.oom_score_adj = Some(900);
    let spec = json_of(&s);
    assert_eq!(
        spec["linux"]["resources"]["memory"],
        json!({"limit": 67_108_864, "swap": 67_108_864})
    );
    assert_eq!(spec["process"]["oomScoreAdj"], 900);
}

#[test]
fn no_resources_means_minimum_shares_and_no_limits() {
    let (p, c, i) = (pod(), container(), busybox());
    let spec = json_of(&setup(&p, &c, &i));
    let r = &spec["linux"]["resources"];
    assert_eq!(r["cpu"], json!({"shares": 2, "period": 100_000}));
    assert_eq!(r["memory"], json!({}));
}

#[test]
fn explicit_hostname_wins() {
    let (p, c, i) = (pod(), container(), busybox());
    let mut s = setup(&p, &c, &i);
    s.hostname = "other".into();
    let spec = json_of(&s);
    assert_eq!(spec["hostname"], "other");
    assert!(
        spec["process"]["env"]
            .as_array()
            .expect("env")
            .contains(&json!("HOSTNAME=other"))
    );
}

#[test]
fn nothing_to_run_is_an_error() {
    let p = pod();
    let c = Container {
        name: "app".into(),
        ..Container::default()
    };
    let i = ImageConfig::default();
    let err = runtime_spec(&setup(&p, &c, &i)).expect_err("no command");
    assert!(matches!(err, SpecError::NoCommand { .. }));
    assert!(err.to_string().contains("no command specified"), "{err}");
}

#[test]
fn spec_round_trips_through_oci_spec() {
    let (p, c, i) = (pod(), container(), busybox());
    let spec = runtime_spec(&setup(&p, &c, &i)).expect("spec");
    let text = serde_json::to_string(&spec).expect("json");
    let back: Spec = serde_json::from_str(&text).expect("parses");
    assert_eq!(back, spec);
}
