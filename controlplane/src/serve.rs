//! Serving the API: on a unix socket (local admin; mode 0600) and, when
//! asked, on TCP with mutual TLS. Shutdown is graceful: watches end with
//! the revision to resume from, in-flight calls finish, the socket file is
//! removed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jotasu_api::client::{Config, Context};
use jotasu_api::grpc::v1::api_server::ApiServer as ApiService;
use jotasu_api::grpc::v1::datapath_server::DatapathServer as DatapathService;
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tracing::info;

use crate::apiserver::ApiServer;
use crate::apiserver::datapath::GrpcDatapath;
use crate::apiserver::grpc::GrpcApi;
use crate::apiserver::guard::Guard;
use crate::pki::{PkiPaths, ServerTls};
use crate::store::Store;

/// Largest request accepted (an apply of many large manifests).
const MAX_REQUEST: usize = 64 << 20;

/// How often the server pings a client's connection (HTTP/2 keepalive),
/// so the watches of a client that vanished (a node unplugged) end.
/// Clients ping the server every 3 s themselves
/// (`jotasu_api::client::KEEPALIVE_INTERVAL`); hyper's HTTP/2 server answers
/// every ping and has no ping policy to refuse them (unlike gRPC-Go's
/// `MinTime`), so no permitted-ping setting is needed.
const KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// How long a server ping may go unanswered before the connection is closed.
const KEEPALIVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A server builder with the keepalive settings.
fn builder() -> Server {
    Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
}

/// Where to listen.
#[derive(Debug, Clone)]
pub struct Listeners {
    /// The unix socket path.
    pub socket: PathBuf,
    /// The TCP address for mutual TLS, and its material.
    pub tls: Option<(SocketAddr, ServerTls)>,
}

/// A listener could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another process serves on the socket already.
    #[error("another control plane is serving on {0}; stop it or choose another --socket")]
    SocketInUse(PathBuf),
    /// Binding or preparing a listener failed.
    #[error("cannot listen on {what}: {source}")]
    Listen {
        /// The address or path.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// TLS set-up or serving failed.
    #[error("serving on {what}: {source}")]
    Transport {
        /// The address or path.
        what: String,
        /// Why.
        source: tonic::transport::Error,
    },
}

/// Binds the unix socket, replacing a stale file but never a live server's.
async fn bind_socket(path: &Path) -> Result<tokio::net::UnixListener, ServeError> {
    let listen_err = |source| ServeError::Listen {
        what: path.display().to_string(),
        source,
    };
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(ServeError::SocketInUse(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(listen_err)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(listen_err)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(listen_err)?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(listen_err)?;
    Ok(listener)
}

/// Serves `server` until `stop` turns true (which also ends its watches),
/// every call authenticated and authorized by `guard`.
pub async fn serve<S: Store>(
    server: ApiServer<S>,
    guard: Arc<Guard<S>>,
    listeners: Listeners,
    stop: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let service = || {
        ApiService::new(GrpcApi::new(server.clone(), Arc::clone(&guard)))
            .max_decoding_message_size(MAX_REQUEST)
            .max_encoding_message_size(usize::MAX)
    };
    let views = || DatapathService::new(GrpcDatapath::new(server.clone(), Arc::clone(&guard)));
    let unix = bind_socket(&listeners.socket).await?;
    let socket = listeners.socket.clone();
    info!(socket = %socket.display(), "serving on the unix socket");
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let unix_server = builder()
        .add_service(service())
        .add_service(views())
        .serve_with_incoming_shutdown(UnixListenerStream::new(unix), stopped(stop.clone()));
    let tcp_server = listeners.tls.map(|(addr, tls)| {
        let config = ServerTlsConfig::new()
            .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
            .client_ca_root(Certificate::from_pem(&tls.ca_pem))
            // A joining node has no certificate yet: it presents a
            // bootstrap token. Every call is authenticated (a call with
            // neither is refused), certificates are verified when given.
            .client_auth_optional(true);
        let what = format!("https://{addr}");
        info!(address = %what, "serving with mutual TLS");
        let stop = stop.clone();
        async move {
            builder()
                .tls_config(config)
                .map_err(|source| ServeError::Transport {
                    what: what.clone(),
                    source,
                })?
                .add_service(service())
                .add_service(views())
                .serve_with_shutdown(addr, stopped(stop))
                .await
                .map_err(|source| ServeError::Transport { what, source })
        }
    });
    let unix_result = async {
        unix_server.await.map_err(|source| ServeError::Transport {
            what: socket.display().to_string(),
            source,
        })
    };
    let result = match tcp_server {
        Some(tcp) => {
            let (a, b) = tokio::join!(unix_result, tcp);
            a.and(b)
        }
        None => unix_result.await,
    };
    let _ = std::fs::remove_file(&listeners.socket);
    result
}

/// Writes `<data-dir>/admin.conf`: a context file for jotactl
/// (`JOTASU_CONFIG=<data-dir>/admin.conf jotactl get pods`), with a
/// `local` context on the socket and, with TLS, a `tls` one.
pub fn write_admin_config(
    data_dir: &Path,
    socket: &Path,
    tls: Option<SocketAddr>,
) -> Result<PathBuf, jotasu_api::client::ClientError> {
    let path = data_dir.join("admin.conf");
    let mut config = Config::default();
    config.upsert(Context {
        name: "local".into(),
        server: format!("unix://{}", socket.display()),
        servers: Vec::new(),
        certificate_authority: None,
        client_certificate: None,
        client_key: None,
    });
    if let Some(addr) = tls {
        let pki = PkiPaths::new(data_dir);
        config.upsert(Context {
            name: "tls".into(),
            server: format!("https://{addr}"),
            servers: Vec::new(),
            certificate_authority: Some(pki.ca_cert()),
            client_certificate: Some(pki.admin_cert()),
            client_key: Some(pki.admin_key()),
        });
    }
    config.current_context = Some("local".into());
    config.save(&path)?;
    Ok(path)
}
