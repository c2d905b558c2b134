//! TLS done by the client itself rather than by tonic: connections whose
//! certificate comes from [`Credentials`] at each handshake (and that close
//! when the credentials are replaced), and the one handshake that trusts
//! nothing — [`fetch_ca_from_handshake`], which only captures the chain a
//! server presents so a joining node can compare the CA with its pin.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

use super::credentials::{ClientCertResolver, Credentials, HeldCaVerifier, provider};
use super::error::{ClientError, error_chain};
use super::identity::cert_to_pem;

/// How long a TCP connect plus TLS handshake may take: a server that
/// accepts but never answers (stopped) is given up within it.
const HANDSHAKE_TIMEOUT: Duration = super::connect::CONNECT_TIMEOUT;

/// `host` and port of `https://host:port`.
pub(super) fn authority(url: &str) -> Result<(String, u16), ClientError> {
    let bad = |reason: &str| ClientError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
    let host = uri
        .host()
        .ok_or_else(|| bad("no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().ok_or_else(|| bad("no port"))?;
    Ok((host, port))
}

fn server_name(url: &str, host: &str) -> Result<ServerName<'static>, ClientError> {
    ServerName::try_from(host.to_owned()).map_err(|e| ClientError::BadUrl {
        url: url.to_owned(),
        reason: format!("{host:?} is not a DNS name or IP address: {e}"),
    })
}

fn client_config(creds: &Arc<Credentials>) -> Result<ClientConfig, rustls::Error> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(HeldCaVerifier(Arc::clone(creds))))
        .with_client_cert_resolver(Arc::new(ClientCertResolver(Arc::clone(creds))));
    config.alpn_protocols = vec![b"h2".to_vec()];
    // A resumed session carries the identity of its first handshake: after
    // a renewal the server would still see the old certificate.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// Dials TLS connections presenting the held certificate.
#[derive(Debug)]
struct Dialer {
    creds: Arc<Credentials>,
    config: Arc<ClientConfig>,
    host: String,
    port: u16,
    name: ServerName<'static>,
}

impl Dialer {
    async fn dial(
        &self,
    ) -> io::Result<TokioIo<Retiring<tokio_rustls::client::TlsStream<TcpStream>>>> {
        // Taken before the handshake: a replacement during it retires the
        // connection at once.
        let mut generation = self.creds.generation();
        let born = *generation.borrow_and_update();
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
            let tcp = TcpStream::connect((self.host.as_str(), self.port)).await?;
            tcp.set_nodelay(true)?;
            TlsConnector::from(Arc::clone(&self.config))
                .connect(self.name.clone(), tcp)
                .await
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "the TLS handshake timed out"))??;
        let retired = Box::pin(async move {
            if generation.wait_for(|g| *g != born).await.is_err() {
                std::future::pending::<()>().await;
            }
        });
        Ok(TokioIo::new(Retiring {
            inner: stream,
            retired,
            gone: false,
        }))
    }
}

/// Opens a channel to `https://host:port` whose TLS reads `creds` at each
/// handshake: the server must present a certificate for `host` signed by
/// the held CA; the held certificate (if any) is presented as the client's.
/// Connects now, so an unreachable or untrusted server is reported here.
pub async fn connect_https(url: &str, creds: Arc<Credentials>) -> Result<Channel, ClientError> {
    let (host, port) = authority(url)?;
    let name = server_name(url, &host)?;
    let config = client_config(&creds).map_err(|e| ClientError::Connect {
        server: url.to_owned(),
        detail: format!("TLS configuration: {e}"),
    })?;
    let dialer = Arc::new(Dialer {
        creds,
        config: Arc::new(config),
        host,
        port,
        name,
    });
    // The scheme is http because the connector does TLS itself; the
    // authority is the server's.
    let plain = format!("http://{}", url.trim_start_matches("https://"));
    let endpoint = Endpoint::from_shared(plain).map_err(|e| ClientError::BadUrl {
        url: url.to_owned(),
        reason: e.to_string(),
    })?;
    let endpoint = super::connect::keepalive(endpoint);
    endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let dialer = Arc::clone(&dialer);
            async move { dialer.dial().await }
        }))
        .await
        .map_err(|e| ClientError::Connect {
            server: url.to_owned(),
            detail: error_chain(&e),
        })
}

/// A connection that fails its reads and writes once the credentials it
/// was made with are replaced, so the channel reconnects with the new ones.
struct Retiring<S> {
    inner: S,
    retired: Pin<Box<dyn Future<Output = ()> + Send>>,
    gone: bool,
}

impl<S> Retiring<S> {
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if !self.gone && self.retired.as_mut().poll(cx).is_ready() {
            self.gone = true;
            tracing::debug!("closing a connection made with replaced credentials");
        }
        if self.gone {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the client's credentials were renewed: reconnecting with the new certificate",
            ));
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Retiring<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Retiring<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Accepts any server certificate and keeps the chain it saw. The
/// handshake's signatures are still checked, so the server holds the
/// key of the leaf it presented. Used only by [`fetch_ca_from_handshake`].
#[derive(Debug)]
struct CaptureChain {
    seen: Mutex<Vec<CertificateDer<'static>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for CaptureChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *seen = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The certificate chain `https://host:port` presents (leaf first, PEM),
/// from a TLS handshake that verifies nothing and sends no request. The
/// result is untrusted until its CA is compared with a pin (kubeadm's
/// `--discovery-token-ca-cert-hash`); this is the only handshake in jotasu
/// that skips verification.
pub async fn fetch_ca_from_handshake(url: &str) -> Result<Vec<String>, ClientError> {
    let (host, port) = authority(url)?;
    let name = server_name(url, &host)?;
    let failed = |detail: String| ClientError::Connect {
        server: url.to_owned(),
        detail,
    };
    let provider = provider();
    let capture = Arc::new(CaptureChain {
        seen: Mutex::new(Vec::new()),
        provider: Arc::clone(&provider),
    });
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| failed(format!("TLS configuration: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(&capture) as Arc<dyn ServerCertVerifier>)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = TlsConnector::from(Arc::new(config));
    let handshake = async {
        let tcp = TcpStream::connect((host.as_str(), port)).await?;
        connector.connect(name, tcp).await
    };
    let mut stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| failed("the TLS handshake timed out".into()))?
        .map_err(|e| failed(error_chain(&e)))?;
    let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
    let seen = std::mem::take(
        &mut *capture
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    if seen.is_empty() {
        return Err(failed("the server presented no certificate".into()));
    }
    Ok(seen.iter().map(|c| cert_to_pem(c)).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::client::credentials::{Material, ServerCertResolver};
    use crate::client::identity::{CertInfo, ca_cert_hash};
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[test]
    fn authorities() {
        assert_eq!(
            authority("https://127.0.0.1:6443").ok(),
            Some(("127.0.0.1".to_owned(), 6443))
        );
        assert_eq!(
            authority("https://[::1]:6443").ok(),
            Some(("::1".to_owned(), 6443))
        );
        assert!(authority("https://cp").is_err());
        assert!(server_name("https://x:1", "::1").is_ok());
        assert!(server_name("https://x:1", "bad name!").is_err());
    }

    struct Pki {
        ca_pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    impl Pki {
        fn new() -> Self {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name.push(DnType::CommonName, "test-ca");
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let ca_pem = p.self_signed(&key).unwrap().pem();
            Self {
                ca_pem,
                issuer: Issuer::new(p, key),
            }
        }

        fn leaf(&self, cn: &str, eku: ExtendedKeyUsagePurpose) -> (String, String) {
            let key = KeyPair::generate().unwrap();
            let mut p =
                CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                    .unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            p.extended_key_usages = vec![eku];
            (
                p.signed_by(&key, &self.issuer).unwrap().pem(),
                key.serialize_pem(),
            )
        }
    }

    /// A TLS server on 127.0.0.1 presenting `leaf + CA`, asking for client
    /// certificates (optional), answering each connection with the CN of
    /// the client's certificate and a newline, then echoing.
    async fn server(pki: &Pki) -> u16 {
        let (cert, key) = pki.leaf("server", ExtendedKeyUsagePurpose::ServerAuth);
        let chain = format!("{cert}{}", pki.ca_pem);
        let creds =
            Arc::new(crate::client::Credentials::from_pem(&pki.ca_pem, &chain, &key).unwrap());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::clone(creds.current().roots()),
            provider(),
        )
        .allow_unauthenticated()
        .build()
        .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(Arc::new(ServerCertResolver(creds)));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let cn = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| CertInfo::from_der("client", c).unwrap().common_name)
                        .unwrap_or_else(|| "-".into());
                    let _ = tls.write_all(format!("{cn}\n").as_bytes()).await;
                    let mut buf = [0; 64];
                    while let Ok(n) = tls.read(&mut buf).await {
                        if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        port
    }

    async fn first_line(s: &mut (impl AsyncRead + Unpin)) -> std::io::Result<String> {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        loop {
            if s.read(&mut b).await? == 0 || b[0] == b'\n' {
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            line.push(b[0]);
        }
    }

    #[tokio::test]
    async fn captures_the_chain_without_trusting_it() {
        let pki = Pki::new();
        let port = server(&pki).await;
        let chain = fetch_ca_from_handshake(&format!("https://127.0.0.1:{port}"))
            .await
            .unwrap();
        assert_eq!(chain.len(), 2, "leaf and CA");
        assert_eq!(
            ca_cert_hash(&chain[1]).unwrap(),
            ca_cert_hash(&pki.ca_pem).unwrap()
        );
        let e = fetch_ca_from_handshake("https://127.0.0.1:1")
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Connect { .. }), "{e}");
    }

    #[tokio::test]
    async fn new_connections_present_renewed_credentials_and_old_ones_close() {
        let pki = Pki::new();
        let port = server(&pki).await;
        let (c1, k1) = pki.leaf("first", ExtendedKeyUsagePurpose::ClientAuth);
        let creds = Arc::new(crate::client::Credentials::from_pem(&pki.ca_pem, &c1, &k1).unwrap());
        let dialer = Dialer {
            config: Arc::new(client_config(&creds).unwrap()),
            creds: Arc::clone(&creds),
            host: "127.0.0.1".into(),
            port,
            name: ServerName::try_from("127.0.0.1").unwrap(),
        };
        let mut old = dialer.dial().await.unwrap().into_inner();
        assert_eq!(first_line(&mut old).await.unwrap(), "first");

        let (c2, k2) = pki.leaf("second", ExtendedKeyUsagePurpose::ClientAuth);
        creds.replace(Material::new(&pki.ca_pem, Some((&c2, &k2))).unwrap());
        let mut new = dialer.dial().await.unwrap().into_inner();
        assert_eq!(first_line(&mut new).await.unwrap(), "second");
        let e = old.write_all(b"x").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted, "{e}");

        // A CA that is not the server's: the handshake fails.
        let other = Pki::new();
        creds.replace(Material::new(&other.ca_pem, Some((&c2, &k2))).unwrap());
        assert!(dialer.dial().await.is_err());
    }
}
