//! Pod network namespaces, made as `ip netns add` makes them: a new
//! namespace entered by a short-lived thread and bind-mounted onto a file
//! in the netns directory (a shared mount of itself, so the file can be
//! unmounted from any mount namespace), removed by unmounting and
//! unlinking the file.

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

/// A namespace problem.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// A mount, unshare or file operation failed.
    #[error("network namespace {path}: {what}: {source}")]
    Sys {
        /// The namespace file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// Why.
        source: io::Error,
    },
}

fn sys(path: &Path, what: &'static str) -> impl FnOnce(nix::Error) -> NetnsError {
    let path = path.to_owned();
    move |e| NetnsError::Sys {
        path,
        what,
        source: io::Error::from(e),
    }
}

/// The network namespaces of a node's pods, as files in one directory.
#[derive(Debug, Clone)]
pub struct PodNetns {
    dir: PathBuf,
}

fn is_mount_point(dir: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = dir.to_string_lossy();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|p| p == want))
}

impl PodNetns {
    /// The netns directory (`/run/netns` by default), made a shared mount
    /// of itself if it is not a mount point yet (as iproute2 does).
    pub fn new(dir: &Path) -> Result<Self, NetnsError> {
        std::fs::create_dir_all(dir).map_err(|source| NetnsError::Sys {
            path: dir.to_owned(),
            what: "creating the directory",
            source,
        })?;
        if !is_mount_point(dir) {
            mount(
                Some(dir),
                dir,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys(dir, "bind-mounting the directory onto itself"))?;
        }
        mount(
            None::<&str>,
            dir,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys(dir, "making the directory a shared mount"))?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The file of the namespace called `name`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates the namespace `name` (an existing one is kept) and returns its path.
    pub fn create(&self, name: &str) -> Result<PathBuf, NetnsError> {
        let path = self.path(name);
        if is_mount_point(&path) {
            return Ok(path);
        }
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| NetnsError::Sys {
                path: path.clone(),
                what: "creating the file",
                source,
            })?;
        let target = path.clone();
        // A thread of its own: after unshare it lives in the new namespace,
        // and it ends right after the bind mount keeps that namespace.
        let made = std::thread::spawn(move || -> Result<(), NetnsError> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(sys(&target, "unshare(CLONE_NEWNET)"))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys(&target, "bind-mounting the new namespace"))?;
            // The CNI plugin brings lo and the pod interface up.
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(NetnsError::Sys {
                path: path.clone(),
                what: "the namespace thread panicked",
                source: io::Error::other("panic"),
            })
        });
        if let Err(e) = made {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(path)
    }

    /// Removes the namespace `name`; a missing one is fine.
    pub fn remove(&self, name: &str) -> Result<(), NetnsError> {
        let path = self.path(name);
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL | nix::Error::ENOENT) => {}
            Err(e) => return Err(sys(&path, "unmounting")(e)),
        }
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(NetnsError::Sys {
                path,
                what: "removing the file",
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Names of the namespaces in the directory that start with `prefix`.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        std::fs::read_dir(&self.dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.starts_with(prefix))
                    .collect()
            })
            .unwrap_or_default()
    }
}
