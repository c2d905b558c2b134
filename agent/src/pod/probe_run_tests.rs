//! Tests of the probe runners against tiny servers on 127.0.0.1.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use jotasu_api::kinds::pod::{
    ContainerPort, ExecAction, HttpGetAction, HttpHeader, TcpSocketAction,
};
use tokio::net::TcpListener;

use super::*;

const T: Duration = Duration::from_secs(2);

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("listener is IPv4"),
    }
}

/// Serves one canned answer per connection; records each request head.
async fn serve(answer: &'static str) -> (SocketAddrV4, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = v4(listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while find(&buf, b"\r\n\r\n").is_none() {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            if let Ok(mut l) = log.lock() {
                l.push(String::from_utf8_lossy(&buf).into_owned());
            }
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    (addr, seen)
}

/// Serves one canned answer per TLS connection, with a self-signed certificate.
async fn serve_tls(answer: &'static str) -> SocketAddrV4 {
    let cert = rcgen::generate_simple_self_signed(vec!["probe.test".to_owned()]).expect("cert");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert.der().clone()], key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = v4(listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let Ok(mut s) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while find(&buf, b"\r\n\r\n").is_none() {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = s.write_all(answer.as_bytes()).await;
            let _ = s.shutdown().await;
        }
    });
    addr
}

#[tokio::test]
async fn https_without_verification() {
    let addr = serve_tls("HTTP/1.1 200 OK\r\n\r\n").await;
    assert_eq!(
        https_get(addr, None, "/", &[], T).await,
        ProbeOutcome::Success
    );
    let addr = serve_tls("HTTP/1.1 503 Unavailable\r\n\r\n").await;
    assert_eq!(
        https_get(addr, None, "/", &[], T).await,
        ProbeOutcome::Failure("HTTP probe failed with statuscode: 503".into())
    );
    // A plain HTTP server answering at once, TLS client: a TLS error, not a pass.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let plain = v4(listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        if let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await;
        }
    });
    let ProbeOutcome::Failure(msg) = https_get(plain, None, "/", &[], T).await else {
        panic!("TLS to a plain server passed");
    };
    assert!(
        msg.starts_with(&format!("Get \"https://{plain}/\": tls: ")),
        "{msg}"
    );
}

/// A port on 127.0.0.1 that refuses connections.
async fn closed_port() -> SocketAddrV4 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    v4(l.local_addr().expect("addr"))
}

#[tokio::test]
async fn http_2xx_and_3xx_pass() {
    for answer in [
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        "HTTP/1.0 204 No Content\r\n\r\n",
        "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 399 Whatever\r\n",
    ] {
        let (addr, _) = serve(answer).await;
        assert_eq!(
            http_get(addr, None, "/healthz", &[], T).await,
            ProbeOutcome::Success,
            "{answer:?}"
        );
    }
}

#[tokio::test]
async fn http_errors_fail_with_kubelet_messages() {
    let (addr, _) = serve("HTTP/1.1 500 Internal Server Error\r\n\r\n").await;
    assert_eq!(
        http_get(addr, None, "/", &[], T).await,
        ProbeOutcome::Failure("HTTP probe failed with statuscode: 500".into())
    );
    let (addr, _) = serve("HTTP/1.1 404 Not Found\r\n\r\n").await;
    assert_eq!(
        http_get(addr, None, "/", &[], T).await,
        ProbeOutcome::Failure("HTTP probe failed with statuscode: 404".into())
    );
    let (addr, _) = serve("garbage\r\n\r\n").await;
    let ProbeOutcome::Failure(msg) = http_get(addr, None, "/", &[], T).await else {
        panic!("garbage passed");
    };
    assert!(msg.contains("malformed HTTP response"), "{msg}");
    let (addr, _) = serve("").await;
    assert_eq!(
        http_get(addr, None, "/x", &[], T).await,
        ProbeOutcome::Failure(format!("Get \"http://{addr}/x\": EOF"))
    );
}

#[tokio::test]
async fn http_connection_refused() {
    let addr = closed_port().await;
    assert_eq!(
        http_get(addr, None, "/", &[], T).await,
        ProbeOutcome::Failure(format!(
            "Get \"http://{addr}/\": dial tcp {addr}: connect: connection refused"
        ))
    );
}

#[tokio::test]
async fn http_timeout() {
    // Accepts (the kernel's backlog does) but never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = v4(listener.local_addr().expect("addr"));
    let outcome = http_get(addr, None, "/", &[], Duration::from_millis(200)).await;
    assert_eq!(
        outcome,
        ProbeOutcome::Failure(format!(
            "Get \"http://{addr}/\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        ))
    );
    drop(listener);
}

#[tokio::test]
async fn http_request_carries_path_host_and_headers() {
    let (addr, seen) = serve("HTTP/1.1 200 OK\r\n\r\n").await;
    http_get(
        addr,
        None,
        "ready?full=1",
        &[("X-Probe".into(), "yes".into())],
        T,
    )
    .await;
    http_get(addr, Some("example.test"), "/", &[], T).await;
    http_get(
        addr,
        Some("ignored"),
        "/",
        &[
            ("host".into(), "mine".into()),
            ("User-Agent".into(), "me".into()),
        ],
        T,
    )
    .await;
    let seen = seen.lock().expect("log").clone();
    assert!(
        seen[0].starts_with("GET /ready?full=1 HTTP/1.1\r\n"),
        "{}",
        seen[0]
    );
    assert!(
        seen[0].contains(&format!("Host: {addr}\r\n")),
        "{}",
        seen[0]
    );
    assert!(seen[0].contains("X-Probe: yes\r\n"));
    assert!(seen[0].contains(&format!("User-Agent: {USER_AGENT}\r\n")));
    assert!(seen[0].contains("Accept: */*\r\n"));
    assert!(seen[1].contains("Host: example.test\r\n"), "{}", seen[1]);
    assert!(
        seen[2].contains("host: mine\r\n") && !seen[2].contains("Host: ignored"),
        "{}",
        seen[2]
    );
    assert!(seen[2].contains("User-Agent: me\r\n") && !seen[2].contains(USER_AGENT));
}

#[tokio::test]
async fn header_injection_is_refused() {
    let (addr, seen) = serve("HTTP/1.1 200 OK\r\n\r\n").await;
    let o = http_get(addr, None, "/", &[("X".into(), "a\r\nEvil: 1".into())], T).await;
    assert!(matches!(o, ProbeOutcome::Unknown(_)), "{o:?}");
    let o = http_get(addr, None, "/a b", &[], T).await;
    assert!(matches!(o, ProbeOutcome::Unknown(_)), "{o:?}");
    assert!(seen.lock().expect("log").is_empty());
}

#[tokio::test]
async fn tcp_probe() {
    let (addr, _) = serve("").await;
    assert_eq!(tcp(addr, T).await, ProbeOutcome::Success);
    let closed = closed_port().await;
    assert_eq!(
        tcp(closed, T).await,
        ProbeOutcome::Failure(format!("dial tcp {closed}: connect: connection refused"))
    );
}

fn container() -> Container {
    Container {
        name: "app".into(),
        ports: vec![
            ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("bad".into()),
                container_port: 70_000,
                ..ContainerPort::default()
            },
        ],
        ..Container::default()
    }
}

#[test]
fn ports_resolve_by_number_and_name() {
    let c = container();
    assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
    assert_eq!(resolve_port(&IntOrString::from("9090"), &c), Ok(9090));
    assert_eq!(resolve_port(&IntOrString::from("http"), &c), Ok(8080));
    assert_eq!(
        resolve_port(&IntOrString::from("grpc"), &c)
            .expect_err("unknown")
            .to_string(),
        r#"couldn't find port: grpc in container "app""#
    );
    assert_eq!(
        resolve_port(&IntOrString::from("bad"), &c),
        Err(PortError::OutOfRange(70_000))
    );
    assert_eq!(
        resolve_port(&IntOrString::Int(0), &c),
        Err(PortError::OutOfRange(0))
    );
    assert_eq!(
        resolve_port(&IntOrString::Int(-1), &c),
        Err(PortError::OutOfRange(-1))
    );
}

/// Records exec calls and answers with a fixed outcome.
#[derive(Debug, Default)]
struct FakeExec {
    calls: Mutex<Vec<(Vec<String>, Duration)>>,
}

impl ProbeExec for FakeExec {
    fn exec(
        &self,
        command: Vec<String>,
        timeout: Duration,
    ) -> impl Future<Output = ProbeOutcome> + Send {
        if let Ok(mut c) = self.calls.lock() {
            c.push((command.clone(), timeout));
        }
        async move { exec_outcome(&command, Some(1), "not healthy\n") }
    }
}

#[tokio::test]
async fn run_probe_dispatches() {
    let (addr, _) = serve("HTTP/1.1 200 OK\r\n\r\n").await;
    let exec = FakeExec::default();
    let mut c = container();
    c.ports[0].container_port = i32::from(addr.port());
    let http = Probe {
        http_get: Some(HttpGetAction {
            port: IntOrString::from("http"),
            path: Some("/healthz".into()),
            http_headers: vec![HttpHeader {
                name: "X-A".into(),
                value: "1".into(),
            }],
            ..HttpGetAction::default()
        }),
        ..Probe::default()
    };
    let ip = *addr.ip();
    assert_eq!(
        run_probe(&http, ip, &c, T, &exec).await,
        ProbeOutcome::Success
    );
    let tcp_probe = Probe {
        tcp_socket: Some(TcpSocketAction {
            port: IntOrString::Int(i32::from(addr.port())),
            host: Some("127.0.0.1".into()),
        }),
        ..Probe::default()
    };
    assert_eq!(
        run_probe(&tcp_probe, Ipv4Addr::new(10, 0, 0, 1), &c, T, &exec).await,
        ProbeOutcome::Success,
        "host overrides the pod IP"
    );
    let exec_probe = Probe {
        exec: Some(ExecAction {
            command: vec!["cat".into(), "/tmp/healthy".into()],
        }),
        ..Probe::default()
    };
    assert_eq!(
        run_probe(&exec_probe, ip, &c, T, &exec).await,
        ProbeOutcome::Failure("not healthy\n".into())
    );
    assert_eq!(
        exec.calls.lock().expect("calls").clone(),
        vec![(vec!["cat".to_owned(), "/tmp/healthy".to_owned()], T)]
    );
    let unknown_port = Probe {
        tcp_socket: Some(TcpSocketAction {
            port: IntOrString::from("nope"),
            host: None,
        }),
        ..Probe::default()
    };
    assert!(matches!(
        run_probe(&unknown_port, ip, &c, T, &exec).await,
        ProbeOutcome::Unknown(_)
    ));
    let tls = serve_tls("HTTP/1.1 200 OK\r\n\r\n").await;
    let https = Probe {
        http_get: Some(HttpGetAction {
            port: IntOrString::Int(i32::from(tls.port())),
            scheme: Some(Scheme::Https),
            ..HttpGetAction::default()
        }),
        ..Probe::default()
    };
    assert_eq!(
        run_probe(&https, ip, &c, T, &exec).await,
        ProbeOutcome::Success
    );
    assert!(matches!(
        run_probe(&Probe::default(), ip, &c, T, &exec).await,
        ProbeOutcome::Unknown(_)
    ));
}

#[test]
fn exec_outcomes() {
    let cmd = vec!["cat".to_owned(), "/tmp/x".to_owned()];
    assert_eq!(
        exec_outcome(&cmd, Some(0), "whatever"),
        ProbeOutcome::Success
    );
    assert_eq!(
        exec_outcome(&cmd, None, ""),
        ProbeOutcome::Failure(r#"command "cat /tmp/x" timed out"#.into())
    );
    assert_eq!(
        exec_outcome(&cmd, Some(2), " \n"),
        ProbeOutcome::Failure(r#"command "cat /tmp/x" exited with 2"#.into())
    );
}

/// A real gRPC health server (tonic's) on 127.0.0.1: SERVING passes,
/// NOT_SERVING and an unknown service fail, a closed port fails, all in
/// the kubelet's words.
#[tokio::test]
async fn grpc_probes_ask_the_health_service() {
    use jotasu_api::kinds::pod::GrpcAction;
    use tonic_health::ServingStatus;
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("web", ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("db", ServingStatus::NotServing)
        .await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = v4(listener.local_addr().unwrap());
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    assert_eq!(grpc(addr, "", T).await, ProbeOutcome::Success);
    assert_eq!(grpc(addr, "web", T).await, ProbeOutcome::Success);
    assert_eq!(
        grpc(addr, "db", T).await,
        ProbeOutcome::Failure(r#"service unhealthy (responded with "NOT_SERVING")"#.into())
    );
    match grpc(addr, "cache", T).await {
        ProbeOutcome::Failure(m) => {
            assert!(m.starts_with("error: health rpc probe failed: "), "{m}")
        }
        other => panic!("an unknown service passed: {other:?}"),
    }
    // Through run_probe, at the pod's address and the probe's port.
    let probe = Probe {
        grpc: Some(GrpcAction {
            port: i32::from(addr.port()),
            service: Some("web".into()),
        }),
        ..Probe::default()
    };
    let exec = FakeExec::default();
    assert_eq!(
        run_probe(&probe, *addr.ip(), &Container::default(), T, &exec).await,
        ProbeOutcome::Success
    );
    server.abort();
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone = v4(closed.local_addr().unwrap());
    drop(closed);
    match grpc(gone, "", T).await {
        ProbeOutcome::Failure(m) => {
            assert!(m.starts_with("timeout: failed to connect service"), "{m}")
        }
        other => panic!("a closed port passed: {other:?}"),
    }
}
