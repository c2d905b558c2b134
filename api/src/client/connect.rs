//! Server URLs and opening a channel: `unix:///path` (local admin socket,
//! no TLS: the socket file's permissions are the access control) or
//! `https://host:port` (TLS with the cluster CA; a client certificate when
//! the server asks for one). TLS goes through [`Credentials`], from files
//! ([`TlsFiles`]) or held by the caller ([`connect_with`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

impl ServerUrl {
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

async fn connect_unix(server: &ServerUrl, path: &Path) -> Result<Channel, ClientError> {
    let refused = |e: &dyn std::error::Error| ClientError::Connect {
        server: server.to_string(),
        detail: super::error::error_chain(e),
    };
    let path = path.to_owned();
    // The URI is a placeholder: the connector ignores it.
    Endpoint::from_static("http://localhost")
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
