//! Running the system tools the harness drives (`ip`, `sysctl`, `iptables`).
use std::process::{Command, Output};

use anyhow::{Context as _, bail};

/// Runs `cmd`, returning stdout; a failure names the command and its stderr.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out: Output = cmd.output().with_context(|| format!("spawning {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip ARGS...`.
pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    run(Command::new("ip").args(args))
}
