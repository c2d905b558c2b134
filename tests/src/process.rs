//! [`Spawned`]: a child process killed (by its PID) and reaped on drop.
use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    process::{Child, Command, Stdio},
};

use anyhow::{Context as _, bail};

/// A child process this harness started. Dropping it kills it by PID.
#[derive(Debug)]
pub struct Spawned {
    child: Child,
    what: String,
}

impl Spawned {
    /// Spawns `cmd` with piped stdout and waits for its first line, which
    /// must equal `ready` (servers print it once they listen). The child is
    /// killed if the spawning thread dies: spawn from a long-lived thread.
    pub fn until_ready(mut cmd: Command, ready: &str) -> anyhow::Result<Self> {
        let what = format!("{cmd:?}");
        die_with_spawner(&mut cmd);
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("spawning {what}"))?;
        let mut me = Self { child, what };
        let mut line = String::new();
        let out = me.child.stdout.as_mut().context("stdout is piped")?;
        BufReader::new(out).read_line(&mut line)?;
        if line.trim() != ready {
            bail!("{} did not become ready: first line {line:?}", me.what);
        }
        Ok(me)
    }

    /// The underlying child.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Makes the child get SIGKILL when the thread that spawns it dies, so a
/// killed harness leaves no server behind.
pub fn die_with_spawner(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
