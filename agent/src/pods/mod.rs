//! The pods of this node: a manager that follows the view's pods and one
//! worker per pod that makes it real — sandbox, image, containers, probes,
//! restarts, graceful stop — and reports its status. The decisions come
//! from [`crate::pod`]; this module does them.

mod containers;
mod init;
mod manager;
mod probes;
mod registry;
mod report;
mod sandbox;
mod start;
mod stop;
mod volumes;
mod worker;

use std::sync::Arc;

use jotasu_api::client::Client;
use jotasu_api::{ConfigMap, Secret};

pub use manager::Manager;
pub use registry::{ContainerRecord, PodRecord, Registry};
pub use sandbox::{PodId, Sandbox, pod_netns_name};

use crate::cgroup::NodeCgroups;
use crate::config::Config;
use crate::containerd::Containerd;
use crate::datapath::SharedDatapath;
use crate::metrics::Metrics;
use crate::network::{CniNetwork, PodNetns};
use crate::watch::{ClusterView, SharedView};

/// What every pod worker shares.
#[derive(Debug)]
pub struct NodeContext {
    /// Settings.
    pub config: Config,
    /// The control plane.
    pub client: Client,
    /// containerd, in the node's namespace.
    pub containerd: Containerd,
    /// The pod network.
    pub network: CniNetwork,
    /// Pod network namespaces.
    pub netns: PodNetns,
    /// The node's cgroups.
    pub cgroups: NodeCgroups,
    /// The data plane.
    pub datapath: SharedDatapath,
    /// The cluster as the watch shows it.
    pub view: SharedView,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The node's memory, for OOM score adjustments.
    pub memory_capacity: u64,
}

/// The view as the pod logic's source of ConfigMaps and Secrets.
pub(crate) struct ViewConfig<'a>(pub &'a ClusterView);

impl crate::pod::env::ConfigSource for ViewConfig<'_> {
    fn config_map(&self, ns: &str, name: &str) -> Option<&ConfigMap> {
        self.0.config_maps.get(&(ns.to_owned(), name.to_owned()))
    }

    fn secret(&self, ns: &str, name: &str) -> Option<&Secret> {
        self.0.secrets.get(&(ns.to_owned(), name.to_owned()))
    }
}

/// Labels the agent puts on its containers.
pub mod labels {
    /// The pod's uid.
    pub const POD_UID: &str = "io.jotasu.pod.uid";
    /// The pod's namespace.
    pub const POD_NAMESPACE: &str = "io.jotasu.pod.namespace";
    /// The pod's name.
    pub const POD_NAME: &str = "io.jotasu.pod.name";
    /// The container's name in the pod.
    pub const CONTAINER: &str = "io.jotasu.container.name";
}
