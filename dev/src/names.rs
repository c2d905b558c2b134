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

/// Scratch directories of a run (a cluster's, a control plane's data dir)
/// in [`crate::controlplane::scratch_root`] start with this, then the run's
/// prefix and a `-`, so a killed run's are swept.
pub const SCRATCH_PREFIX: &str = "jotasu-cluster-";

/// The name prefix of a scratch directory of run `prefix`, for `what`
/// (`""` for a cluster's, `"cp-"` for a control plane's).
pub fn scratch_prefix(prefix: &str, what: &str) -> String {
    format!("{SCRATCH_PREFIX}{prefix}-{what}")
}

/// The run prefix a scratch directory's name carries.
pub fn scratch_owner(name: &str) -> Option<&str> {
    name.strip_prefix(SCRATCH_PREFIX)?.split('-').next()
}

/// Removes what runs whose process is gone left behind (a run killed
/// before its guards could drop): see [`remove_leftovers`].
pub fn sweep_stale() {
    remove_leftovers(&|name| owner_pid(name).is_some_and(crate::process::process_gone));
}

/// Removes everything whose name `owned` accepts: containerd's shims,
/// containers and directories ([`crate::containerd::remove_leftovers`]),
/// network namespaces (pod namespaces `<node>-<uid>` too), bpffs node
/// directories, the `jotasu/<node>` cgroups in every hierarchy, and
/// cluster scratch directories (`jotasu-cluster-<prefix>-…`) in the
/// scratch root.
pub fn remove_leftovers(owned: &dyn Fn(&str) -> bool) {
    crate::containerd::remove_leftovers(owned);
    if let Ok(list) = crate::cmd::ip(&["netns", "list"]) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if owned(ns) {
                let _ = crate::cmd::ip(&["netns", "del", ns]);
            }
        }
    }
    let bpf = std::path::Path::new(jotasu_ebpf::DEFAULT_BPFFS);
    if let Ok(dir) = std::fs::read_dir(bpf.join("jotasu")) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if owned(&name) {
                let _ = jotasu_ebpf::Datapath::purge(bpf, &name);
            }
        }
    }
    let mut nodes: Vec<String> = crate::cgroup::hierarchy_roots()
        .iter()
        .filter_map(|root| std::fs::read_dir(root.join("jotasu")).ok())
        .flat_map(|dir| dir.flatten())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| owned(n))
        .collect();
    nodes.sort();
    nodes.dedup();
    for node in nodes {
        crate::cluster::remove_node_cgroups(&node);
    }
    if let Ok(dir) = std::fs::read_dir(crate::controlplane::scratch_root()) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(prefix) = scratch_owner(&name)
                && owned(prefix)
            {
                crate::mounts::unmount_below(&e.path());
                let _ = std::fs::remove_dir_all(e.path());
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

    #[test]
    fn scratch_dirs_name_their_run() {
        for what in ["", "cp-"] {
            let dir = format!("{}a1B2c3", super::scratch_prefix("jt42x7", what));
            assert_eq!(super::scratch_owner(&dir), Some("jt42x7"), "{dir}");
        }
        assert_eq!(super::scratch_owner("jotasu-cp-abc"), None);
    }
}
