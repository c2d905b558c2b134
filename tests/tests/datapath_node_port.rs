//! The agent's `NodeDatapath` service on its real TLS port, over a real
//! data plane driven by BPF_PROG_TEST_RUN: the control plane's identity
//! reads services (with per-backend flows) and conntrack, which the node
//! cuts at the limit asked (and says how many matched); a user's or
//! another node's certificate is refused on every call, as for `Node`.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::net::{Ipv4Addr, SocketAddrV4};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::Stream;
use jotasu_agent::credentials::join::new_key_and_csr;
use jotasu_agent::server::{NodePort, serve_node_with};
use jotasu_agent::views::DatapathViews;
use jotasu_agent::views::flows::FlowHub;
use jotasu_agent::watch::ClusterView;
use jotasu_api::client::{Credentials, Material};
use jotasu_api::grpc::v1::node_datapath_client::NodeDatapathClient;
use jotasu_api::grpc::v1::node_server::Node;
use jotasu_api::grpc::v1::{
    self, ExecInput, ExecOutput, ImageChunk, ImportImageResponse, LogChunk, LogsRequest,
};
use jotasu_controlplane::apiserver::proxy::AgentTls;
use jotasu_controlplane::pki::{PkiPaths, Signer, ensure};
use jotasu_ebpf::{Datapath, Frontend, Service};
use jotasu_tests::packet::{HOST_MAC, POD_MAC, Packet, TCP_SYN};
use jotasu_tests::privilege::require_root;
use jotasu_tests::tc_run::TcNode;
use tokio::sync::watch;
use tonic::transport::Endpoint;
use tonic::{Code, Request, Response, Status, Streaming};

type Reply<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The Node service is not what this test is about.
struct NoPods;

#[tonic::async_trait]
impl Node for NoPods {
    type LogsStream = Reply<LogChunk>;
    type ExecStream = Reply<ExecOutput>;

    async fn logs(&self, _: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        Err(Status::unimplemented("no pods"))
    }

    async fn exec(
        &self,
        _: Request<Streaming<ExecInput>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        Err(Status::unimplemented("no pods"))
    }

    async fn import_image(
        &self,
        _: Request<Streaming<ImageChunk>>,
    ) -> Result<Response<ImportImageResponse>, Status> {
        Err(Status::unimplemented("no containerd"))
    }

    async fn pod_usage(
        &self,
        _: Request<jotasu_api::grpc::v1::PodUsageRequest>,
    ) -> Result<Response<jotasu_api::grpc::v1::PodUsageList>, Status> {
        Err(Status::unimplemented("no pods"))
    }
}

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 5);

fn node_material(signer: &Signer, node: &str) -> Material {
    let (key, csr) = new_key_and_csr(node).unwrap();
    let issued = signer
        .sign_node_csr(node, &csr, Duration::from_secs(60))
        .unwrap();
    Material::new(signer.ca_pem(), Some((&issued.cert_pem, &key))).unwrap()
}

async fn client(endpoint: Endpoint) -> NodeDatapathClient<tonic::transport::Channel> {
    NodeDatapathClient::new(
        endpoint
            .connect()
            .await
            .expect("connecting to the node's port"),
    )
}

/// Every call's status code (None: answered).
async fn codes(mut c: NodeDatapathClient<tonic::transport::Channel>) -> Vec<Option<Code>> {
    let code = |r: Result<(), Status>| r.err().map(|s| s.code());
    vec![
        code(c.services(v1::DatapathRequest::default()).await.map(|_| ())),
        code(
            c.conntrack(v1::ConntrackRequest::default())
                .await
                .map(|_| ()),
        ),
        code(c.tunnels(v1::DatapathRequest::default()).await.map(|_| ())),
        code(c.drops(v1::DatapathRequest::default()).await.map(|_| ())),
        code(c.flows(v1::FlowsRequest::default()).await.map(|_| ())),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_control_plane_reads_a_nodes_datapath_and_listings_are_bounded() {
    if !require_root("only_the_control_plane_reads_a_nodes_datapath_and_listings_are_bounded") {
        return;
    }
    // A node with a service of two backends and 30 flows balanced at tc.
    let mut tc = TcNode::new();
    let client_if = tc.add_pod(CLIENT, POD_MAC, HOST_MAC).ifindex;
    let backends = [1, 2].map(|n| SocketAddrV4::new(Ipv4Addr::new(10, 244, 2, n), 8080));
    tc.dp
        .upsert_service(&Service::new(Frontend::tcp(VIP, 80), backends))
        .unwrap();
    for port in 0..30 {
        let syn = Packet::tcp(
            SocketAddrV4::new(CLIENT, 40000 + port),
            SocketAddrV4::new(VIP, 80),
            TCP_SYN,
            1,
            0,
        );
        assert_eq!(tc.run_on(client_if, &syn.to_bytes()).0, 0);
    }
    // The agent's own handle on the same pins.
    let dp = Arc::new(Mutex::new(Datapath::open(tc.prefix()).unwrap()));
    let views = DatapathViews::new(
        "n1".into(),
        Ipv4Addr::new(192, 168, 77, 11),
        dp,
        Arc::new(RwLock::new(ClusterView::default())),
        Arc::new(FlowHub::default()),
    );

    let dir = tempfile::tempdir().unwrap();
    let paths = PkiPaths::new(dir.path());
    ensure(&paths, &[]).unwrap();
    let signer = Signer::load(&paths).unwrap();
    let creds = Arc::new(Credentials::new(node_material(&signer, "n1")));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (_stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        serve_node_with(listener, NoPods, Some(views), NodePort::Tls(creds), stop)
            .await
            .unwrap();
    });

    // The control plane: answered.
    let tls = AgentTls::load(&paths).unwrap();
    let mut cp = client(tls.endpoint("n1", address).unwrap()).await;
    let services = cp
        .services(v1::DatapathRequest { node: "n1".into() })
        .await
        .unwrap()
        .into_inner();
    let flows: Vec<u64> = services.services[0]
        .backends
        .iter()
        .map(|b| b.new_flows)
        .collect();
    assert_eq!(flows, [15, 15]);
    assert_eq!(services.services[0].tc_new_flows, 30);
    let limited = cp
        .conntrack(v1::ConntrackRequest {
            limit: 7,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(limited.entries.len(), 7);
    assert_eq!((limited.matched, limited.total), (60, 60));
    assert!(limited.truncated);
    let one_flow = cp
        .conntrack(v1::ConntrackRequest {
            port: 40007,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one_flow.entries.len(), 2, "both directions of one flow");
    assert!(!one_flow.truncated);
    let wrong = cp
        .services(v1::DatapathRequest { node: "n2".into() })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::InvalidArgument, "{wrong:?}");

    // A user, even system:masters, and another node: refused on every call.
    let (cert, key) = signer
        .issue_client("jane", &["system:masters".into()], Duration::from_secs(60))
        .unwrap();
    let jane = AgentTls::from_pem(signer.ca_pem(), &cert, &key);
    let denied = vec![Some(Code::PermissionDenied); 5];
    assert_eq!(
        codes(client(jane.endpoint("n1", address).unwrap()).await).await,
        denied
    );
    let n2 = node_material(&signer, "n2");
    let other = AgentTls::from_pem(
        signer.ca_pem(),
        n2.cert_pem().unwrap(),
        n2.key_pem().unwrap(),
    );
    assert_eq!(
        codes(client(other.endpoint("n1", address).unwrap()).await).await,
        denied
    );
}
