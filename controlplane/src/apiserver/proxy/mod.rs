//! `Logs`, `Exec` and `ImportImage`: calls the control plane passes on to
//! the `jotasu.v1.Node` service of the agent of the pod's node (or of the
//! target nodes), as kube-apiserver proxies them to kubelets.
//!
//! The agent is found from the objects: the pod's `spec.nodeName`, then
//! the node's InternalIP and `status.daemonEndpoints.kubeletEndpoint.Port`
//! ([`target`]). With [`AgentTls`] (the control plane's PKI) the
//! connection is mutual TLS: the agent's certificate must be the cluster
//! CA's for the node's name, and the control plane presents
//! `system:jotasu-controlplane`, the only identity agents answer. Without
//! it no call is made (never plain gRPC). One cached channel per node
//! and agent address. Streams are forwarded both ways as they come; when
//! either side leaves, the other's stream is dropped, which cancels the
//! call on the agent.

mod datapath;
pub mod error;
mod import;
pub mod target;
pub mod tls;
mod usage;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use jotasu_api::grpc::v1::exec_input::Input;
use jotasu_api::grpc::v1::node_client::NodeClient;
use jotasu_api::grpc::v1::{self};
use jotasu_api::meta::DEFAULT_NAMESPACE;
use jotasu_api::{Kind, Node, Object, ObjectRef, Pod};
use tonic::Status;
use tonic::transport::{Channel, Endpoint};

pub use error::ProxyError;
use target::{Purpose, agent_address, container, pod_node};
pub use tls::AgentTls;

use super::ApiServer;
use super::error::ApiServerError;
use crate::store::Store;

/// Results of proxied calls.
pub type ProxyResult<T> = Result<T, ProxyError>;

/// A stream of messages from an agent, as the API sends them on.
pub type Forwarded<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Largest message accepted from an agent (a log chunk).
const MAX_AGENT_MESSAGE: usize = 64 << 20;

/// Cached channels beyond which the cache starts over (agents come and go).
const MAX_CHANNELS: usize = 4096;

/// Connections to agents, and where image archives wait.
#[derive(Debug, Clone)]
pub struct NodeProxy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    scratch: PathBuf,
    tls: Option<AgentTls>,
    channels: Mutex<HashMap<(String, SocketAddr), Channel>>,
}

impl Default for NodeProxy {
    fn default() -> Self {
        Self::new(std::env::temp_dir())
    }
}

impl NodeProxy {
    /// A proxy keeping image archives in `scratch` while it sends them on.
    pub fn new(scratch: PathBuf) -> Self {
        Self {
            inner: Arc::new(Inner {
                scratch,
                tls: None,
                channels: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The same proxy calling agents over mutual TLS with `tls`.
    pub fn with_tls(self, tls: AgentTls) -> Self {
        Self {
            inner: Arc::new(Inner {
                scratch: self.inner.scratch.clone(),
                tls: Some(tls),
                channels: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The TLS it calls agents with (None: plain gRPC).
    pub fn tls(&self) -> Option<&AgentTls> {
        self.inner.tls.as_ref()
    }

    /// An endpoint for `node`'s agent at `address`.
    fn endpoint(&self, node: &str, address: SocketAddr) -> ProxyResult<Endpoint> {
        let unreachable = |e: tonic::transport::Error| ProxyError::Unreachable {
            node: node.to_owned(),
            address,
            detail: e.to_string(),
        };
        match &self.inner.tls {
            Some(tls) => tls.endpoint(node, address).map_err(unreachable),
            // Agents answer only the control plane's certificate: without
            // one there is no call to make (never plain).
            None => Err(ProxyError::Unreachable {
                node: node.to_owned(),
                address,
                detail: "this control plane has no client certificate for agents (ApiServer::with_agent_tls)".into(),
            }),
        }
    }

    /// A client of the agent at `address` (connected lazily, reconnecting
    /// by itself).
    fn client(&self, node: &str, address: SocketAddr) -> ProxyResult<NodeClient<Channel>> {
        Ok(NodeClient::new(self.channel(node, address)?)
            .max_decoding_message_size(MAX_AGENT_MESSAGE))
    }

    /// The cached channel to the agent at `address`.
    fn channel(&self, node: &str, address: SocketAddr) -> ProxyResult<Channel> {
        let mut channels = self
            .inner
            .channels
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (node.to_owned(), address);
        let channel = match channels.get(&key) {
            Some(c) => c.clone(),
            None => {
                let channel = self
                    .endpoint(node, address)?
                    .http2_keep_alive_interval(Duration::from_secs(30))
                    .keep_alive_timeout(Duration::from_secs(10))
                    .connect_lazy();
                if channels.len() >= MAX_CHANNELS {
                    channels.clear();
                }
                channels.insert(key, channel.clone());
                channel
            }
        };
        Ok(channel)
    }
}

/// Where a pod's call goes.
struct Located {
    pod: Pod,
    namespace: String,
    node: String,
    address: SocketAddr,
}

fn forward<T: Send + 'static>(
    node: String,
    address: SocketAddr,
    stream: tonic::Streaming<T>,
) -> Forwarded<T> {
    Box::pin(
        stream.map(move |item| {
            item.map_err(|s| Status::from(ProxyError::from_agent(&node, address, s)))
        }),
    )
}

impl<S: Store> ApiServer<S> {
    /// The same server keeping image archives in `dir` while it sends
    /// them on to nodes.
    pub fn with_scratch_dir(mut self, dir: PathBuf) -> Self {
        let proxy = NodeProxy::new(dir);
        self.proxy = match self.proxy.tls() {
            Some(tls) => proxy.with_tls(tls.clone()),
            None => proxy,
        };
        self
    }

    /// The same server calling nodes' agents over mutual TLS with `tls`
    /// (see [`AgentTls::load`]).
    pub fn with_agent_tls(mut self, tls: AgentTls) -> Self {
        self.proxy = self.proxy.clone().with_tls(tls);
        self
    }

    /// A pod's node, by its objects.
    async fn locate(&self, namespace: &str, name: &str) -> ProxyResult<Located> {
        if name.is_empty() {
            return Err(ProxyError::BadRequest("pod name may not be empty".into()));
        }
        let namespace = if namespace.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            namespace
        };
        let r = ObjectRef {
            kind: Kind::Pod,
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
        };
        let Some((Object::Pod(pod), _)) = self.read(&r).await? else {
            return Err(ApiServerError::NotFound(r).into());
        };
        let node = pod_node(&pod)?.to_owned();
        let node_object = self.node(&node).await?;
        let address = agent_address(&node_object)?;
        Ok(Located {
            pod,
            namespace: namespace.to_owned(),
            node,
            address,
        })
    }

    /// One Node.
    async fn node(&self, name: &str) -> ProxyResult<Node> {
        let r = ObjectRef {
            kind: Kind::Node,
            namespace: None,
            name: name.to_owned(),
        };
        match self.read(&r).await? {
            Some((Object::Node(n), _)) => Ok(n),
            _ => Err(ApiServerError::NotFound(r).into()),
        }
    }

    /// A container's output, from its node's agent.
    pub async fn logs(&self, mut request: v1::LogsRequest) -> ProxyResult<Forwarded<v1::LogChunk>> {
        let at = self.locate(&request.namespace, &request.name).await?;
        request.namespace = at.namespace;
        request.container = container(&at.pod, &request.container, Purpose::Logs)?;
        let mut client = self.proxy.client(&at.node, at.address)?;
        let stream = client
            .logs(request)
            .await
            .map_err(|s| ProxyError::from_agent(&at.node, at.address, s))?
            .into_inner();
        Ok(forward(at.node, at.address, stream))
    }

    /// Runs a command in a pod's container on its node: `start` names it,
    /// `stdin` is forwarded as it comes.
    pub async fn exec(
        &self,
        mut start: v1::ExecStart,
        stdin: impl Stream<Item = v1::ExecInput> + Send + 'static,
    ) -> ProxyResult<Forwarded<v1::ExecOutput>> {
        if start.command.is_empty() {
            return Err(ProxyError::BadRequest(
                "you must specify at least one command for the container".into(),
            ));
        }
        let at = self.locate(&start.namespace, &start.name).await?;
        start.namespace = at.namespace;
        start.container = container(&at.pod, &start.container, Purpose::Exec)?;
        let start = v1::ExecInput {
            input: Some(Input::Start(start)),
        };
        let outbound = futures::stream::once(futures::future::ready(start)).chain(stdin);
        let mut client = self.proxy.client(&at.node, at.address)?;
        let stream = client
            .exec(outbound)
            .await
            .map_err(|s| ProxyError::from_agent(&at.node, at.address, s))?
            .into_inner();
        Ok(forward(at.node, at.address, stream))
    }
}
