//! Tests that need root say so loudly: they fail in CI and announce a skip elsewhere.
use std::path::Path;

/// True when the calling test can create namespaces, load eBPF and mount bpffs.
/// Otherwise: panics when `CI=true` (a privileged test must never pass
/// silently there), or prints a loud SKIPPED banner and returns false.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let problem = if !root {
        Some("not running as root".to_owned())
    } else {
        ensure_bpffs()
            .err()
            .map(|e| format!("bpffs unavailable: {e:#}"))
    };
    let Some(problem) = problem else { return true };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: cannot run in CI: {problem} (run as root; see scripts/bootstrap.sh)");
    }
    eprintln!(
        "\n!!!!!!!! SKIPPED {test}: {problem}. Run the tests as root (scripts/test.sh). !!!!!!!!\n"
    );
    false
}

/// Mounts bpffs on /sys/fs/bpf if it is not mounted yet.
pub fn ensure_bpffs() -> crate::error::Result<()> {
    use crate::error::DevError;
    let mounts =
        std::fs::read_to_string("/proc/mounts").map_err(DevError::io("reading", "/proc/mounts"))?;
    if mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf "))
    {
        return Ok(());
    }
    std::fs::create_dir_all(Path::new("/sys/fs/bpf"))
        .map_err(DevError::io("creating", "/sys/fs/bpf"))?;
    crate::cmd::run(std::process::Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))?;
    Ok(())
}
