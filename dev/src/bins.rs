//! Finding the binaries of this workspace a cluster runs.
use std::path::PathBuf;

use anyhow::Context as _;

/// A binary of this workspace: `$env_var` if set, else next to the running
/// executable (or in its parent, for test binaries in `target/*/deps`),
/// else on `PATH` (installed binaries).
pub fn workspace_bin(name: &str, env_var: &str) -> anyhow::Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_var) {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("executable has no directory")?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    [dir.join(name), dir.join("..").join(name)]
        .into_iter()
        .chain(std::env::split_paths(&path).map(|d| d.join(name)))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{name} not found next to this executable or on PATH \
                 (set {env_var}, or `cargo build --workspace --bins`)"
            )
        })
}
