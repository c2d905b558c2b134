//! Per-run names: every namespace, link, pin directory and cgroup a test makes
//! starts with `jt<pid>x<n>`, so parallel tests never collide and leftovers of
//! a killed run can be recognised (and swept by [`sweep_stale`]).
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh prefix for one fixture, e.g. `jt4312x0`. At most 11 characters, so
/// `<prefix><role><n>` fits a 15-character interface name.
pub fn fresh_prefix() -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("jt{}x{n}", std::process::id() % 1_000_000)
}

/// The pid encoded in a name made by [`fresh_prefix`].
pub fn owner_pid(name: &str) -> Option<u32> {
    name.strip_prefix("jt")?.split('x').next()?.parse().ok()
}

/// Removes network namespaces, bpffs node directories and cgroups left by
/// runs whose process is gone (a run killed before its guards could drop).
pub fn sweep_stale() {
    crate::containerd::sweep_stale();
    let dead = |name: &str| {
        owner_pid(name).is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
    };
    if let Ok(list) = crate::cmd::ip(&["netns", "list"]) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if dead(ns) {
                let _ = crate::cmd::ip(&["netns", "del", ns]);
            }
        }
    }
    let bpf = std::path::Path::new(jotasu_ebpf::DEFAULT_BPFFS);
    if let Ok(dir) = std::fs::read_dir(bpf.join("jotasu")) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if dead(&name) {
                let _ = jotasu_ebpf::Datapath::purge(bpf, &name);
            }
        }
    }
    // Cluster scratch directories (node state dirs may hold tmpfs mounts).
    if let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name
                .strip_prefix(crate::cluster::SCRATCH_PREFIX)
                .is_some_and(dead)
            {
                crate::mounts::unmount_below(&e.path());
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    if let Ok(root) = crate::cgroup::cgroup2_root()
        && let Ok(dir) = std::fs::read_dir(root.join("jotasu"))
    {
        for e in dir.flatten() {
            if dead(&e.file_name().to_string_lossy()) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn prefixes_are_unique_and_carry_the_pid() {
        let a = super::fresh_prefix();
        let b = super::fresh_prefix();
        assert_ne!(a, b);
        assert!(a.len() <= 11, "{a}");
        assert_eq!(super::owner_pid(&a), Some(std::process::id() % 1_000_000));
    }
}
