//! Running a CNI plugin binary as a runtime does: found by its `type` in
//! `CNI_PATH`, the verb and attachment in the environment, the config on
//! stdin, a result or a CNI error on stdout. Used by the runtime library
//! and by the plugin when it delegates IPAM.
use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command as Process, Stdio},
};

use crate::spec::{CniError, Code, Command};

/// What a plugin is invoked about (its `CNI_*` environment).
#[derive(Clone, Debug, Default)]
pub struct PluginEnv<'a> {
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_NETNS`.
    pub netns: Option<&'a Path>,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_ARGS`, already joined (`K=V;K=V`).
    pub args: &'a str,
    /// `CNI_PATH`.
    pub path: &'a [PathBuf],
}

/// The executable for plugin `plugin_type` in `path` (first match).
pub fn find_plugin(plugin_type: &str, path: &[PathBuf]) -> Result<PathBuf, CniError> {
    if plugin_type.contains('/') || plugin_type.is_empty() || plugin_type.starts_with('.') {
        return Err(CniError::new(
            Code::InvalidConfig,
            format!("plugin type {plugin_type:?} is not a plugin name"),
        ));
    }
    path.iter()
        .map(|dir| dir.join(plugin_type))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let dirs: Vec<String> = path.iter().map(|p| p.display().to_string()).collect();
            CniError::new(
                Code::Io,
                format!(
                    "plugin {plugin_type:?} not found in CNI_PATH ({}); install it or fix the path",
                    dirs.join(":")
                ),
            )
        })
}

/// Runs `plugin` for `command` with `stdin`, returning its stdout on
/// success. A failing plugin's CNI error is returned as it reported it;
/// a plugin that fails without one gets an I/O error naming it.
pub fn invoke(
    plugin: &Path,
    command: Command,
    env: &PluginEnv<'_>,
    stdin: &[u8],
) -> Result<Vec<u8>, CniError> {
    let name = plugin.display().to_string();
    let io = |what: &str, e: std::io::Error| {
        CniError::new(Code::Io, format!("{what} plugin {name}")).with_details(e)
    };
    let joined = env
        .path
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let mut cmd = Process::new(plugin);
    cmd.env("CNI_COMMAND", command.as_str())
        .env("CNI_CONTAINERID", env.container_id)
        .env("CNI_IFNAME", env.ifname)
        .env("CNI_ARGS", env.args)
        .env("CNI_PATH", joined)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match env.netns {
        Some(ns) => cmd.env("CNI_NETNS", ns),
        None => cmd.env_remove("CNI_NETNS"),
    };
    let mut child = spawn(&mut cmd).map_err(|e| io("starting", e))?;
    let fed = child
        .stdin
        .take()
        .map(|mut s| s.write_all(stdin))
        .unwrap_or(Ok(()));
    let out = child.wait_with_output().map_err(|e| io("waiting for", e))?;
    // A plugin may exit before reading all of stdin; its exit status tells.
    if out.status.success() {
        fed.map_err(|e| io("feeding", e))?;
        return Ok(out.stdout);
    }
    if let Some(mut e) = CniError::from_json(&out.stdout) {
        if !e.msg.contains(&name) {
            e.msg = format!("{}: {}", plugin_type_of(plugin), e.msg);
        }
        return Err(e);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(CniError::new(
        Code::Io,
        format!("plugin {name} failed ({}) without a CNI error", out.status),
    )
    .with_details(stderr.trim()))
}

/// Spawns `cmd`, retrying briefly on ETXTBSY: a plugin binary just written
/// by this process may still be open for writing in a child that another
/// thread forked at that moment, until that child execs.
fn spawn(cmd: &mut Process) -> std::io::Result<std::process::Child> {
    let mut tries = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn plugin_type_of(plugin: &Path) -> String {
    plugin
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        p
    }

    #[test]
    fn finds_runs_and_reports_plugins() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = vec![PathBuf::from("/nonexistent"), dir.path().to_path_buf()];
        script(
            dir.path(),
            "echoenv",
            r#"cat >/dev/null; printf '%s %s %s' "$CNI_COMMAND" "$CNI_IFNAME" "$CNI_NETNS""#,
        );
        script(
            dir.path(),
            "fails",
            r#"echo '{"cniVersion":"1.0.0","code":7,"msg":"bad"}'; exit 1"#,
        );
        script(dir.path(), "crashes", "echo boom >&2; exit 3");
        let env = PluginEnv {
            container_id: "c1",
            netns: Some(Path::new("/run/netns/x")),
            ifname: "eth0",
            args: "",
            path: &path,
        };
        let p = find_plugin("echoenv", &path).unwrap_or_else(|e| panic!("{e}"));
        let out = invoke(&p, Command::Add, &env, b"{}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, b"ADD eth0 /run/netns/x");
        let e = invoke(
            &find_plugin("fails", &path).unwrap_or_else(|e| panic!("{e}")),
            Command::Add,
            &env,
            b"{}",
        );
        assert_eq!(
            e.map_err(|e| (e.code, e.msg)),
            Err((Code::InvalidConfig, "fails: bad".into()))
        );
        let e = invoke(
            &find_plugin("crashes", &path).unwrap_or_else(|e| panic!("{e}")),
            Command::Del,
            &env,
            b"{}",
        )
        .err()
        .unwrap_or_default();
        assert_eq!((e.code, e.details.as_str()), (Code::Io, "boom"));
        assert_eq!(
            find_plugin("missing", &path).err().map(|e| e.code),
            Some(Code::Io)
        );
        assert_eq!(
            find_plugin("../x", &path).err().map(|e| e.code),
            Some(Code::InvalidConfig)
        );
    }
}
