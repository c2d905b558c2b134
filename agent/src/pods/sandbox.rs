//! A pod's sandbox: its network namespace with its address (through the
//! CNI plugin), its directory, its cgroup level. Made once per pod, adopted
//! as it is by a restarted agent, torn down after its containers.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use tracing::{debug, warn};

use super::NodeContext;
use crate::network::{NetnsError, NetworkError, PodAttachment};

/// Setting a sandbox up failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The namespace.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// The CNI plugin.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// A directory.
    #[error("pod directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A pod's network namespace and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// The namespace file.
    pub netns: PathBuf,
    /// The pod's address.
    pub ip: Ipv4Addr,
}

/// Who a sandbox is for.
#[derive(Debug, Clone)]
pub struct PodId {
    /// The pod's uid.
    pub uid: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl PodId {
    /// The name of its network namespace file ([`pod_netns_name`]).
    pub fn netns_name(&self, node: &str) -> String {
        pod_netns_name(node, &self.uid)
    }
}

/// The name of the network namespace file of pod `uid` on `node`:
/// `<node>-<uid>`.
pub fn pod_netns_name(node: &str, uid: &str) -> String {
    format!("{node}-{uid}")
}

/// Makes (or adopts) the sandbox of `pod`.
pub async fn ensure(ctx: &NodeContext, pod: &PodId) -> Result<Sandbox, SandboxError> {
    let dir = ctx.config.pod_dir(&pod.uid);
    std::fs::create_dir_all(&dir).map_err(|source| SandboxError::Dir {
        path: dir.clone(),
        source,
    })?;
    let name = pod.netns_name(&ctx.config.node);
    let existed = ctx.netns.path(&name).exists();
    let netns = {
        let ns = ctx.netns.clone();
        let for_task = name.clone();
        tokio::task::spawn_blocking(move || ns.create(&for_task))
            .await
            .map_err(|e| NetnsError::Sys {
                path: PathBuf::from(&name),
                what: "the namespace task",
                source: std::io::Error::other(e),
            })??
    };
    if existed && let Some(ip) = ctx.network.cached_ip(&pod.uid) {
        debug!(pod = %format!("{}/{}", pod.namespace, pod.name), %ip, "sandbox adopted");
        return Ok(Sandbox { netns, ip });
    }
    let ip = ctx
        .network
        .add(&PodAttachment {
            uid: &pod.uid,
            namespace: &pod.namespace,
            name: &pod.name,
            netns: &netns,
        })
        .await?;
    Ok(Sandbox { netns, ip })
}

/// Tears a pod's sandbox down: CNI DEL, the namespace, the cgroup level,
/// the pod directory. Carries on past failures and reports them all.
pub async fn teardown(ctx: &NodeContext, pod: &PodId) -> Vec<String> {
    let mut errors = Vec::new();
    let name = pod.netns_name(&ctx.config.node);
    let path = ctx.netns.path(&name);
    let netns = if path.exists() { path } else { PathBuf::new() };
    if let Err(e) = ctx
        .network
        .del(&PodAttachment {
            uid: &pod.uid,
            namespace: &pod.namespace,
            name: &pod.name,
            netns: &netns,
        })
        .await
    {
        errors.push(e.to_string());
    }
    if let Err(e) = ctx.netns.remove(&name) {
        errors.push(e.to_string());
    }
    if let Err(e) = ctx.cgroups.remove_pod(&pod.uid) {
        errors.push(e.to_string());
    }
    let dir = ctx.config.pod_dir(&pod.uid);
    if let Err(e) =
        crate::pod::volumes::remove_volumes(&dir, &crate::pod::volume_ops::HostVolumeOps)
    {
        errors.push(format!("volumes of {}/{}: {e}", pod.namespace, pod.name));
    }
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            errors.push(format!("removing {}: {e}", dir.display()));
        }
        _ => {}
    }
    for e in &errors {
        warn!(pod = %format!("{}/{}", pod.namespace, pod.name), error = %e, "sandbox teardown");
    }
    errors
}
