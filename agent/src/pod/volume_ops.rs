//! The mount calls volumes need (tmpfs for Secrets and memory-backed
//! emptyDirs), behind a trait: the host implementation uses mount(2), the
//! recording fake lets the volume logic be tested without root.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// Mounting and unmounting volume directories.
pub trait VolumeOps {
    /// Mounts a fresh tmpfs (mode 0755, `size` bytes when given) on `dir`.
    fn mount_tmpfs(&self, dir: &Path, size: Option<u64>) -> io::Result<()>;
    /// Unmounts whatever is mounted on `dir`.
    fn unmount(&self, dir: &Path) -> io::Result<()>;
    /// Whether something is mounted on `dir`.
    fn is_mount_point(&self, dir: &Path) -> io::Result<bool>;
}

/// The tmpfs mount options: mode 0755 and the size when given.
pub fn tmpfs_options(size: Option<u64>) -> String {
    match size {
        Some(bytes) => format!("mode=0755,size={bytes}"),
        None => "mode=0755".to_owned(),
    }
}

/// The host's mount(2), for the agent.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostVolumeOps;

impl VolumeOps for HostVolumeOps {
    fn mount_tmpfs(&self, dir: &Path, size: Option<u64>) -> io::Result<()> {
        let options = tmpfs_options(size);
        mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(options.as_str()),
        )
        .map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("mounting tmpfs ({options}) on {}: {e}", dir.display()),
            )
        })
    }

    fn unmount(&self, dir: &Path) -> io::Result<()> {
        match umount2(dir, MntFlags::empty()) {
            Ok(()) => Ok(()),
            // Still in use (a container not yet gone): detach it lazily so the
            // directory can go; the kernel frees it when the last user leaves.
            Err(nix::errno::Errno::EBUSY) => umount2(dir, MntFlags::MNT_DETACH),
            Err(e) => Err(e),
        }
        .map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("unmounting {}: {e}", dir.display()),
            )
        })
    }

    fn is_mount_point(&self, dir: &Path) -> io::Result<bool> {
        let own = std::fs::metadata(dir)?;
        let parent = std::fs::metadata(dir.join(".."))?;
        // A tmpfs has a device of its own; `/` is its own parent.
        Ok(own.dev() != parent.dev() || own.ino() == parent.ino())
    }
}

/// A call the fake recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeCall {
    /// `mount_tmpfs(dir, size)`.
    MountTmpfs(PathBuf, Option<u64>),
    /// `unmount(dir)`.
    Unmount(PathBuf),
}

/// A recording fake: remembers what is "mounted", records calls, and can be
/// told to fail unmounting one directory.
#[derive(Debug, Default)]
pub struct FakeVolumeOps {
    calls: Mutex<Vec<VolumeCall>>,
    mounted: Mutex<BTreeSet<PathBuf>>,
    fail_unmount: Mutex<BTreeSet<PathBuf>>,
}

impl FakeVolumeOps {
    /// A fake with nothing mounted.
    pub fn new() -> Self {
        Self::default()
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<VolumeCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The directories "mounted" now.
    pub fn mounted(&self) -> BTreeSet<PathBuf> {
        self.mounted.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Makes `unmount(dir)` fail with EBUSY.
    pub fn fail_unmount_of(&self, dir: &Path) {
        if let Ok(mut f) = self.fail_unmount.lock() {
            f.insert(dir.to_path_buf());
        }
    }

    fn record(&self, call: VolumeCall) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
    }
}

fn poisoned<T>(_: T) -> io::Error {
    io::Error::other("fake volume ops: lock poisoned")
}

impl VolumeOps for FakeVolumeOps {
    fn mount_tmpfs(&self, dir: &Path, size: Option<u64>) -> io::Result<()> {
        self.record(VolumeCall::MountTmpfs(dir.to_path_buf(), size));
        if !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("mount point {} missing", dir.display()),
            ));
        }
        self.mounted
            .lock()
            .map_err(poisoned)?
            .insert(dir.to_path_buf());
        Ok(())
    }

    fn unmount(&self, dir: &Path) -> io::Result<()> {
        self.record(VolumeCall::Unmount(dir.to_path_buf()));
        if self.fail_unmount.lock().map_err(poisoned)?.contains(dir) {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!("unmounting {}: device busy", dir.display()),
            ));
        }
        if self.mounted.lock().map_err(poisoned)?.remove(dir) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unmounting {}: not mounted", dir.display()),
            ))
        }
    }

    fn is_mount_point(&self, dir: &Path) -> io::Result<bool> {
        Ok(self.mounted.lock().map_err(poisoned)?.contains(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        assert_eq!(tmpfs_options(None), "mode=0755");
        assert_eq!(tmpfs_options(Some(1 << 20)), "mode=0755,size=1048576");
    }

    #[test]
    fn fake_tracks_mounts() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let ops = FakeVolumeOps::new();
        let d = tmp.path();
        assert!(!ops.is_mount_point(d).expect("ok"));
        ops.mount_tmpfs(d, Some(5)).expect("mounts");
        assert!(ops.is_mount_point(d).expect("ok"));
        ops.unmount(d).expect("unmounts");
        assert!(ops.unmount(d).is_err());
        assert!(ops.mount_tmpfs(&d.join("missing"), None).is_err());
        assert_eq!(ops.calls().len(), 4);
    }

    #[test]
    fn host_sees_plain_directories_as_not_mounted() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("d")).expect("mkdir");
        assert!(
            !HostVolumeOps
                .is_mount_point(&tmp.path().join("d"))
                .expect("ok")
        );
        assert!(HostVolumeOps.is_mount_point(Path::new("/")).expect("ok"));
    }
}
