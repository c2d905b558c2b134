//! A root test of the real tmpfs mounts of Secret and memory emptyDir
//! volumes, in a private mount namespace of its own thread (the host's
//! mount table never sees them). Skips loudly without root; fails under
//! `CI=true` without root.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use jotasu_api::Pod;
use jotasu_api::kinds::pod::{EmptyDirVolumeSource, SecretVolumeSource, Volume};
use jotasu_api::quantity::Quantity;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::statfs::{TMPFS_MAGIC, statfs};

use crate::pod::env::tests::Objects;
use crate::pod::volume_ops::{HostVolumeOps, VolumeOps};
use crate::pod::volumes::{plan_volumes, remove_volumes, write_volumes};

/// True when root; otherwise panics under `CI=true` or prints a loud SKIPPED.
fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: cannot run in CI: not running as root");
    }
    eprintln!("\n!!!!!!!! SKIPPED {test}: not running as root. Run the tests as root. !!!!!!!!\n");
    false
}

fn is_tmpfs(p: &Path) -> bool {
    statfs(p).is_ok_and(|s| s.filesystem_type() == TMPFS_MAGIC)
}

fn pod() -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some("web".into());
    p.metadata.namespace = Some("default".into());
    p.spec.volumes = vec![
        Volume {
            name: "creds".into(),
            secret: Some(SecretVolumeSource {
                secret_name: "creds".into(),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(Quantity::parse("1Mi").expect("quantity")),
            }),
            ..Volume::default()
        },
    ];
    p
}

fn run() {
    unshare(CloneFlags::CLONE_NEWNS).expect("unshare a mount namespace");
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make mounts private");
    let tmp = tempfile::Builder::new()
        .prefix(&format!("jt{}-volumes-", std::process::id()))
        .tempdir()
        .expect("tempdir");
    let ops = HostVolumeOps;
    let objs = Objects::default().with_secret("default", "creds", &[("password", b"s3cret")]);
    let plan =
        plan_volumes(&pod(), &objs, &crate::pod::downward::NodeFacts::default()).expect("plans");
    let vols = write_volumes(tmp.path(), &plan, &ops).expect("writes");

    let secret = &vols[0].host_path;
    assert!(ops.is_mount_point(secret).expect("stat"));
    assert!(is_tmpfs(secret), "secret volume on tmpfs");
    let file = secret.join("password");
    assert_eq!(fs::read(&file).expect("read"), b"s3cret");
    assert_eq!(
        fs::metadata(&file).expect("meta").permissions().mode() & 0o777,
        0o400
    );
    assert_eq!(
        fs::metadata(secret).expect("meta").permissions().mode() & 0o777,
        0o755
    );

    let scratch = &vols[1].host_path;
    assert!(is_tmpfs(scratch), "memory emptyDir on tmpfs");
    let st = nix::sys::statvfs::statvfs(scratch).expect("statvfs");
    assert_eq!(
        st.blocks() * st.fragment_size(),
        1 << 20,
        "sizeLimit honoured"
    );
    assert_eq!(
        fs::metadata(scratch).expect("meta").permissions().mode() & 0o777,
        0o777
    );

    // Writing again does not stack a second mount.
    write_volumes(tmp.path(), &plan, &ops).expect("writes again");
    let mounts = fs::read_to_string("/proc/thread-self/mounts").expect("mounts");
    let here = tmp.path().to_string_lossy().into_owned();
    assert_eq!(
        mounts.lines().filter(|l| l.contains(&here)).count(),
        2,
        "{mounts}"
    );

    remove_volumes(tmp.path(), &ops).expect("removes");
    assert!(!tmp.path().join("volumes").exists());
    let mounts = fs::read_to_string("/proc/thread-self/mounts").expect("mounts");
    assert!(!mounts.contains(&here), "{mounts}");
}

#[test]
fn secret_and_memory_volumes_on_real_tmpfs() {
    if !require_root("pod::volumes_root_test::secret_and_memory_volumes_on_real_tmpfs") {
        return;
    }
    // A thread of its own: its mount namespace dies with it.
    std::thread::spawn(run)
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

#[test]
fn fs_group_owns_the_volumes() {
    use std::os::unix::fs::MetadataExt as _;
    if !require_root("pod::volumes_root_test::fs_group_owns_the_volumes") {
        return;
    }
    let mut p = Pod::default();
    p.metadata.name = Some("web".into());
    p.metadata.namespace = Some("default".into());
    p.spec.security_context = Some(jotasu_api::kinds::pod::PodSecurityContext {
        fs_group: Some(2345),
        ..Default::default()
    });
    p.spec.volumes = vec![
        Volume {
            name: "cfg".into(),
            config_map: Some(jotasu_api::kinds::pod::ConfigMapVolumeSource {
                name: "cfg".into(),
                ..Default::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let tmp = tempfile::tempdir().expect("tempdir");
    let objs = Objects::default().with_config_map("default", "cfg", &[("color", "blue")]);
    let plan = plan_volumes(&p, &objs, &crate::pod::downward::NodeFacts::default()).expect("plans");
    let vols = write_volumes(tmp.path(), &plan, &HostVolumeOps).expect("writes");
    let cfg = fs::metadata(vols[0].host_path.join("color")).expect("the file");
    assert_eq!(cfg.gid(), 2345);
    assert_eq!(cfg.permissions().mode() & 0o777, 0o644);
    let scratch = fs::metadata(&vols[1].host_path).expect("the directory");
    assert_eq!(scratch.gid(), 2345);
    assert_eq!(scratch.permissions().mode() & 0o7777, 0o2777);
}
