//! The node's cgroup subtree (`jotasu/<node>/` in every hierarchy) and its
//! pods' cgroups below it. runc creates each container's cgroup from the
//! `cgroupsPath` the spec gives; the agent makes the node and pod levels,
//! reads the OOM-kill counter of a container, and removes what a pod left.
//!
//! Hierarchies come from `/proc/mounts`: pure cgroup v2 at `/sys/fs/cgroup`
//! on most machines, hybrid (v1 controllers plus v2 at
//! `/sys/fs/cgroup/unified`) on others.

use std::io;
use std::path::{Path, PathBuf};

/// A cgroup problem.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// No cgroup2 mount: the socket programs need one.
    #[error(
        "no cgroup2 hierarchy in /proc/mounts; mount one (mount -t cgroup2 none /sys/fs/cgroup)"
    )]
    NoUnified,
    /// A directory could not be made or removed.
    #[error("cgroup {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// The mounted cgroup hierarchies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hierarchies {
    unified: Option<PathBuf>,
    /// v1 hierarchies: (controllers, mount point).
    v1: Vec<(Vec<String>, PathBuf)>,
}

/// Mount options of a v1 hierarchy that are not controllers.
const NOT_CONTROLLERS: &[&str] = &[
    "rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec",
];

impl Hierarchies {
    /// Reads them from `/proc/mounts`.
    pub fn detect() -> io::Result<Self> {
        Ok(Self::parse(&std::fs::read_to_string("/proc/mounts")?))
    }

    /// Parses `/proc/mounts`.
    pub fn parse(mounts: &str) -> Self {
        let mut h = Self::default();
        for line in mounts.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let (Some(point), Some(fstype), Some(opts)) = (f.get(1), f.get(2), f.get(3)) else {
                continue;
            };
            match *fstype {
                "cgroup2" if h.unified.is_none() => h.unified = Some(PathBuf::from(point)),
                "cgroup" => {
                    // Every v1 hierarchy (named ones such as name=systemd
                    // too): runc makes a container's cgroup in all of them,
                    // so the agent removes pod levels from all of them.
                    let controllers = opts
                        .split(',')
                        .filter(|o| !NOT_CONTROLLERS.contains(o))
                        .map(str::to_owned)
                        .collect::<Vec<_>>();
                    if !controllers.is_empty() {
                        h.v1.push((controllers, PathBuf::from(point)));
                    }
                }
                _ => {}
            }
        }
        h
    }

    /// The cgroup2 mount.
    pub fn unified(&self) -> Option<&Path> {
        self.unified.as_deref()
    }

    /// The v1 mount holding `controller`.
    pub fn v1(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|(c, _)| c.iter().any(|x| x == controller))
            .map(|(_, p)| p.as_path())
    }

    /// Whether the host is hybrid: v1 hierarchies beside a v2 mount.
    pub fn is_hybrid(&self) -> bool {
        self.unified.is_some() && !self.v1.is_empty()
    }

    /// Whether memory limits are in a v1 hierarchy (hybrid machines).
    pub fn memory_is_v1(&self) -> bool {
        self.v1("memory").is_some()
    }

    /// Every hierarchy root the agent makes directories in.
    fn roots(&self) -> Vec<&Path> {
        let mut roots: Vec<&Path> = self.v1.iter().map(|(_, p)| p.as_path()).collect();
        roots.extend(self.unified());
        roots.dedup();
        roots
    }
}

/// The cgroups of one node.
#[derive(Debug, Clone)]
pub struct NodeCgroups {
    hierarchies: Hierarchies,
    /// `jotasu/<node>`, relative to each root.
    parent: String,
}

impl NodeCgroups {
    /// The node's subtree `parent` (e.g. `jotasu/node-1`), made in every hierarchy.
    pub fn ensure(hierarchies: Hierarchies, parent: &str) -> Result<Self, CgroupError> {
        if hierarchies.unified().is_none() {
            return Err(CgroupError::NoUnified);
        }
        let me = Self::existing(hierarchies, parent);
        for root in me.hierarchies.roots() {
            let dir = root.join(&me.parent);
            std::fs::create_dir_all(&dir)
                .map_err(|source| CgroupError::Io { path: dir, source })?;
        }
        Ok(me)
    }

    /// The node's subtree `parent` as it stands (nothing is made), e.g.
    /// to remove what a node left.
    pub fn existing(hierarchies: Hierarchies, parent: &str) -> Self {
        Self {
            hierarchies,
            parent: parent.trim_matches('/').to_owned(),
        }
    }

    /// The hierarchies.
    pub fn hierarchies(&self) -> &Hierarchies {
        &self.hierarchies
    }

    /// The node's cgroup2 directory (where the socket programs attach).
    pub fn unified_dir(&self) -> PathBuf {
        let root = self
            .hierarchies
            .unified()
            .unwrap_or(Path::new("/sys/fs/cgroup"));
        root.join(&self.parent)
    }

    /// A pod's level, relative to each root: `jotasu/<node>/pod<uid>`.
    pub fn pod_path(&self, uid: &str) -> String {
        format!("{}/pod{}", self.parent, uid)
    }

    /// The `cgroupsPath` of a container: `/jotasu/<node>/pod<uid>/<id>`.
    pub fn container_path(&self, uid: &str, container_id: &str) -> String {
        format!("/{}/{}", self.pod_path(uid), container_id)
    }

    /// How many times the kernel OOM-killed a process of this container's
    /// cgroup (v1 `memory.oom_control`, v2 `memory.events`); 0 when unknown.
    pub fn oom_kills(&self, uid: &str, container_id: &str) -> u64 {
        let rel = self.container_path(uid, container_id);
        let rel = rel.trim_start_matches('/');
        let text = if let Some(root) = self.hierarchies.v1("memory") {
            std::fs::read_to_string(root.join(rel).join("memory.oom_control"))
        } else if let Some(root) = self.hierarchies.unified() {
            std::fs::read_to_string(root.join(rel).join("memory.events"))
        } else {
            return 0;
        };
        text.ok().as_deref().and_then(parse_oom_kill).unwrap_or(0)
    }

    /// CPU time (ns) and memory working set (bytes) of a container, read
    /// from its cgroup (v1 cpuacct and memory, or v2); None when unreadable.
    pub fn usage(&self, uid: &str, container_id: &str) -> Option<crate::containerd::TaskUsage> {
        let rel = self.container_path(uid, container_id);
        let rel = rel.trim_start_matches('/');
        let read = |p: PathBuf| std::fs::read_to_string(p).ok();
        let stat = |text: &str, key: &str| {
            text.lines().find_map(|l| {
                l.strip_prefix(key)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        };
        if let (Some(cpu), Some(mem)) = (
            self.hierarchies.v1("cpuacct"),
            self.hierarchies.v1("memory"),
        ) {
            let cpu_nanos = read(cpu.join(rel).join("cpuacct.usage"))?
                .trim()
                .parse()
                .ok()?;
            let usage: u64 = read(mem.join(rel).join("memory.usage_in_bytes"))?
                .trim()
                .parse()
                .ok()?;
            let inactive = read(mem.join(rel).join("memory.stat"))
                .and_then(|t| stat(&t, "total_inactive_file"))
                .unwrap_or(0);
            return Some(crate::containerd::TaskUsage {
                cpu_nanos,
                memory_bytes: usage.saturating_sub(inactive),
            });
        }
        let root = self.hierarchies.unified()?.join(rel);
        let cpu_nanos = read(root.join("cpu.stat")).and_then(|t| stat(&t, "usage_usec"))? * 1000;
        let current: u64 = read(root.join("memory.current"))?.trim().parse().ok()?;
        let inactive = read(root.join("memory.stat"))
            .and_then(|t| stat(&t, "inactive_file"))
            .unwrap_or(0);
        Some(crate::containerd::TaskUsage {
            cpu_nanos,
            memory_bytes: current.saturating_sub(inactive),
        })
    }

    /// Removes a pod's cgroups (after its containers are gone) in every
    /// hierarchy, deepest first; missing directories are fine.
    pub fn remove_pod(&self, uid: &str) -> Result<(), CgroupError> {
        let mut first_err = None;
        for root in self.hierarchies.roots() {
            let dir = root.join(self.pod_path(uid));
            if let Err(e) = remove_tree(&dir) {
                first_err.get_or_insert(CgroupError::Io {
                    path: dir,
                    source: e,
                });
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Removes the node's whole subtree (the agent's `--cleanup`, tests).
    pub fn remove_node(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        for root in self.hierarchies.roots() {
            let dir = root.join(&self.parent);
            if let Err(e) = remove_tree(&dir) {
                first_err.get_or_insert(CgroupError::Io {
                    path: dir,
                    source: e,
                });
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// `oom_kill N` in `memory.oom_control` / `memory.events`.
pub fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

/// rmdir of a cgroup directory and its children (cgroup directories hold
/// only kernel files, which rmdir ignores).
fn remove_tree(dir: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_and_unified_mounts() {
        let hybrid = "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n\
            cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n\
            cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n\
            cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0\n\
            cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
        let h = Hierarchies::parse(hybrid);
        assert_eq!(h.unified(), Some(Path::new("/sys/fs/cgroup/unified")));
        assert_eq!(h.v1("memory"), Some(Path::new("/sys/fs/cgroup/memory")));
        assert_eq!(h.v1("systemd"), None);
        assert_eq!(
            h.v1("name=systemd"),
            Some(Path::new("/sys/fs/cgroup/systemd"))
        );
        assert!(h.memory_is_v1());
        let pure = Hierarchies::parse("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n");
        assert_eq!(pure.unified(), Some(Path::new("/sys/fs/cgroup")));
        assert!(!pure.memory_is_v1());
    }

    #[test]
    fn oom_kill_counter() {
        assert_eq!(
            parse_oom_kill("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            Some(2)
        );
        assert_eq!(
            parse_oom_kill("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
            Some(1)
        );
        assert_eq!(parse_oom_kill("oom 0\n"), None);
    }
}
