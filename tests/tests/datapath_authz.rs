//! Who may read a node's data plane (`jotactl datapath …`, `jotactl
//! flows`): a real `jotasu-controlplane` with its TLS listener and real
//! client certificates. The views need `get` on `nodes/proxy` of the node
//! named: a user without it is refused (PERMISSION_DENIED), a user bound
//! to `jotasu:datapath-viewer` and an admin get through to the proxy step
//! (there is no agent here, so the call then fails otherwise), a node
//! identity is refused for its own node and for any other, and a caller
//! without a certificate is not authenticated.
#![allow(clippy::unwrap_used)]
use std::path::Path;
use std::time::Duration;

use jotasu_api::Object;
use jotasu_api::client::{Client, ServerUrl, TlsFiles};
use jotasu_api::grpc::v1;
use jotasu_tests::controlplane::{ControlPlane, Options};
use serde_json::json;
use tonic::Code;

async fn control_plane() -> ControlPlane {
    ControlPlane::start(Options {
        tls: true,
        args: vec!["--no-controllers".into()],
        ..Options::default()
    })
    .await
    .expect("control plane starts")
}

async fn user(cp: &ControlPlane, name: &str, groups: &[&str]) -> Client {
    let out = cp.data_dir().join("users").join(format!("{name}.conf"));
    let groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
    let url = cp.tls_url().unwrap();
    jotasu_controlplane::admin::user::add(
        cp.data_dir(),
        name,
        &groups,
        Duration::from_secs(3600),
        &url,
        &out,
    )
    .unwrap();
    let ctx = &jotasu_api::client::Config::load(&out).unwrap().contexts[0];
    Client::connect_to(&ServerUrl::parse(&url).unwrap(), &ctx.tls())
        .await
        .unwrap()
}

async fn anonymous(cp: &ControlPlane) -> Client {
    let url = ServerUrl::parse(&cp.tls_url().unwrap()).unwrap();
    let ca_only = TlsFiles {
        client_certificate: None,
        client_key: None,
        ..cp.admin_tls()
    };
    Client::connect_to(&url, &ca_only).await.unwrap()
}

fn token(data_dir: &Path) -> String {
    let out = std::process::Command::new(
        jotasu_tests::lab::workspace_bin("jotasu-controlplane", "JOTASU_CONTROLPLANE").unwrap(),
    )
    .args(["token", "create", "--data-dir"])
    .arg(data_dir)
    .output()
    .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned()
}

/// A node's client: joins with `token`, then connects with its certificate.
async fn node(cp: &ControlPlane, name: &str, token: &str, dir: &Path) -> Client {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("system:node:{name}"));
    let mut request = tonic::Request::new(v1::NodeCertificateRequest {
        node: name.into(),
        csr_pem: params.serialize_request(&key).unwrap().pem().unwrap(),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let cert = anonymous(cp)
        .await
        .raw()
        .request_node_certificate(request)
        .await
        .unwrap()
        .into_inner()
        .certificate_pem;
    let (c, k) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    Client::connect_to(
        &ServerUrl::parse(&cp.tls_url().unwrap()).unwrap(),
        &TlsFiles {
            client_certificate: Some(c),
            client_key: Some(k),
            ..cp.admin_tls()
        },
    )
    .await
    .unwrap()
}

/// Every view of node `target` as `client`: the status code each ended
/// with (None: it answered).
async fn codes(client: &Client, target: &str) -> Vec<Option<Code>> {
    let mut dp = client.datapath();
    let node = || v1::DatapathRequest {
        node: target.into(),
    };
    let code = |r: Result<(), tonic::Status>| r.err().map(|s| s.code());
    vec![
        code(dp.services(node()).await.map(|_| ())),
        code(
            dp.conntrack(v1::ConntrackRequest {
                node: target.into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
        code(dp.tunnels(node()).await.map(|_| ())),
        code(dp.drops(node()).await.map(|_| ())),
        code(
            dp.flows(v1::FlowsRequest {
                node: target.into(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn only_callers_granted_nodes_proxy_reach_a_nodes_datapath() {
    let cp = control_plane().await;
    let admin = cp.client().await.unwrap();
    admin
        .apply(
            &[serde_json::from_value::<Object>(json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "netops-datapath"},
                "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "netops"}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "jotasu:datapath-viewer"},
            }))
            .unwrap()],
            false,
        )
        .await
        .unwrap();

    let denied = vec![Some(Code::PermissionDenied); 5];
    let alice = user(&cp, "alice", &["devs"]).await;
    assert_eq!(codes(&alice, "n1").await, denied, "no rule: refused");
    let bob = user(&cp, "bob", &["netops"]).await;
    let bob_codes = codes(&bob, "n1").await;
    assert!(
        bob_codes.iter().all(|c| *c == Some(Code::NotFound)),
        "granted: through to the proxy step, which finds no node n1: {bob_codes:?}"
    );
    let root = user(&cp, "root", &["system:masters"]).await;
    assert!(
        codes(&root, "n1")
            .await
            .iter()
            .all(|c| *c != Some(Code::PermissionDenied)),
        "cluster-admin has it"
    );
    assert_eq!(
        codes(&bob, "").await,
        vec![Some(Code::InvalidArgument); 5],
        "a node must be named"
    );

    let dir = tempfile::tempdir().unwrap();
    let t = token(cp.data_dir());
    let n1 = node(&cp, "n1", &t, dir.path()).await;
    assert_eq!(codes(&n1, "n2").await, denied, "not another node's");
    assert_eq!(codes(&n1, "n1").await, denied, "nor its own, through here");

    let nobody = anonymous(&cp).await;
    assert_eq!(
        codes(&nobody, "n1").await,
        vec![Some(Code::Unauthenticated); 5]
    );
}
