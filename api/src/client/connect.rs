//! Server URLs and opening a channel: `unix:///path` (local admin socket,
//! no TLS: the socket file's permissions are the access control) or
//! `https://host:port` (TLS with the cluster CA; a client certificate when
//! the server asks for one). TLS goes through [`Credentials`], from files
//! ([`TlsFiles`]) or held by the caller ([`connect_with`]). Every channel
//! sends HTTP/2 keepalive pings, so a server that stops answering (stopped,
//! unplugged, not just closed) is noticed within [`DEAD_PEER_WITHIN`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use super::credentials::Credentials;
use super::error::ClientError;
use super::identity::CertError;

/// Where the control plane listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerUrl {
    /// A unix socket path.
    Unix(PathBuf),
    /// TLS over TCP: the URL and the host name the certificate must carry.
    Https {
        /// `https://host:port`.
        url: String,
        /// `host`, checked against the server certificate.
        host: String,
    },
}

/// How long connecting to one server (TCP and the TLS handshake) may take
/// before the next in the list is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How often an HTTP/2 keepalive ping is sent on a connection, idle or not.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(3);

/// How long a ping may go unanswered before the connection is declared dead.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a dead server goes unnoticed on an open connection.
pub const DEAD_PEER_WITHIN: Duration =
    Duration::from_secs(KEEPALIVE_INTERVAL.as_secs() + KEEPALIVE_TIMEOUT.as_secs());

/// `endpoint` with the client's keepalive settings.
pub(crate) fn keepalive(endpoint: Endpoint) -> Endpoint {
    endpoint
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
}

impl ServerUrl {
    /// Parses a list of servers, `URL[,URL...]` (spaces around commas and
    /// empty items are ignored; at least one is needed).
    pub fn parse_list(list: &str) -> Result<Vec<Self>, ClientError> {
        let servers = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Self::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if servers.is_empty() {
            return Err(ClientError::BadUrl {
                url: list.to_owned(),
                reason: "no server in the list".into(),
            });
        }
        Ok(servers)
    }

    /// Parses `unix:///abs/path` or `https://host:port`.
    pub fn parse(url: &str) -> Result<Self, ClientError> {
        let bad = |reason: &str| ClientError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = url.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(bad(
                    "a unix socket path must be absolute (unix:///run/x.sock)",
                ));
            }
            return Ok(ServerUrl::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("https://") {
            let authority = rest.trim_end_matches('/');
            if authority.is_empty() || authority.contains('/') {
                return Err(bad("expected https://host:port with no path"));
            }
            let (host, _) = super::tls::authority(url)?;
            return Ok(ServerUrl::Https {
                url: url.trim_end_matches('/').to_owned(),
                host,
            });
        }
        if url.starts_with("http://") {
            return Err(bad(
                "plain http is not served; use https:// or a unix socket",
            ));
        }
        Err(bad("unknown scheme"))
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerUrl::Unix(p) => write!(f, "unix://{}", p.display()),
            ServerUrl::Https { url, .. } => f.write_str(url),
        }
    }
}

/// TLS material for an https server (PEM files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA that signed the server certificate.
    pub certificate_authority: Option<PathBuf>,
    /// This client's certificate (signed by the cluster CA).
    pub client_certificate: Option<PathBuf>,
    /// This client's private key.
    pub client_key: Option<PathBuf>,
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| ClientError::File {
        what,
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// Opens a channel to `server` (connecting now, so an unreachable server is
/// reported here), with the TLS files `tls` names for an https server.
pub async fn connect(server: &ServerUrl, tls: &TlsFiles) -> Result<Channel, ClientError> {
    match server {
        ServerUrl::Unix(path) => connect_unix(server, path).await,
        ServerUrl::Https { url, .. } => {
            let creds = credentials_from_files(url, tls)?;
            super::tls::connect_https(url, Arc::new(creds)).await
        }
    }
}

/// Opens a channel to `server` with `creds` (read at each TLS handshake,
/// so replacing them changes what new connections present). A unix
/// socket uses no TLS and ignores them.
pub async fn connect_with(
    server: &ServerUrl,
    creds: Arc<Credentials>,
) -> Result<Channel, ClientError> {
    match server {
        ServerUrl::Unix(path) => connect_unix(server, path).await,
        ServerUrl::Https { url, .. } => super::tls::connect_https(url, creds).await,
    }
}

/// Opens a channel to `server` (https with `creds`), connecting now.
pub(crate) async fn dial(
    server: &ServerUrl,
    creds: Option<&Arc<Credentials>>,
) -> Result<Channel, ClientError> {
    match (server, creds) {
        (ServerUrl::Unix(path), _) => connect_unix(server, path).await,
        (ServerUrl::Https { url, .. }, Some(creds)) => {
            super::tls::connect_https(url, Arc::clone(creds)).await
        }
        (ServerUrl::Https { url, .. }, None) => Err(ClientError::MissingTls {
            server: url.clone(),
            missing: "a certificate authority (--certificate-authority)",
        }),
    }
}

async fn connect_unix(server: &ServerUrl, path: &Path) -> Result<Channel, ClientError> {
    let refused = |e: &dyn std::error::Error| ClientError::Connect {
        server: server.to_string(),
        detail: super::error::error_chain(e),
    };
    let path = path.to_owned();
    // The URI is a placeholder: the connector ignores it.
    keepalive(Endpoint::from_static("http://localhost"))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(&path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| refused(&e))
}

/// The [`Credentials`] that `tls` names for the https server `url`.
pub fn credentials_from_files(url: &str, tls: &TlsFiles) -> Result<Credentials, ClientError> {
    let ca_path = tls
        .certificate_authority
        .as_deref()
        .ok_or_else(|| ClientError::MissingTls {
            server: url.to_owned(),
            missing: "a certificate authority (--certificate-authority)",
        })?;
    let text = |what, path: &Path| {
        String::from_utf8(read(what, path)?).map_err(|e| ClientError::File {
            what,
            path: path.to_owned(),
            reason: e.to_string(),
        })
    };
    let ca = text("certificate authority", ca_path)?;
    let unusable = |what, path: &Path| {
        let path = path.to_owned();
        move |e: CertError| ClientError::File {
            what,
            path,
            reason: e.to_string(),
        }
    };
    match (&tls.client_certificate, &tls.client_key) {
        (Some(cert_path), Some(key_path)) => {
            let cert = text("client certificate", cert_path)?;
            let key = text("client key", key_path)?;
            // Say which file is wrong: the CA alone first, then the pair.
            Credentials::ca_only(&ca).map_err(unusable("certificate authority", ca_path))?;
            Credentials::from_pem(&ca, &cert, &key)
                .map_err(unusable("client certificate and key", cert_path))
        }
        (None, None) => {
            Credentials::ca_only(&ca).map_err(unusable("certificate authority", ca_path))
        }
        (Some(_), None) => Err(ClientError::MissingTls {
            server: url.to_owned(),
            missing: "the client key (--client-key) for the client certificate",
        }),
        (None, Some(_)) => Err(ClientError::MissingTls {
            server: url.to_owned(),
            missing: "the client certificate (--client-certificate) for the client key",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        assert_eq!(
            ServerUrl::parse("unix:///run/j/api.sock").unwrap(),
            ServerUrl::Unix("/run/j/api.sock".into())
        );
        assert_eq!(
            ServerUrl::parse("https://127.0.0.1:6443").unwrap(),
            ServerUrl::Https {
                url: "https://127.0.0.1:6443".into(),
                host: "127.0.0.1".into()
            }
        );
        assert_eq!(
            ServerUrl::parse("https://[::1]:6443/").unwrap().to_string(),
            "https://[::1]:6443"
        );
        let list = ServerUrl::parse_list(" https://a:1, ,https://b:2,").unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].to_string(), "https://b:2");
        assert!(ServerUrl::parse_list(" , ").is_err());
        assert!(ServerUrl::parse_list("https://a:1,http://b:2").is_err());
        for bad in [
            "unix://rel/path",
            "http://127.0.0.1:1",
            "https://host",
            "https://h:1/api",
            "tcp://x:1",
            "",
        ] {
            let e = ServerUrl::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid server URL"), "{bad}: {e}");
        }
    }
}
