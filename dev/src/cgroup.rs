//! [`Cgroup`]: a cgroup2 directory under `jotasu/`, removed on drop.
use std::{
    fs,
    io::Write as _,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use crate::error::{DevError, Result};

/// Where cgroup2 is mounted: `/sys/fs/cgroup` on unified hosts, elsewhere
/// (e.g. `/sys/fs/cgroup/unified`) on hybrid ones. Read from /proc/mounts.
pub fn cgroup2_root() -> Result<PathBuf> {
    let mounts =
        fs::read_to_string("/proc/mounts").map_err(DevError::io("reading", "/proc/mounts"))?;
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 2 && f[2] == "cgroup2").then(|| PathBuf::from(f[1]))
        })
        .ok_or_else(|| DevError::Invalid("no cgroup2 filesystem mounted (see /proc/mounts)".into()))
}

/// The mount point of every cgroup hierarchy, v1 and v2 (where a node's
/// `jotasu/<node>` directories may be).
pub fn hierarchy_roots() -> Vec<PathBuf> {
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut roots: Vec<PathBuf> = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 2 && (f[2] == "cgroup" || f[2] == "cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .collect();
    roots.sort();
    roots.dedup();
    roots
}

/// A cgroup `jotasu/<name>` in the cgroup2 hierarchy.
#[derive(Debug)]
pub struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    /// Creates `jotasu/<name>`.
    pub fn new(name: &str) -> Result<Self> {
        let path = cgroup2_root()?.join("jotasu").join(name);
        fs::create_dir_all(&path).map_err(DevError::io("creating cgroup", &path))?;
        Ok(Self { path })
    }

    /// The cgroup's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes `cmd`'s process join this cgroup before it executes.
    pub fn enter_on_spawn(&self, cmd: &mut Command) {
        let procs = self.path.join("cgroup.procs");
        // SAFETY: the closure only opens and writes a file, which is
        // async-signal-safe enough for pre_exec (no allocation after fork
        // besides what std's File does through raw syscalls).
        unsafe {
            cmd.pre_exec(move || {
                fs::OpenOptions::new()
                    .write(true)
                    .open(&procs)?
                    .write_all(b"0")
            });
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Processes that were in it are killed by their own guards first;
        // give the kernel a moment to notice they are gone.
        for _ in 0..50 {
            if fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        eprintln!(
            "cleanup: cgroup {} could not be removed",
            self.path.display()
        );
    }
}
