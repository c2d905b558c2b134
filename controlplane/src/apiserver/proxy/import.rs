//! `ImportImage`: the archive is kept in a file of the scratch dir (at
//! most [`MAX_ARCHIVE`]) while it arrives, then sent to every target
//! node's agent at once, in 1 MiB chunks. Every node is tried; one that
//! fails fails the call, with a message naming each failed node.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use futures::future::join_all;
use jotasu_api::grpc::v1::{self, ImageImported};
use jotasu_api::{Kind, Object};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tracing::{info, warn};

use super::ProxyResult;
use super::error::ProxyError;
use super::target::{agent_address, import_targets};
use crate::apiserver::error::ApiServerError;
use crate::apiserver::keys::kind_prefix;
use crate::apiserver::{ApiServer, decode};
use crate::store::Store;

/// The largest archive one import takes.
pub const MAX_ARCHIVE: u64 = 4 << 30;

/// The size of the chunks sent to agents.
const CHUNK: usize = 1 << 20;

/// The archive, in a file removed on drop.
#[derive(Debug)]
struct Spool {
    path: PathBuf,
    file: tokio::fs::File,
    size: u64,
}

impl Spool {
    async fn create(dir: &Path) -> ProxyResult<Self> {
        let path = dir.join(format!("image-import-{}.tar", uuid::Uuid::new_v4()));
        let failed = |source| ProxyError::Spool {
            path: path.display().to_string(),
            source,
        };
        tokio::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .await
            .map_err(failed)?;
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .await
            .map_err(failed)?;
        Ok(Self {
            path,
            file,
            size: 0,
        })
    }

    async fn write(&mut self, data: &[u8]) -> ProxyResult<()> {
        self.size += data.len() as u64;
        if self.size > MAX_ARCHIVE {
            return Err(ProxyError::TooLarge {
                max_gib: MAX_ARCHIVE >> 30,
            });
        }
        self.file.write_all(data).await.map_err(|e| self.failed(e))
    }

    async fn finish(&mut self) -> ProxyResult<()> {
        self.file.flush().await.map_err(|e| self.failed(e))
    }

    fn failed(&self, source: std::io::Error) -> ProxyError {
        ProxyError::Spool {
            path: self.path.display().to_string(),
            source,
        }
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads up to one chunk (less only at the end of the file).
async fn read_chunk(file: &mut tokio::fs::File) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; CHUNK];
    let mut len = 0;
    while len < CHUNK {
        let n = file.read(&mut buf[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
    }
    buf.truncate(len);
    Ok(buf)
}

impl<S: Store> ApiServer<S> {
    /// Imports the archive `input` carries onto the nodes its first
    /// message names (else every Ready node).
    pub async fn import_image(
        &self,
        mut input: tonic::Streaming<v1::ImageChunk>,
    ) -> ProxyResult<Vec<ImageImported>> {
        let first = input
            .message()
            .await
            .map_err(ProxyError::Caller)?
            .ok_or_else(|| ProxyError::BadRequest("an image import sent no archive".into()))?;
        // Where it goes is settled before the upload, so a wrong node name
        // or a node without an agent fails at once.
        let targets = self.import_nodes(&first.nodes).await?;
        let mut spool = Spool::create(&self.proxy.inner.scratch).await?;
        spool.write(&first.data).await?;
        while let Some(chunk) = input.message().await.map_err(ProxyError::Caller)? {
            spool.write(&chunk.data).await?;
        }
        spool.finish().await?;
        info!(
            bytes = spool.size,
            nodes = targets.len(),
            "importing an image archive"
        );
        let results = join_all(
            targets
                .iter()
                .map(|(node, address)| self.send_archive(node, *address, &spool.path)),
        )
        .await;
        let mut images = Vec::new();
        let mut failed = Vec::new();
        let mut done = Vec::new();
        for ((node, _), result) in targets.iter().zip(results) {
            match result {
                Ok(mut imported) => {
                    for i in &mut imported {
                        if i.node.is_empty() {
                            i.node.clone_from(node);
                        }
                    }
                    images.extend(imported);
                    done.push(node.clone());
                }
                Err(e) => {
                    warn!(%node, error = %e, "image import failed");
                    failed.push((node.clone(), e));
                }
            }
        }
        if failed.is_empty() {
            return Ok(images);
        }
        let code = failed
            .first()
            .map_or(tonic::Code::Internal, |(_, e)| e.code());
        let mut message = failed
            .iter()
            .map(|(node, e)| format!("importing the image onto node {node} failed: {e}"))
            .collect::<Vec<_>>()
            .join("; ");
        if !done.is_empty() {
            message.push_str(&format!(" (imported onto {})", done.join(", ")));
        }
        Err(ProxyError::ImportFailed { code, message })
    }

    /// The nodes to import onto and their agents' addresses.
    async fn import_nodes(&self, requested: &[String]) -> ProxyResult<Vec<(String, SocketAddr)>> {
        let range = self
            .store
            .range(&kind_prefix(Kind::Node, None), None)
            .await
            .map_err(ApiServerError::from)?;
        let mut nodes = Vec::with_capacity(range.kvs.len());
        for kv in &range.kvs {
            if let Object::Node(n) = decode(kv)? {
                nodes.push(n);
            }
        }
        let targets = import_targets(requested, &nodes)?;
        let mut resolved = Vec::with_capacity(targets.len());
        let mut missing = Vec::new();
        for node in targets {
            match agent_address(node) {
                Ok(address) => resolved.push((node.metadata.name().to_owned(), address)),
                Err(e) => missing.push(e.to_string()),
            }
        }
        if !missing.is_empty() {
            return Err(ProxyError::ImportFailed {
                code: tonic::Code::FailedPrecondition,
                message: missing.join("; "),
            });
        }
        Ok(resolved)
    }

    /// Streams the archive at `path` to one node's agent.
    async fn send_archive(
        &self,
        node: &str,
        address: SocketAddr,
        path: &Path,
    ) -> ProxyResult<Vec<ImageImported>> {
        let spool_error = |source| ProxyError::Spool {
            path: path.display().to_string(),
            source,
        };
        let file = tokio::fs::File::open(path).await.map_err(spool_error)?;
        let read_error = std::sync::Arc::new(std::sync::Mutex::new(None::<std::io::Error>));
        let seen = read_error.clone();
        let first_nodes = vec![node.to_owned()];
        let chunks = futures::stream::unfold(Some((file, Some(first_nodes))), move |state| {
            let seen = seen.clone();
            async move {
                let (mut file, nodes) = state?;
                match read_chunk(&mut file).await {
                    Ok(data) if data.is_empty() && nodes.is_none() => None,
                    Ok(data) => Some((
                        v1::ImageChunk {
                            nodes: nodes.unwrap_or_default(),
                            data,
                        },
                        Some((file, None)),
                    )),
                    Err(e) => {
                        *seen
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                        None
                    }
                }
            }
        });
        let mut client = self.proxy.client(node, address)?;
        let answer = client.import_image(chunks).await;
        if let Some(e) = read_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            return Err(spool_error(e));
        }
        let answer = answer.map_err(|s| ProxyError::from_agent(node, address, s))?;
        Ok(answer.into_inner().images)
    }
}
