//! A pod's ConfigMap, Secret, emptyDir, downwardAPI, projected and
//! hostPath volumes: planned as files (pure, with [`crate::pod::volume_files`]
//! for the downward API and projections), written under the pod's
//! directory the kubelet way (atomic swap of `..data`; Secrets, downward
//! API and projected volumes and `medium: Memory` emptyDirs on tmpfs), and
//! removed with the pod; hostPath volumes are checked against their
//! `type` (and made for the `…OrCreate` ones), never removed; a
//! persistentVolumeClaim volume is its volume's directory on the node
//! ([`crate::pod::claims`]), never removed with the pod.
//!
//! Layout: `<pod dir>/volumes/{configmap,secret,empty-dir,downward-api,projected}/<volume name>`.
//! File modes: `items[].mode`, else `defaultMode`, else 0644 for ConfigMaps
//! and **0400 for Secrets** (Kubernetes defaults Secrets to 0644; jotasu
//! keeps them owner-only unless the pod asks otherwise).

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use jotasu_api::Pod;
use jotasu_api::kinds::pod::{KeyToPath, Volume};

use crate::pod::atomic_writer::{FileContent, check_relative_path, write_atomic};
use crate::pod::downward::NodeFacts;
use crate::pod::env::{ConfigError, ConfigSource, secret_bytes};
use crate::pod::pod_namespace;
use crate::pod::volume_files::{
    check_host_path, downward_files, pod_memory_limit, projected_files,
};
use crate::pod::volume_ops::VolumeOps;

/// File mode of ConfigMap files when the pod gives none.
pub const CONFIG_MAP_DEFAULT_MODE: u32 = 0o644;
/// File mode of Secret files when the pod gives none (Kubernetes: 0644).
pub const SECRET_DEFAULT_MODE: u32 = 0o400;
/// Mode of emptyDir directories (as the kubelet makes them).
pub const EMPTY_DIR_MODE: u32 = 0o777;
/// The directory under the pod's directory that holds its volumes.
pub const VOLUMES_DIR: &str = "volumes";

/// What backs a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeKind {
    /// Files from a ConfigMap (on the node's disk).
    ConfigMap,
    /// Files from a Secret (on tmpfs).
    Secret,
    /// A scratch directory, on tmpfs when `memory`.
    EmptyDir {
        /// `medium: Memory`.
        memory: bool,
        /// `sizeLimit` in bytes (the tmpfs size when `memory`).
        size_limit: Option<u64>,
    },
    /// Pod fields and container resources as files (on tmpfs).
    DownwardApi,
    /// ConfigMap, Secret and downward API files together (on tmpfs).
    Projected,
    /// A path of the node, checked against its `type`.
    HostPath(HostPathType),
    /// The directory of a PersistentVolumeClaim's volume ([`crate::pod::claims`]).
    Claim {
        /// How it must be there.
        check: HostPathType,
        /// Made by the local provisioner for this node (created 0777 when missing).
        provisioned: bool,
        /// The volume source's `readOnly`.
        read_only: bool,
    },
}

/// What a hostPath volume's path must be (`type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPathType {
    /// `""`: no check.
    Unset,
    /// A directory, made (0755) when missing.
    DirectoryOrCreate,
    /// An existing directory.
    Directory,
    /// A file, made empty (0644) when missing.
    FileOrCreate,
    /// An existing file.
    File,
    /// An existing UNIX socket.
    Socket,
    /// An existing character device.
    CharDevice,
    /// An existing block device.
    BlockDevice,
}

impl HostPathType {
    /// From the volume's `type` (unknown values are refused by validation
    /// and checked as `Unset` here).
    pub fn parse(s: Option<&str>) -> Self {
        match s.unwrap_or("") {
            "DirectoryOrCreate" => Self::DirectoryOrCreate,
            "Directory" => Self::Directory,
            "FileOrCreate" => Self::FileOrCreate,
            "File" => Self::File,
            "Socket" => Self::Socket,
            "CharDevice" => Self::CharDevice,
            "BlockDevice" => Self::BlockDevice,
            _ => Self::Unset,
        }
    }
}

impl VolumeKind {
    /// The directory under `volumes/` for this kind.
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmap",
            Self::Secret => "secret",
            Self::EmptyDir { .. } => "empty-dir",
            Self::DownwardApi => "downward-api",
            Self::Projected => "projected",
            Self::HostPath(_) => "host-path",
            Self::Claim { .. } => "claim",
        }
    }

    /// ConfigMap, Secret, downwardAPI and projected volumes are always
    /// mounted read-only (as since Kubernetes 1.10).
    pub fn always_read_only(self) -> bool {
        matches!(
            self,
            Self::ConfigMap | Self::Secret | Self::DownwardApi | Self::Projected
        )
    }

    /// Whether its files live on tmpfs (not on the node's disk).
    fn on_tmpfs(self) -> bool {
        matches!(self, Self::Secret | Self::DownwardApi | Self::Projected)
    }
}

/// What one volume holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeContent {
    /// The volume's name in the pod.
    pub name: String,
    /// Its kind.
    pub kind: VolumeKind,
    /// Its files (empty for emptyDirs).
    pub files: Vec<FileContent>,
    /// The pod's `fsGroup`: the volume's group, setgid directories,
    /// group-readable (and, for emptyDirs, group-writable) files.
    pub fs_group: Option<u32>,
    /// A hostPath volume's path on the node.
    pub host_path: Option<PathBuf>,
}

/// A volume that could not be set up; the message is the kubelet's event
/// (`MountVolume.SetUp failed for volume "cfg" : configmap "x" not found`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume {volume:?} : {error}")]
pub struct VolumeSetupError {
    /// The volume's name.
    pub volume: String,
    /// What is wrong.
    pub error: ConfigError,
}

/// A volume on the node, ready to be bind-mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterializedVolume {
    /// The volume's name in the pod.
    pub name: String,
    /// Its directory on the node.
    pub host_path: PathBuf,
    /// Mounted read-only whatever the volume mount says (ConfigMap, Secret).
    pub read_only: bool,
}

/// Writing a volume to the node failed.
#[derive(Debug, thiserror::Error)]
#[error("writing volume {volume:?} to {path}: {source}")]
pub struct VolumeWriteError {
    /// The volume's name.
    pub volume: String,
    /// Its directory.
    pub path: PathBuf,
    /// The failure.
    pub source: io::Error,
}

/// Removing a pod's volumes left these failures (everything else is gone).
#[derive(Debug, thiserror::Error)]
#[error("removing pod volumes: {}", .0.iter().map(|(p, e)| format!("{}: {e}", p.display())).collect::<Vec<_>>().join("; "))]
pub struct VolumeRemoveErrors(pub Vec<(PathBuf, io::Error)>);

pub(crate) fn mode_bits(mode: Option<i32>, default: u32) -> u32 {
    mode.and_then(|m| u32::try_from(m).ok())
        .map_or(default, |m| m & 0o777)
}

/// The files of each of the pod's volumes, from the ConfigMaps and Secrets
/// in `lookup` (pure). A missing object fails unless the volume is
/// optional (then it is empty); an `items` key the object lacks fails
/// unless optional (then it is left out).
pub fn plan_volumes(
    pod: &Pod,
    lookup: &impl ConfigSource,
    node: &NodeFacts,
) -> Result<Vec<VolumeContent>, VolumeSetupError> {
    pod.spec
        .volumes
        .iter()
        .map(|v| {
            plan_volume(pod, v, lookup, node).map_err(|error| VolumeSetupError {
                volume: v.name.clone(),
                error,
            })
        })
        .collect()
}

fn plan_volume(
    pod: &Pod,
    v: &Volume,
    lookup: &impl ConfigSource,
    node: &NodeFacts,
) -> Result<VolumeContent, ConfigError> {
    let ns = pod_namespace(pod);
    if v.name.is_empty() || v.name.contains('/') || v.name.starts_with('.') {
        return Err(ConfigError::BadPath {
            volume: v.name.clone(),
            path: v.name.clone(),
            why: "volume names must be DNS labels",
        });
    }
    let (kind, files) = if let Some(src) = &v.config_map {
        let optional = src.optional == Some(true);
        let default = mode_bits(src.default_mode, CONFIG_MAP_DEFAULT_MODE);
        let files = match lookup.config_map(ns, &src.name) {
            None if optional => Vec::new(),
            None => {
                return Err(ConfigError::ConfigMapNotFound {
                    name: src.name.clone(),
                });
            }
            Some(cm) => {
                let get = |k: &str| {
                    cm.data
                        .get(k)
                        .map(|s| s.as_bytes().to_vec())
                        .or_else(|| cm.binary_data.get(k).map(|b| b.0.clone()))
                };
                let keys = cm.data.keys().chain(cm.binary_data.keys());
                project(v, &src.items, keys, get, default, optional, |key| {
                    ConfigError::VolumeConfigMapKey { key }
                })?
            }
        };
        (VolumeKind::ConfigMap, files)
    } else if let Some(src) = &v.secret {
        let optional = src.optional == Some(true);
        let default = mode_bits(src.default_mode, SECRET_DEFAULT_MODE);
        let files = match lookup.secret(ns, &src.secret_name) {
            None if optional => Vec::new(),
            None => {
                return Err(ConfigError::SecretNotFound {
                    name: src.secret_name.clone(),
                });
            }
            Some(s) => {
                let get = |k: &str| secret_bytes(s, k).map(<[u8]>::to_vec);
                let keys = s.data.keys().chain(s.string_data.keys());
                project(v, &src.items, keys, get, default, optional, |key| {
                    ConfigError::VolumeSecretKey { key }
                })?
            }
        };
        (VolumeKind::Secret, files)
    } else if let Some(src) = &v.empty_dir {
        let memory = src.medium.as_deref() == Some("Memory");
        let size_limit = src
            .size_limit
            .as_ref()
            .map(jotasu_api::Quantity::units)
            .and_then(|b| u64::try_from(b).ok())
            .filter(|b| *b > 0);
        // The kubelet's calculateEmptyDirMemorySize: the pod's memory limit
        // (else the node's allocatable), or sizeLimit when smaller.
        let size_limit = if memory {
            let pod_limit =
                pod_memory_limit(pod).or((node.memory_bytes > 0).then_some(node.memory_bytes));
            match (size_limit, pod_limit) {
                (Some(s), Some(p)) => Some(s.min(p)),
                (s, p) => s.or(p),
            }
        } else {
            size_limit
        };
        (VolumeKind::EmptyDir { memory, size_limit }, Vec::new())
    } else if let Some(src) = &v.downward_api {
        let default = mode_bits(src.default_mode, CONFIG_MAP_DEFAULT_MODE);
        let mut files = Vec::new();
        downward_files(pod, v, &src.items, default, node, &mut files)?;
        (VolumeKind::DownwardApi, files)
    } else if let Some(src) = &v.projected {
        let default = mode_bits(src.default_mode, CONFIG_MAP_DEFAULT_MODE);
        (
            VolumeKind::Projected,
            projected_files(pod, v, src, default, lookup, node)?,
        )
    } else if let Some(src) = &v.persistent_volume_claim {
        let Some(cv) = lookup.claim_volume(&src.claim_name) else {
            return Err(ConfigError::ClaimNotReady {
                name: src.claim_name.clone(),
            });
        };
        let fs_group = pod
            .spec
            .security_context
            .as_ref()
            .and_then(|sc| sc.fs_group)
            .and_then(|g| u32::try_from(g).ok())
            .filter(|_| cv.fs_group_applies);
        return Ok(VolumeContent {
            name: v.name.clone(),
            kind: VolumeKind::Claim {
                check: cv.check,
                provisioned: cv.provisioned,
                read_only: src.read_only == Some(true),
            },
            files: Vec::new(),
            fs_group,
            host_path: Some(cv.path.clone()),
        });
    } else if let Some(src) = &v.host_path {
        let content = VolumeContent {
            name: v.name.clone(),
            kind: VolumeKind::HostPath(HostPathType::parse(src.type_.as_deref())),
            files: Vec::new(),
            fs_group: None,
            host_path: Some(PathBuf::from(&src.path)),
        };
        return Ok(content);
    } else {
        return Err(ConfigError::NoVolumeSource);
    };
    let fs_group = pod
        .spec
        .security_context
        .as_ref()
        .and_then(|sc| sc.fs_group)
        .and_then(|g| u32::try_from(g).ok());
    Ok(VolumeContent {
        name: v.name.clone(),
        kind,
        files,
        fs_group,
        host_path: None,
    })
}

/// The kubelet's `MakePayload`: every key at its own name, or the `items`.
pub(crate) fn project<'k>(
    v: &Volume,
    items: &[KeyToPath],
    keys: impl Iterator<Item = &'k String>,
    get: impl Fn(&str) -> Option<Vec<u8>>,
    default_mode: u32,
    optional: bool,
    missing: impl Fn(String) -> ConfigError,
) -> Result<Vec<FileContent>, ConfigError> {
    let mut files: Vec<FileContent> = Vec::new();
    let mut put = |path: &str, data: Vec<u8>, mode: u32| -> Result<(), ConfigError> {
        if let Some(why) = check_relative_path(path) {
            return Err(ConfigError::BadPath {
                volume: v.name.clone(),
                path: path.to_owned(),
                why,
            });
        }
        files.retain(|f| f.path != path);
        files.push(FileContent {
            path: path.to_owned(),
            data,
            mode,
        });
        Ok(())
    };
    if items.is_empty() {
        for key in keys {
            if let Some(data) = get(key) {
                put(key, data, default_mode)?;
            }
        }
    } else {
        for item in items {
            match get(&item.key) {
                Some(data) => put(&item.path, data, mode_bits(item.mode, default_mode))?,
                None if optional => {}
                None => return Err(missing(item.key.clone())),
            }
        }
    }
    Ok(files)
}

/// Where volume `name` of `kind` lives under `pod_dir`.
pub fn volume_dir(pod_dir: &Path, kind: VolumeKind, name: &str) -> PathBuf {
    pod_dir.join(VOLUMES_DIR).join(kind.dir_name()).join(name)
}

/// Writes the volumes under `pod_dir` (creating what is missing, mounting
/// tmpfs for Secrets and memory emptyDirs unless mounted already, swapping
/// ConfigMap and Secret files in atomically); safe to call again with new
/// contents. Returns each volume's directory for [`crate::pod::mounts::mounts_for`].
pub fn write_volumes(
    pod_dir: &Path,
    contents: &[VolumeContent],
    ops: &impl VolumeOps,
) -> Result<Vec<MaterializedVolume>, VolumeWriteError> {
    contents
        .iter()
        .map(|v| {
            // A directory of the node itself: checked (or made), never written.
            let on_node = match (v.kind, &v.host_path) {
                (VolumeKind::HostPath(check), Some(path)) => {
                    Some((path, check_host_path(path, check), false))
                }
                (
                    VolumeKind::Claim {
                        check,
                        provisioned,
                        read_only,
                    },
                    Some(path),
                ) => Some((
                    path,
                    crate::pod::claims::claim_directory(path, check, provisioned, v.fs_group),
                    read_only,
                )),
                _ => None,
            };
            if let Some((path, done, read_only)) = on_node {
                done.map_err(|source| VolumeWriteError {
                    volume: v.name.clone(),
                    path: path.clone(),
                    source,
                })?;
                return Ok(MaterializedVolume {
                    name: v.name.clone(),
                    host_path: path.clone(),
                    read_only,
                });
            }
            let dir = volume_dir(pod_dir, v.kind, &v.name);
            write_volume(&dir, v, ops).map_err(|source| VolumeWriteError {
                volume: v.name.clone(),
                path: dir.clone(),
                source,
            })?;
            Ok(MaterializedVolume {
                name: v.name.clone(),
                host_path: dir,
                read_only: v.kind.always_read_only(),
            })
        })
        .collect()
}

fn write_volume(dir: &Path, v: &VolumeContent, ops: &impl VolumeOps) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    match v.kind {
        VolumeKind::ConfigMap => {
            write_atomic(dir, &v.files)?;
        }
        kind if kind.on_tmpfs() => {
            if !ops.is_mount_point(dir)? {
                ops.mount_tmpfs(dir, None)?;
            }
            write_atomic(dir, &v.files)?;
        }
        VolumeKind::EmptyDir { memory, size_limit } => {
            if memory && !ops.is_mount_point(dir)? {
                ops.mount_tmpfs(dir, size_limit)?;
            }
            fs::set_permissions(dir, fs::Permissions::from_mode(EMPTY_DIR_MODE))?;
        }
        // Secret, downwardAPI, projected above; hostPath never comes here.
        _ => {}
    }
    if let Some(gid) = v.fs_group {
        set_volume_ownership(dir, gid, v.kind.always_read_only())?;
    }
    Ok(())
}

/// The kubelet's `SetVolumeOwnership`: every file and directory under
/// `dir` gets group `gid` and the group bits (read, and write unless
/// `read_only`); directories also setgid and group search, so files made
/// later inherit the group. Symlinks (the atomic writer's) keep their mode.
pub fn set_volume_ownership(dir: &Path, gid: u32, read_only: bool) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    std::os::unix::fs::lchown(dir, None, Some(gid))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mut mask = if read_only { 0o440 } else { 0o660 };
    if meta.is_dir() {
        mask |= 0o2000 | 0o110;
        for entry in fs::read_dir(dir)? {
            set_volume_ownership(&entry?.path(), gid, read_only)?;
        }
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode | mask != mode {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode | mask))?;
    }
    Ok(())
}

/// Unmounts and deletes every volume under `pod_dir`, carrying on past
/// failures and returning them all. A volume whose unmount fails is left in
/// place (deleting through a live mount would not free it).
pub fn remove_volumes(pod_dir: &Path, ops: &impl VolumeOps) -> Result<(), VolumeRemoveErrors> {
    let root = pod_dir.join(VOLUMES_DIR);
    let mut errors = Vec::new();
    let kinds = match fs::read_dir(&root) {
        Ok(k) => k,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(VolumeRemoveErrors(vec![(root, e)])),
    };
    for kind in kinds {
        let kind = match kind {
            Ok(k) => k.path(),
            Err(e) => {
                errors.push((root.clone(), e));
                continue;
            }
        };
        let volumes = match fs::read_dir(&kind) {
            Ok(v) => v,
            Err(e) => {
                errors.push((kind, e));
                continue;
            }
        };
        for vol in volumes {
            match vol {
                Ok(vol) => remove_one(&vol.path(), ops, &mut errors),
                Err(e) => errors.push((kind.clone(), e)),
            }
        }
        if let Err(e) = fs::remove_dir(&kind)
            && errors.is_empty()
        {
            errors.push((kind, e));
        }
    }
    if let Err(e) = fs::remove_dir(&root)
        && errors.is_empty()
    {
        errors.push((root, e));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(VolumeRemoveErrors(errors))
    }
}

fn remove_one(dir: &Path, ops: &impl VolumeOps, errors: &mut Vec<(PathBuf, io::Error)>) {
    match ops.is_mount_point(dir) {
        Ok(true) => {
            if let Err(e) = ops.unmount(dir) {
                errors.push((dir.to_path_buf(), e));
                return;
            }
        }
        Ok(false) => {}
        Err(e) => {
            errors.push((dir.to_path_buf(), e));
            return;
        }
    }
    let removed = if fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        fs::remove_dir_all(dir)
    } else {
        fs::remove_file(dir)
    };
    if let Err(e) = removed {
        errors.push((dir.to_path_buf(), e));
    }
}

#[cfg(test)]
#[path = "volumes_tests.rs"]
mod tests;
