//! `jotactl dev …`: local multi-node clusters. The work is done by the
//! `jotasu-dev` binary (shipped beside jotactl; found next to it, else on
//! PATH), which jotactl runs in its place, as kubectl runs its plugins.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::Command;

use crate::cli::{DevArgs, GlobalArgs};
use crate::report::CtlError;

const BINARY: &str = "jotasu-dev";

fn binary() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(BINARY)))
        .filter(|p| p.exists());
    beside.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(BINARY))
                .find(|p| p.exists())
        })
    })
}

/// Replaces jotactl with `jotasu-dev ARGS` (returns only on failure).
pub fn run(global: &GlobalArgs, args: &DevArgs) -> Result<(), CtlError> {
    let bin = binary().ok_or_else(|| {
        CtlError::Usage(format!(
            "{BINARY} was not found next to jotactl or on PATH: `cargo build --release --workspace --bins` builds it"
        ))
    })?;
    let mut cmd = Command::new(&bin);
    cmd.args(&args.args);
    if let Some(config) = &global.config {
        cmd.arg("--config").arg(config);
    }
    let err = cmd.exec();
    Err(CtlError::Usage(format!("running {}: {err}", bin.display())))
}
