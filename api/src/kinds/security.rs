//! Security settings of a pod (`PodSecurityContext`) and of a container
//! (`SecurityContext`), as Kubernetes writes them. The fields jotasu does
//! not implement are kept as given (JSON), so validation can refuse them
//! by name instead of a parse error.

use serde::{Deserialize, Serialize};

/// Security settings for every container of a pod (a container's own
/// [`SecurityContext`] wins field by field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSecurityContext {
    /// The uid the containers' processes run as (default: the image's user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    /// The gid the containers' processes run as (default: the image's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    /// Refuse to start a container whose process would run as uid 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    /// Groups added to every container's process.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supplemental_groups: Vec<i64>,
    /// A group added to every container's process that owns the pod's
    /// volumes (setgid directories, group-writable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<i64>,
    /// `OnRootMismatch` or `Always` (jotasu's volumes are always new, so both
    /// behave the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_group_change_policy: Option<String>,
    /// The seccomp profile: `RuntimeDefault` or `Unconfined` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplemental_groups_policy: Option<String>,
    /// Not supported (no SELinux here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se_linux_options: Option<serde_json::Value>,
    /// Not supported (no SELinux here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se_linux_change_policy: Option<String>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_armor_profile: Option<serde_json::Value>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sysctls: Option<serde_json::Value>,
    /// Not supported (Linux nodes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_options: Option<serde_json::Value>,
}

/// Security settings of one container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityContext {
    /// The uid the process runs as (wins over the pod's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    /// The gid the process runs as (wins over the pod's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    /// Refuse to start if the process would run as uid 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    /// Mount the container's root filesystem read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    /// Whether a process may gain privileges (setuid, file capabilities);
    /// false sets `no_new_privileges` (default true, as Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    /// Every capability and every device (only on agents started with
    /// `--allow-privileged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// Capabilities added to and dropped from the runtime's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// The seccomp profile: `RuntimeDefault` or `Unconfined` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
    /// `Default` only (`Unmasked` is not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proc_mount: Option<String>,
    /// Not supported (no SELinux here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub se_linux_options: Option<serde_json::Value>,
    /// Not supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_armor_profile: Option<serde_json::Value>,
    /// Not supported (Linux nodes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows_options: Option<serde_json::Value>,
}

/// Capabilities added to and dropped from the runtime's default set
/// (names as `NET_ADMIN` or `CAP_NET_ADMIN`; `ALL` in `drop` drops all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capabilities {
    /// Added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    /// Dropped (before the additions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

/// A seccomp profile: `RuntimeDefault`, `Unconfined` or `Localhost`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeccompProfile {
    /// The profile's kind.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// For `Localhost`: the profile's file under the kubelet's seccomp directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localhost_profile: Option<String>,
}

/// The Linux capabilities a container may name (without `CAP_`), as the
/// kernel defines them up to `CAP_CHECKPOINT_RESTORE`.
pub const CAPABILITY_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A capability's name without the `CAP_` prefix, upper-case; `None` when
/// it names no Linux capability (`ALL` is handled by the caller).
pub fn capability_name(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAPABILITY_NAMES.iter().copied().find(|c| *c == bare)
}
