//! Running the system tools the harness drives (`ip`, `sysctl`, `iptables`).
use std::process::{Command, Output};

use crate::error::{DevError, Result};

/// Runs `cmd`, returning stdout; a failure names the command and its stderr.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out: Output = cmd.output().map_err(DevError::spawn(format!("{cmd:?}")))?;
    if !out.status.success() {
        return Err(DevError::Command {
            command: format!("{cmd:?}"),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `ip ARGS...`.
pub fn ip(args: &[&str]) -> Result<String> {
    run(Command::new("ip").args(args))
}
