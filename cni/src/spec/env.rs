//! The environment a runtime invokes a plugin with (`CNI_*`).
use std::path::PathBuf;

use super::{CniError, Code};

/// The verb of an invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Attach the container to the network.
    Add,
    /// Detach it; succeeds when there is nothing to remove.
    Del,
    /// Verify that the attachment is as ADD left it.
    Check,
    /// Report the supported versions.
    Version,
    /// Report whether ADD can be served (1.1).
    Status,
    /// Release whatever belongs to no valid attachment (1.1).
    Gc,
}

impl Command {
    /// The `CNI_COMMAND` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Version => "VERSION",
            Self::Status => "STATUS",
            Self::Gc => "GC",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Self::Add,
            Self::Del,
            Self::Check,
            Self::Version,
            Self::Status,
            Self::Gc,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// Whether the verb names one attachment (container id and interface).
    pub fn per_attachment(self) -> bool {
        matches!(self, Self::Add | Self::Del | Self::Check)
    }
}

/// `CNI_ARGS`: the keys jotasu knows (those containerd's CRI passes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// `K8S_POD_NAMESPACE`.
    pub pod_namespace: Option<String>,
    /// `K8S_POD_NAME`.
    pub pod_name: Option<String>,
    /// `K8S_POD_INFRA_CONTAINER_ID`.
    pub infra_container_id: Option<String>,
    /// `K8S_POD_UID`.
    pub pod_uid: Option<String>,
    /// The variable as given, passed on unchanged to delegated plugins.
    pub raw: String,
}

impl CniArgs {
    /// Parses `K=V;K=V`. An unknown key is an error unless `IgnoreUnknown`
    /// is `1` or `true`, as in the reference plugins.
    pub fn parse(s: &str) -> Result<Self, CniError> {
        let mut me = Self {
            raw: s.to_owned(),
            ..Self::default()
        };
        let mut unknown = Vec::new();
        let mut ignore_unknown = false;
        for pair in s.split(';').filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(CniError::new(
                    Code::InvalidEnvironment,
                    format!("CNI_ARGS: {pair:?} is not KEY=VALUE"),
                ));
            };
            let slot = match k {
                "K8S_POD_NAMESPACE" => &mut me.pod_namespace,
                "K8S_POD_NAME" => &mut me.pod_name,
                "K8S_POD_INFRA_CONTAINER_ID" => &mut me.infra_container_id,
                "K8S_POD_UID" => &mut me.pod_uid,
                "IgnoreUnknown" => {
                    ignore_unknown = matches!(v.to_ascii_lowercase().as_str(), "1" | "true");
                    continue;
                }
                _ => {
                    unknown.push(k.to_owned());
                    continue;
                }
            };
            *slot = Some(v.to_owned());
        }
        if !unknown.is_empty() && !ignore_unknown {
            return Err(CniError::new(
                Code::InvalidEnvironment,
                format!(
                    "CNI_ARGS: unknown key(s) {}; add IgnoreUnknown=1 to pass keys for other plugins",
                    unknown.join(", ")
                ),
            ));
        }
        Ok(me)
    }
}

/// One invocation: the verb and what the environment says it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invocation {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (empty for VERSION, STATUS and GC).
    pub container_id: String,
    /// `CNI_NETNS`: a path such as `/run/netns/NAME` or `/proc/PID/ns/net`.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`: the interface to create inside the container.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: CniArgs,
    /// `CNI_PATH`: where delegated plugins are looked up.
    pub path: Vec<PathBuf>,
}

impl Invocation {
    /// Reads the invocation from the process environment.
    pub fn from_env() -> Result<Self, CniError> {
        Self::parse(|k| std::env::var(k).ok())
    }

    /// Reads the invocation from `get` (a variable's value, if set),
    /// checking what the verb requires.
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<Self, CniError> {
        let missing = |k: &str, cmd: &str| {
            CniError::new(
                Code::InvalidEnvironment,
                format!("{k} is required for {cmd} but not set"),
            )
        };
        let raw = get("CNI_COMMAND").filter(|s| !s.is_empty());
        let raw = raw.ok_or_else(|| {
            CniError::new(
                Code::InvalidEnvironment,
                "CNI_COMMAND is not set: jotasu-cni is a CNI plugin, run by a CNI runtime \
                 (ADD, DEL, CHECK, VERSION, STATUS or GC)",
            )
        })?;
        let command = Command::parse(&raw).ok_or_else(|| {
            CniError::new(
                Code::InvalidEnvironment,
                format!("CNI_COMMAND {raw:?} is not one of ADD, DEL, CHECK, VERSION, STATUS, GC"),
            )
        })?;
        let verb = command.as_str();
        let nonempty = |k: &str| get(k).filter(|s| !s.is_empty());
        let (mut container_id, mut ifname, mut netns) = (String::new(), String::new(), None);
        if command.per_attachment() {
            container_id =
                nonempty("CNI_CONTAINERID").ok_or_else(|| missing("CNI_CONTAINERID", verb))?;
            validate_container_id(&container_id)?;
            ifname = nonempty("CNI_IFNAME").ok_or_else(|| missing("CNI_IFNAME", verb))?;
            validate_ifname(&ifname)?;
            netns = nonempty("CNI_NETNS").map(PathBuf::from);
            if netns.is_none() && command != Command::Del {
                return Err(missing("CNI_NETNS", verb));
            }
        }
        let path: Vec<PathBuf> = get("CNI_PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        if path.is_empty() && (command.per_attachment() || command == Command::Gc) {
            return Err(missing("CNI_PATH", verb));
        }
        let args = CniArgs::parse(&get("CNI_ARGS").unwrap_or_default())?;
        Ok(Self {
            command,
            container_id,
            netns,
            ifname,
            args,
            path,
        })
    }
}

/// The spec's rule for container IDs (libcni's for network names too):
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// A container ID by [`valid_name`] (code 4 otherwise).
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if valid_name(id) {
        Ok(())
    } else {
        Err(CniError::new(
            Code::InvalidEnvironment,
            format!(
                "CNI_CONTAINERID {id:?} is invalid: letters, digits, '_', '.' and '-' only, starting with a letter or digit"
            ),
        ))
    }
}

/// The kernel's rules for an interface name (code 4 otherwise).
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let ok = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            Code::InvalidEnvironment,
            format!(
                "CNI_IFNAME {name:?} is not a valid interface name (at most 15 characters, no '/', ':' or spaces)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Invocation, CniError> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Invocation::parse(|k| m.get(k).cloned())
    }

    const ADD: [(&str, &str); 5] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc-1"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
    ];

    #[test]
    fn reads_a_full_add() {
        let mut vars = ADD.to_vec();
        vars.push((
            "CNI_ARGS",
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;FOO=bar",
        ));
        let inv = parse(&vars).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(inv.command, Command::Add);
        assert_eq!(inv.path.len(), 2);
        assert_eq!(inv.args.pod_name.as_deref(), Some("web-0"));
    }

    #[test]
    fn refuses_what_the_verb_needs_but_lacks() {
        for drop in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"] {
            let vars: Vec<_> = ADD.iter().copied().filter(|(k, _)| *k != drop).collect();
            let e = parse(&vars).err().unwrap_or_default();
            assert_eq!(e.code, Code::InvalidEnvironment);
            assert!(e.msg.contains(drop), "{e}");
        }
        let mut del: Vec<_> = ADD
            .iter()
            .copied()
            .filter(|(k, _)| *k != "CNI_NETNS")
            .collect();
        del[0] = ("CNI_COMMAND", "DEL");
        assert!(parse(&del).is_ok(), "DEL needs no netns");
        assert!(parse(&[("CNI_COMMAND", "VERSION")]).is_ok());
        assert_eq!(
            parse(&[]).err().unwrap_or_default().code,
            Code::InvalidEnvironment
        );
        assert_eq!(
            parse(&[("CNI_COMMAND", "ATTACH")])
                .err()
                .unwrap_or_default()
                .code,
            Code::InvalidEnvironment
        );
    }

    #[test]
    fn refuses_bad_ids_names_and_args() {
        for (k, v) in [
            ("CNI_CONTAINERID", "../etc"),
            ("CNI_IFNAME", "a-very-long-interface"),
            ("CNI_IFNAME", "eth/0"),
            ("CNI_ARGS", "FOO=bar"),
            ("CNI_ARGS", "novalue"),
        ] {
            let mut vars = ADD.to_vec();
            vars.push((k, v));
            let vars: Vec<_> = vars.into_iter().rev().collect();
            let mut seen = std::collections::HashSet::new();
            let vars: Vec<_> = vars.into_iter().filter(|(k, _)| seen.insert(*k)).collect();
            let e = parse(&vars).err().unwrap_or_default();
            assert_eq!(e.code, Code::InvalidEnvironment, "{k}={v}");
        }
    }
}
