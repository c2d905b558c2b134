//! jotasu's node daemon (`jotasu-agent`), one per node: it registers the
//! node, follows the control plane's view of it through one node-scoped
//! watch, runs the node's pods on containerd (network from `jotasu-cni`,
//! cgroups under the node's subtree), heals them (restarts, probes), keeps
//! the eBPF data plane in step with Services and Endpoints and the overlay's
//! tunnels in step with the Nodes, and reports pod
//! status, heartbeats and metrics back.
//!
//! The kernel, containerd and the control plane sit behind narrow modules
//! (`containerd`, `network`, `cgroup`, `datapath`); the decisions (`pod`:
//! restart backoff, probes, status, the OCI spec) are plain functions.

pub mod cgroup;
pub mod config;
pub mod containerd;
pub mod credentials;
pub mod datapath;
pub mod dns;
pub mod exec;
pub mod external;
pub mod metrics;
pub mod network;
pub mod node;
pub mod oci_runtime;
pub mod overlay;
pub mod pod;
pub mod pods;
pub mod run;
pub mod server;
pub mod views;
pub mod watch;

/// Resolves once `stop` turns true (or its sender is gone). The guard that
/// `wait_for` returns is dropped here, so callers stay `Send`.
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
