//! A container's volume mounts as bind mounts of the pod's volume
//! directories, with `readOnly` and `subPath` handled as the kubelet does
//! (a subPath is resolved on the node and must stay inside its volume).

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use jotasu_api::Container;

use crate::pod::volumes::MaterializedVolume;

/// A bind mount into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// The path in the container.
    pub destination: String,
    /// The path on the node.
    pub source: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
}

impl MountSpec {
    /// A read-write or read-only bind mount.
    pub fn bind(
        source: impl Into<PathBuf>,
        destination: impl Into<String>,
        read_only: bool,
    ) -> Self {
        Self {
            destination: destination.into(),
            source: source.into(),
            read_only,
        }
    }
}

/// A volume mount that cannot be honoured.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mount names a volume the pod does not have.
    #[error("container {container:?}: volumeMount {volume:?} names no volume of the pod")]
    UnknownVolume {
        /// The container.
        container: String,
        /// The volume name.
        volume: String,
    },
    /// The mount path is not absolute.
    #[error("container {container:?}: mountPath {path:?} must be an absolute path")]
    RelativeMountPath {
        /// The container.
        container: String,
        /// The path.
        path: String,
    },
    /// The subPath is absolute, has `..`, or leads outside its volume.
    #[error("container {container:?}: subPath {sub_path:?} of volume {volume:?} {why}")]
    BadSubPath {
        /// The container.
        container: String,
        /// The volume name.
        volume: String,
        /// The subPath as given.
        sub_path: String,
        /// What is wrong.
        why: String,
    },
}

/// The bind mounts for the container's `volumeMounts`, in order. ConfigMap
/// and Secret volumes are read-only whatever the mount says. A `subPath` is
/// resolved on the node: missing directories are created (as the kubelet
/// does), and a path that leaves the volume (through `..` or a symlink) is
/// refused. The source of a subPath mount is the resolved path, so it does
/// not follow later ConfigMap updates (as in Kubernetes).
pub fn mounts_for(
    container: &Container,
    volumes: &[MaterializedVolume],
) -> Result<Vec<MountSpec>, MountError> {
    container
        .volume_mounts
        .iter()
        .map(|m| {
            let vol = volumes.iter().find(|v| v.name == m.name).ok_or_else(|| {
                MountError::UnknownVolume {
                    container: container.name.clone(),
                    volume: m.name.clone(),
                }
            })?;
            if !m.mount_path.starts_with('/') {
                return Err(MountError::RelativeMountPath {
                    container: container.name.clone(),
                    path: m.mount_path.clone(),
                });
            }
            let source = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                None => vol.host_path.clone(),
                Some(sub) => {
                    resolve_sub_path(&vol.host_path, sub).map_err(|why| MountError::BadSubPath {
                        container: container.name.clone(),
                        volume: m.name.clone(),
                        sub_path: sub.to_owned(),
                        why,
                    })?
                }
            };
            Ok(MountSpec {
                destination: m.mount_path.clone(),
                source,
                read_only: vol.read_only || m.read_only == Some(true),
            })
        })
        .collect()
}

/// Resolves `sub` inside `root`, creating missing directories; the result
/// is canonical and inside `root`'s canonical path.
fn resolve_sub_path(root: &Path, sub: &str) -> Result<PathBuf, String> {
    let rel = Path::new(sub);
    if rel.is_absolute() {
        return Err("must be a relative path".into());
    }
    if rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err("must not contain '..'".into());
    }
    let root = fs::canonicalize(root).map_err(|e| format!("volume not readable: {e}"))?;
    let inside = |p: &Path| -> Result<PathBuf, String> {
        let real = fs::canonicalize(p).map_err(|e| format!("cannot be resolved: {e}"))?;
        if real.starts_with(&root) {
            Ok(real)
        } else {
            Err("leads outside its volume".into())
        }
    };
    let mut at = root.clone();
    for part in rel.components() {
        let Component::Normal(part) = part else {
            continue;
        };
        let next = at.join(part);
        match fs::symlink_metadata(&next) {
            Ok(_) => at = inside(&next)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match fs::create_dir(&next) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(format!("cannot be created: {e}")),
                }
                at = inside(&next)?;
            }
            Err(e) => return Err(format!("cannot be read: {e}")),
        }
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use jotasu_api::kinds::pod::VolumeMount;

    use super::*;

    fn vm(name: &str, path: &str, ro: Option<bool>, sub: Option<&str>) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            read_only: ro,
            sub_path: sub.map(str::to_owned),
            mount_propagation: None,
        }
    }

    fn container(mounts: Vec<VolumeMount>) -> Container {
        Container {
            name: "app".into(),
            volume_mounts: mounts,
            ..Container::default()
        }
    }

    fn vols(root: &Path) -> Vec<MaterializedVolume> {
        for d in ["cfg", "data"] {
            fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        vec![
            MaterializedVolume {
                name: "cfg".into(),
                host_path: root.join("cfg"),
                read_only: true,
            },
            MaterializedVolume {
                name: "data".into(),
                host_path: root.join("data"),
                read_only: false,
            },
        ]
    }

    #[test]
    fn plain_mounts_and_read_only() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let v = vols(tmp.path());
        let c = container(vec![
            vm("cfg", "/etc/app", Some(false), None),
            vm("data", "/data", None, None),
            vm("data", "/ro", Some(true), Some("")),
        ]);
        let got = mounts_for(&c, &v).expect("mounts");
        assert_eq!(
            got,
            vec![
                MountSpec::bind(tmp.path().join("cfg"), "/etc/app", true),
                MountSpec::bind(tmp.path().join("data"), "/data", false),
                MountSpec::bind(tmp.path().join("data"), "/ro", true),
            ]
        );
    }

    #[test]
    fn sub_paths_resolve_inside_and_are_created() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let v = vols(tmp.path());
        let root = fs::canonicalize(tmp.path()).expect("canonical");
        fs::create_dir_all(root.join("cfg/..2024_01_01/x")).expect("mkdir");
        fs::write(root.join("cfg/..2024_01_01/x/app.conf"), "A").expect("write");
        symlink("..2024_01_01", root.join("cfg/..data")).expect("link");
        symlink("..data/x", root.join("cfg/x")).expect("link");
        let c = container(vec![
            vm("cfg", "/etc/app.conf", None, Some("x/app.conf")),
            vm("data", "/logs", None, Some("logs/app")),
        ]);
        let got = mounts_for(&c, &v).expect("mounts");
        assert_eq!(got[0].source, root.join("cfg/..2024_01_01/x/app.conf"));
        assert!(got[0].read_only);
        assert_eq!(got[1].source, root.join("data/logs/app"));
        assert!(root.join("data/logs/app").is_dir());
    }

    #[test]
    fn escapes_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let v = vols(tmp.path());
        symlink("/etc", tmp.path().join("data/evil")).expect("link");
        symlink("../cfg", tmp.path().join("data/sibling")).expect("link");
        for sub in [
            "/etc",
            "../cfg",
            "a/../../cfg",
            "evil",
            "evil/passwd",
            "sibling",
        ] {
            let c = container(vec![vm("data", "/x", None, Some(sub))]);
            let err = mounts_for(&c, &v).expect_err(sub);
            assert!(matches!(err, MountError::BadSubPath { .. }), "{sub}: {err}");
        }
    }

    #[test]
    fn unknown_volume_and_relative_path() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let v = vols(tmp.path());
        let err =
            mounts_for(&container(vec![vm("nope", "/x", None, None)]), &v).expect_err("unknown");
        assert!(err.to_string().contains(r#"volumeMount "nope""#), "{err}");
        let err =
            mounts_for(&container(vec![vm("data", "x", None, None)]), &v).expect_err("relative");
        assert!(matches!(err, MountError::RelativeMountPath { .. }));
    }
}
