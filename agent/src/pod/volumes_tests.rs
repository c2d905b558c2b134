//! Tests of volume planning, writing and removal (tempdir + fake mounts).

use jotasu_api::Bytes;
use jotasu_api::kinds::pod::{ConfigMapVolumeSource, EmptyDirVolumeSource, SecretVolumeSource};
use jotasu_api::quantity::Quantity;

use super::*;
use crate::pod::env::tests::Objects;
use crate::pod::volume_ops::{FakeVolumeOps, VolumeCall};

fn pod(volumes: Vec<Volume>) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some("web".into());
    p.metadata.namespace = Some("shop".into());
    p.spec.volumes = volumes;
    p
}

fn cm_vol(
    name: &str,
    cm: &str,
    items: Vec<KeyToPath>,
    mode: Option<i32>,
    optional: Option<bool>,
) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: cm.into(),
            items,
            default_mode: mode,
            optional,
        }),
        ..Volume::default()
    }
}

fn secret_vol(name: &str, s: &str, items: Vec<KeyToPath>, mode: Option<i32>) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: s.into(),
            items,
            default_mode: mode,
            optional: None,
        }),
        ..Volume::default()
    }
}

fn empty_dir(name: &str, medium: Option<&str>, size: Option<&str>) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: medium.map(str::to_owned),
            size_limit: size.map(|s| Quantity::parse(s).expect("quantity")),
        }),
        ..Volume::default()
    }
}

fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
    KeyToPath {
        key: key.into(),
        path: path.into(),
        mode,
    }
}

fn objects() -> Objects {
    let mut o = Objects::default()
        .with_config_map("shop", "cfg", &[("a.conf", "A"), ("b.conf", "B")])
        .with_secret("shop", "creds", &[("user", b"admin"), ("pass", b"s3cret")]);
    if let Some(cm) = o.config_maps.get_mut(&("shop".into(), "cfg".into())) {
        cm.binary_data.insert("bin".into(), Bytes(vec![0, 1, 2]));
    }
    o
}

fn files(v: &VolumeContent) -> Vec<(String, Vec<u8>, u32)> {
    let mut f: Vec<_> = v
        .files
        .iter()
        .map(|f| (f.path.clone(), f.data.clone(), f.mode))
        .collect();
    f.sort();
    f
}

#[test]
fn config_map_projects_every_key_with_default_mode() {
    let plan = plan_volumes(
        &pod(vec![cm_vol("c", "cfg", vec![], None, None)]),
        &objects(),
        &crate::pod::downward::NodeFacts::default(),
    )
    .expect("plans");
    assert_eq!(plan[0].kind, VolumeKind::ConfigMap);
    assert_eq!(
        files(&plan[0]),
        vec![
            ("a.conf".into(), b"A".to_vec(), 0o644),
            ("b.conf".into(), b"B".to_vec(), 0o644),
            ("bin".into(), vec![0, 1, 2], 0o644),
        ]
    );
}

#[test]
fn items_pick_keys_paths_and_modes() {
    let v = cm_vol(
        "c",
        "cfg",
        vec![
            item("a.conf", "etc/app.conf", Some(0o600)),
            item("bin", "bin", None),
        ],
        Some(0o640),
        None,
    );
    let plan = plan_volumes(
        &pod(vec![v]),
        &objects(),
        &crate::pod::downward::NodeFacts::default(),
    )
    .expect("plans");
    assert_eq!(
        files(&plan[0]),
        vec![
            ("bin".into(), vec![0, 1, 2], 0o640),
            ("etc/app.conf".into(), b"A".to_vec(), 0o600),
        ]
    );
}

#[test]
fn secrets_default_to_0400_unless_told() {
    let plan = plan_volumes(
        &pod(vec![
            secret_vol("s", "creds", vec![], None),
            secret_vol("t", "creds", vec![item("pass", "p", None)], Some(0o440)),
            secret_vol("u", "creds", vec![item("pass", "p", Some(0o644))], None),
        ]),
        &objects(),
        &crate::pod::downward::NodeFacts::default(),
    )
    .expect("plans");
    assert_eq!(plan[0].kind, VolumeKind::Secret);
    assert_eq!(
        files(&plan[0]),
        vec![
            ("pass".into(), b"s3cret".to_vec(), 0o400),
            ("user".into(), b"admin".to_vec(), 0o400),
        ]
    );
    assert_eq!(
        files(&plan[1]),
        vec![("p".into(), b"s3cret".to_vec(), 0o440)]
    );
    assert_eq!(
        files(&plan[2]),
        vec![("p".into(), b"s3cret".to_vec(), 0o644)]
    );
}

#[test]
fn missing_objects_and_keys() {
    let err = |v: Volume| {
        plan_volumes(
            &pod(vec![v]),
            &objects(),
            &crate::pod::downward::NodeFacts::default(),
        )
        .expect_err("fails")
        .to_string()
    };
    assert_eq!(
        err(cm_vol("c", "nope", vec![], None, None)),
        r#"MountVolume.SetUp failed for volume "c" : configmap "nope" not found"#
    );
    assert_eq!(
        err(secret_vol("s", "nope", vec![], None)),
        r#"MountVolume.SetUp failed for volume "s" : secret "nope" not found"#
    );
    assert_eq!(
        err(cm_vol("c", "cfg", vec![item("zz", "zz", None)], None, None)),
        r#"MountVolume.SetUp failed for volume "c" : configmap references non-existent config key: zz"#
    );
    assert_eq!(
        err(secret_vol("s", "creds", vec![item("zz", "zz", None)], None)),
        r#"MountVolume.SetUp failed for volume "s" : secret references non-existent secret key: zz"#
    );
    assert!(
        err(cm_vol(
            "c",
            "cfg",
            vec![item("a.conf", "../x", None)],
            None,
            None
        ))
        .contains("'..'")
    );
    assert!(
        err(Volume {
            name: "x".into(),
            ..Volume::default()
        })
        .contains("no source")
    );
}

#[test]
fn optional_volumes_tolerate_absence() {
    let plan = plan_volumes(
        &pod(vec![
            cm_vol("c", "nope", vec![], None, Some(true)),
            cm_vol(
                "d",
                "cfg",
                vec![item("zz", "zz", None), item("a.conf", "a", None)],
                None,
                Some(true),
            ),
        ]),
        &objects(),
        &crate::pod::downward::NodeFacts::default(),
    )
    .expect("plans");
    assert!(plan[0].files.is_empty());
    assert_eq!(files(&plan[1]), vec![("a".into(), b"A".to_vec(), 0o644)]);
}

#[test]
fn empty_dirs_carry_medium_and_size() {
    let plan = plan_volumes(
        &pod(vec![
            empty_dir("disk", None, None),
            empty_dir("mem", Some("Memory"), Some("64Mi")),
        ]),
        &objects(),
        &crate::pod::downward::NodeFacts::default(),
    )
    .expect("plans");
    assert_eq!(
        plan[0].kind,
        VolumeKind::EmptyDir {
            memory: false,
            size_limit: None
        }
    );
    assert_eq!(
        plan[1].kind,
        VolumeKind::EmptyDir {
            memory: true,
            size_limit: Some(64 << 20)
        }
    );
}

fn write_all(dir: &Path, ops: &FakeVolumeOps) -> Vec<MaterializedVolume> {
    let plan = plan_volumes(
        &pod(vec![
            cm_vol("c", "cfg", vec![], None, None),
            secret_vol("s", "creds", vec![], None),
            empty_dir("mem", Some("Memory"), Some("1Mi")),
            empty_dir("disk", None, None),
        ]),
        &objects(),
        &crate::pod::downward::NodeFacts::default(),
    )
    .expect("plans");
    write_volumes(dir, &plan, ops).expect("writes")
}

#[test]
fn write_lays_out_files_and_mounts_tmpfs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ops = FakeVolumeOps::new();
    let got = write_all(tmp.path(), &ops);
    let root = tmp.path().join("volumes");
    assert_eq!(
        got,
        vec![
            MaterializedVolume {
                name: "c".into(),
                host_path: root.join("configmap/c"),
                read_only: true
            },
            MaterializedVolume {
                name: "s".into(),
                host_path: root.join("secret/s"),
                read_only: true
            },
            MaterializedVolume {
                name: "mem".into(),
                host_path: root.join("empty-dir/mem"),
                read_only: false
            },
            MaterializedVolume {
                name: "disk".into(),
                host_path: root.join("empty-dir/disk"),
                read_only: false
            },
        ]
    );
    assert_eq!(
        ops.calls(),
        vec![
            VolumeCall::MountTmpfs(root.join("secret/s"), None),
            VolumeCall::MountTmpfs(root.join("empty-dir/mem"), Some(1 << 20)),
        ]
    );
    assert_eq!(
        fs::read(root.join("configmap/c/a.conf")).expect("file"),
        b"A"
    );
    let pass = root.join("secret/s/pass");
    assert_eq!(fs::read(&pass).expect("file"), b"s3cret");
    assert_eq!(
        fs::metadata(&pass).expect("meta").permissions().mode() & 0o777,
        0o400
    );
    let disk = fs::metadata(root.join("empty-dir/disk")).expect("meta");
    assert_eq!(disk.permissions().mode() & 0o777, 0o777);

    // Again, with the same contents: no second mount, nothing rewritten.
    write_all(tmp.path(), &ops);
    assert_eq!(ops.calls().len(), 2);
}

#[test]
fn remove_unmounts_and_deletes_everything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ops = FakeVolumeOps::new();
    write_all(tmp.path(), &ops);
    remove_volumes(tmp.path(), &ops).expect("removes");
    assert!(!tmp.path().join("volumes").exists());
    assert!(ops.mounted().is_empty());
    let unmounts = ops
        .calls()
        .into_iter()
        .filter(|c| matches!(c, VolumeCall::Unmount(_)))
        .count();
    assert_eq!(unmounts, 2);
    // Nothing there: fine.
    remove_volumes(tmp.path(), &ops).expect("idempotent");
}

#[test]
fn remove_carries_on_past_a_failed_unmount() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ops = FakeVolumeOps::new();
    write_all(tmp.path(), &ops);
    let stuck = tmp.path().join("volumes/secret/s");
    ops.fail_unmount_of(&stuck);
    let err = remove_volumes(tmp.path(), &ops).expect_err("one failure");
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].0, stuck);
    assert!(err.to_string().contains("device busy"), "{err}");
    assert!(stuck.exists(), "a volume that did not unmount stays");
    assert!(!tmp.path().join("volumes/configmap").exists());
    assert!(!tmp.path().join("volumes/empty-dir/mem").exists());
    assert!(
        !ops.mounted()
            .contains(&tmp.path().join("volumes/empty-dir/mem"))
    );
}

#[test]
fn updates_swap_contents() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ops = FakeVolumeOps::new();
    let mut objs = objects();
    let p = pod(vec![cm_vol("c", "cfg", vec![], None, None)]);
    write_volumes(
        tmp.path(),
        &plan_volumes(&p, &objs, &crate::pod::downward::NodeFacts::default()).expect("plans"),
        &ops,
    )
    .expect("writes");
    if let Some(cm) = objs.config_maps.get_mut(&("shop".into(), "cfg".into())) {
        cm.data.insert("a.conf".into(), "A2".into());
        cm.data.remove("b.conf");
    }
    write_volumes(
        tmp.path(),
        &plan_volumes(&p, &objs, &crate::pod::downward::NodeFacts::default()).expect("plans"),
        &ops,
    )
    .expect("writes");
    let dir = tmp.path().join("volumes/configmap/c");
    assert_eq!(fs::read(dir.join("a.conf")).expect("file"), b"A2");
    assert!(!dir.join("b.conf").exists());
}
