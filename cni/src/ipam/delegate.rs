//! Delegating IPAM to a standard plugin (`host-local`, `dhcp`...) as the
//! reference plugins do through libcni's `DelegateAdd`/`DelegateDel`: the
//! plugin named by `ipam.type` is found in `CNI_PATH` and run with the
//! same verb, the same `CNI_*` environment and, on stdin, the calling
//! plugin's whole network config, unchanged.
use crate::{
    exec::{PluginEnv, find_plugin, invoke},
    spec::{CniError, CniResult, Code, Command},
};

/// Runs IPAM plugin `ipam_type` for `command` with `netconf` (the calling
/// plugin's stdin, byte for byte) and `env`. ADD returns the plugin's
/// result; DEL, CHECK, GC, STATUS (and VERSION) return `None`. A failing
/// plugin's CNI error is returned as it reported it (its code kept,
/// prefixed with its name); unparsable ADD output is code 6.
pub fn delegate(
    command: Command,
    ipam_type: &str,
    netconf: &[u8],
    env: &PluginEnv<'_>,
) -> Result<Option<CniResult>, CniError> {
    let plugin = find_plugin(ipam_type, env.path)?;
    let stdout = invoke(&plugin, command, env, netconf)?;
    if command != Command::Add {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_slice(&stdout).map_err(|e| {
        CniError::new(
            Code::Decode,
            format!(
                "IPAM plugin {ipam_type:?} ({}) printed no JSON result for ADD",
                plugin.display()
            ),
        )
        .with_details(e)
    })?;
    CniResult::from_value(&value).map(Some).map_err(|mut e| {
        e.msg = format!("IPAM plugin {ipam_type:?}: {}", e.msg);
        e
    })
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write as _,
        path::{Path, PathBuf},
    };

    use super::*;

    /// Writes an executable script through a child `sh`: written by this
    /// (multi-threaded) test process, its write descriptor could leak into
    /// a child another test forks at that moment and make exec fail with
    /// ETXTBSY ("Text file busy") until that child execs.
    fn script(dir: &Path, name: &str, body: &str) {
        let mut sh = std::process::Command::new("sh")
            .args(["-c", r#"cat > "$0" && chmod 755 "$0""#])
            .arg(dir.join(name))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = sh.stdin.take().unwrap();
        stdin
            .write_all(format!("#!/bin/sh\n{body}\n").as_bytes())
            .unwrap();
        drop(stdin);
        assert!(sh.wait().unwrap().success());
    }

    fn env<'a>(path: &'a [PathBuf], netns: &'a Path) -> PluginEnv<'a> {
        PluginEnv {
            container_id: "c1",
            netns: Some(netns),
            ifname: "eth0",
            args: "",
            path,
        }
    }

    #[test]
    fn passes_verb_env_and_stdin_and_reads_the_add_result() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        // Records what it got; prints a canned result.
        script(
            dir.path(),
            "fake-ipam",
            &format!(
                r#"cat > {log}.stdin
printf '%s %s %s\n' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_IFNAME" >> {log}
[ "$CNI_COMMAND" = ADD ] && echo '{{"cniVersion":"1.0.0","ips":[{{"address":"10.9.0.5/24","gateway":"10.9.0.1"}}]}}'
exit 0"#,
                log = log.display()
            ),
        );
        let path = vec![dir.path().to_path_buf()];
        let env = env(&path, dir.path());
        let conf =
            br#"{"cniVersion":"1.0.0","name":"n","type":"jotasu-cni","ipam":{"type":"fake-ipam"}}"#;
        let r = delegate(Command::Add, "fake-ipam", conf, &env)
            .unwrap()
            .unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.9.0.5/24");
        assert_eq!(
            r.ips[0].gateway.map(|g| g.to_string()).as_deref(),
            Some("10.9.0.1")
        );
        assert_eq!(
            std::fs::read(format!("{}.stdin", log.display())).unwrap(),
            conf
        );
        for command in [Command::Check, Command::Del] {
            assert_eq!(delegate(command, "fake-ipam", conf, &env).unwrap(), None);
        }
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "ADD c1 eth0\nCHECK c1 eth0\nDEL c1 eth0\n"
        );
    }

    #[test]
    fn reports_missing_failing_and_garbled_plugins() {
        let dir = tempfile::tempdir().unwrap();
        script(
            dir.path(),
            "full",
            r#"cat >/dev/null; echo '{"cniVersion":"1.0.0","code":11,"msg":"busy"}'; exit 1"#,
        );
        script(dir.path(), "garbled", "cat >/dev/null; echo not json");
        script(
            dir.path(),
            "wrong",
            r#"cat >/dev/null; echo '{"ips":[{"address":"x"}]}'"#,
        );
        let path = vec![dir.path().to_path_buf()];
        let env = env(&path, dir.path());
        let code = |t: &str| delegate(Command::Add, t, b"{}", &env).map_err(|e| (e.code, e.msg));
        assert_eq!(
            code("full"),
            Err((Code::TryAgainLater, "full: busy".into()))
        );
        assert!(matches!(code("garbled"), Err((Code::Decode, m)) if m.contains("garbled")));
        assert!(matches!(code("wrong"), Err((Code::Decode, m)) if m.contains("wrong")));
        assert!(matches!(code("absent"), Err((Code::Io, m)) if m.contains("absent")));
        // DEL ignores the output, as libcni does.
        assert_eq!(delegate(Command::Del, "garbled", b"{}", &env), Ok(None));
    }

    #[test]
    fn host_local_allocates_and_releases() {
        let cni_dir = Path::new("/usr/lib/cni");
        if !cni_dir.join("host-local").is_file() {
            println!(
                "SKIPPED host_local_allocates_and_releases: /usr/lib/cni/host-local is absent"
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let conf = serde_json::json!({
            "cniVersion": "1.0.0", "name": "hl", "type": "jotasu-cni",
            "ipam": {"type": "host-local", "subnet": "10.99.0.0/24", "dataDir": dir.path()}
        })
        .to_string();
        let path = vec![cni_dir.to_path_buf()];
        let env = env(&path, dir.path());
        let r = delegate(Command::Add, "host-local", conf.as_bytes(), &env)
            .unwrap()
            .unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.99.0.2/24");
        let file = dir.path().join("hl/10.99.0.2");
        assert!(std::fs::read_to_string(&file).unwrap().starts_with("c1"));
        // Unlike the built-in allocator, host-local refuses a second ADD of
        // the same attachment (its code 999 kept, its name prefixed).
        let again = delegate(Command::Add, "host-local", conf.as_bytes(), &env).unwrap_err();
        assert!(
            again.msg.starts_with("host-local: ") && again.msg.contains("duplicate"),
            "{again}"
        );
        let other = PluginEnv {
            container_id: "c2",
            ..env.clone()
        };
        let r2 = delegate(Command::Add, "host-local", conf.as_bytes(), &other)
            .unwrap()
            .unwrap();
        assert_eq!(r2.ips[0].address.to_string(), "10.99.0.3/24");
        assert_eq!(
            delegate(Command::Del, "host-local", conf.as_bytes(), &env),
            Ok(None)
        );
        assert!(!file.exists());
        // DEL of nothing succeeds.
        assert_eq!(
            delegate(Command::Del, "host-local", conf.as_bytes(), &env),
            Ok(None)
        );
    }
}
