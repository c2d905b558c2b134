//! The gRPC surface of the data-plane views (`jotasu.v1.Datapath`:
//! `jotactl datapath …`, `jotactl flows`). Every call is authenticated
//! and needs `get` on `nodes/proxy` for the node it names — the RBAC a
//! Kubernetes user knows from reaching a kubelet through the API server.
//! The node authorizer gives it to no node, so one node cannot read
//! another's data plane (nor its own, through here). Then the call goes
//! to the node's agent ([`super::proxy`]).

use std::sync::Arc;

use jotasu_api::Kind;
use jotasu_api::grpc::v1::{self, datapath_server::Datapath};
use tonic::{Request, Response, Status};
use tracing::debug;

use super::ApiServer;
use super::guard::Guard;
use super::proxy::Forwarded;
use crate::auth::attributes::{Attributes, verbs};
use crate::auth::authenticate::presented;
use crate::store::Store;

/// The subresource of a Node that reaches its agent's data-plane views.
pub const SUBRESOURCE: &str = "proxy";

/// The tonic service: `ApiServer<S>` behind `jotasu.v1.Datapath`, guarded.
#[derive(Debug)]
pub struct GrpcDatapath<S> {
    server: ApiServer<S>,
    guard: Arc<Guard<S>>,
}

impl<S: Store> GrpcDatapath<S> {
    /// Serves `server`'s views, every call passing `guard`.
    pub fn new(server: ApiServer<S>, guard: Arc<Guard<S>>) -> Self {
        Self { server, guard }
    }

    /// Authenticates the caller of `request` and checks `get nodes/proxy`
    /// on `node`.
    async fn allow<T>(&self, request: &Request<T>, node: &str, what: &str) -> Result<(), Status> {
        let user = self.guard.authenticate(presented(request)).await?;
        if node.is_empty() {
            return Err(Status::invalid_argument("a node must be named (--node)"));
        }
        debug!(user = %user.name, node, what, "datapath view");
        let attributes = Attributes::of_kind(verbs::GET, Kind::Node, None, Some(node))
            .on_subresource(SUBRESOURCE);
        Ok(self.guard.check(&user, attributes, None).await?)
    }
}

type FlowStream = Forwarded<v1::FlowMessage>;

#[tonic::async_trait]
impl<S: Store> Datapath for GrpcDatapath<S> {
    async fn services(
        &self,
        request: Request<v1::DatapathRequest>,
    ) -> Result<Response<v1::DatapathServices>, Status> {
        self.allow(&request, &request.get_ref().node, "services")
            .await?;
        Ok(Response::new(
            self.server.datapath_services(request.into_inner()).await?,
        ))
    }

    async fn conntrack(
        &self,
        request: Request<v1::ConntrackRequest>,
    ) -> Result<Response<v1::ConntrackList>, Status> {
        self.allow(&request, &request.get_ref().node, "conntrack")
            .await?;
        Ok(Response::new(
            self.server.datapath_conntrack(request.into_inner()).await?,
        ))
    }

    async fn tunnels(
        &self,
        request: Request<v1::DatapathRequest>,
    ) -> Result<Response<v1::TunnelList>, Status> {
        self.allow(&request, &request.get_ref().node, "tunnels")
            .await?;
        Ok(Response::new(
            self.server.datapath_tunnels(request.into_inner()).await?,
        ))
    }

    async fn drops(
        &self,
        request: Request<v1::DatapathRequest>,
    ) -> Result<Response<v1::DatapathCounters>, Status> {
        self.allow(&request, &request.get_ref().node, "drops")
            .await?;
        Ok(Response::new(
            self.server.datapath_drops(request.into_inner()).await?,
        ))
    }

    type FlowsStream = FlowStream;

    async fn flows(
        &self,
        request: Request<v1::FlowsRequest>,
    ) -> Result<Response<Self::FlowsStream>, Status> {
        self.allow(&request, &request.get_ref().node, "flows")
            .await?;
        Ok(Response::new(
            self.server.datapath_flows(request.into_inner()).await?,
        ))
    }
}
