//! The API client used by jotactl, the agents and the tests: connects by
//! URL or context ([`ConnectOptions`]), speaks typed objects, and turns
//! server errors into [`ClientError`]s that say what kubectl would.

mod auth;
mod connect;
mod context;
mod credentials;
mod error;
mod failover;
pub mod identity;
mod tls;
mod watch;

use std::pin::Pin;
use std::sync::Arc;

pub use futures_core::Stream;
use tonic::transport::Channel;

pub use crate::change::{EventType, Outcome};
use crate::grpc::v1;
use crate::grpc::v1::api_client::ApiClient;
use crate::grpc::v1::datapath_client::DatapathClient;
use crate::object::{Kind, Object, ObjectRef};

pub use auth::Review;
pub use connect::{
    CONNECT_TIMEOUT, DEAD_PEER_WITHIN, KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT, ServerUrl, TlsFiles,
    connect, connect_with, credentials_from_files,
};
pub use context::{CONFIG_ENV, Config, ConnectOptions, Context};
pub use credentials::{
    ClientCertResolver, Credentials, HeldCaVerifier, Material, ServerCertResolver, provider,
};
pub use error::{ApiError, ClientError};
pub use failover::{CONTROL_PLANE_ENDPOINTS, DISCOVERY_INTERVAL, published};
use failover::{Retry, Servers};
pub use tls::fetch_ca_from_handshake;

pub use crate::grpc::v1::exec_input::Input as ExecIn;
pub use crate::grpc::v1::exec_output::Output as ExecOut;
pub use crate::grpc::v1::{
    BindRefusal, BindResult, Binding, ExecStart, ImageImported, LogsRequest, PodUsage,
};

/// A container's output, chunk by chunk.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<Vec<u8>, ClientError>> + Send>>;

/// What an exec'd command writes, then its exit code.
pub type ExecStream = Pin<Box<dyn Stream<Item = Result<ExecOut, ClientError>> + Send>>;

fn exec_input(input: ExecIn) -> v1::ExecInput {
    v1::ExecInput { input: Some(input) }
}

/// The result of applying one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Which object.
    pub object_ref: ObjectRef,
    /// What happened.
    pub outcome: Outcome,
    /// Its resourceVersion afterwards.
    pub resource_version: String,
}

/// How [`Client::delete_with`] deletes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Delete only if the object is still at this resourceVersion.
    pub resource_version: Option<String>,
    /// Seconds a bound Pod's node has to stop it (None: the pod's own
    /// terminationGracePeriodSeconds; 0: remove at once).
    pub grace_period_seconds: Option<i64>,
}

/// Objects of one kind and the store revision they reflect.
#[derive(Debug, Clone)]
pub struct List {
    /// The objects, sorted by namespace and name.
    pub items: Vec<Object>,
    /// Watch from `revision + 1` to see every later change.
    pub revision: i64,
}

/// One change seen by a watch.
#[derive(Debug, Clone)]
pub struct Event {
    /// What happened.
    pub kind: EventType,
    /// The object after the change (before it, for `Deleted`).
    pub object: Object,
    /// The store revision of the change.
    pub revision: i64,
}

/// What a watch follows.
#[derive(Debug, Clone, Default)]
pub struct WatchFilter {
    /// Kinds to watch (empty: all).
    pub kinds: Vec<Kind>,
    /// One namespace (None: all).
    pub namespace: Option<String>,
    /// kubectl's `-l` syntax (empty: everything).
    pub label_selector: String,
    /// First revision to deliver; 0 means from now on.
    pub from_revision: i64,
    /// An agent's view of one node (see [`Client::list_for_node`]).
    pub node: Option<String>,
}

/// A stream of watch events; it ends with an error whose
/// [`ClientError::is_resync`] is true when the watch fell behind compaction.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event, ClientError>> + Send>>;

/// A node certificate the control plane issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCertificate {
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The cluster CA, PEM.
    pub ca_pem: String,
}

/// The `authorization` metadata of a bearer token (`Bearer <token>`).
pub fn bearer(token: &str) -> Result<tonic::metadata::AsciiMetadataValue, ClientError> {
    format!("Bearer {token}")
        .parse()
        .map_err(|_| ClientError::BadToken {
            reason: "it may hold only visible ASCII characters".into(),
        })
}

/// A connection to the control plane — to one of several (see
/// "Failover" below). Cheap to clone (clones share the connection); calls
/// may run concurrently.
///
/// # Failover
///
/// A client holds a list of servers (configured, then those published as
/// the Endpoints `default/kubernetes`) and uses one at a time. When it
/// stops answering — refused, reset, an HTTP/2 keepalive ping unanswered
/// within [`DEAD_PEER_WITHIN`], or `Unavailable` — the next one is dialled
/// and reads, watches (resumed from the last revision seen) and writes
/// that are idempotent or guarded (apply, scale, heartbeats, status writes)
/// are sent again; deletes, evictions and bindings only when the first try
/// certainly never reached a server; exec and image imports never.
#[derive(Debug, Clone)]
pub struct Client {
    servers: Arc<Servers>,
}

fn decode(object: Option<v1::Object>) -> Result<Object, ClientError> {
    object
        .ok_or_else(|| ClientError::Decode("the server sent no object".into()))?
        .decode()
        .map_err(|e| ClientError::Decode(e.to_string()))
}

fn api_client(channel: Channel) -> ApiClient<Channel> {
    ApiClient::new(channel).max_decoding_message_size(256 << 20)
}

/// A channel for a client that never connected: its calls fail.
fn unconnected() -> Channel {
    tonic::transport::Endpoint::from_static("http://127.0.0.1:9").connect_lazy()
}

fn datapath_client(channel: Channel) -> DatapathClient<Channel> {
    DatapathClient::new(channel).max_decoding_message_size(256 << 20)
}

impl Client {
    /// Connects as `options` say (flags, `JOTASU_SERVER`, context file) to
    /// the first of its servers that answers.
    pub async fn connect(options: &ConnectOptions) -> Result<Self, ClientError> {
        let (servers, tls) = options.resolve()?;
        Self::connect_to_any(&servers, &tls).await
    }

    /// Connects to `server`.
    pub async fn connect_to(server: &ServerUrl, tls: &TlsFiles) -> Result<Self, ClientError> {
        Self::connect_to_any(std::slice::from_ref(server), tls).await
    }

    /// Connects to the first of `servers` that answers, with the TLS files
    /// `tls` names for https ones.
    pub async fn connect_to_any(
        servers: &[ServerUrl],
        tls: &TlsFiles,
    ) -> Result<Self, ClientError> {
        let creds = match servers.iter().find_map(|s| match s {
            ServerUrl::Https { url, .. } => Some(url),
            ServerUrl::Unix(_) => None,
        }) {
            Some(url) => Some(Arc::new(credentials_from_files(url, tls)?)),
            None => None,
        };
        let client = Self::lazy(servers, creds)?;
        client.servers.active().await?;
        Ok(client)
    }

    /// Connects to `server` with `creds`, read at each TLS handshake:
    /// after [`Credentials::replace`], new connections present the new
    /// certificate and old ones close (a unix socket ignores them).
    pub async fn connect_with_credentials(
        server: &ServerUrl,
        creds: Arc<Credentials>,
    ) -> Result<Self, ClientError> {
        let client = Self::lazy(std::slice::from_ref(server), Some(creds))?;
        client.servers.active().await?;
        Ok(client)
    }

    /// A client of `servers` (https ones reached with `creds`) that
    /// connects at its first call, not now: for a node that must start
    /// while no control plane answers.
    pub fn lazy(
        servers: &[ServerUrl],
        creds: Option<Arc<Credentials>>,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            servers: Arc::new(Servers::new(servers.to_vec(), creds)?),
        })
    }

    /// The server this client talks to (the first configured one before
    /// it connected).
    pub async fn server(&self) -> ServerUrl {
        self.servers.current().await
    }

    /// Every server it may use: the configured ones, then those the
    /// cluster publishes.
    pub async fn servers(&self) -> Vec<ServerUrl> {
        self.servers.list().await
    }

    /// The generated gRPC client on the current connection, for callers
    /// that need the raw messages (no failover: a call on it fails when
    /// its server does).
    pub fn raw(&self) -> ApiClient<Channel> {
        api_client(self.servers.last_channel().unwrap_or_else(unconnected))
    }

    /// The data-plane views' gRPC client (`jotactl datapath`, `jotactl
    /// flows`) on the current connection, as [`Self::raw`].
    pub fn datapath(&self) -> DatapathClient<Channel> {
        datapath_client(self.servers.last_channel().unwrap_or_else(unconnected))
    }

    /// Sends `call` on the current connection; when its server is lost,
    /// moves to the next one and, as `retry` allows, sends it again (at
    /// most once per server).
    async fn call<T, F, Fut>(&self, retry: Retry, call: F) -> Result<T, ClientError>
    where
        F: FnMut(ApiClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        Ok(self.call_at(retry, call).await?.0)
    }

    /// [`Self::call`], also saying which connection answered.
    async fn call_at<T, F, Fut>(&self, retry: Retry, mut call: F) -> Result<(T, u64), ClientError>
    where
        F: FnMut(ApiClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let mut tries = 0;
        loop {
            let active = self.servers.active().await?;
            self.servers.discover(&active).await;
            let status = match call(api_client(active.channel.clone())).await {
                Ok(v) => return Ok((v, active.generation)),
                Err(status) => status,
            };
            if !failover::lost_server(&status) {
                return Err(status.into());
            }
            self.servers.failed(active.generation, &status).await;
            tries += 1;
            let again = match retry {
                Retry::Always => true,
                Retry::IfNeverSent => failover::never_sent(&status),
            };
            if !again || tries > self.servers.len().await {
                return Err(status.into());
            }
        }
    }

    /// Opens a stream whose input cannot be sent twice: on the current
    /// connection, once (a lost server is still left for the next call).
    async fn call_once<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: FnOnce(ApiClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        let active = self.servers.active().await?;
        match call(api_client(active.channel.clone())).await {
            Ok(v) => Ok(v),
            Err(status) => {
                if failover::lost_server(&status) {
                    self.servers.failed(active.generation, &status).await;
                }
                Err(status.into())
            }
        }
    }

    /// Server-side apply, all or nothing: one invalid object fails the whole
    /// call (`Invalid`) and writes nothing. `dry_run` validates and reports
    /// outcomes without writing.
    pub async fn apply(
        &self,
        objects: &[Object],
        dry_run: bool,
    ) -> Result<Vec<Applied>, ClientError> {
        let request = v1::ApplyRequest {
            objects: objects.iter().map(v1::Object::encode).collect(),
            dry_run,
        };
        // Apply is idempotent: sent again, the same objects come out the same.
        let response = self
            .call(Retry::Always, |mut api| {
                let request = request.clone();
                async move { api.apply(request).await }
            })
            .await?
            .into_inner();
        response
            .results
            .into_iter()
            .map(|r| {
                let object_ref = r
                    .r#ref
                    .ok_or_else(|| ClientError::Decode("apply result without a ref".into()))?
                    .typed()
                    .map_err(ClientError::Decode)?;
                let outcome = match v1::ApplyOutcome::try_from(r.outcome) {
                    Ok(v1::ApplyOutcome::Created) => Outcome::Created,
                    Ok(v1::ApplyOutcome::Configured) => Outcome::Configured,
                    Ok(v1::ApplyOutcome::Unchanged) => Outcome::Unchanged,
                    _ => {
                        return Err(ClientError::Decode(format!(
                            "unknown apply outcome {}",
                            r.outcome
                        )));
                    }
                };
                Ok(Applied {
                    object_ref,
                    outcome,
                    resource_version: r.resource_version,
                })
            })
            .collect()
    }

    /// One object.
    pub async fn get(&self, object_ref: &ObjectRef) -> Result<Object, ClientError> {
        let request = v1::GetRequest {
            r#ref: Some(object_ref.into()),
        };
        let object = self
            .call(Retry::Always, |mut api| {
                let request = request.clone();
                async move { api.get(request).await }
            })
            .await?;
        decode(Some(object.into_inner()))
    }

    /// Objects of `kind` in `namespace` (None: every namespace) whose labels
    /// match `label_selector` (kubectl's `-l` syntax; empty matches all).
    pub async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        label_selector: &str,
    ) -> Result<List, ClientError> {
        let request = v1::ListRequest {
            kind: kind.as_str().to_owned(),
            namespace: namespace.unwrap_or_default().to_owned(),
            label_selector: label_selector.to_owned(),
            node: String::new(),
            resource_version: String::new(),
        };
        self.list_request(request).await
    }

    /// Objects of `kind` as the agent of `node` sees them: Pods bound to
    /// it, ConfigMaps and Secrets its Pods reference, every object of the
    /// other kinds.
    pub async fn list_for_node(&self, kind: Kind, node: &str) -> Result<List, ClientError> {
        let request = v1::ListRequest {
            kind: kind.as_str().to_owned(),
            namespace: String::new(),
            label_selector: String::new(),
            node: node.to_owned(),
            resource_version: String::new(),
        };
        self.list_request(request).await
    }

    async fn list_request(&self, request: v1::ListRequest) -> Result<List, ClientError> {
        let response = self
            .call(Retry::Always, |mut api| {
                let request = request.clone();
                async move { api.list(request).await }
            })
            .await?
            .into_inner();
        let items = response
            .items
            .into_iter()
            .map(|o| decode(Some(o)))
            .collect::<Result<_, _>>()?;
        Ok(List {
            items,
            revision: response.revision,
        })
    }

    /// Deletes an object (only at `resource_version`, if given) and, in the
    /// background, what it owns. Returns the object and the dependents found.
    pub async fn delete(
        &self,
        object_ref: &ObjectRef,
        resource_version: Option<&str>,
    ) -> Result<Vec<ObjectRef>, ClientError> {
        let options = DeleteOptions {
            resource_version: resource_version.map(str::to_owned),
            grace_period_seconds: None,
        };
        self.delete_with(object_ref, &options).await
    }

    /// [`Client::delete`] with every option: a Pod bound to a node is only
    /// marked terminating (its node stops it, then removes it) unless
    /// `grace_period_seconds` is 0.
    pub async fn delete_with(
        &self,
        object_ref: &ObjectRef,
        options: &DeleteOptions,
    ) -> Result<Vec<ObjectRef>, ClientError> {
        let request = v1::DeleteRequest {
            r#ref: Some(object_ref.into()),
            resource_version: options.resource_version.clone().unwrap_or_default(),
            grace_period_seconds: options.grace_period_seconds,
        };
        let response = self
            .call(Retry::IfNeverSent, |mut api| {
                let request = request.clone();
                async move { api.delete(request).await }
            })
            .await?
            .into_inner();
        response
            .deleted
            .iter()
            .map(|r| r.typed().map_err(ClientError::Decode))
            .collect()
    }

    /// Replaces an object's status; its `metadata.resourceVersion` must be
    /// current, else [`ClientError::is_conflict`].
    pub async fn update_status(&self, object: &Object) -> Result<Object, ClientError> {
        let request = v1::UpdateStatusRequest {
            object: Some(v1::Object::encode(object)),
        };
        // Guarded by the resourceVersion: a repeat is refused as a conflict.
        let object = self
            .call(Retry::Always, |mut api| {
                let request = request.clone();
                async move { api.update_status(request).await }
            })
            .await?;
        decode(Some(object.into_inner()))
    }

    /// Sets `spec.replicas`.
    pub async fn scale(
        &self,
        object_ref: &ObjectRef,
        replicas: i32,
    ) -> Result<Object, ClientError> {
        let request = v1::ScaleRequest {
            r#ref: Some(object_ref.into()),
            replicas,
        };
        let object = self
            .call(Retry::Always, |mut api| {
                let request = request.clone();
                async move { api.scale(request).await }
            })
            .await?;
        decode(Some(object.into_inner()))
    }

    /// Evicts a Pod: deleted unless a PodDisruptionBudget forbids it now
    /// (then an error whose `is_too_many_requests` is true: retry later).
    pub async fn evict(
        &self,
        pod: &ObjectRef,
        grace_period_seconds: Option<i64>,
    ) -> Result<(), ClientError> {
        let request = v1::EvictRequest {
            r#ref: Some(pod.into()),
            grace_period_seconds,
        };
        self.call(Retry::IfNeverSent, |mut api| {
            let request = request.clone();
            async move { api.evict(request).await }
        })
        .await?;
        Ok(())
    }

    /// Binds Pods to Nodes; one result per binding, in order.
    pub async fn bind(&self, bindings: Vec<Binding>) -> Result<Vec<BindResult>, ClientError> {
        let request = v1::BindRequest { bindings };
        let response = self
            .call(Retry::IfNeverSent, |mut api| {
                let request = request.clone();
                async move { api.bind(request).await }
            })
            .await?;
        Ok(response.into_inner().results)
    }

    /// Says `node` is alive and reports its pods' usage.
    pub async fn heartbeat(&self, node: &str, pods: Vec<PodUsage>) -> Result<(), ClientError> {
        self.heartbeat_programmed(node, pods, None).await
    }

    /// [`Self::heartbeat`], with the revision of the view the node's data
    /// plane is programmed from (see `WaitEndpointsProgrammed`).
    pub async fn heartbeat_programmed(
        &self,
        node: &str,
        pods: Vec<PodUsage>,
        programmed_revision: Option<i64>,
    ) -> Result<(), ClientError> {
        let request = v1::HeartbeatRequest {
            node: node.to_owned(),
            pods,
            programmed_revision,
        };
        self.call(Retry::Always, |mut api| {
            let request = request.clone();
            async move { api.heartbeat(request).await }
        })
        .await?;
        Ok(())
    }

    /// Waits until every live node's data plane covers `revision`, at most
    /// `timeout`; the answer says whether they all did and names those
    /// that lag.
    pub async fn wait_endpoints_programmed(
        &self,
        revision: i64,
        timeout: std::time::Duration,
    ) -> Result<v1::WaitEndpointsProgrammedResponse, ClientError> {
        let request = v1::WaitEndpointsProgrammedRequest {
            revision,
            timeout_ms: i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX),
        };
        let response = self
            .call(Retry::Always, |mut api| {
                let mut call = tonic::Request::new(request);
                // The server answers by the timeout; leave room for the trip.
                call.set_timeout(timeout + std::time::Duration::from_secs(5));
                async move { api.wait_endpoints_programmed(call).await }
            })
            .await?;
        Ok(response.into_inner())
    }

    /// A container's captured output; see [`LogsRequest`].
    pub async fn logs(&self, request: LogsRequest) -> Result<LogStream, ClientError> {
        use futures_util::StreamExt as _;
        let stream = self
            .call(Retry::Always, |mut api| {
                let request = request.clone();
                async move { api.logs(request).await }
            })
            .await?
            .into_inner();
        Ok(Box::pin(
            stream.map(|chunk| Ok::<_, ClientError>(chunk?.data)),
        ))
    }

    /// Runs a command in a pod's container: `start` names it, `stdin` feeds
    /// it (an empty stream when `start.stdin` is false). The answer carries
    /// stdout and stderr and ends with the exit code.
    pub async fn exec(
        &self,
        start: ExecStart,
        stdin: impl Stream<Item = Vec<u8>> + Send + 'static,
    ) -> Result<ExecStream, ClientError> {
        use futures_util::StreamExt as _;
        let first = futures_util::stream::once(async move { exec_input(ExecIn::Start(start)) });
        let rest =
            stdin
                .map(|data| exec_input(ExecIn::Stdin(data)))
                .chain(futures_util::stream::once(async {
                    exec_input(ExecIn::StdinClosed(true))
                }));
        let stream = self
            .call_once(|mut api| async move { api.exec(first.chain(rest)).await })
            .await?
            .into_inner();
        Ok(Box::pin(stream.map(|item| {
            item?
                .output
                .ok_or_else(|| ClientError::Decode("an exec message without output".into()))
        })))
    }

    /// Imports an OCI image archive onto `nodes` (empty: every Ready node).
    pub async fn import_image(
        &self,
        nodes: Vec<String>,
        archive: impl Stream<Item = Vec<u8>> + Send + 'static,
    ) -> Result<Vec<ImageImported>, ClientError> {
        use futures_util::StreamExt as _;
        let first = futures_util::stream::once(async move {
            v1::ImageChunk {
                nodes,
                data: Vec::new(),
            }
        });
        let rest = archive.map(|data| v1::ImageChunk {
            nodes: Vec::new(),
            data,
        });
        let response = self
            .call_once(|mut api| async move { api.import_image(first.chain(rest)).await })
            .await?;
        Ok(response.into_inner().images)
    }

    /// Asks the control plane to sign `csr_pem` (PKCS#10, PEM) as the
    /// certificate of `node`. A joining node authenticates with a bootstrap
    /// token (`bearer`: `<id>.<secret>`, sent as `authorization: Bearer …`);
    /// a node renewing its certificate with the certificate it holds.
    pub async fn request_node_certificate(
        &self,
        node: &str,
        csr_pem: &str,
        bearer_token: Option<&str>,
    ) -> Result<NodeCertificate, ClientError> {
        let message = v1::NodeCertificateRequest {
            node: node.to_owned(),
            csr_pem: csr_pem.to_owned(),
        };
        let authorization = bearer_token.map(bearer).transpose()?;
        // Signing the same request again issues another certificate for
        // the same key: harmless.
        let response = self
            .call(Retry::Always, |mut api| {
                let mut request = tonic::Request::new(message.clone());
                if let Some(value) = &authorization {
                    request
                        .metadata_mut()
                        .insert("authorization", value.clone());
                }
                async move { api.request_node_certificate(request).await }
            })
            .await?
            .into_inner();
        Ok(NodeCertificate {
            certificate_pem: response.certificate_pem,
            ca_pem: response.ca_pem,
        })
    }

    /// Follows changes. To see everything: [`Client::list`], then watch from
    /// `list.revision + 1`; on a resync error, do both again. When the
    /// server is lost the watch moves to the next one and resumes from the
    /// last revision it delivered (nothing repeated, nothing lost; a watch
    /// "from now" that saw no event yet resumes from now).
    pub async fn watch(&self, filter: &WatchFilter) -> Result<EventStream, ClientError> {
        watch::open(self.clone(), filter.clone()).await
    }

    /// Opens one watch stream (with failover on opening); also says on
    /// which connection.
    async fn watch_once(
        &self,
        filter: &WatchFilter,
    ) -> Result<(tonic::Streaming<v1::WatchEvent>, u64), ClientError> {
        let request = v1::WatchRequest {
            kinds: filter.kinds.iter().map(|k| k.as_str().to_owned()).collect(),
            namespace: filter.namespace.clone().unwrap_or_default(),
            from_revision: filter.from_revision,
            label_selector: filter.label_selector.clone(),
            node: filter.node.clone().unwrap_or_default(),
        };
        let (stream, generation) = self
            .call_at(Retry::Always, |mut api| {
                let request = request.clone();
                async move { api.watch(request).await }
            })
            .await?;
        Ok((stream.into_inner(), generation))
    }

    /// The connection `generation` failed mid-stream with `status`.
    async fn lost(&self, generation: u64, status: &tonic::Status) {
        self.servers.failed(generation, status).await;
    }
}
