//! containerd through its gRPC API (containerd-client), every call in the
//! node's containerd namespace: images imported from OCI archives and
//! unpacked for overlayfs (`image.rs`, `content.rs`) or pulled from a
//! registry (`pull.rs`), containers and their
//! tasks (`tasks.rs`), commands run in a container (`exec.rs`).

mod content;
mod error;
mod exec;
mod image;
mod pull;
mod tasks;
mod types;

use std::path::Path;

use containerd_client::services::v1::namespaces_client::NamespacesClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::{CreateNamespaceRequest, Namespace};
use tonic::Request;
use tonic::transport::Channel;

pub use error::ContainerdError;
pub use exec::ExecSession;
pub use image::{ImportedImage, chain_ids, normalize};
pub use pull::plain_http;
pub use types::*;

/// The snapshotter the agent unpacks for and runs on.
pub const SNAPSHOTTER: &str = "overlayfs";
/// The runtime containers run with.
pub const RUNTIME: &str = "io.containerd.runc.v2";

/// A connection to containerd, scoped to one namespace. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Containerd {
    channel: Channel,
    namespace: String,
    exec_dir: std::path::PathBuf,
    insecure_registries: Vec<String>,
    /// The runc shim's options naming the OCI runtime binary (None: its
    /// default, runc).
    runtime_options: Option<prost_types::Any>,
}

/// The runc shim's options (`containerd.runc.v1.Options`); only the field
/// the agent sets.
#[derive(Clone, PartialEq, prost::Message)]
struct RuncOptions {
    /// The OCI runtime binary (runc when empty).
    #[prost(string, tag = "6")]
    binary_name: String,
}

const RUNC_OPTIONS_TYPE: &str = "containerd.runc.v1.Options";

type Result<T> = std::result::Result<T, ContainerdError>;

impl Containerd {
    /// Connects to the socket and makes sure `namespace` exists.
    pub async fn connect(socket: &Path, namespace: &str) -> Result<Self> {
        let channel = containerd_client::connect(socket).await.map_err(|source| {
            ContainerdError::Connect {
                socket: socket.to_owned(),
                source,
            }
        })?;
        let me = Self {
            channel,
            namespace: namespace.to_owned(),
            exec_dir: Path::new("/run/jotasu/exec").join(namespace),
            insecure_registries: Vec::new(),
            runtime_options: None,
        };
        let request = CreateNamespaceRequest {
            namespace: Some(Namespace {
                name: namespace.to_owned(),
                labels: Default::default(),
            }),
        };
        match NamespacesClient::new(me.channel.clone())
            .create(me.req(request))
            .await
        {
            Ok(_) => {}
            Err(s) if s.code() == tonic::Code::AlreadyExists => {}
            Err(s) => return Err(error::rpc("create namespace", namespace)(s)),
        }
        Ok(me)
    }

    /// Keeps exec sessions' files (output, stdin FIFO) under `dir`.
    pub fn with_exec_dir(mut self, dir: &Path) -> Self {
        self.exec_dir = dir.to_owned();
        self
    }

    /// Pulls from these registries (`host[:port]`) over plain HTTP.
    pub fn with_insecure_registries(mut self, registries: Vec<String>) -> Self {
        self.insecure_registries = registries;
        self
    }

    /// Runs containers with this OCI runtime binary instead of runc (the
    /// runc shim runs any runtime with runc's command line, as crun).
    pub fn with_oci_runtime(mut self, binary: Option<String>) -> Self {
        self.runtime_options = binary.map(|binary_name| prost_types::Any {
            type_url: RUNC_OPTIONS_TYPE.to_owned(),
            value: prost::Message::encode_to_vec(&RuncOptions { binary_name }),
        });
        self
    }

    /// The shim options naming the runtime binary (None: the default).
    pub(crate) fn runtime_options(&self) -> Option<prost_types::Any> {
        self.runtime_options.clone()
    }

    pub(crate) fn exec_dir(&self) -> &Path {
        &self.exec_dir
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// A request in the namespace.
    pub(crate) fn req<T>(&self, message: T) -> Request<T> {
        let mut r = Request::new(message);
        if let Ok(v) = self.namespace.parse() {
            r.metadata_mut().insert("containerd-namespace", v);
        }
        r
    }

    /// A request in the namespace under a lease (content and snapshots made
    /// under it are safe from garbage collection until it is deleted).
    pub(crate) fn leased<T>(&self, message: T, lease: &str) -> Request<T> {
        let mut r = self.req(message);
        if let Ok(v) = lease.parse() {
            r.metadata_mut().insert("containerd-lease", v);
        }
        r
    }

    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// containerd's version, e.g. `1.6.20~ds1`.
    pub async fn version(&self) -> Result<String> {
        let v = VersionClient::new(self.channel())
            .version(Request::new(()))
            .await
            .map_err(error::rpc("version", ""))?;
        Ok(v.into_inner().version)
    }
}
