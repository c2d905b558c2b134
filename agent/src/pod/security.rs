//! A container's security settings as the kubelet and containerd's CRI
//! derive them: the pod's `securityContext` under the container's, the
//! user and groups (`runAsUser`, `runAsGroup`, `fsGroup`,
//! `supplementalGroups`), the `runAsNonRoot` check with the kubelet's
//! words, capabilities (defaults, then `ALL`, then single adds and drops),
//! `allowPrivilegeEscalation` (no_new_privileges), `readOnlyRootFilesystem`,
//! `seccompProfile` (the container's over the pod's; RuntimeDefault is
//! [`crate::pod::seccomp`], privileged containers run Unconfined as under
//! containerd's CRI), and `privileged` (refused unless the agent allows it).

use std::str::FromStr as _;

use jotasu_api::kinds::security::CAPABILITY_NAMES;
use jotasu_api::{Container, Pod};
use oci_spec::runtime::Capability;

use crate::pod::command::{ProcessUser, image_user, image_user_is_named};
use crate::pod::pod_display;
use crate::pod::spec::DEFAULT_CAPABILITIES;

/// What the OCI spec takes from the security contexts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecuritySettings {
    /// The process's uid and gid.
    pub user: ProcessUser,
    /// Its supplementary groups: `fsGroup`, then `supplementalGroups`.
    pub additional_gids: Vec<u32>,
    /// The bounding, effective and permitted capabilities.
    pub capabilities: Vec<Capability>,
    /// `allowPrivilegeEscalation: false` (and not privileged).
    pub no_new_privileges: bool,
    /// `readOnlyRootFilesystem: true`.
    pub read_only_root: bool,
    /// `privileged: true` (on an agent that allows it).
    pub privileged: bool,
    /// `seccompProfile: RuntimeDefault` (and not privileged).
    pub seccomp_runtime_default: bool,
}

/// Why a container may not start as its security context says. The
/// messages are the kubelet's; they become the container's
/// `CreateContainerConfigError` waiting message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    /// `runAsNonRoot` and the process would run as uid 0.
    #[error(
        "container has runAsNonRoot and image will run as root (pod: {pod:?}, container: {container})"
    )]
    RunsAsRoot {
        /// The pod, as the kubelet names it.
        pod: String,
        /// The container.
        container: String,
    },
    /// `runAsNonRoot` with `runAsUser: 0`.
    #[error("container's runAsUser breaks non-root policy (pod: {pod:?}, container: {container})")]
    RunAsUserIsRoot {
        /// The pod.
        pod: String,
        /// The container.
        container: String,
    },
    /// `runAsNonRoot` and an image user given by name.
    #[error(
        "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: {pod:?}, container: {container})"
    )]
    NonNumericUser {
        /// The image's user.
        user: String,
        /// The pod.
        pod: String,
        /// The container.
        container: String,
    },
    /// `privileged: true` on an agent started without `--allow-privileged`.
    #[error(
        "{path}: Forbidden: privileged containers are not allowed on this node (its jotasu-agent runs without --allow-privileged)"
    )]
    PrivilegedNotAllowed {
        /// The field: `spec.containers[0].securityContext.privileged`.
        path: String,
    },
    /// An id outside 0–2³²-1 (validation keeps them smaller).
    #[error("{field} {value} of container {container} is not a valid id")]
    BadId {
        /// `runAsUser`, `runAsGroup`, `fsGroup`, `supplementalGroups`.
        field: &'static str,
        /// The value.
        value: i64,
        /// The container.
        container: String,
    },
}

/// Every capability Linux and oci-spec know that the agent's own
/// bounding set holds (containerd's CRI takes "all" as the current
/// process's capabilities: a runtime cannot grant more, capset fails).
pub fn all_capabilities() -> Vec<Capability> {
    let bounding = host_bounding_set();
    CAPABILITY_NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding.is_none_or(|b| b & (1u64 << bit) != 0))
        .filter_map(|(_, n)| Capability::from_str(n).ok())
        .collect()
}

/// The agent's capability bounding set (`CapBnd` of `/proc/self/status`),
/// read once; `None` when it cannot be read (then every capability).
pub fn host_bounding_set() -> Option<u64> {
    static SET: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *SET.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        parse_cap_bnd(&status)
    })
}

/// `CapBnd:\t000001ffffffffff` → the mask.
pub fn parse_cap_bnd(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

fn capability(name: &str) -> Option<Capability> {
    let bare = jotasu_api::kinds::security::capability_name(name)?;
    Capability::from_str(bare).ok()
}

/// containerd's `setOCICapabilities`: the defaults; `ALL` in `add` gives
/// every capability, `ALL` in `drop` none; then single adds, then single
/// drops. Names it does not know are left out (validation refuses them).
pub fn capabilities(add: &[String], drop: &[String]) -> Vec<Capability> {
    let mut caps: Vec<Capability> = DEFAULT_CAPABILITIES.to_vec();
    if add.iter().any(|a| a == "ALL") {
        caps = all_capabilities();
    }
    if drop.iter().any(|d| d == "ALL") {
        caps.clear();
    }
    for c in add.iter().filter_map(|a| capability(a)) {
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    let dropped: Vec<Capability> = drop.iter().filter_map(|d| capability(d)).collect();
    caps.retain(|c| !dropped.contains(c));
    caps
}

fn id(field: &'static str, value: i64, container: &Container) -> Result<u32, SecurityError> {
    u32::try_from(value).map_err(|_| SecurityError::BadId {
        field,
        value,
        container: container.name.clone(),
    })
}

/// The container's field path in the pod (`spec.initContainers[1]`, `spec.containers[0]`).
fn container_path(pod: &Pod, container: &Container) -> String {
    let find = |list: &[Container]| list.iter().position(|c| c.name == container.name);
    match find(&pod.spec.init_containers) {
        Some(i) => format!("spec.initContainers[{i}]"),
        None => format!(
            "spec.containers[{}]",
            find(&pod.spec.containers).unwrap_or(0)
        ),
    }
}

/// The container's settings from the pod's and its own security context
/// over the image's user (`image_user`, as the image config gives it).
pub fn security_settings(
    pod: &Pod,
    container: &Container,
    image_user_field: &str,
    allow_privileged: bool,
) -> Result<SecuritySettings, SecurityError> {
    let psc = pod.spec.security_context.clone().unwrap_or_default();
    let csc = container.security_context.clone().unwrap_or_default();
    let privileged = csc.privileged == Some(true);
    if privileged && !allow_privileged {
        return Err(SecurityError::PrivilegedNotAllowed {
            path: format!(
                "{}.securityContext.privileged",
                container_path(pod, container)
            ),
        });
    }
    let run_as_user = csc.run_as_user.or(psc.run_as_user);
    let run_as_group = csc.run_as_group.or(psc.run_as_group);
    let run_as_non_root = csc.run_as_non_root.or(psc.run_as_non_root) == Some(true);
    let image = image_user(image_user_field);
    let uid = match run_as_user {
        Some(u) => id("runAsUser", u, container)?,
        None => image.map_or(0, |u| u.uid),
    };
    // A gid of the image's user is only known for `uid:gid` images; a
    // runAsUser without runAsGroup gets gid 0 (there is no passwd lookup).
    let gid = match (run_as_group, run_as_user) {
        (Some(g), _) => id("runAsGroup", g, container)?,
        (None, Some(_)) => 0,
        (None, None) => image.map_or(0, |u| u.gid),
    };
    if run_as_non_root {
        let pod_name = pod_display(pod);
        let name = container.name.clone();
        if run_as_user == Some(0) {
            return Err(SecurityError::RunAsUserIsRoot {
                pod: pod_name,
                container: name,
            });
        }
        if run_as_user.is_none() && image_user_is_named(image_user_field) {
            return Err(SecurityError::NonNumericUser {
                user: image_user_field.trim().to_owned(),
                pod: pod_name,
                container: name,
            });
        }
        if uid == 0 {
            return Err(SecurityError::RunsAsRoot {
                pod: pod_name,
                container: name,
            });
        }
    }
    let mut additional_gids = Vec::new();
    let groups = psc.fs_group.iter().map(|g| ("fsGroup", *g));
    let groups = groups.chain(
        psc.supplemental_groups
            .iter()
            .map(|g| ("supplementalGroups", *g)),
    );
    for (field, g) in groups {
        let g = id(field, g, container)?;
        if !additional_gids.contains(&g) {
            additional_gids.push(g);
        }
    }
    let caps = csc.capabilities.clone().unwrap_or_default();
    let capabilities = if privileged {
        all_capabilities()
    } else {
        capabilities(&caps.add, &caps.drop)
    };
    Ok(SecuritySettings {
        user: ProcessUser { uid, gid },
        additional_gids,
        capabilities,
        no_new_privileges: !privileged && csc.allow_privilege_escalation == Some(false),
        read_only_root: csc.read_only_root_filesystem == Some(true),
        privileged,
        seccomp_runtime_default: !privileged
            && csc
                .seccomp_profile
                .or(psc.seccomp_profile)
                .is_some_and(|p| p.type_ == "RuntimeDefault"),
    })
}

#[cfg(test)]
#[path = "security_tests.rs"]
mod tests;
