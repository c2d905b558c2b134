//! The Node service the control plane proxies to: a container's logs (from
//! the files containerd's shim writes), exec in a container (containerd
//! exec), and OCI archive import into the node's containerd namespace.
//! It is served over TLS with the node's certificate and answers only the
//! control plane ([`tls`], [`authz`]).

pub mod authz;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use jotasu_api::client::Credentials;
use jotasu_api::grpc::v1::node_datapath_server::NodeDatapathServer;
use jotasu_api::grpc::v1::node_server::{Node, NodeServer};
use jotasu_api::grpc::v1::{
    ExecInput, ExecOutput, ImageChunk, ImageImported, ImportImageResponse, LogChunk, LogsRequest,
    exec_input,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info};

use crate::pods::{Manager, PodRecord};

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// How the node's port is protected.
#[derive(Debug, Clone)]
pub enum NodePort {
    /// TLS with the node certificate; client certificates of the cluster
    /// CA required; only the control plane may call.
    Tls(Arc<Credentials>),
}

/// The Node service could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The node certificate cannot be served.
    #[error("the node certificate cannot be served on {addr}: {source}")]
    Tls {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: rustls::Error,
    },
    /// Serving failed.
    #[error("serving the Node service on {addr}: {source}")]
    Transport {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: tonic::transport::Error,
    },
}

/// Serves the Node service on `addr` until `stop`.
pub async fn serve(
    addr: SocketAddr,
    manager: Manager,
    port: NodePort,
    stop: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    serve_node(listener, NodeService::new(manager), port, stop).await
}

/// Serves the Node service and, with `views`, the NodeDatapath service
/// (the data-plane views) on `addr` until `stop`: one port, one TLS
/// configuration, one rule (only the control plane may call).
pub async fn serve_with_views(
    addr: SocketAddr,
    manager: Manager,
    views: Option<crate::views::DatapathViews>,
    port: NodePort,
    stop: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    serve_node_with(listener, NodeService::new(manager), views, port, stop).await
}

/// Serves `service` (the agent's own, or a stand-in in tests) on
/// `listener` as `port` says, until `stop`.
pub async fn serve_node<N: Node>(
    listener: tokio::net::TcpListener,
    service: N,
    port: NodePort,
    stop: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    serve_node_with(listener, service, None, port, stop).await
}

/// [`serve_node`] with the NodeDatapath service beside it (when given),
/// behind the same interceptor.
pub async fn serve_node_with<N: Node>(
    listener: tokio::net::TcpListener,
    service: N,
    views: Option<crate::views::DatapathViews>,
    port: NodePort,
    stop: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let stopped = {
        let mut stop = stop.clone();
        async move { crate::stopped(&mut stop).await }
    };
    let NodePort::Tls(creds) = port;
    let config = tls::server_config(&creds).map_err(|source| ServeError::Tls { addr, source })?;
    info!(%addr, "Node service listening (TLS; only the control plane may call)");
    let incoming = tls::incoming(listener, config, stop.clone());
    tonic::transport::Server::builder()
        .add_service(NodeServer::with_interceptor(service, authz::authorize))
        .add_optional_service(
            views.map(|v| NodeDatapathServer::with_interceptor(v, authz::authorize)),
        )
        .serve_with_incoming_shutdown(incoming, stopped)
        .await
        .map_err(|source| ServeError::Transport { addr, source })
}

/// The agent's Node service over its pods.
#[derive(Debug)]
pub struct NodeService {
    manager: Manager,
}

impl NodeService {
    /// The Node service of `manager`'s pods.
    pub fn new(manager: Manager) -> Self {
        Self { manager }
    }
}

fn pod_record(
    manager: &Manager,
    namespace: &str,
    name: &str,
) -> Result<(String, PodRecord), Status> {
    let ns = if namespace.is_empty() {
        "default"
    } else {
        namespace
    };
    manager
        .registry()
        .find(ns, name)
        .ok_or_else(|| Status::not_found(format!("pod {name:?} is not running on this node")))
}

/// The container a request names (or the pod's only one).
fn pick<'a>(
    rec: &'a PodRecord,
    container: &str,
    first_if_many: bool,
) -> Result<&'a (String, crate::pods::ContainerRecord), Status> {
    if container.is_empty() {
        return match rec.containers.as_slice() {
            [one] => Ok(one),
            [first, ..] if first_if_many => Ok(first),
            many => Err(Status::invalid_argument(format!(
                "a container name must be specified for pod {}, choose one of: [{}]",
                rec.name,
                many.iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ))),
        };
    }
    rec.containers
        .iter()
        .find(|(n, _)| n == container)
        .ok_or_else(|| {
            Status::not_found(format!(
                "container {container} is not valid for pod {}",
                rec.name
            ))
        })
}

/// The last `n` lines of `text` (all if it has fewer).
pub fn tail(text: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &text[i + 1..];
            }
        }
    }
    text
}

#[tonic::async_trait]
impl Node for NodeService {
    type LogsStream = Boxed<LogChunk>;

    async fn pod_usage(
        &self,
        _request: Request<jotasu_api::grpc::v1::PodUsageRequest>,
    ) -> Result<Response<jotasu_api::grpc::v1::PodUsageList>, Status> {
        Ok(Response::new(jotasu_api::grpc::v1::PodUsageList {
            pods: self.manager.registry().usage(),
        }))
    }

    async fn logs(
        &self,
        request: Request<LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let req = request.into_inner();
        let (uid, rec) = pod_record(&self.manager, &req.namespace, &req.name)?;
        let (cname, c) = pick(&rec, &req.container, false)?;
        let file: PathBuf = if req.previous {
            match c.logs.len() {
                n if n >= 2 => c.logs[n - 2].clone(),
                _ => {
                    return Err(Status::invalid_argument(format!(
                        "previous terminated container {cname:?} in pod {:?} not found",
                        rec.name
                    )));
                }
            }
        } else {
            c.logs.last().cloned().ok_or_else(|| {
                Status::invalid_argument(format!(
                    "container {cname:?} in pod {:?} is waiting to start",
                    rec.name
                ))
            })?
        };
        let mut bytes = tokio::fs::read(&file).await.unwrap_or_default();
        if let Some(n) = req.tail_lines.and_then(|n| usize::try_from(n).ok()) {
            bytes = tail(&bytes, n).to_vec();
        }
        let mut offset = tokio::fs::metadata(&file).await.map_or(0, |m| m.len());
        let (tx, rx) = mpsc::channel::<Result<LogChunk, Status>>(16);
        let follow = req.follow && !req.previous;
        let (manager, cname) = (self.manager.clone(), cname.clone());
        tokio::spawn(async move {
            if !bytes.is_empty() && tx.send(Ok(LogChunk { data: bytes })).await.is_err() {
                return;
            }
            if !follow {
                return;
            }
            // Follow: poll the file for growth until the instance ends
            // (stopped, or a newer instance's file appeared) and all of it
            // is sent, or the caller leaves.
            loop {
                let chunk = crate::exec::read_new(&file, &mut offset).await;
                if !chunk.is_empty() && tx.send(Ok(LogChunk { data: chunk })).await.is_err() {
                    return;
                }
                let current = manager
                    .registry()
                    .lock()
                    .get(&uid)
                    .and_then(|r| r.containers.iter().find(|(n, _)| *n == cname).cloned());
                let done = match current {
                    None => true,
                    Some((_, c)) => !c.running || c.logs.last() != Some(&file),
                };
                if done {
                    let rest = crate::exec::read_new(&file, &mut offset).await;
                    if !rest.is_empty() {
                        let _ = tx.send(Ok(LogChunk { data: rest })).await;
                    }
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    () = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type ExecStream = Boxed<ExecOutput>;

    async fn exec(
        &self,
        request: Request<Streaming<ExecInput>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let mut input = request.into_inner();
        let start = match input.next().await {
            Some(Ok(ExecInput {
                input: Some(exec_input::Input::Start(s)),
            })) => s,
            Some(Err(e)) => return Err(e),
            _ => {
                return Err(Status::invalid_argument(
                    "the first exec message must name the target",
                ));
            }
        };
        if start.command.is_empty() {
            return Err(Status::invalid_argument(
                "you must specify at least one command for the container",
            ));
        }
        let (_, rec) = pod_record(&self.manager, &start.namespace, &start.name)?;
        let (cname, c) = pick(&rec, &start.container, true)?;
        if !c.running {
            return Err(Status::failed_precondition(format!(
                "container {cname} is not running in pod {}",
                rec.name
            )));
        }
        let containerd = self.manager.ctx().containerd.clone();
        let exec_id = format!("exec-{}", uuid::Uuid::new_v4().simple());
        let session = containerd
            .exec(&c.id, &exec_id, start.command.clone(), start.stdin)
            .await
            .map_err(|e| Status::internal(format!("exec in {}/{cname}: {e}", rec.name)))?;
        debug!(pod = %rec.name, container = %cname, command = ?start.command, "exec");
        let (tx, rx) = mpsc::channel::<Result<ExecOutput, Status>>(16);
        tokio::spawn(crate::exec::pump(session, input, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn import_image(
        &self,
        request: Request<Streaming<ImageChunk>>,
    ) -> Result<Response<ImportImageResponse>, Status> {
        let mut chunks = request.into_inner();
        let ctx = self.manager.ctx();
        let dir = ctx.config.state_dir.join("import");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| Status::internal(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join(format!("{}.tar", uuid::Uuid::new_v4().simple()));
        let written = async {
            use tokio::io::AsyncWriteExt as _;
            let mut f = tokio::fs::File::create(&path).await?;
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(std::io::Error::other)?;
                f.write_all(&chunk.data).await?;
            }
            f.flush().await
        }
        .await;
        let result = match written {
            Ok(()) => ctx.containerd.import(&path).await.map_err(|e| {
                Status::internal(format!(
                    "importing the archive on node {}: {e}",
                    ctx.config.node
                ))
            }),
            Err(e) => Err(Status::internal(format!("receiving the archive: {e}"))),
        };
        let _ = tokio::fs::remove_file(&path).await;
        let images = result?
            .into_iter()
            .map(|i| ImageImported {
                node: ctx.config.node.clone(),
                names: i.names,
                digest: i.digest,
            })
            .collect();
        Ok(Response::new(ImportImageResponse { images }))
    }
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_takes_whole_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(tail(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", 0), b"");
    }
}
