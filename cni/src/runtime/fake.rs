//! Fake plugins for the tests: one shell script, linked under each plugin
//! name in a temporary directory that serves as `CNI_PATH`. Each call
//! appends `<name> <COMMAND> <CNI_CONTAINERID>` to `calls`, saves its stdin
//! and `CNI_*` environment, and answers from files beside it: `<name>.result`
//! for ADD, `<name>.fail.<COMMAND>` (printed, exit 1) to fail a verb.
#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use serde_json::{Value, json};

const SCRIPT: &str = r#"#!/bin/sh
[ "$CNI_COMMAND" = WARMUP ] && exit 0
d=$(dirname "$0"); n=$(basename "$0")
echo "$n $CNI_COMMAND $CNI_CONTAINERID" >> "$d/calls"
cat > "$d/$n.$CNI_COMMAND.stdin"
env | grep '^CNI_' | sort > "$d/$n.$CNI_COMMAND.env"
if [ -f "$d/$n.fail.$CNI_COMMAND" ]; then cat "$d/$n.fail.$CNI_COMMAND"; exit 1; fi
case "$CNI_COMMAND" in
ADD) cat "$d/$n.result" ;;
VERSION) echo '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}' ;;
esac
exit 0
"#;

/// A directory of fake plugins (removed on drop).
#[derive(Debug)]
pub(super) struct Plugins {
    dir: tempfile::TempDir,
}

impl Plugins {
    /// Fake plugins named `names`.
    pub(super) fn new(names: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fake.sh");
        std::fs::write(&script, SCRIPT).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        warm_up(&script);
        for n in names {
            symlink(&script, dir.path().join(n)).unwrap();
        }
        Self { dir }
    }

    /// `CNI_PATH` for them.
    pub(super) fn path(&self) -> Vec<PathBuf> {
        vec![PathBuf::from("/nonexistent"), self.dir.path().to_path_buf()]
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// What `name` prints on ADD.
    pub(super) fn answer(&self, name: &str, stdout: &str) {
        std::fs::write(self.file(&format!("{name}.result")), stdout).unwrap();
    }

    /// Makes `name` fail `command` with a CNI error.
    pub(super) fn fail(&self, name: &str, command: &str, code: u32, msg: &str) {
        let err = json!({"cniVersion": "1.1.0", "code": code, "msg": msg});
        std::fs::write(
            self.file(&format!("{name}.fail.{command}")),
            err.to_string(),
        )
        .unwrap();
    }

    /// Makes `name` succeed `command` again.
    pub(super) fn heal(&self, name: &str, command: &str) {
        std::fs::remove_file(self.file(&format!("{name}.fail.{command}"))).unwrap();
    }

    /// The calls so far, `<name> <COMMAND> <container id>`, and forgets them.
    pub(super) fn take_calls(&self) -> Vec<String> {
        let calls = std::fs::read_to_string(self.file("calls")).unwrap_or_default();
        let _ = std::fs::remove_file(self.file("calls"));
        calls.lines().map(|l| l.trim().to_owned()).collect()
    }

    /// What `name` last read on stdin for `command`.
    pub(super) fn stdin(&self, name: &str, command: &str) -> Value {
        let bytes = std::fs::read(self.file(&format!("{name}.{command}.stdin"))).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// The `CNI_*` environment `name` last ran `command` with.
    pub(super) fn env(&self, name: &str, command: &str) -> BTreeMap<String, String> {
        std::fs::read_to_string(self.file(&format!("{name}.{command}.env")))
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    /// The fake plugins' directory.
    pub(super) fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Runs the new script until it no longer fails with ETXTBSY: another
/// test thread may have forked while it was open for writing, and its
/// child holds that descriptor until it execs.
fn warm_up(script: &Path) {
    for _ in 0..100 {
        match Command::new(script)
            .env("CNI_COMMAND", "WARMUP")
            .stdin(Stdio::null())
            .status()
        {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => {
                other.unwrap();
                return;
            }
        }
    }
    panic!("{} stayed busy", script.display());
}
