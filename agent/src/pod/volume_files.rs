//! The files of downwardAPI and projected volumes (pure), the memory size
//! of a `medium: Memory` emptyDir, and the kubelet's hostPath type checks.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

use jotasu_api::kinds::pod::{DownwardApiVolumeFile, ProjectedVolumeSource, Volume};
use jotasu_api::{Pod, Quantity};

use crate::pod::atomic_writer::{FileContent, check_relative_path};
use crate::pod::downward::{DownwardError, NodeFacts, field_value, resource_value};
use crate::pod::env::{ConfigError, ConfigSource, secret_bytes};
use crate::pod::pod_namespace;
use crate::pod::volumes::{HostPathType, mode_bits, project};

/// Puts `file` into `files`, replacing one at the same path (a later
/// source of a projected volume wins).
fn put(files: &mut Vec<FileContent>, file: FileContent) {
    files.retain(|f| f.path != file.path);
    files.push(file);
}

/// The files of downward API `items` of volume `v`.
pub fn downward_files(
    pod: &Pod,
    v: &Volume,
    items: &[DownwardApiVolumeFile],
    default_mode: u32,
    node: &NodeFacts,
    files: &mut Vec<FileContent>,
) -> Result<(), ConfigError> {
    for item in items {
        if let Some(why) = check_relative_path(&item.path) {
            return Err(ConfigError::BadPath {
                volume: v.name.clone(),
                path: item.path.clone(),
                why,
            });
        }
        let value = if let Some(sel) = &item.field_ref {
            field_value(pod, sel, node)?
        } else if let Some(sel) = &item.resource_field_ref {
            let name = sel.container_name.clone().unwrap_or_default();
            let container = pod
                .spec
                .containers
                .iter()
                .chain(&pod.spec.init_containers)
                .find(|c| c.name == name)
                .ok_or(DownwardError::Container(name))?;
            resource_value(pod, container, sel, node)?
        } else {
            String::new()
        };
        put(
            files,
            FileContent {
                path: item.path.clone(),
                data: value.into_bytes(),
                mode: mode_bits(item.mode, default_mode),
            },
        );
    }
    Ok(())
}

/// The files of a projected volume: each source in order (ConfigMap and
/// Secret keys, downward API items), a later one replacing an earlier file
/// at the same path. Service account tokens are refused by validation and
/// give nothing here.
pub fn projected_files(
    pod: &Pod,
    v: &Volume,
    src: &ProjectedVolumeSource,
    default_mode: u32,
    lookup: &impl ConfigSource,
    node: &NodeFacts,
) -> Result<Vec<FileContent>, ConfigError> {
    let ns = pod_namespace(pod);
    let mut files = Vec::new();
    for source in &src.sources {
        if let Some(cm) = &source.config_map {
            let optional = cm.optional == Some(true);
            match lookup.config_map(ns, &cm.name) {
                None if optional => {}
                None => {
                    return Err(ConfigError::ConfigMapNotFound {
                        name: cm.name.clone(),
                    });
                }
                Some(obj) => {
                    let get = |k: &str| {
                        obj.data
                            .get(k)
                            .map(|s| s.as_bytes().to_vec())
                            .or_else(|| obj.binary_data.get(k).map(|b| b.0.clone()))
                    };
                    let keys = obj.data.keys().chain(obj.binary_data.keys());
                    let got = project(v, &cm.items, keys, get, default_mode, optional, |key| {
                        ConfigError::VolumeConfigMapKey { key }
                    })?;
                    got.into_iter().for_each(|f| put(&mut files, f));
                }
            }
        }
        if let Some(s) = &source.secret {
            let optional = s.optional == Some(true);
            match lookup.secret(ns, &s.name) {
                None if optional => {}
                None => {
                    return Err(ConfigError::SecretNotFound {
                        name: s.name.clone(),
                    });
                }
                Some(obj) => {
                    let get = |k: &str| secret_bytes(obj, k).map(<[u8]>::to_vec);
                    let keys = obj.data.keys().chain(obj.string_data.keys());
                    let got = project(v, &s.items, keys, get, default_mode, optional, |key| {
                        ConfigError::VolumeSecretKey { key }
                    })?;
                    got.into_iter().for_each(|f| put(&mut files, f));
                }
            }
        }
        if let Some(d) = &source.downward_api {
            downward_files(pod, v, &d.items, default_mode, node, &mut files)?;
        }
    }
    Ok(files)
}

/// The pod's memory limit as `PodLimits` sums it: the app containers' and
/// sidecars' limits, or the largest init container's when larger; `None`
/// when an app container has none.
pub fn pod_memory_limit(pod: &Pod) -> Option<u64> {
    let limit = |c: &jotasu_api::Container| {
        c.resources
            .as_ref()
            .and_then(|r| r.limits.get("memory"))
            .map(Quantity::units)
            .and_then(|b| u64::try_from(b).ok())
    };
    let sidecars = pod.spec.init_containers.iter().filter(|c| c.is_sidecar());
    let mut sum = 0u64;
    for c in pod.spec.containers.iter().chain(sidecars) {
        sum = sum.saturating_add(limit(c)?);
    }
    let init = pod
        .spec
        .init_containers
        .iter()
        .filter(|c| !c.is_sidecar())
        .filter_map(limit)
        .max()
        .unwrap_or(0);
    Some(sum.max(init)).filter(|b| *b > 0)
}

fn type_error(path: &Path, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("hostPath type check failed: {} {why}", path.display()),
    )
}

/// The kubelet's hostPath checks: the `…OrCreate` types make what is
/// missing (a 0755 directory with its parents, an empty 0644 file), the
/// others require the kind of file they name; `Unset` checks nothing.
pub fn check_host_path(path: &Path, check: HostPathType) -> io::Result<()> {
    let meta = fs::metadata(path);
    let is = |f: fn(&fs::FileType) -> bool| meta.as_ref().is_ok_and(|m| f(&m.file_type()));
    match check {
        HostPathType::Unset => Ok(()),
        HostPathType::DirectoryOrCreate if meta.is_err() => {
            fs::DirBuilder::new().recursive(true).create(path)
        }
        HostPathType::DirectoryOrCreate | HostPathType::Directory => {
            if is(fs::FileType::is_dir) {
                Ok(())
            } else {
                Err(type_error(path, "is not a directory"))
            }
        }
        HostPathType::FileOrCreate if meta.is_err() => fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map(drop),
        HostPathType::FileOrCreate | HostPathType::File => {
            if is(fs::FileType::is_file) {
                Ok(())
            } else {
                Err(type_error(path, "is not a file"))
            }
        }
        HostPathType::Socket if !is(fs::FileType::is_socket) => {
            Err(type_error(path, "is not a socket file"))
        }
        HostPathType::CharDevice if !is(fs::FileType::is_char_device) => {
            Err(type_error(path, "is not a character device"))
        }
        HostPathType::BlockDevice if !is(fs::FileType::is_block_device) => {
            Err(type_error(path, "is not a block device"))
        }
        HostPathType::Socket | HostPathType::CharDevice | HostPathType::BlockDevice => Ok(()),
    }
}

#[cfg(test)]
#[path = "volume_files_tests.rs"]
mod tests;
