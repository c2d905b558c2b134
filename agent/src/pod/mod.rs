//! The pod logic as plain functions and small state machines, unit-tested
//! without root: what the kubelet decides, apart from doing it.
//!
//! - [`env`]: a container's environment (values, ConfigMap/Secret refs, `$(VAR)`),
//!   over the Service variables of [`service_env`].
//! - [`spec`]: the OCI runtime spec of a container (args, env, user, mounts,
//!   namespaces, capabilities, resources), with [`command`] for args, env
//!   and user, [`resources`] for the cgroup limits, [`etc_files`] for
//!   `/etc/hosts` and `/etc/hostname` and [`dns`] for `/etc/resolv.conf`.
//! - [`volumes`]: ConfigMap, Secret and emptyDir volumes planned, written
//!   atomically ([`atomic_writer`]) on disk or tmpfs ([`volume_ops`]), and
//!   bind-mounted ([`mounts`]).
//! - [`backoff`] and [`restart`]: CrashLoopBackOff and the restart policy.
//! - [`probe`]: probe schedules and results; [`probe_run`]: HTTP, TCP and exec runners.
//! - [`status`]: the pod's status (phase, conditions, container states).

use jotasu_api::Pod;
use jotasu_api::meta::DEFAULT_NAMESPACE;

pub mod atomic_writer;
pub mod backoff;
pub mod claims;
pub mod command;
pub mod dns;
pub mod downward;
pub mod env;
pub mod etc_files;
pub mod expand;
pub mod init;
pub mod lifecycle;
pub mod mounts;
pub mod probe;
pub mod probe_run;
pub mod pull_secrets;
pub mod resources;
pub mod restart;
pub mod seccomp;
pub mod security;
pub mod service_env;
pub mod spec;
pub mod status;
pub mod volume_files;
pub mod volume_ops;
pub mod volumes;

#[cfg(test)]
mod volumes_root_test;

/// The pod's namespace (`default` when unset).
pub fn pod_namespace(pod: &Pod) -> &str {
    pod.metadata
        .namespace
        .as_deref()
        .unwrap_or(DEFAULT_NAMESPACE)
}

/// The pod as the kubelet names it in messages: `name_namespace(uid)`.
pub fn pod_display(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name(),
        pod_namespace(pod),
        pod.metadata.uid.as_deref().unwrap_or("")
    )
}
