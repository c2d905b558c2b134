//! Running probes: HTTP GET and TCP connect straight to the pod's IP (the
//! node routes to its pods, so no namespace switching), exec through the
//! agent's [`ProbeExec`]; port names resolved against the container's
//! ports; failure messages worded as the kubelet's.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use jotasu_api::kinds::pod::{Probe, Scheme};
use jotasu_api::{Container, IntOrString};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::pod::probe::ProbeOutcome;

/// The User-Agent of HTTP probes (unless the probe sets one).
pub const USER_AGENT: &str = concat!("jotasu-probe/", env!("CARGO_PKG_VERSION"));
/// The most response header bytes read before giving up.
const MAX_HEAD: usize = 16 * 1024;

/// Runs a command in the container for an exec probe (the agent does it
/// through containerd): exit 0 passes; see [`exec_outcome`].
pub trait ProbeExec {
    /// Runs `command` in the container, giving up after `timeout`.
    fn exec(
        &self,
        command: Vec<String>,
        timeout: Duration,
    ) -> impl Future<Output = ProbeOutcome> + Send;
}

/// The outcome of an exec probe as the kubelet words it: exit 0 passes;
/// otherwise the command's output is the message (or the exit code when it
/// printed nothing); a timeout is `command "…" timed out`.
pub fn exec_outcome(command: &[String], exit_code: Option<i32>, output: &str) -> ProbeOutcome {
    match exit_code {
        Some(0) => ProbeOutcome::Success,
        None => ProbeOutcome::Failure(format!("command {:?} timed out", command.join(" "))),
        Some(code) if output.trim().is_empty() => ProbeOutcome::Failure(format!(
            "command {:?} exited with {code}",
            command.join(" ")
        )),
        Some(_) => ProbeOutcome::Failure(output.to_owned()),
    }
}

/// A probe's port that cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// A port name the container does not declare.
    #[error("couldn't find port: {port} in container {container:?}")]
    UnknownName {
        /// The name.
        port: String,
        /// The container.
        container: String,
    },
    /// A number outside 1–65535.
    #[error("invalid port number: {0}")]
    OutOfRange(i64),
}

/// The port number of a probe's `port`: a number, a numeric string, or the
/// name of one of the container's ports (the kubelet's `ResolvePort`).
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, PortError> {
    let n = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(s) => match s.parse::<i64>() {
            Ok(n) => n,
            Err(_) => container
                .ports
                .iter()
                .find(|p| p.name.as_deref() == Some(s.as_str()))
                .map(|p| i64::from(p.container_port))
                .ok_or_else(|| PortError::UnknownName {
                    port: s.clone(),
                    container: container.name.clone(),
                })?,
        },
    };
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .ok_or(PortError::OutOfRange(n))
}

/// The address to probe: the probe's `host` when it is an IPv4 address,
/// else the pod's IP.
fn probe_host(host: Option<&str>, pod_ip: Ipv4Addr) -> Result<Ipv4Addr, String> {
    match host.map(str::trim).filter(|h| !h.is_empty()) {
        None => Ok(pod_ip),
        Some(h) => h.parse().map_err(|_| {
            format!("probe host {h:?} is not an IPv4 address (names are not resolved)")
        }),
    }
}

/// Runs `probe` against the container at `pod_ip`. Unresolvable ports and
/// hosts are `Unknown` (the kubelet's prober errors: the result is dropped).
pub async fn run_probe(
    probe: &Probe,
    pod_ip: Ipv4Addr,
    container: &Container,
    timeout: Duration,
    exec: &impl ProbeExec,
) -> ProbeOutcome {
    if let Some(h) = &probe.http_get {
        let port = match resolve_port(&h.port, container) {
            Ok(p) => p,
            Err(e) => return ProbeOutcome::Unknown(e.to_string()),
        };
        let ip = match probe_host(h.host.as_deref(), pod_ip) {
            Ok(ip) => ip,
            Err(e) => return ProbeOutcome::Unknown(e),
        };
        let headers: Vec<(String, String)> = h
            .http_headers
            .iter()
            .map(|x| (x.name.clone(), x.value.clone()))
            .collect();
        let path = h.path.as_deref().unwrap_or("/");
        let target = SocketAddrV4::new(ip, port);
        let scheme = h.scheme.unwrap_or_default();
        return http_probe(scheme, target, None, path, &headers, timeout).await;
    }
    if let Some(t) = &probe.tcp_socket {
        let port = match resolve_port(&t.port, container) {
            Ok(p) => p,
            Err(e) => return ProbeOutcome::Unknown(e.to_string()),
        };
        let ip = match probe_host(t.host.as_deref(), pod_ip) {
            Ok(ip) => ip,
            Err(e) => return ProbeOutcome::Unknown(e),
        };
        return tcp(SocketAddrV4::new(ip, port), timeout).await;
    }
    if let Some(e) = &probe.exec {
        return exec.exec(e.command.clone(), timeout).await;
    }
    if let Some(g) = &probe.grpc {
        let Ok(port) = u16::try_from(g.port) else {
            return ProbeOutcome::Unknown(format!("gRPC probe port {} is out of range", g.port));
        };
        let service = g.service.clone().unwrap_or_default();
        return grpc(SocketAddrV4::new(pod_ip, port), &service, timeout).await;
    }
    ProbeOutcome::Unknown("probe has no httpGet, tcpSocket, exec or grpc handler".into())
}

/// A gRPC probe: `grpc.health.v1.Health/Check` for `service` must answer
/// SERVING within `timeout` (plain HTTP/2, no TLS, as the kubelet's), in
/// the kubelet's words when it does not.
pub async fn grpc(target: SocketAddrV4, service: &str, timeout: Duration) -> ProbeOutcome {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{target}")) {
        Ok(e) => e.connect_timeout(timeout).timeout(timeout),
        Err(e) => return ProbeOutcome::Unknown(format!("gRPC probe target {target}: {e}")),
    };
    let channel = match tokio::time::timeout(timeout, endpoint.connect()).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            return ProbeOutcome::Failure(format!(
                "timeout: failed to connect service \"{target}\" within {}s: {e}",
                timeout.as_secs_f64()
            ));
        }
        Err(_) => {
            return ProbeOutcome::Failure(format!(
                "timeout: failed to connect service \"{target}\" within {}s",
                timeout.as_secs_f64()
            ));
        }
    };
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    match tokio::time::timeout(timeout, HealthClient::new(channel).check(request)).await {
        Ok(Ok(answer)) => match ServingStatus::try_from(answer.into_inner().status) {
            Ok(ServingStatus::Serving) => ProbeOutcome::Success,
            Ok(other) => ProbeOutcome::Failure(format!(
                "service unhealthy (responded with \"{}\")",
                other.as_str_name()
            )),
            Err(_) => {
                ProbeOutcome::Failure("service unhealthy (responded with an unknown status)".into())
            }
        },
        Ok(Err(status)) => ProbeOutcome::Failure(format!(
            "error: health rpc probe failed: {}: {}",
            status.code(),
            status.message()
        )),
        Err(_) => ProbeOutcome::Failure(format!(
            "timeout: health rpc did not complete within {}s",
            timeout.as_secs_f64()
        )),
    }
}

/// Go's wording of a failed connect (`connect: connection refused`).
fn connect_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        std::io::ErrorKind::HostUnreachable => "connect: no route to host".into(),
        std::io::ErrorKind::NetworkUnreachable => "connect: network is unreachable".into(),
        _ => format!("connect: {e}"),
    }
}

/// A TCP connect probe: passes when the connection opens within `timeout`.
pub async fn tcp(target: SocketAddrV4, timeout: Duration) -> ProbeOutcome {
    match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
        Ok(Ok(_)) => ProbeOutcome::Success,
        Ok(Err(e)) => ProbeOutcome::Failure(format!("dial tcp {target}: {}", connect_error(&e))),
        Err(_) => ProbeOutcome::Failure(format!("dial tcp {target}: i/o timeout")),
    }
}

/// An HTTP GET probe: passes on a 200–399 answer within `timeout`
/// (redirects are not followed: a 3xx passes). `host` replaces the `Host`
/// header's default (`ip:port`); a `Host` in `headers` wins over both.
pub async fn http_get(
    target: SocketAddrV4,
    host: Option<&str>,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> ProbeOutcome {
    http_probe(Scheme::Http, target, host, path, headers, timeout).await
}

/// [`http_get`] over TLS, without verifying the server's certificate (as
/// the kubelet's HTTPS probes).
pub async fn https_get(
    target: SocketAddrV4,
    host: Option<&str>,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> ProbeOutcome {
    http_probe(Scheme::Https, target, host, path, headers, timeout).await
}

async fn http_probe(
    scheme: Scheme,
    target: SocketAddrV4,
    host: Option<&str>,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> ProbeOutcome {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let prefix = match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    let url = format!("{prefix}://{target}{path}");
    let bad = |s: &str| s.chars().any(|c| c.is_control() || (c == ' '));
    if bad(&path)
        || headers
            .iter()
            .any(|(n, v)| bad(n) || n.is_empty() || v.chars().any(char::is_control))
    {
        return ProbeOutcome::Unknown(format!(
            "Get {url:?}: path or headers contain spaces or control characters"
        ));
    }
    let request = build_request(target, host, &path, headers);
    let attempt = async {
        let tcp = TcpStream::connect(target)
            .await
            .map_err(|e| format!("dial tcp {target}: {}", connect_error(&e)))?;
        match scheme {
            Scheme::Http => exchange(tcp, target, &request).await,
            Scheme::Https => {
                let name = ServerName::IpAddress((*target.ip()).into());
                let tls = tls_connector()?
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("tls: {e}"))?;
                exchange(tls, target, &request).await
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => ProbeOutcome::Failure(format!(
            "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
        Ok(Err(why)) => ProbeOutcome::Failure(format!("Get {url:?}: {why}")),
        Ok(Ok(code)) if (200..400).contains(&code) => ProbeOutcome::Success,
        Ok(Ok(code)) => ProbeOutcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
    }
}

/// Accepts any server certificate (HTTPS probes do not verify), while still
/// checking the handshake signatures.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS client of HTTPS probes (built once).
fn tls_connector() -> Result<TlsConnector, String> {
    static CONNECTOR: OnceLock<Result<TlsConnector, String>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("tls: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth();
            Ok(TlsConnector::from(Arc::new(config)))
        })
        .clone()
}

fn build_request(
    target: SocketAddrV4,
    host: Option<&str>,
    path: &str,
    headers: &[(String, String)],
) -> String {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    if !has("host") {
        match host {
            Some(h) => req.push_str(&format!("Host: {h}\r\n")),
            None => req.push_str(&format!("Host: {target}\r\n")),
        }
    }
    if !has("user-agent") {
        req.push_str(&format!("User-Agent: {USER_AGENT}\r\n"));
    }
    if !has("accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    req
}

/// Sends the request and returns the final status code (skipping 1xx).
async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    target: SocketAddrV4,
    request: &str,
) -> Result<u16, String> {
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write tcp {target}: {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        // Consume complete heads; an interim (1xx) one is skipped.
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let code = status_code(&buf[..end])?;
            if (100..200).contains(&code) && code != 101 {
                buf.drain(..end + 4);
                continue;
            }
            return Ok(code);
        }
        if buf.len() > MAX_HEAD {
            return Err("net/http: response headers too long".into());
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read tcp {target}: {e}"))?;
        if n == 0 {
            return match find(&buf, b"\r\n") {
                // A status line without the end of the head: take it.
                Some(end) => status_code(&buf[..end]),
                None => Err("EOF".into()),
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The status code of a response head (`HTTP/1.1 200 OK`).
fn status_code(head: &[u8]) -> Result<u16, String> {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end_matches('\r');
    let mut parts = line.splitn(3, ' ');
    let malformed = || format!("net/http: malformed HTTP response {line:?}");
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(malformed());
    }
    let code = parts.next().unwrap_or_default();
    match code.parse::<u16>() {
        Ok(c) if code.len() == 3 && (100..1000).contains(&c) => Ok(c),
        _ => Err(malformed()),
    }
}

#[cfg(test)]
#[path = "probe_run_tests.rs"]
mod tests;
