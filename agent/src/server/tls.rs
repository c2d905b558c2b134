//! TLS on the node's port: the node certificate is read from the shared
//! [`Credentials`] at each handshake (a renewal applies to the next
//! connection), client certificates are required and verified against the
//! cluster CA, and each connection carries the caller's identity
//! ([`PeerInfo`]) to the calls made on it. Handshakes run apart from the
//! accept loop, so a slow client cannot hold the port.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use jotasu_api::client::identity::CertInfo;
use jotasu_api::client::{Credentials, ServerCertResolver, provider};
use rustls::ServerConfig;
use rustls::server::{NoServerSessionStorage, WebPkiClientVerifier};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{Instrument as _, debug, info_span, warn};

/// How long a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in flight at most.
const PENDING_HANDSHAKES: usize = 64;

/// Who is on the other end of a connection (a request extension of every
/// call on it).
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The caller's address.
    pub remote: SocketAddr,
    /// What the caller's verified client certificate says.
    pub identity: Option<CertInfo>,
}

/// A TLS connection to the node's port.
#[derive(Debug)]
pub struct NodeTlsStream {
    inner: TlsStream<TcpStream>,
    peer: PeerInfo,
}

impl tonic::transport::server::Connected for NodeTlsStream {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.peer.clone()
    }
}

impl AsyncRead for NodeTlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for NodeTlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The node port's TLS settings for `creds` (their CA verifies clients).
pub fn server_config(creds: &Arc<Credentials>) -> Result<ServerConfig, rustls::Error> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::clone(creds.current().roots()),
        Arc::clone(&provider),
    )
    .build()
    .map_err(|e| rustls::Error::General(format!("client certificate verifier: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(ServerCertResolver(Arc::clone(creds))));
    config.alpn_protocols = vec![b"h2".to_vec()];
    // Every connection proves its certificate anew: a resumed session
    // would carry the identity of an earlier handshake.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// The identity in the verified client certificate of `stream`.
fn peer_identity(stream: &TlsStream<TcpStream>) -> Option<CertInfo> {
    let der = stream.get_ref().1.peer_certificates()?.first()?;
    CertInfo::from_der("client certificate", der).ok()
}

/// Accepts on `listener` until `stop`, yielding connections whose TLS
/// handshake succeeded (failed ones are logged and dropped).
pub fn incoming(
    listener: TcpListener,
    config: ServerConfig,
    mut stop: watch::Receiver<bool>,
) -> ReceiverStream<io::Result<NodeTlsStream>> {
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let (tx, rx) = mpsc::channel(PENDING_HANDSHAKES);
    let address = listener.local_addr().ok();
    let accept = async move {
        loop {
            let (tcp, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = crate::stopped(&mut stop) => return,
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(inner)) => {
                        let peer = PeerInfo {
                            remote,
                            identity: peer_identity(&inner),
                        };
                        let _ = tx.send(Ok(NodeTlsStream { inner, peer })).await;
                    }
                    Ok(Err(e)) => debug!(%remote, error = %e, "TLS handshake refused"),
                    Err(_) => debug!(%remote, "TLS handshake timed out"),
                }
            });
        }
    };
    tokio::spawn(accept.instrument(info_span!("node_port_accept", address = ?address)));
    ReceiverStream::new(rx)
}
