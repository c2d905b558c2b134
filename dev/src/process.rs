//! [`Spawned`]: a child process killed (by its PID) and reaped on drop.
use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::CommandExt as _,
    process::{Child, Command, Stdio},
};

use crate::error::{DevError, Result};

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
    pub fn until_ready(mut cmd: Command, ready: &str) -> Result<Self> {
        let what = format!("{cmd:?}");
        die_with_spawner(&mut cmd);
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(DevError::spawn(&what))?;
        let mut me = Self { child, what };
        let mut line = String::new();
        if let Some(out) = me.child.stdout.as_mut() {
            // A read error leaves the line empty: reported as not ready.
            let _ = BufReader::new(out).read_line(&mut line);
        }
        if line.trim() != ready {
            return Err(DevError::NotReady {
                what: me.what.clone(),
                why: format!("its first line was {line:?}, not {ready:?}"),
            });
        }
        Ok(me)
    }

    /// Spawns `cmd` with no stdio (a server that prints nothing useful);
    /// killed if the spawning thread dies, as [`Self::until_ready`].
    pub fn start(mut cmd: Command) -> Result<Self> {
        let what = format!("{cmd:?}");
        die_with_spawner(&mut cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(DevError::spawn(&what))?;
        Ok(Self { child, what })
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

/// Stops a child this process spawned and has not reaped: SIGTERM, up to
/// `grace` to exit, then SIGKILL; reaps it either way. Its exit status if it
/// exited within the grace, None if it had to be killed.
pub fn terminate(
    child: &mut Child,
    grace: std::time::Duration,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    if let Some(status) = child.try_wait()? {
        return Ok(Some(status));
    }
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill()?;
    child.wait()?;
    Ok(None)
}

/// A process recorded by PID and start time, so that a PID the kernel
/// recycled for another process is never mistaken for it (and never killed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessRecord {
    /// The PID.
    pub pid: u32,
    /// Its start time (clock ticks after boot, `/proc/<pid>/stat` field 22).
    pub start_time: u64,
}

impl ProcessRecord {
    /// The running process `pid`, if there is one.
    pub fn of(pid: u32) -> Option<Self> {
        let (state, start_time) = read_stat(pid)?;
        (state != 'Z').then_some(Self { pid, start_time })
    }

    /// Whether this very process still runs (a zombie does not).
    pub fn alive(&self) -> bool {
        read_stat(self.pid).is_some_and(|(state, start)| state != 'Z' && start == self.start_time)
    }

    /// Sends `signal` if this very process still runs; whether it was sent.
    pub fn signal(&self, signal: libc::c_int) -> bool {
        let Ok(pid) = libc::pid_t::try_from(self.pid) else {
            return false;
        };
        // SAFETY: kill(2) on a PID just checked to be the recorded process
        // (the window in which it could exit and be recycled is negligible).
        self.alive() && unsafe { libc::kill(pid, signal) } == 0
    }

    /// SIGTERM, then SIGKILL if it still runs after `grace`; waits (at most
    /// `grace` again) until it is gone. Whether it is gone.
    pub fn stop(&self, grace: std::time::Duration) -> bool {
        if !self.signal(libc::SIGTERM) {
            return !self.alive();
        }
        if self.wait_gone(grace) {
            return true;
        }
        self.signal(libc::SIGKILL);
        self.wait_gone(grace)
    }

    /// Polls until the process is gone; whether it went within `limit`.
    pub fn wait_gone(&self, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while self.alive() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        true
    }
}

/// Whether process `pid` is gone: no such process, or a zombie nobody
/// reaped yet (it has exited; its children saw it die).
pub fn process_gone(pid: u32) -> bool {
    read_stat(pid).is_none_or(|(state, _)| state == 'Z')
}

/// The state letter and start time of `/proc/<pid>/stat`.
fn read_stat(pid: u32) -> Option<(char, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Parses a `/proc/<pid>/stat` line: the state (field 3) and start time
/// (field 22). The command name (field 2) may hold spaces and parentheses,
/// so fields are counted after its last `)`.
pub fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields 4..=21 lie between the state and the start time.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_whatever_the_command_name() {
        let tail = "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 9 9 9";
        assert_eq!(
            parse_stat(&format!("77 (jotasu-agent) S {tail}")),
            Some(('S', 424_242))
        );
        assert_eq!(
            parse_stat(&format!("77 (a) b) (c) Z {tail}")),
            Some(('Z', 424_242))
        );
        assert_eq!(parse_stat("77 (x) S 1 2"), None);
    }

    #[test]
    fn this_process_is_recorded_and_alive() {
        let me = ProcessRecord::of(std::process::id()).expect("this process");
        assert!(me.alive());
        assert!(!process_gone(me.pid));
        let recycled = ProcessRecord {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!recycled.alive(), "another start time is another process");
        assert!(!recycled.signal(0));
    }
}
