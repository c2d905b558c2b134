//! [`Ctl`]: runs the real `jotactl` binary in a clean environment and
//! captures what it printed and how it exited, for end-to-end tests.
use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::lab::workspace_bin;

/// What one jotactl run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    /// The exit code (-1: killed by a signal).
    pub code: i32,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

impl Run {
    /// Asserts exit 0 and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "jotactl failed: {self:#?}");
        &self.stdout
    }

    /// Asserts exit 1 and returns stderr.
    pub fn failed(&self) -> &str {
        assert_eq!(self.code, 1, "jotactl should have failed: {self:#?}");
        &self.stderr
    }
}

/// Runs jotactl in a clean environment: no `JOTASU_*` variables and a
/// fresh HOME (so no `~/.jotasu/config`), plus `env`.
#[derive(Debug)]
pub struct Ctl {
    bin: PathBuf,
    home: tempfile::TempDir,
}

impl Ctl {
    /// Finds the built jotactl.
    pub fn new() -> Self {
        Self {
            bin: workspace_bin("jotactl", "JOTACTL").expect("jotactl is built"),
            home: tempfile::tempdir().expect("temp HOME"),
        }
    }

    /// `jotactl args…` with extra environment and stdin.
    pub fn run_with(&self, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Run {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env_remove("JOTASU_SERVER")
            .env_remove("JOTASU_CONFIG")
            .env("HOME", self.home.path())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn jotactl");
        if let Some(text) = stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            pipe.write_all(text.as_bytes()).expect("write stdin");
        }
        let out = child.wait_with_output().expect("jotactl runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `jotactl args…`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(&[], args, None)
    }

    /// `jotactl --server URL args…` with `stdin`.
    pub fn pipe(&self, server: &str, args: &[&str], stdin: &str) -> Run {
        let mut all = vec!["--server", server];
        all.extend_from_slice(args);
        self.run_with(&[], &all, Some(stdin))
    }

    /// `jotactl --server URL args…`.
    pub fn at(&self, server: &str, args: &[&str]) -> Run {
        let mut all = vec!["--server", server];
        all.extend_from_slice(args);
        self.run_with(&[], &all, None)
    }
}

impl Default for Ctl {
    fn default() -> Self {
        Self::new()
    }
}
