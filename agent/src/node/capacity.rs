//! What the node can offer pods: CPUs and memory of the machine, bounded by
//! the limits of the cgroup the agent runs in (a node that shares a machine
//! gets what its cgroup allows), unless flags say otherwise.

use std::path::Path;

/// The node's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// CPU in millicores.
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// A cgroup v2 `cpu.max` (`"max 100000"` or `"50000 100000"`) as millicores.
pub fn parse_cpu_max(cpu_max: &str) -> Option<u64> {
    let mut it = cpu_max.split_whitespace();
    let quota = it.next()?;
    let period: u64 = it.next()?.parse().ok()?;
    if quota == "max" || period == 0 {
        return None;
    }
    let quota: u64 = quota.parse().ok()?;
    Some(quota * 1000 / period)
}

/// A cgroup v1 quota and period (`cpu.cfs_quota_us`, `cpu.cfs_period_us`) as millicores.
pub fn parse_cfs(quota: &str, period: &str) -> Option<u64> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: u64 = period.trim().parse().ok()?;
    if quota <= 0 || period == 0 {
        return None;
    }
    Some(quota.unsigned_abs() * 1000 / period)
}

/// A memory limit file (`memory.max`, `memory.limit_in_bytes`): None when
/// unlimited (`max`, or v1's page-rounded i64::MAX).
pub fn parse_memory_limit(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "max" {
        return None;
    }
    let v: u64 = s.parse().ok()?;
    (v < (1 << 62)).then_some(v)
}

/// The cgroup paths of this process, per hierarchy (`/proc/self/cgroup`):
/// `(controllers, path)`; the v2 entry has empty controllers.
pub fn parse_proc_cgroup(s: &str) -> Vec<(String, String)> {
    s.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            Some((it.next()?.to_owned(), it.next()?.to_owned()))
        })
        .collect()
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The machine's capacity bounded by the agent's own cgroup limits.
pub fn detect(mounts: &crate::cgroup::Hierarchies) -> Capacity {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get) as u64;
    let mut cpu_millis = cpus * 1000;
    let mut memory_bytes = read(Path::new("/proc/meminfo"))
        .as_deref()
        .and_then(parse_meminfo_total)
        .unwrap_or(0);
    let own = read(Path::new("/proc/self/cgroup"))
        .map(|s| parse_proc_cgroup(&s))
        .unwrap_or_default();
    for (controllers, path) in &own {
        let rel = path.trim_start_matches('/');
        let cpu_limit = if controllers.is_empty() {
            mounts
                .unified()
                .and_then(|root| read(&root.join(rel).join("cpu.max")))
                .as_deref()
                .and_then(parse_cpu_max)
        } else if controllers.split(',').any(|c| c == "cpu") {
            mounts.v1("cpu").and_then(|root| {
                let dir = root.join(rel);
                parse_cfs(
                    &read(&dir.join("cpu.cfs_quota_us"))?,
                    &read(&dir.join("cpu.cfs_period_us"))?,
                )
            })
        } else {
            None
        };
        let memory_limit = if controllers.is_empty() {
            mounts
                .unified()
                .and_then(|root| read(&root.join(rel).join("memory.max")))
                .as_deref()
                .and_then(parse_memory_limit)
        } else if controllers.split(',').any(|c| c == "memory") {
            mounts
                .v1("memory")
                .and_then(|root| read(&root.join(rel).join("memory.limit_in_bytes")))
                .as_deref()
                .and_then(parse_memory_limit)
        } else {
            None
        };
        if let Some(c) = cpu_limit {
            cpu_millis = cpu_millis.min(c);
        }
        if let Some(m) = memory_limit {
            memory_bytes = memory_bytes.min(m);
        }
    }
    Capacity {
        cpu_millis,
        memory_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limits() {
        assert_eq!(
            parse_meminfo_total("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24_576_000 * 1024)
        );
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(1500));
        assert_eq!(parse_cfs("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs("50000\n", "100000\n"), Some(500));
        assert_eq!(parse_memory_limit("max\n"), None);
        assert_eq!(parse_memory_limit("9223372036854771712\n"), None);
        assert_eq!(parse_memory_limit("1073741824\n"), Some(1 << 30));
        assert_eq!(
            parse_proc_cgroup("4:memory:/a/b\n0::/\n"),
            vec![
                ("memory".to_owned(), "/a/b".to_owned()),
                (String::new(), "/".to_owned())
            ]
        );
    }
}
