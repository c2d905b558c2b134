//! The data-plane views (`jotasu.v1.Datapath`): each call names a node and
//! goes to that node's agent (`jotasu.v1.NodeDatapath`) over the same
//! mutual-TLS channel as logs and exec. Authorization happens before, in
//! the gRPC layer (`get` on `nodes/proxy`).

use jotasu_api::grpc::v1::{self, node_datapath_client::NodeDatapathClient};
use tonic::transport::Channel;

use super::target::agent_address;
use super::{Forwarded, MAX_AGENT_MESSAGE, ProxyError, ProxyResult, forward};
use crate::apiserver::ApiServer;
use crate::store::Store;

impl<S: Store> ApiServer<S> {
    /// A client of node `node`'s NodeDatapath service, and where it is.
    async fn datapath_client(
        &self,
        node: &str,
    ) -> ProxyResult<(NodeDatapathClient<Channel>, std::net::SocketAddr)> {
        if node.is_empty() {
            return Err(ProxyError::BadRequest(
                "a node must be named (--node)".into(),
            ));
        }
        let address = agent_address(&self.node(node).await?)?;
        let channel = self.proxy.channel(node, address)?;
        Ok((
            NodeDatapathClient::new(channel).max_decoding_message_size(MAX_AGENT_MESSAGE),
            address,
        ))
    }

    /// A node's services and backends with their counters.
    pub async fn datapath_services(
        &self,
        request: v1::DatapathRequest,
    ) -> ProxyResult<v1::DatapathServices> {
        let node = request.node.clone();
        let (mut client, address) = self.datapath_client(&node).await?;
        Ok(client
            .services(request)
            .await
            .map_err(|s| ProxyError::from_agent(&node, address, s))?
            .into_inner())
    }

    /// A node's conntrack entries, filtered and limited by its agent.
    pub async fn datapath_conntrack(
        &self,
        request: v1::ConntrackRequest,
    ) -> ProxyResult<v1::ConntrackList> {
        let node = request.node.clone();
        let (mut client, address) = self.datapath_client(&node).await?;
        Ok(client
            .conntrack(request)
            .await
            .map_err(|s| ProxyError::from_agent(&node, address, s))?
            .into_inner())
    }

    /// A node's tunnels and overlay peers.
    pub async fn datapath_tunnels(
        &self,
        request: v1::DatapathRequest,
    ) -> ProxyResult<v1::TunnelList> {
        let node = request.node.clone();
        let (mut client, address) = self.datapath_client(&node).await?;
        Ok(client
            .tunnels(request)
            .await
            .map_err(|s| ProxyError::from_agent(&node, address, s))?
            .into_inner())
    }

    /// A node's drop and node-wide counters.
    pub async fn datapath_drops(
        &self,
        request: v1::DatapathRequest,
    ) -> ProxyResult<v1::DatapathCounters> {
        let node = request.node.clone();
        let (mut client, address) = self.datapath_client(&node).await?;
        Ok(client
            .drops(request)
            .await
            .map_err(|s| ProxyError::from_agent(&node, address, s))?
            .into_inner())
    }

    /// A node's flow events, forwarded as they come.
    pub async fn datapath_flows(
        &self,
        request: v1::FlowsRequest,
    ) -> ProxyResult<Forwarded<v1::FlowMessage>> {
        let node = request.node.clone();
        let (mut client, address) = self.datapath_client(&node).await?;
        let stream = client
            .flows(request)
            .await
            .map_err(|s| ProxyError::from_agent(&node, address, s))?
            .into_inner();
        Ok(forward(node, address, stream))
    }
}
