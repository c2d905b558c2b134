//! The OCI runtime spec of a pod's container, as containerd's CRI plugin
//! builds it for the kubelet: containerd's default Linux spec (mounts,
//! masked and read-only paths, Docker's default capabilities, deny-all
//! devices that runc completes with its defaults), new pid/ipc/uts/mount
//! namespaces, the pod's network namespace, the process from
//! [`crate::pod::command`], the cgroup limits from [`crate::pod::resources`],
//! and the pod's `/etc` files and volumes as bind mounts.

use std::path::{Component, Path, PathBuf};

use jotasu_api::{Container, Pod};
use oci_spec::OciSpecError;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilities, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount,
    MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};

use crate::containerd::ImageConfig;
use crate::pod::command::{process_args, process_env};
use crate::pod::etc_files::pod_hostname;
use crate::pod::mounts::MountSpec;
use crate::pod::resources::container_limits;
use crate::pod::security::{SecurityError, SecuritySettings, security_settings};

/// The OCI version written in the spec.
pub const OCI_VERSION: &str = "1.0.2-dev";
/// The open-files limit of every container (soft and hard), as
/// containerd's CRI sets it, unless the agent's own hard limit is lower
/// (raising it takes CAP_SYS_RESOURCE, which a nested node may lack).
pub const NOFILE_LIMIT: u64 = 1_048_576;

/// [`NOFILE_LIMIT`], bounded by this process's hard limit.
pub fn nofile_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return NOFILE_LIMIT;
    }
    NOFILE_LIMIT.min(r.rlim_max)
}

/// Docker's and containerd's default capabilities.
pub const DEFAULT_CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Paths hidden from the container (containerd's defaults).
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only in the container (containerd's defaults).
pub const READONLY_PATHS: [&str; 6] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/proc/asound",
];

/// Everything the spec of one container depends on.
#[derive(Debug, Clone)]
pub struct ContainerSetup<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// The container (one of the pod's).
    pub container: &'a Container,
    /// The image's config.
    pub image: &'a ImageConfig,
    /// The container's env from [`crate::pod::env::resolve_env`].
    pub env: Vec<(String, String)>,
    /// Volume mounts from [`crate::pod::mounts::mounts_for`].
    pub mounts: Vec<MountSpec>,
    /// The pod's network namespace (e.g. `/var/run/netns/<name>`).
    pub netns: PathBuf,
    /// The container's cgroup, as runc takes it (a path such as
    /// `/jotasu/node-1/pod<uid>/<id>`, or `slice:prefix:name` with systemd).
    pub cgroups_path: String,
    /// The hostname (empty: [`pod_hostname`]).
    pub hostname: String,
    /// A file to bind-mount on `/etc/resolv.conf`.
    pub resolv_conf: Option<PathBuf>,
    /// A file to bind-mount on `/etc/hosts`.
    pub hosts: Option<PathBuf>,
    /// A file to bind-mount on `/etc/hostname`.
    pub hostname_file: Option<PathBuf>,
    /// `oom_score_adj` (see [`crate::pod::resources::oom_score_adj`]).
    pub oom_score_adj: Option<i32>,
    /// Set memory+swap to the memory limit too, so the container cannot
    /// swap (containerd does when the swap controller exists: cgroup v1
    /// `memory.memsw.limit_in_bytes`, v2 `memory.swap.max`).
    pub limit_swap: bool,
    /// Whether `privileged` containers may run (the agent's `--allow-privileged`).
    pub allow_privileged: bool,
}

/// Why no spec could be built.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Neither the pod nor the image says what to run.
    #[error(
        "container {container:?}: no command specified (the image has no Entrypoint or Cmd; give the container a command)"
    )]
    NoCommand {
        /// The container.
        container: String,
    },
    /// A spec part did not build (a bug, not input).
    #[error("building the OCI spec of container {container:?}: {source}")]
    Build {
        /// The container.
        container: String,
        /// The builder's complaint.
        source: OciSpecError,
    },
    /// The security context forbids the start (runAsNonRoot, privileged).
    #[error(transparent)]
    Security(#[from] SecurityError),
    /// The spec did not serialize.
    #[error("serializing the OCI spec of container {container:?}: {source}")]
    Json {
        /// The container.
        container: String,
        /// serde_json's complaint.
        source: serde_json::Error,
    },
}

/// The runtime spec of the container, as an `oci_spec` value.
pub fn runtime_spec(setup: &ContainerSetup<'_>) -> Result<Spec, SpecError> {
    let name = &setup.container.name;
    let args = process_args(setup.container, setup.image, &setup.env).ok_or_else(|| {
        SpecError::NoCommand {
            container: name.clone(),
        }
    })?;
    let hostname = if setup.hostname.is_empty() {
        pod_hostname(setup.pod)
    } else {
        setup.hostname.clone()
    };
    let security = security_settings(
        setup.pod,
        setup.container,
        &setup.image.user,
        setup.allow_privileged,
    )?;
    assemble(setup, &security, args, hostname).map_err(|source| SpecError::Build {
        container: name.clone(),
        source,
    })
}

/// The runtime spec as JSON (for `NewContainer::spec`).
pub fn runtime_spec_json(setup: &ContainerSetup<'_>) -> Result<serde_json::Value, SpecError> {
    let spec = runtime_spec(setup)?;
    serde_json::to_value(&spec).map_err(|source| SpecError::Json {
        container: setup.container.name.clone(),
        source,
    })
}

fn assemble(
    setup: &ContainerSetup<'_>,
    security: &SecuritySettings,
    args: Vec<String>,
    hostname: String,
) -> Result<Spec, OciSpecError> {
    let caps: oci_spec::runtime::Capabilities = security.capabilities.iter().copied().collect();
    // Set every set explicitly: oci-spec's builders fill unset fields from
    // its own defaults (which include ambient capabilities).
    let mut capabilities = LinuxCapabilities::default();
    capabilities
        .set_bounding(Some(caps.clone()))
        .set_effective(Some(caps.clone()))
        .set_permitted(Some(caps))
        .set_inheritable(None)
        .set_ambient(None);
    // A named user would need the image's /etc/passwd: such images run as
    // root (unless runAsUser says otherwise; runAsNonRoot refuses them).
    let user = security.user;
    let mut process_user = UserBuilder::default().uid(user.uid).gid(user.gid);
    if !security.additional_gids.is_empty() {
        process_user = process_user.additional_gids(security.additional_gids.clone());
    }
    let cwd = if setup.image.working_dir.is_empty() {
        "/".to_owned()
    } else {
        setup.image.working_dir.clone()
    };
    let mut process = ProcessBuilder::default()
        .terminal(false)
        .user(process_user.build()?)
        .args(args)
        .env(process_env(setup.image, &hostname, &setup.env))
        .cwd(cwd)
        .capabilities(capabilities)
        .rlimits(vec![
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .hard(nofile_limit())
                .soft(nofile_limit())
                .build()?,
        ])
        .no_new_privileges(security.no_new_privileges);
    if let Some(adj) = setup.oom_score_adj {
        process = process.oom_score_adj(adj);
    }

    let limits = container_limits(setup.container);
    let mut memory = LinuxMemoryBuilder::default();
    if let Some(limit) = limits.memory_limit {
        memory = memory.limit(limit);
        if setup.limit_swap {
            memory = memory.swap(limit);
        }
    }
    let mut cpu = LinuxCpuBuilder::default()
        .shares(limits.cpu_shares)
        .period(limits.cpu_period);
    if let Some(quota) = limits.cpu_quota {
        cpu = cpu.quota(quota);
    }
    let resources = LinuxResourcesBuilder::default()
        .devices(vec![
            LinuxDeviceCgroupBuilder::default()
                .allow(security.privileged)
                .access("rwm")
                .build()?,
        ])
        .memory(memory.build()?)
        .cpu(cpu.build()?)
        .build()?;

    let ns = |typ| LinuxNamespaceBuilder::default().typ(typ).build();
    let namespaces = vec![
        ns(LinuxNamespaceType::Pid)?,
        ns(LinuxNamespaceType::Ipc)?,
        ns(LinuxNamespaceType::Uts)?,
        ns(LinuxNamespaceType::Mount)?,
        LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path(setup.netns.clone())
            .build()?,
    ];
    // A privileged container sees /proc and /sys whole (the CRI's
    // WithoutMaskedPaths / WithoutReadonlyPaths).
    let paths = |list: &[&str]| -> Vec<String> {
        if security.privileged {
            Vec::new()
        } else {
            list.iter().map(|p| (*p).to_owned()).collect()
        }
    };
    let mut linux = LinuxBuilder::default();
    if security.seccomp_runtime_default {
        linux = linux.seccomp(crate::pod::seccomp::runtime_default(
            &security.capabilities,
        )?);
    }
    let linux = linux
        .resources(resources)
        .cgroups_path(PathBuf::from(&setup.cgroups_path))
        .namespaces(namespaces)
        .masked_paths(paths(&MASKED_PATHS))
        .readonly_paths(paths(&READONLY_PATHS))
        .build()?;

    SpecBuilder::default()
        .version(OCI_VERSION)
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(security.read_only_root)
                .build()?,
        )
        .hostname(hostname)
        .process(process.build()?)
        .mounts(all_mounts(setup, security)?)
        .linux(linux)
        .build()
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, OciSpecError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>())
        .build()
}

/// A bind mount as the CRI writes it: `rbind`, `rprivate`, `ro` or `rw`.
fn bind(dest: &str, source: &Path, read_only: bool) -> Result<Mount, OciSpecError> {
    let mode = if read_only { "ro" } else { "rw" };
    MountBuilder::default()
        .destination(dest)
        .typ("bind")
        .source(source)
        .options(vec![
            "rbind".to_owned(),
            "rprivate".to_owned(),
            mode.to_owned(),
        ])
        .build()
}

/// containerd's default mounts (without `/run`, as the CRI drops it) and
/// the CRI's cgroup filesystem; `/sys` and the cgroups are read-only
/// unless the container is privileged.
fn default_mounts(privileged: bool) -> Result<Vec<Mount>, OciSpecError> {
    let ro = if privileged { "rw" } else { "ro" };
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", ro])?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", ro],
        )?,
    ])
}

/// Path depth after cleaning (`/a/b/` → 2), for parent-first ordering.
fn depth(dest: &Path) -> usize {
    dest.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count()
}

/// Default mounts, the pod's `/etc` files and the volumes: a mount the pod
/// asks for replaces a default one at the same place, and parents are
/// mounted before their children (the CRI's order).
fn all_mounts(
    setup: &ContainerSetup<'_>,
    security: &SecuritySettings,
) -> Result<Vec<Mount>, OciSpecError> {
    let mut extra = Vec::new();
    // Read-write, as the CRI mounts them unless the root filesystem is read-only.
    let etc_read_only = security.read_only_root;
    let etc = [
        ("/etc/hosts", &setup.hosts),
        ("/etc/resolv.conf", &setup.resolv_conf),
        ("/etc/hostname", &setup.hostname_file),
    ];
    let user_dests: Vec<PathBuf> = setup.mounts.iter().map(|m| clean(&m.destination)).collect();
    for (dest, source) in etc {
        if let Some(source) = source
            && !user_dests.contains(&PathBuf::from(dest))
        {
            extra.push(bind(dest, source, etc_read_only)?);
        }
    }
    for m in &setup.mounts {
        extra.push(bind(&m.destination, &m.source, m.read_only)?);
    }
    let mut all: Vec<Mount> = default_mounts(security.privileged)?
        .into_iter()
        .filter(|d| !user_dests.contains(&clean_path(d.destination())))
        .collect();
    all.extend(extra);
    all.sort_by_key(|m| depth(m.destination()));
    Ok(all)
}

fn clean_path(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        if let Component::Normal(part) = c {
            out.push(part);
        }
    }
    out
}

fn clean(dest: &str) -> PathBuf {
    clean_path(Path::new(dest))
}

#[cfg(test)]
#[path = "spec_tests.rs"]
pub(crate) mod tests;
