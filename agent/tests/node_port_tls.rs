//! The node's port over TLS, on 127.0.0.1 without root: certificates from
//! the control plane's real PKI in a temp dir, the agent's TLS and
//! authorization in front of a stand-in Node service (the real one needs
//! containerd), called the way the control plane's proxy calls it. Also
//! the join's first step against a tiny TLS server: the CA captured from
//! the handshake is trusted only when its hash matches the pin.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use jotasu_agent::credentials::join::{new_key_and_csr, pin_ca};
use jotasu_agent::credentials::{Bootstrap, CredentialsError, establish};
use jotasu_agent::server::{NodePort, serve_node};
use jotasu_api::client::identity::{ca_cert_hash, first_cert};
use jotasu_api::client::{
    Credentials, Material, ServerCertResolver, fetch_ca_from_handshake, provider,
};
use jotasu_api::grpc::v1::node_client::NodeClient;
use jotasu_api::grpc::v1::node_server::Node;
use jotasu_api::grpc::v1::{
    ExecInput, ExecOutput, ImageChunk, ImportImageResponse, LogChunk, LogsRequest,
};
use jotasu_controlplane::apiserver::proxy::AgentTls;
use jotasu_controlplane::pki::{PkiPaths, ServerTls, Signer, ensure};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status, Streaming};

type Reply<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Answers as the agent does for a pod it does not run.
struct NoPods;

#[tonic::async_trait]
impl Node for NoPods {
    type LogsStream = Reply<LogChunk>;
    type ExecStream = Reply<ExecOutput>;

    async fn logs(&self, r: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        Err(Status::not_found(format!(
            "pod {:?} is not running on this node",
            r.into_inner().name
        )))
    }

    async fn exec(
        &self,
        _: Request<Streaming<ExecInput>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        Err(Status::not_found("no pods here"))
    }

    async fn import_image(
        &self,
        _: Request<Streaming<ImageChunk>>,
    ) -> Result<Response<ImportImageResponse>, Status> {
        Err(Status::unimplemented("no containerd here"))
    }

    async fn pod_usage(
        &self,
        _: Request<jotasu_api::grpc::v1::PodUsageRequest>,
    ) -> Result<Response<jotasu_api::grpc::v1::PodUsageList>, Status> {
        Ok(Response::new(jotasu_api::grpc::v1::PodUsageList::default()))
    }
}

/// A cluster PKI, node n1's credentials, and n1's port serving them.
struct Fixture {
    _dir: tempfile::TempDir,
    paths: PkiPaths,
    signer: Signer,
    node_creds: Arc<Credentials>,
    address: SocketAddr,
    _stop: watch::Sender<bool>,
}

fn node_material(signer: &Signer, node: &str) -> Material {
    let (key, csr) = new_key_and_csr(node).unwrap();
    let issued = signer
        .sign_node_csr(node, &csr, Duration::from_secs(60))
        .unwrap();
    Material::new(signer.ca_pem(), Some((&issued.cert_pem, &key))).unwrap()
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    ensure(&paths, &[]).unwrap();
    let signer = Signer::load(&paths).unwrap();
    let node_creds = Arc::new(Credentials::new(node_material(&signer, "n1")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let port = NodePort::Tls(Arc::clone(&node_creds));
    tokio::spawn(async move { serve_node(listener, NoPods, port, stop).await.unwrap() });
    Fixture {
        _dir: dir,
        paths,
        signer,
        node_creds,
        address,
        _stop: stop_tx,
    }
}

fn logs_of(name: &str) -> LogsRequest {
    LogsRequest {
        name: name.into(),
        ..LogsRequest::default()
    }
}

/// A Node client through `endpoint`; connection failures become statuses.
async fn call_logs(endpoint: Endpoint) -> Result<(), Status> {
    let channel: Channel = endpoint
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("connect: {e}")))?;
    NodeClient::new(channel)
        .logs(logs_of("web"))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn the_control_plane_is_let_through() {
    let f = fixture().await;
    let tls = AgentTls::load(&f.paths).unwrap();
    let status = call_logs(tls.endpoint("n1", f.address).unwrap())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(status.message(), "pod \"web\" is not running on this node");
}

#[tokio::test]
async fn the_agent_must_be_the_node_the_control_plane_means() {
    let f = fixture().await;
    let tls = AgentTls::load(&f.paths).unwrap();
    let status = call_logs(tls.endpoint("n2", f.address).unwrap())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test]
async fn users_and_other_nodes_are_denied() {
    let f = fixture().await;
    let (cert, key) = f
        .signer
        .issue_client("jane", &["system:masters".into()], Duration::from_secs(60))
        .unwrap();
    let user = AgentTls::from_pem(f.signer.ca_pem(), &cert, &key);
    let status = call_logs(user.endpoint("n1", f.address).unwrap())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(
        status.message(),
        "only the control plane may call a node's agent; \"jane\" may not"
    );
    let n2 = node_material(&f.signer, "n2");
    let other_node = AgentTls::from_pem(
        f.signer.ca_pem(),
        n2.cert_pem().unwrap(),
        n2.key_pem().unwrap(),
    );
    let status = call_logs(other_node.endpoint("n1", f.address).unwrap())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("system:node:n2"), "{status:?}");
}

/// A raw TLS client that trusts the cluster CA for `n1`, presenting
/// `client` (or nothing).
fn raw_client(ca_pem: &str, client: Option<&Material>) -> tokio_rustls::TlsConnector {
    let ca = Credentials::ca_only(ca_pem).unwrap().current();
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(Arc::clone(ca.roots()));
    let config = match client {
        Some(m) => {
            let chain =
                jotasu_api::client::identity::certs_from_pem("c", m.cert_pem().unwrap()).unwrap();
            let key = <rustls::pki_types::PrivateKeyDer<'static> as PemObject>::from_pem_slice(
                m.key_pem().unwrap().as_bytes(),
            )
            .unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn without_a_client_certificate_the_handshake_fails() {
    let f = fixture().await;
    let connector = raw_client(f.signer.ca_pem(), None);
    let tcp = tokio::net::TcpStream::connect(f.address).await.unwrap();
    // TLS 1.3: the client finishes first; the server's refusal arrives as
    // an alert on the first read.
    let refused = match connector
        .connect(ServerName::try_from("n1").unwrap(), tcp)
        .await
    {
        Err(_) => true,
        Ok(mut tls) => {
            use tokio::io::AsyncReadExt as _;
            let mut buf = [0u8; 16];
            !matches!(tls.read(&mut buf).await, Ok(n) if n > 0)
        }
    };
    assert!(refused, "a client without a certificate must be refused");
    // And through tonic: no gRPC answer.
    let ca = tonic::transport::Certificate::from_pem(f.signer.ca_pem());
    let anonymous = Endpoint::from_shared(format!("https://{}", f.address))
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(ca)
                .domain_name("n1"),
        )
        .unwrap();
    let status = call_logs(anonymous).await.unwrap_err();
    assert_ne!(status.code(), Code::NotFound, "{status:?}");
    assert_ne!(status.code(), Code::Ok);
}

#[tokio::test]
async fn plain_http2_gets_no_grpc_answer() {
    let f = fixture().await;
    let plain = Endpoint::from_shared(format!("http://{}", f.address))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    let status = call_logs(plain).await.unwrap_err();
    assert!(
        !matches!(status.code(), Code::NotFound | Code::PermissionDenied),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_renewed_certificate_is_served_to_new_connections() {
    let f = fixture().await;
    let cp = {
        let read = |p| std::fs::read_to_string(p).unwrap();
        Material::new(
            f.signer.ca_pem(),
            Some((
                &read(f.paths.controlplane_client_cert()),
                &read(f.paths.controlplane_client_key()),
            )),
        )
        .unwrap()
    };
    let served = || async {
        let tcp = tokio::net::TcpStream::connect(f.address).await.unwrap();
        let tls = raw_client(f.signer.ca_pem(), Some(&cp))
            .connect(ServerName::try_from("n1").unwrap(), tcp)
            .await
            .unwrap();
        let leaf: CertificateDer<'static> = tls.get_ref().1.peer_certificates().unwrap()[0]
            .clone()
            .into_owned();
        leaf
    };
    let before = served().await;
    assert_eq!(Some(&before), f.node_creds.current().leaf_der());
    f.node_creds.replace(node_material(&f.signer, "n1"));
    let after = served().await;
    assert_ne!(before, after, "the new certificate is served");
    assert_eq!(Some(&after), f.node_creds.current().leaf_der());
    // And the control plane's calls still go through.
    let status = call_logs(
        AgentTls::load(&f.paths)
            .unwrap()
            .endpoint("n1", f.address)
            .unwrap(),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

/// A TLS server presenting the control plane's listener chain (server
/// certificate, then the CA), closing after each handshake.
async fn tiny_tls_server(tls: &ServerTls) -> SocketAddr {
    let creds = Credentials::from_pem(&tls.ca_pem, &tls.cert_pem, &tls.key_pem).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(ServerCertResolver(Arc::new(creds))));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = acceptor.accept(tcp).await;
        }
    });
    address
}

#[tokio::test]
async fn a_join_trusts_the_captured_ca_only_when_its_hash_matches() {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    let tls = ensure(&paths, &[]).unwrap();
    let address = tiny_tls_server(&tls).await;
    let url = format!("https://{address}");
    let chain = fetch_ca_from_handshake(&url).await.unwrap();
    let pin = ca_cert_hash(&tls.ca_pem).unwrap();
    let ca = pin_ca(&url, &chain, &pin).unwrap();
    assert_eq!(
        first_cert("ca", &ca).unwrap(),
        first_cert("ca", &tls.ca_pem).unwrap()
    );

    // Another cluster's pin: refused, naming both hashes, nothing written.
    let other = tempfile::tempdir().unwrap();
    let other_tls = ensure(&PkiPaths::new(other.path()), &[]).unwrap();
    let wrong = ca_cert_hash(&other_tls.ca_pem).unwrap();
    let state = tempfile::tempdir().unwrap();
    let e = establish(&Bootstrap {
        node: "n1".into(),
        server: url.clone(),
        state_dir: state.path().to_owned(),
        token: Some("abcdef.0123456789abcdef".into()),
        ca_cert_hash: Some(wrong.clone()),
        ..Bootstrap::default()
    })
    .await
    .unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, CredentialsError::CaMismatch { .. }), "{text}");
    assert!(text.contains(&wrong) && text.contains(&pin), "{text}");
    assert!(
        !state.path().join("pki").exists(),
        "nothing is written on a mismatch"
    );
}

/// The real control plane listening with mutual TLS on 127.0.0.1 (an
/// embedded store in `dir`): its URL.
async fn control_plane(dir: &std::path::Path, tls: ServerTls) -> (String, watch::Sender<bool>) {
    use jotasu_controlplane::apiserver::ApiServer;
    use jotasu_controlplane::serve::{Listeners, serve};
    use jotasu_controlplane::store::{EmbeddedOptions, EmbeddedStore};
    let store = EmbeddedStore::open(dir.join("store.redb"), EmbeddedOptions::default())
        .await
        .unwrap();
    let (stop_tx, stop) = watch::channel(false);
    let server = ApiServer::new(Arc::new(store), stop.clone());
    let signer = Signer::load(&PkiPaths::new(dir)).unwrap();
    let guard = jotasu_controlplane::apiserver::guard::Guard::start(
        server.clone(),
        jotasu_controlplane::apiserver::guard::GuardOptions {
            signer: Some((Arc::new(signer), Duration::from_secs(3600))),
            ..Default::default()
        },
        stop.clone(),
    )
    .await
    .unwrap();
    let address = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let listeners = Listeners {
        socket: dir.join("api.sock"),
        tls: Some((address, tls)),
    };
    tokio::spawn(async move { serve(server, guard, listeners, stop).await.unwrap() });
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(address).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (format!("https://{address}"), stop_tx)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_presents_replaced_credentials_to_the_control_plane() {
    use jotasu_api::Kind;
    use jotasu_api::client::{Client, ServerUrl};
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    let tls = ensure(&paths, &[]).unwrap();
    let (url, _stop) = control_plane(dir.path(), tls.clone()).await;
    let server = ServerUrl::parse(&url).unwrap();
    let signer = Signer::load(&paths).unwrap();
    let issue = |user: &str| {
        let (cert, key) = signer
            .issue_client(user, &["system:masters".into()], Duration::from_secs(60))
            .unwrap();
        Material::new(&tls.ca_pem, Some((&cert, &key))).unwrap()
    };
    let creds = Arc::new(Credentials::new(issue("first")));
    let client = Client::connect_with_credentials(&server, Arc::clone(&creds))
        .await
        .unwrap();
    client.list(Kind::ConfigMap, None, "").await.unwrap();

    // Replaced: the connection made with the old certificate closes and
    // the next calls reconnect with the new one.
    creds.replace(issue("second"));
    let mut answered = false;
    for _ in 0..3 {
        if client.list(Kind::ConfigMap, None, "").await.is_ok() {
            answered = true;
            break;
        }
    }
    assert!(answered, "the client reconnects with the new certificate");

    // A CA the server's certificate does not chain to: refused.
    let other = tempfile::tempdir().unwrap();
    let other_ca = ensure(&PkiPaths::new(other.path()), &[]).unwrap().ca_pem;
    let e = Client::connect_with_credentials(
        &server,
        Arc::new(Credentials::ca_only(&other_ca).unwrap()),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, jotasu_api::client::ClientError::Connect { .. }),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_join_against_the_real_listener_pins_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    let tls = ensure(&paths, &[]).unwrap();
    let (url, _stop) = control_plane(dir.path(), tls.clone()).await;
    let pin = ca_cert_hash(&tls.ca_pem).unwrap();
    // The listener presents its chain: the CA is captured and matches.
    let chain = fetch_ca_from_handshake(&url).await.unwrap();
    pin_ca(&url, &chain, &pin).unwrap();
    // Past the pin, the control plane decides (this one issues nothing to
    // an unknown token): the join fails with its answer, nothing is written.
    let state = tempfile::tempdir().unwrap();
    let e = establish(&Bootstrap {
        node: "n1".into(),
        server: url,
        state_dir: state.path().to_owned(),
        token: Some("abcdef.0123456789abcdef".into()),
        ca_cert_hash: Some(pin),
        ..Bootstrap::default()
    })
    .await
    .unwrap_err();
    eprintln!("join refused: {e}");
    assert!(!matches!(e, CredentialsError::CaMismatch { .. }), "{e}");
    assert!(
        e.to_string().contains("unknown"),
        "the server's refusal is passed on: {e}"
    );
    assert!(!state.path().join("pki").exists());
}
