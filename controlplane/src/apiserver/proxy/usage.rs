//! Pods' usage read from their node's agent (`jotasu.v1.Node/PodUsage`),
//! as metrics-server reads kubelets: the leading control plane's
//! autoscaler gets it whichever control plane the node's heartbeats reach.

use std::time::Duration;

use jotasu_api::Node;
use jotasu_api::grpc::v1;

use super::target::agent_address;
use super::{ProxyError, ProxyResult};
use crate::apiserver::ApiServer;
use crate::store::Store;

/// How long an agent may take to answer.
const USAGE_DEADLINE: Duration = Duration::from_secs(5);

impl<S: Store> ApiServer<S> {
    /// The usage of `node`'s pods, as its agent measures it now.
    pub async fn node_usage(&self, node: &Node) -> ProxyResult<Vec<v1::PodUsage>> {
        let name = node.metadata.name();
        let address = agent_address(node)?;
        let mut client = self.proxy.client(name, address)?;
        match tokio::time::timeout(USAGE_DEADLINE, client.pod_usage(v1::PodUsageRequest {})).await {
            Ok(Ok(r)) => Ok(r.into_inner().pods),
            Ok(Err(s)) => Err(ProxyError::from_agent(name, address, s)),
            Err(_) => Err(ProxyError::from_agent(
                name,
                address,
                tonic::Status::deadline_exceeded(format!("no usage within {USAGE_DEADLINE:?}")),
            )),
        }
    }
}
