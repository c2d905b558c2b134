//! Finding the binaries of this workspace a cluster runs.
use std::path::PathBuf;

use crate::error::{DevError, Result};

/// A binary of this workspace: `$env_var` if set, else next to the running
/// executable (or in its parent, for test binaries in `target/*/deps`),
/// else on `PATH` (installed binaries).
pub fn workspace_bin(name: &str, env_var: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(DevError::io("finding", "this executable"))?;
    let dir = exe.parent().unwrap_or(std::path::Path::new("/"));
    let path = std::env::var_os("PATH").unwrap_or_default();
    [dir.join(name), dir.join("..").join(name)]
        .into_iter()
        .chain(std::env::split_paths(&path).map(|d| d.join(name)))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            DevError::Invalid(format!(
                "{name} not found next to this executable or on PATH \
                 (set {env_var}, or `cargo build --workspace --bins`)"
            ))
        })
}
