//! A node's identity end to end, on a real cluster whose node joined over
//! TLS with a bootstrap token ([`LocalCluster`]): its certificate and key
//! as the agent keeps them, renewal before expiry (the control plane signs
//! for 40 s here) with the node Ready and exec working past the first
//! certificate's end, a restart with every token deleted, and the agent's
//! port as a pod sees it: nothing for plain HTTP/2, nothing without a
//! client certificate, PERMISSION_DENIED for a certificate that is not
//! the control plane's.
#![allow(clippy::unwrap_used)]
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use jotasu_agent::credentials::files::NodePki;
use jotasu_api::client::identity::CertInfo;
use jotasu_api::grpc::v1::LogsRequest;
use jotasu_api::grpc::v1::node_client::NodeClient;
use jotasu_api::meta::ConditionStatus;
use jotasu_api::{Kind, Object, ObjectRef};
use jotasu_controlplane::apiserver::proxy::AgentTls;
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::e2e::{Harness, SETTLE, netns_of};
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;

/// Lifetime of the node certificates the control plane signs here.
const SIGNING: &str = "40s";

fn certificate(pki: &NodePki) -> CertInfo {
    CertInfo::from_pem(
        "node certificate",
        &std::fs::read_to_string(pki.cert()).unwrap(),
    )
    .unwrap()
}

async fn node_ready(h: &Harness, node: &str) -> bool {
    let r = ObjectRef {
        kind: Kind::Node,
        namespace: None,
        name: node.into(),
    };
    matches!(h.client.get(&r).await, Ok(Object::Node(n)) if n.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
    }))
}

/// What a call to the agent's port with `tls` gets, made from the pod
/// network namespace `netns`: `Ok(code)` for a gRPC answer, `Err` when
/// the connection or handshake failed.
fn call_from(
    netns: &str,
    node: &str,
    address: SocketAddr,
    tls: Option<AgentTls>,
    ca_only: Option<String>,
) -> Result<tonic::Code, String> {
    let node = node.to_owned();
    jotasu_dev::netns::run_in(netns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let endpoint = match (tls, ca_only) {
                (Some(tls), _) => tls.endpoint(&node, address).map_err(|e| e.to_string())?,
                (None, Some(ca)) => {
                    tonic::transport::Endpoint::from_shared(format!("https://{address}"))
                        .unwrap()
                        .tls_config(
                            tonic::transport::ClientTlsConfig::new()
                                .ca_certificate(tonic::transport::Certificate::from_pem(ca))
                                .domain_name(node.clone()),
                        )
                        .map_err(|e| e.to_string())?
                }
                (None, None) => unreachable!(),
            };
            let channel = endpoint
                .connect_timeout(Duration::from_secs(3))
                .connect()
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let request = LogsRequest {
                namespace: "default".into(),
                name: "client".into(),
                ..LogsRequest::default()
            };
            match NodeClient::new(channel).logs(request).await {
                Ok(_) => Ok(tonic::Code::Ok),
                Err(s) if std::error::Error::source(&s).is_some() => Err(format!("transport: {s}")),
                Err(s) => Ok(s.code()),
            }
        })
    })
    .unwrap()
}

/// Plain HTTP/2 from the pod: whether a SETTINGS frame came back.
fn plain_http2_from(netns: &str, address: SocketAddr) -> bool {
    jotasu_dev::netns::run_in(netns, move || {
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(3))
        else {
            return false;
        };
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        // The client preface, then an empty SETTINGS frame.
        let _ =
            s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00");
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        n >= 9 && buf[3] == 0x04
    })
    .unwrap()
}

/// A `jotasu-agent` that tries to join from node `i`'s namespace with
/// `args` (after the cluster's server and node name `name`): whether it
/// failed, and what it said. A join that is refused ends the agent before
/// it touches anything of the machine.
fn join_attempt(h: &Harness, i: usize, name: &str, args: &[&str]) -> (bool, String) {
    let state = tempfile::tempdir().unwrap();
    let bin = jotasu_tests::lab::workspace_bin("jotasu-agent", "JOTASU_AGENT").unwrap();
    let mut cmd = jotasu_dev::netns::enter(h.cluster.nodes()[i].netns().name(), bin);
    cmd.args([
        "--node-name",
        name,
        "--server",
        &h.cluster.join_target().server,
    ])
    .arg("--state-dir")
    .arg(state.path())
    .args(args)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped());
    jotasu_dev::process::die_with_spawner(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent neither joined nor gave up within 20 s: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        !state.path().join("pki").join("node.crt").exists(),
        "a refused join writes no certificate"
    );
    (!status.success(), stderr)
}

/// Real agents that must not join: a wrong CA hash, an expired or a
/// deleted token, and a second machine claiming a joined node's name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_with_a_wrong_hash_a_dead_token_or_a_taken_name_do_not_join() {
    if !require_root("agents_with_a_wrong_hash_a_dead_token_or_a_taken_name_do_not_join") {
        return;
    }
    let h = Harness::start(ClusterOptions::default()).await;
    let admin = h.cluster.client().await.unwrap();
    let target = h.cluster.join_target().clone();
    let token = |ttl: u64| {
        let admin = admin.clone();
        async move {
            jotasu_controlplane::admin::token::create(&admin, Duration::from_secs(ttl), "test")
                .await
                .unwrap()
                .to_string()
        }
    };
    let newcomer = format!("{}x", h.cluster.nodes()[0].name());
    let good = token(600).await;
    let wrong_hash = format!("sha256:{}", "0".repeat(64));
    let (failed, said) = join_attempt(
        &h,
        0,
        &newcomer,
        &["--token", &good, "--ca-cert-hash", &wrong_hash],
    );
    assert!(
        failed && said.contains(&wrong_hash) && said.contains(&target.ca_cert_hash),
        "wrong hash: {said}"
    );
    let (failed, said) = join_attempt(&h, 0, &newcomer, &["--token", &good]);
    assert!(
        failed && said.contains("--ca-cert-hash"),
        "a token without a hash: {said}"
    );
    let short = token(1).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (failed, said) = join_attempt(
        &h,
        0,
        &newcomer,
        &["--token", &short, "--ca-cert-hash", &target.ca_cert_hash],
    );
    assert!(failed && said.contains("expired"), "expired token: {said}");
    jotasu_controlplane::admin::token::delete(&admin, &good)
        .await
        .unwrap();
    let (failed, said) = join_attempt(
        &h,
        0,
        &newcomer,
        &["--token", &good, "--ca-cert-hash", &target.ca_cert_hash],
    );
    assert!(failed && said.contains("unknown"), "deleted token: {said}");
    let fresh = token(600).await;
    let taken = h.cluster.nodes()[0].name().to_owned();
    let (failed, said) = join_attempt(
        &h,
        0,
        &taken,
        &["--token", &fresh, "--ca-cert-hash", &target.ca_cert_hash],
    );
    assert!(
        failed && said.contains("already joined with another key"),
        "a taken name: {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_renews_its_certificate_restarts_without_its_token_and_refuses_pods() {
    if !require_root("a_node_renews_its_certificate_restarts_without_its_token_and_refuses_pods") {
        return;
    }
    let mut options = ClusterOptions::default();
    options
        .controlplane_args
        .extend(["--cluster-signing-duration".into(), SIGNING.into()]);
    let mut h = Harness::start(options).await;
    let pod = h.client_pod().await;
    let node = h.cluster.nodes()[0].name().to_owned();
    let node_ip = h.cluster.nodes()[0].ip();
    let pki = NodePki::new(h.cluster.nodes()[0].state_dir());

    // The certificate the join gave, kept as the kubelet keeps its own.
    let first = certificate(&pki);
    assert_eq!(first.common_name, format!("system:node:{node}"));
    assert_eq!(first.organizations, ["system:nodes"]);
    assert_eq!(first.dns_names, std::slice::from_ref(&node));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&pki.key()), 0o600, "the node key is the agent's alone");
    assert_eq!(mode(pki.dir()), 0o700);

    // Renewed before it ends; the node stays Ready and exec still works
    // after the first certificate has expired.
    let renewed = eventually(
        "the node certificate renewed",
        Duration::from_secs(60),
        || async {
            let c = certificate(&pki);
            (c.not_after > first.not_after).then_some(c)
        },
    )
    .await;
    assert_eq!(renewed.common_name, first.common_name);
    let now = jotasu_api::meta::unix_now();
    if first.not_after + 2 > now {
        tokio::time::sleep(Duration::from_secs(
            u64::try_from(first.not_after + 2 - now).unwrap(),
        ))
        .await;
    }
    assert!(
        node_ready(&h, &node).await,
        "the node is Ready past its first certificate's end"
    );
    assert_eq!(h.ctl(&["exec", "client", "--", "echo", "hi"]), "hi\n");

    // The agent's port, as the pod sees it.
    let netns = netns_of(&pod).unwrap();
    let address = SocketAddr::new(node_ip.into(), 10250);
    assert!(
        !plain_http2_from(&netns, address),
        "plain HTTP/2 must get no answer"
    );
    let data_dir = h.cluster.control_plane().data_dir().to_owned();
    let ca = std::fs::read_to_string(jotasu_controlplane::pki::PkiPaths::new(&data_dir).ca_cert())
        .unwrap();
    let anonymous = call_from(&netns, &node, address, None, Some(ca.clone()));
    assert!(
        anonymous.is_err(),
        "without a client certificate: {anonymous:?}"
    );
    let users = tempfile::tempdir().unwrap();
    let out = users.path().join("mallory.conf");
    jotasu_controlplane::admin::user::add(
        &data_dir,
        "mallory",
        &["system:masters".into()],
        Duration::from_secs(600),
        "https://127.0.0.1:1",
        &out,
    )
    .unwrap();
    let mallory = AgentTls::from_pem(
        &ca,
        &std::fs::read_to_string(users.path().join("mallory.crt")).unwrap(),
        &std::fs::read_to_string(users.path().join("mallory.key")).unwrap(),
    );
    assert_eq!(
        call_from(&netns, &node, address, Some(mallory), None),
        Ok(tonic::Code::PermissionDenied),
        "a certificate of the cluster that is not the control plane's"
    );
    // The control plane's own identity is what gets through (from the pod
    // too: the port trusts the certificate, not the address).
    let controlplane = AgentTls::load(&jotasu_controlplane::pki::PkiPaths::new(&data_dir)).unwrap();
    let through = call_from(&netns, &node, address, Some(controlplane), None);
    assert!(
        matches!(through, Ok(c) if c != tonic::Code::PermissionDenied),
        "{through:?}"
    );

    // Restart without a token: every token deleted, the agent started with
    // its stored certificate only.
    let admin = h.cluster.client().await.unwrap();
    for t in jotasu_controlplane::admin::token::list(&admin)
        .await
        .unwrap()
    {
        jotasu_controlplane::admin::token::delete(&admin, &t.id)
            .await
            .unwrap();
    }
    let n = h.cluster.node_mut(0);
    n.stop_agent();
    n.start_agent().unwrap();
    let pid = h.cluster.nodes()[0].agent_pid().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert!(
        !args.iter().any(|a| a == "--token"),
        "restarted without a token: {args:?}"
    );
    let restarted = Instant::now();
    eventually("exec through the restarted agent", SETTLE, || async {
        let out = h
            .ctl
            .at(&h.server, &["exec", "client", "--", "echo", "again"]);
        (out.code == 0 && out.stdout == "again\n").then_some(())
    })
    .await;
    assert!(node_ready(&h, &node).await);
    eprintln!("restarted agent serving after {:?}", restarted.elapsed());
}
