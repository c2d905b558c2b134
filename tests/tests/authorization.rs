//! Who may do what, end to end: a real `jotasu-controlplane` process with
//! its TLS listener, real client certificates (`user add`), bootstrap
//! tokens and node certificates obtained through `RequestNodeCertificate`.
//! Each case is a real call; a refusal is `PERMISSION_DENIED` with
//! kube-apiserver's wording, anything else means the call was let through.
#![allow(clippy::unwrap_used)]
use std::path::Path;
use std::time::Duration;

use jotasu_api::client::{Client, ClientError, ServerUrl, TlsFiles, WatchFilter};
use jotasu_api::grpc::v1;
use jotasu_api::{Kind, Object, ObjectRef};
use jotasu_tests::controlplane::{ControlPlane, Options};
use serde_json::json;
use tonic::Code;

fn obj(v: serde_json::Value) -> Object {
    serde_json::from_value(v).expect("test object")
}

fn r(kind: Kind, ns: Option<&str>, name: &str) -> ObjectRef {
    ObjectRef {
        kind,
        namespace: ns.map(str::to_owned),
        name: name.into(),
    }
}

fn code(e: &ClientError) -> Option<Code> {
    match e {
        ClientError::Api(a) => Some(a.code()),
        _ => None,
    }
}

/// Whether a call's result says it was let through (an error other than
/// PERMISSION_DENIED is the call's own business).
fn allowed<T>(result: &Result<T, ClientError>) -> bool {
    match result {
        Ok(_) => true,
        Err(e) => {
            assert!(
                !matches!(e, ClientError::Transport(_) | ClientError::Connect { .. }),
                "the call did not reach the server: {e}"
            );
            code(e) != Some(Code::PermissionDenied)
        }
    }
}

async fn control_plane(extra: &[&str]) -> ControlPlane {
    let mut args: Vec<String> = vec!["--no-controllers".into()];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    ControlPlane::start(Options {
        tls: true,
        args,
        ..Options::default()
    })
    .await
    .expect("control plane starts")
}

/// A user's client over TLS, with credentials from `user add`.
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

fn namespace(name: &str) -> Object {
    obj(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
}

fn config_map(ns: &str, name: &str) -> Object {
    obj(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns}, "data": {"k": "v"}}))
}

fn secret(ns: &str, name: &str) -> Object {
    obj(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns}, "stringData": {"password": "x"}}))
}

fn pod(ns: &str, name: &str, node: Option<&str>, secret: Option<&str>) -> Object {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    if let Some(s) = secret {
        spec["volumes"] = json!([{"name": "s", "secret": {"secretName": s}}]);
        spec["containers"][0]["volumeMounts"] = json!([{"name": "s", "mountPath": "/s"}]);
    }
    obj(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns}, "spec": spec}))
}

fn deployment(ns: &str, name: &str) -> Object {
    obj(json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}))
}

fn job(ns: &str, name: &str) -> Object {
    obj(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox"}]}}}}))
}

fn rbac(v: serde_json::Value) -> Object {
    obj(v)
}

fn role_binding(ns: &str, name: &str, subject: (&str, &str), role: (&str, &str)) -> Object {
    rbac(
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": ns},
        "subjects": [{"kind": subject.0, "apiGroup": "rbac.authorization.k8s.io", "name": subject.1}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role.0, "name": role.1}}),
    )
}

/// One operation of the table.
#[derive(Debug, Clone, Copy)]
enum Op {
    Get(Kind, &'static str, &'static str),
    List(Kind, Option<&'static str>),
    Watch(Kind, Option<&'static str>),
    Create(Kind, &'static str),
    Patch(Kind, &'static str, &'static str),
    Delete(Kind, &'static str, &'static str),
    Scale(&'static str, &'static str),
    Logs(&'static str, &'static str),
    Exec(&'static str, &'static str),
}

/// The authorization attributes of `op` (for the access review that
/// must agree with the call).
fn attributes(op: Op) -> v1::ResourceAttributes {
    let of = |verb: &str, kind: Kind, ns: Option<&str>, name: &str| v1::ResourceAttributes {
        verb: verb.into(),
        group: kind.group().into(),
        resource: kind.plural().into(),
        subresource: String::new(),
        namespace: ns.filter(|_| kind.namespaced()).unwrap_or_default().into(),
        name: name.into(),
    };
    match op {
        Op::Get(k, ns, n) => of("get", k, Some(ns), n),
        Op::List(k, ns) => of("list", k, ns, ""),
        Op::Watch(k, ns) => of("watch", k, ns, ""),
        Op::Create(k, ns) => of("create", k, Some(ns), ""),
        Op::Patch(k, ns, n) => of("patch", k, Some(ns), n),
        Op::Delete(k, ns, n) => of("delete", k, Some(ns), n),
        Op::Scale(ns, n) => v1::ResourceAttributes {
            subresource: "scale".into(),
            ..of("update", Kind::Deployment, Some(ns), n)
        },
        Op::Logs(ns, n) => v1::ResourceAttributes {
            subresource: "log".into(),
            ..of("get", Kind::Pod, Some(ns), n)
        },
        Op::Exec(ns, n) => v1::ResourceAttributes {
            subresource: "exec".into(),
            ..of("create", Kind::Pod, Some(ns), n)
        },
    }
}

/// Runs `op` as `client`; whether it was let through.
async fn run(client: &Client, op: Op, serial: usize) -> bool {
    match op {
        Op::Get(k, ns, n) => allowed(&client.get(&r(k, Some(ns), n)).await),
        Op::List(k, ns) => allowed(&client.list(k, ns, "").await),
        Op::Watch(k, ns) => allowed(
            &client
                .watch(&WatchFilter {
                    kinds: vec![k],
                    namespace: ns.map(str::to_owned),
                    ..WatchFilter::default()
                })
                .await
                .map(|_| ()),
        ),
        Op::Create(k, ns) => {
            let name = format!("new-{serial}");
            let object = match k {
                Kind::ConfigMap => config_map(ns, &name),
                Kind::Secret => secret(ns, &name),
                Kind::Deployment => deployment(ns, &name),
                Kind::Job => job(ns, &name),
                Kind::RoleBinding => {
                    role_binding(ns, &name, ("User", "x"), ("ClusterRole", "view"))
                }
                other => panic!("no test object of kind {other}"),
            };
            allowed(&client.apply(&[object], false).await)
        }
        Op::Patch(k, ns, n) => {
            let mut object = match k {
                Kind::ConfigMap => config_map(ns, n),
                other => panic!("no test object of kind {other}"),
            };
            object
                .metadata_mut()
                .labels
                .insert("patched".into(), serial.to_string());
            allowed(&client.apply(&[object], false).await)
        }
        Op::Delete(k, ns, n) => allowed(&client.delete(&r(k, Some(ns), n), None).await),
        Op::Scale(ns, n) => allowed(&client.scale(&r(Kind::Deployment, Some(ns), n), 2).await),
        Op::Logs(ns, n) => allowed(
            &client
                .logs(v1::LogsRequest {
                    namespace: ns.into(),
                    name: n.into(),
                    ..v1::LogsRequest::default()
                })
                .await
                .map(|_| ()),
        ),
        Op::Exec(ns, n) => allowed(
            &client
                .exec(
                    v1::ExecStart {
                        namespace: ns.into(),
                        name: n.into(),
                        command: vec!["true".into()],
                        ..v1::ExecStart::default()
                    },
                    futures::stream::empty(),
                )
                .await
                .map(|_| ()),
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn users_may_do_what_their_bindings_grant_and_nothing_else() {
    let cp = control_plane(&[]).await;
    let admin = cp.client().await.unwrap();
    admin
        .apply(
            &[
                namespace("dev"),
                namespace("prod"),
                config_map("dev", "app-config"),
                config_map("dev", "other"),
                config_map("dev", "victim-1"),
                config_map("dev", "victim-2"),
                config_map("prod", "app-config"),
                secret("dev", "db"),
                secret("prod", "db"),
                pod("dev", "web", None, None),
                pod("prod", "web", None, None),
                deployment("dev", "web"),
                deployment("prod", "web"),
                role_binding("dev", "alice-view", ("User", "alice"), ("ClusterRole", "view")),
                role_binding("dev", "devs-edit", ("Group", "devs"), ("ClusterRole", "edit")),
                rbac(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {"name": "carol-view"},
                    "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "carol"}],
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}})),
                rbac(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": "cm-reader", "namespace": "dev"},
                    "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"],
                        "resourceNames": ["app-config"]}]})),
                role_binding("dev", "dave-cm", ("User", "dave"), ("Role", "cm-reader")),
            ],
            false,
        )
        .await
        .unwrap();
    let clients = [
        ("alice", user(&cp, "alice", &[]).await, vec![]),
        (
            "bob",
            user(&cp, "bob", &["devs"]).await,
            vec!["devs".to_owned()],
        ),
        ("carol", user(&cp, "carol", &[]).await, vec![]),
        ("dave", user(&cp, "dave", &[]).await, vec![]),
        (
            "eve",
            user(&cp, "eve", &["strangers"]).await,
            vec!["strangers".to_owned()],
        ),
        (
            "root",
            user(&cp, "root", &["system:masters"]).await,
            vec!["system:masters".to_owned()],
        ),
    ];
    use Kind::*;
    use Op::*;
    let table: &[(&str, Op, bool)] = &[
        // alice: view in dev.
        ("alice", Get(ConfigMap, "dev", "app-config"), true),
        ("alice", List(Pod, Some("dev")), true),
        ("alice", Watch(Pod, Some("dev")), true),
        ("alice", Logs("dev", "web"), true),
        ("alice", List(Pod, Some("prod")), false),
        ("alice", List(Pod, None), false),
        ("alice", Get(Secret, "dev", "db"), false),
        ("alice", Create(ConfigMap, "dev"), false),
        ("alice", Patch(ConfigMap, "dev", "other"), false),
        ("alice", Delete(ConfigMap, "dev", "victim-1"), false),
        ("alice", Scale("dev", "web"), false),
        ("alice", Exec("dev", "web"), false),
        ("alice", List(Node, None), false),
        ("alice", List(Job, Some("dev")), true),
        ("alice", List(CronJob, Some("dev")), true),
        ("alice", Create(Job, "dev"), false),
        // bob: edit in dev through his group.
        ("bob", Create(ConfigMap, "dev"), true),
        ("bob", Patch(ConfigMap, "dev", "other"), true),
        ("bob", Delete(ConfigMap, "dev", "victim-1"), true),
        ("bob", Get(Secret, "dev", "db"), true),
        ("bob", Create(Deployment, "dev"), true),
        ("bob", Create(Job, "dev"), true),
        ("bob", Create(Job, "prod"), false),
        ("bob", Scale("dev", "web"), true),
        ("bob", Exec("dev", "web"), true),
        ("bob", Create(RoleBinding, "dev"), false),
        ("bob", List(Pod, Some("prod")), false),
        ("bob", Create(ConfigMap, "prod"), false),
        ("bob", List(Node, None), false),
        // carol: view everywhere.
        ("carol", List(Pod, Some("prod")), true),
        ("carol", List(Pod, None), true),
        ("carol", Watch(Deployment, None), true),
        ("carol", Get(Secret, "prod", "db"), false),
        ("carol", Delete(ConfigMap, "prod", "app-config"), false),
        // dave: one ConfigMap by name.
        ("dave", Get(ConfigMap, "dev", "app-config"), true),
        ("dave", Get(ConfigMap, "dev", "other"), false),
        ("dave", List(ConfigMap, Some("dev")), false),
        ("dave", Get(ConfigMap, "prod", "app-config"), false),
        // eve: nothing.
        ("eve", List(Pod, Some("dev")), false),
        ("eve", Get(ConfigMap, "dev", "app-config"), false),
        ("eve", Create(ConfigMap, "dev"), false),
        ("eve", List(Job, Some("dev")), false),
        ("eve", Create(Job, "dev"), false),
        // root: system:masters.
        ("root", Create(RoleBinding, "dev"), true),
        ("root", Delete(ConfigMap, "dev", "victim-2"), true),
        ("root", List(Node, None), true),
        ("root", Get(Secret, "prod", "db"), true),
    ];
    let mut wrong = Vec::new();
    for (serial, (who, op, expected)) in table.iter().enumerate() {
        let (_, client, groups) = clients.iter().find(|(n, _, _)| n == who).unwrap();
        let got = run(client, *op, serial).await;
        // The server's own review of the same question must agree.
        let mut all_groups = groups.clone();
        all_groups.push("system:authenticated".into());
        let review = admin
            .access_review(attributes(*op), Some((who, &all_groups)))
            .await
            .unwrap();
        if got != *expected || review.allowed != *expected {
            wrong.push(format!(
                "{who} {op:?}: call {}, review {} ({}), expected {}",
                if got { "allowed" } else { "denied" },
                review.allowed,
                review.reason,
                if *expected { "allowed" } else { "denied" }
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} rows wrong:\n{}",
        wrong.len(),
        table.len(),
        wrong.join("\n")
    );

    // The refusal reads as kubectl users know it.
    let alice = &clients[0].1;
    let e = alice.list(Kind::Pod, Some("prod"), "").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "prod""#
    );
    // Asking about someone else takes the right to review access.
    let e = alice
        .access_review(attributes(List(Pod, Some("dev"))), Some(("bob", &[])))
        .await
        .unwrap_err();
    assert_eq!(code(&e), Some(Code::PermissionDenied), "{e}");
    // A grant takes effect at once, a revocation soon after.
    let eve = &clients[4].1;
    admin
        .apply(
            &[role_binding(
                "dev",
                "eve-view",
                ("User", "eve"),
                ("ClusterRole", "view"),
            )],
            false,
        )
        .await
        .unwrap();
    assert!(
        allowed(&eve.list(Kind::Pod, Some("dev"), "").await),
        "a new binding grants at once"
    );
    admin
        .delete(&r(Kind::RoleBinding, Some("dev"), "eve-view"), None)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while allowed(&eve.list(Kind::Pod, Some("dev"), "").await) {
        assert!(
            std::time::Instant::now() < deadline,
            "a deleted binding still grants after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // jotactl auth can-i answers yes / no with its exit code.
    let can_i = |user: &str, args: &[&str]| {
        let out = std::process::Command::new(
            jotasu_tests::lab::workspace_bin("jotactl", "JOTACTL").unwrap(),
        )
        .env(
            "JOTASU_CONFIG",
            cp.data_dir().join("users").join(format!("{user}.conf")),
        )
        .env_remove("JOTASU_SERVER")
        .args(["auth", "can-i"])
        .args(args)
        .output()
        .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        )
    };
    assert_eq!(
        can_i("alice", &["list", "pods", "-n", "dev"]),
        (Some(0), "yes".into())
    );
    assert_eq!(
        can_i("alice", &["delete", "configmaps", "-n", "dev"]),
        (Some(1), "no".into())
    );
    assert_eq!(
        can_i("bob", &["create", "deployments.apps", "-n", "dev"]),
        (Some(0), "yes".into())
    );
    assert_eq!(
        can_i(
            "bob",
            &["get", "pods", "--subresource", "exec", "-n", "prod"]
        ),
        (Some(1), "no".into())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn callers_without_credentials_are_refused() {
    let cp = control_plane(&[]).await;
    // TLS without a client certificate: the handshake is allowed (joining
    // nodes have none), every call is not.
    let c = anonymous(&cp).await;
    for result in [
        c.list(Kind::Pod, None, "").await.map(|_| ()),
        c.get(&r(Kind::Node, None, "n1")).await.map(|_| ()),
        c.who_am_i().await.map(|_| ()),
    ] {
        let e = result.unwrap_err();
        assert_eq!(code(&e), Some(Code::Unauthenticated), "{e}");
    }
    // (A certificate of another CA fails the handshake: apiserver.rs.)
}

/// A client over TLS that presents no certificate (a joining node).
async fn anonymous(cp: &ControlPlane) -> Client {
    let url = ServerUrl::parse(&cp.tls_url().unwrap()).unwrap();
    let ca_only = TlsFiles {
        client_certificate: None,
        client_key: None,
        ..cp.admin_tls()
    };
    Client::connect_to(&url, &ca_only).await.unwrap()
}

/// A CSR for a new key (PEM), and the key.
fn csr(cn: &str) -> (String, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    (params.serialize_request(&key).unwrap().pem().unwrap(), key)
}

/// `RequestNodeCertificate` as `client`, with `token` as bearer if given.
async fn request_cert(
    client: &Client,
    node: &str,
    token: Option<&str>,
) -> Result<(String, rcgen::KeyPair), tonic::Status> {
    let (csr, key) = csr(&format!("system:node:{node}"));
    let mut request = tonic::Request::new(v1::NodeCertificateRequest {
        node: node.into(),
        csr_pem: csr,
    });
    if let Some(t) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    let response = client.raw().request_node_certificate(request).await?;
    Ok((response.into_inner().certificate_pem, key))
}

fn token_command(data_dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new(
        jotasu_tests::lab::workspace_bin("jotasu-controlplane", "JOTASU_CONTROLPLANE").unwrap(),
    )
    .arg("token")
    .args(args)
    .arg("--data-dir")
    .arg(data_dir)
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "token {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A node's client: joins with `token` (a fresh key), then connects with
/// the certificate it got.
async fn join(cp: &ControlPlane, node: &str, token: &str, dir: &Path) -> Client {
    let url = ServerUrl::parse(&cp.tls_url().unwrap()).unwrap();
    let bootstrap = anonymous(cp).await;
    let (cert, key) = request_cert(&bootstrap, node, Some(token)).await.unwrap();
    let info = jotasu_api::client::identity::CertInfo::from_pem("node", &cert).unwrap();
    assert_eq!(info.common_name, format!("system:node:{node}"));
    assert_eq!(info.organizations, ["system:nodes"]);
    let (c, k) = (
        dir.join(format!("{node}.crt")),
        dir.join(format!("{node}.key")),
    );
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    Client::connect_to(
        &url,
        &TlsFiles {
            client_certificate: Some(c),
            client_key: Some(k),
            ..cp.admin_tls()
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_join_with_tokens_that_are_valid_and_names_that_are_free() {
    let cp = control_plane(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = anonymous(&cp).await;
    let out = token_command(
        cp.data_dir(),
        &["create", "--ttl", "1h", "--description", "test"],
    );
    let token = out.lines().next().unwrap().to_owned();
    let join_line = out.lines().nth(1).unwrap();
    assert!(
        join_line.contains(&format!("--token {token}")),
        "{join_line}"
    );
    assert!(join_line.contains("--ca-cert-hash sha256:"), "{join_line}");
    let list = token_command(cp.data_dir(), &["list"]);
    assert!(
        list.contains(&token[..6]) && !list.contains(&token[7..]),
        "ids only:\n{list}"
    );

    // A good token: a certificate for the node, and the node may register.
    let n1 = join(&cp, "n1", &token, dir.path()).await;
    let (user, groups) = n1.who_am_i().await.unwrap();
    assert_eq!(user, "system:node:n1");
    assert!(groups.contains(&"system:nodes".to_owned()));
    let mut node = jotasu_api::Node::default();
    node.metadata.name = Some("n1".into());
    n1.apply(&[Object::Node(node)], false).await.unwrap();

    // A second machine claiming n1 with another key: refused while n1 exists.
    let e = request_cert(&bootstrap, "n1", Some(&token))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    assert!(
        e.message().contains("already joined with another key"),
        "{}",
        e.message()
    );
    // The node itself renews (a new key is fine), with its certificate alone.
    request_cert(&n1, "n1", None).await.unwrap();
    // But not for another name.
    let e = request_cert(&n1, "n2", None).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");

    // Wrong, malformed, deleted and expired tokens, and none at all.
    let wrong = format!("{}.{}", &token[..6], "0000000000000000");
    for (t, why) in [
        (Some(wrong.as_str()), "does not match"),
        (Some("not-a-token"), "has the form"),
        (Some("zzzzzz.0000000000000000"), "unknown"),
        (None, "no credentials"),
    ] {
        let e = request_cert(&bootstrap, "n2", t).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{t:?}: {e:?}");
        assert!(e.message().contains(why), "{t:?}: {}", e.message());
    }
    token_command(cp.data_dir(), &["delete", &token]);
    let e = request_cert(&bootstrap, "n2", Some(&token))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("unknown"), "{}", e.message());
    let short = token_command(cp.data_dir(), &["create", "--ttl", "1s"]);
    let short = short.lines().next().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let e = request_cert(&bootstrap, "n2", Some(&short))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(e.message().contains("expired"), "{}", e.message());
    // A bootstrap token is for joining only.
    let fresh = token_command(cp.data_dir(), &["create"]);
    let fresh = fresh.lines().next().unwrap().to_owned();
    let (_, _) = request_cert(&bootstrap, "n2", Some(&fresh)).await.unwrap();
    let mut r = tonic::Request::new(v1::ListRequest {
        kind: "Secret".into(),
        namespace: "kube-system".into(),
        ..v1::ListRequest::default()
    });
    r.metadata_mut()
        .insert("authorization", format!("Bearer {fresh}").parse().unwrap());
    let e = bootstrap.raw().list(r).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
}

fn node_with(name: &str, cidr: Option<&str>, ip: &str) -> Object {
    let mut spec = json!({});
    if let Some(c) = cidr {
        spec["podCIDR"] = json!(c);
    }
    obj(
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec,
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]}}),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_may_do_only_what_a_node_needs() {
    let cp = control_plane(&[]).await;
    let admin = cp.client().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = token_command(cp.data_dir(), &["create"]);
    let token = token.lines().next().unwrap().to_owned();
    let n1 = join(&cp, "n1", &token, dir.path()).await;
    let n2 = join(&cp, "n2", &token, dir.path()).await;
    // Each registers itself, as its agent does: apply, then the status.
    for (c, name, ip) in [(&n1, "n1", "192.168.77.11"), (&n2, "n2", "192.168.77.12")] {
        let mut n = jotasu_api::Node::default();
        n.metadata.name = Some(name.into());
        c.apply(&[Object::Node(n)], false).await.unwrap();
        let Object::Node(mut stored) = c.get(&r(Kind::Node, None, name)).await.unwrap() else {
            panic!("not a node")
        };
        assert!(
            stored.spec.pod_cidr.is_some(),
            "the control plane allocated a podCIDR"
        );
        let Object::Node(given) = node_with(name, None, ip) else {
            unreachable!()
        };
        stored.status = given.status;
        c.update_status(&Object::Node(stored)).await.unwrap();
    }
    admin
        .apply(
            &[
                secret("default", "s1"),
                secret("default", "s2"),
                pod("default", "p1", Some("n1"), Some("s1")),
                pod("default", "p2", Some("n2"), Some("s2")),
                deployment("default", "web"),
            ],
            false,
        )
        .await
        .unwrap();
    let forbidden = |what: &str, result: Result<(), ClientError>| {
        let e = result.expect_err(what);
        assert_eq!(code(&e), Some(Code::PermissionDenied), "{what}: {e}");
        e.to_string()
    };
    let secret_ref = |n: &str| r(Kind::Secret, Some("default"), n);
    // Reads: its own pods' secrets, through its node scope only.
    n1.get(&secret_ref("s1")).await.unwrap();
    forbidden(
        "another node's pod's secret",
        n1.get(&secret_ref("s2")).await.map(|_| ()),
    );
    forbidden(
        "every secret",
        n1.list(Kind::Secret, None, "").await.map(|_| ()),
    );
    let mine = n1.list_for_node(Kind::Secret, "n1").await.unwrap();
    let names: Vec<&str> = mine.items.iter().map(Object::name).collect();
    assert_eq!(names, ["s1"]);
    forbidden(
        "n2's scope",
        n1.list_for_node(Kind::Secret, "n2").await.map(|_| ()),
    );
    forbidden(
        "a watch of n2's secrets",
        n1.watch(&WatchFilter {
            kinds: vec![Kind::Secret],
            node: Some("n2".into()),
            ..WatchFilter::default()
        })
        .await
        .map(|_| ()),
    );
    let pods = n1.list_for_node(Kind::Pod, "n1").await.unwrap();
    assert_eq!(
        pods.items.iter().map(Object::name).collect::<Vec<_>>(),
        ["p1"]
    );
    forbidden("every pod", n1.list(Kind::Pod, None, "").await.map(|_| ()));
    n1.list(Kind::Service, None, "").await.unwrap();
    n1.list(Kind::Endpoints, None, "").await.unwrap();
    n1.get(&r(Kind::Node, None, "n2")).await.unwrap();
    // Writes: its own pods' status, never another's.
    let status_of = |o: Object| {
        let Object::Pod(mut p) = o else {
            panic!("not a pod")
        };
        p.status = Some(jotasu_api::PodStatus {
            phase: Some(jotasu_api::kinds::pod_status::PodPhase::Running),
            pod_ip: Some("10.244.0.66".into()),
            ..jotasu_api::PodStatus::default()
        });
        Object::Pod(p)
    };
    let p1 = admin
        .get(&r(Kind::Pod, Some("default"), "p1"))
        .await
        .unwrap();
    n1.update_status(&status_of(p1)).await.unwrap();
    let p2 = admin
        .get(&r(Kind::Pod, Some("default"), "p2"))
        .await
        .unwrap();
    let e = forbidden(
        "another node's pod status",
        n1.update_status(&status_of(p2)).await.map(|_| ()),
    );
    assert!(
        e.contains(r#"User "system:node:n1" cannot update resource "pods/status""#),
        "{e}"
    );
    forbidden(
        "deleting another node's pod",
        n1.delete(&r(Kind::Pod, Some("default"), "p2"), None)
            .await
            .map(|_| ()),
    );
    // Its Node: never its podCIDR, never another's Node, never a stolen
    // address. A podCIDR once allocated is immutable for everyone; a new
    // node may not bring one of its own choosing.
    let refused = |what: &str, result: Result<(), ClientError>| {
        let e = result.expect_err(what);
        assert!(
            matches!(
                code(&e),
                Some(Code::PermissionDenied | Code::InvalidArgument)
            ),
            "{what}: {e}"
        );
    };
    refused(
        "changing its podCIDR to 0.0.0.0/0",
        n1.apply(
            &[node_with("n1", Some("0.0.0.0/0"), "192.168.77.11")],
            false,
        )
        .await
        .map(|_| ()),
    );
    let n3 = join(&cp, "n3", &token, dir.path()).await;
    for cidr in ["0.0.0.0/0", "10.244.99.0/24"] {
        let e = forbidden(
            cidr,
            n3.apply(&[node_with("n3", Some(cidr), "192.168.77.13")], false)
                .await
                .map(|_| ()),
        );
        assert!(e.contains("may not set its spec.podCIDR"), "{e}");
    }
    let Object::Node(n1_stored) = admin.get(&r(Kind::Node, None, "n1")).await.unwrap() else {
        panic!("not a node")
    };
    let Object::Node(n2_stored) = admin.get(&r(Kind::Node, None, "n2")).await.unwrap() else {
        panic!("not a node")
    };
    refused(
        "taking n2's podCIDR",
        n1.apply(
            &[node_with(
                "n1",
                n2_stored.spec.pod_cidr.as_deref(),
                "192.168.77.11",
            )],
            false,
        )
        .await
        .map(|_| ()),
    );
    forbidden(
        "writing n2's Node",
        n1.apply(&[node_with("n2", None, "192.168.77.12")], false)
            .await
            .map(|_| ()),
    );
    for ip in ["192.168.77.12", "127.0.0.1", "10.244.3.3"] {
        let mut stolen = n1_stored.clone();
        let Object::Node(given) = node_with("n1", None, ip) else {
            unreachable!()
        };
        stolen.status = given.status;
        let e = forbidden(
            ip,
            n1.update_status(&Object::Node(stolen)).await.map(|_| ()),
        );
        assert!(e.contains("InternalIP"), "{e}");
    }
    n1.heartbeat("n1", Vec::new()).await.unwrap();
    forbidden(
        "another node's heartbeat",
        n1.heartbeat("n2", Vec::new()).await,
    );
    // Nothing a node does not need.
    forbidden(
        "creating a Deployment",
        n1.apply(&[deployment("default", "evil")], false)
            .await
            .map(|_| ()),
    );
    forbidden(
        "scaling",
        n1.scale(&r(Kind::Deployment, Some("default"), "web"), 9)
            .await
            .map(|_| ()),
    );
    forbidden(
        "exec",
        n1.exec(
            v1::ExecStart {
                namespace: "default".into(),
                name: "p1".into(),
                command: vec!["true".into()],
                ..v1::ExecStart::default()
            },
            futures::stream::empty(),
        )
        .await
        .map(|_| ()),
    );
    forbidden(
        "binding roles",
        n1.apply(
            &[role_binding(
                "default",
                "me",
                ("User", "system:node:n1"),
                ("ClusterRole", "cluster-admin"),
            )],
            false,
        )
        .await
        .map(|_| ()),
    );
    // Even the administrator cannot give a node a CIDR outside the cluster's
    // or over another node's.
    for cidr in ["10.0.0.0/8", "10.244.0.0/16", "0.0.0.0/0"] {
        let e = admin
            .apply(&[node_with("n3", Some(cidr), "192.168.77.13")], false)
            .await
            .unwrap_err();
        assert_eq!(code(&e), Some(Code::InvalidArgument), "{cidr}: {e}");
    }
}

/// A node reads the PersistentVolumeClaims its pods name and the volumes
/// bound to them, lists only the volumes pinned to it, and nothing more:
/// another node's pod's claim and that claim's volume are refused, and
/// no claim or volume may be written.
#[tokio::test(flavor = "multi_thread")]
async fn nodes_read_only_their_pods_claims_and_volumes() {
    let cp = control_plane(&[]).await;
    let admin = cp.client().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = token_command(cp.data_dir(), &["create"]);
    let token = token.lines().next().unwrap().to_owned();
    let n1 = join(&cp, "n1", &token, dir.path()).await;
    let claim = |name: &str, volume: &str| {
        obj(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                "volumeName": volume, "resources": {"requests": {"storage": "1Gi"}}}}))
    };
    let volume = |name: &str, node: &str, claim: &str| {
        obj(
            json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "claimRef": {"namespace": "default", "name": claim},
                "local": {"path": format!("/srv/{name}")},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}}),
        )
    };
    let with_claim = |name: &str, node: &str, claim: &str| {
        obj(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}}))
    };
    admin
        .apply(
            &[
                claim("c1", "v1"),
                claim("c2", "v2"),
                volume("v1", "n9", "c1"),
                volume("v2", "n2", "c2"),
                volume("v3", "n1", "nobody"),
                with_claim("p1", "n1", "c1"),
                with_claim("p2", "n2", "c2"),
            ],
            false,
        )
        .await
        .unwrap();
    let forbidden = |what: &str, result: Result<(), ClientError>| {
        let e = result.expect_err(what);
        assert_eq!(code(&e), Some(Code::PermissionDenied), "{what}: {e}");
    };
    let claim_ref = |n: &str| r(Kind::PersistentVolumeClaim, Some("default"), n);
    let volume_ref = |n: &str| r(Kind::PersistentVolume, None, n);
    n1.get(&claim_ref("c1")).await.unwrap();
    n1.get(&volume_ref("v1")).await.unwrap();
    n1.get(&volume_ref("v3")).await.unwrap();
    forbidden(
        "another node's pod's claim",
        n1.get(&claim_ref("c2")).await.map(|_| ()),
    );
    forbidden(
        "that claim's volume",
        n1.get(&volume_ref("v2")).await.map(|_| ()),
    );
    forbidden(
        "every claim",
        n1.list(Kind::PersistentVolumeClaim, None, "")
            .await
            .map(|_| ()),
    );
    forbidden(
        "every volume",
        n1.list(Kind::PersistentVolume, None, "").await.map(|_| ()),
    );
    let mine = n1
        .list_for_node(Kind::PersistentVolume, "n1")
        .await
        .unwrap();
    assert_eq!(
        mine.items.iter().map(Object::name).collect::<Vec<_>>(),
        ["v3"]
    );
    forbidden(
        "n2's volumes",
        n1.list_for_node(Kind::PersistentVolume, "n2")
            .await
            .map(|_| ()),
    );
    forbidden(
        "writing a volume",
        n1.apply(&[volume("v9", "n1", "c1")], false)
            .await
            .map(|_| ()),
    );
    forbidden(
        "deleting its pod's claim",
        n1.delete(&claim_ref("c1"), None).await.map(|_| ()),
    );
}

/// Node `name` registered by its own client with a Ready condition (or not).
async fn register_ready(c: &Client, name: &str, ip: &str, ready: bool) {
    let mut n = jotasu_api::Node::default();
    n.metadata.name = Some(name.into());
    c.apply(&[Object::Node(n)], false).await.unwrap();
    let Object::Node(mut stored) = c.get(&r(Kind::Node, None, name)).await.unwrap() else {
        panic!("not a node")
    };
    let Object::Node(given) = obj(json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}],
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}}))
    else {
        unreachable!()
    };
    stored.status = given.status;
    c.update_status(&Object::Node(stored)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn waiting_for_programmed_data_planes_is_for_nodes_and_admins() {
    let cp = control_plane(&[]).await;
    let admin = cp.client().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = token_command(cp.data_dir(), &["create"]);
    let token = token.lines().next().unwrap().to_owned();
    let n1 = join(&cp, "n1", &token, dir.path()).await;
    let n2 = join(&cp, "n2", &token, dir.path()).await;
    register_ready(&n1, "n1", "192.168.77.11", true).await;
    register_ready(&n2, "n2", "192.168.77.12", true).await;
    n1.heartbeat_programmed("n1", Vec::new(), Some(5))
        .await
        .unwrap();
    n2.heartbeat_programmed("n2", Vec::new(), Some(3))
        .await
        .unwrap();
    let short = Duration::from_millis(300);
    // n2 lags: the wait ends at its timeout and names it.
    let answer = n1.wait_endpoints_programmed(4, short).await.unwrap();
    assert!(!answer.programmed);
    assert_eq!(answer.lagging, ["n2"]);
    // A wait in progress returns as soon as n2 catches up.
    let waiting = {
        let admin = admin.clone();
        tokio::spawn(async move {
            admin
                .wait_endpoints_programmed(4, Duration::from_secs(30))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    n2.heartbeat_programmed("n2", Vec::new(), Some(4))
        .await
        .unwrap();
    let answer = waiting.await.unwrap().unwrap();
    assert!(answer.programmed, "{answer:?}");
    assert!(answer.lagging.is_empty());
    // A node that is not Ready does not hold a wait up.
    register_ready(&n2, "n2", "192.168.77.12", false).await;
    let answer = n2.wait_endpoints_programmed(100, short).await.unwrap();
    assert_eq!(answer.lagging, ["n1"]);
    // An administrator by certificate may ask too.
    let root = user(&cp, "root", &["system:masters"]).await;
    assert!(root.wait_endpoints_programmed(1, short).await.is_ok());
    // Nobody else: a plain user, one who may read everything, a caller
    // without credentials.
    admin
        .apply(
            &[rbac(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "bob-views"},
                "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"}],
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}}),
            )],
            false,
        )
        .await
        .unwrap();
    for name in ["alice", "bob"] {
        let c = user(&cp, name, &[]).await;
        let e = c.wait_endpoints_programmed(1, short).await.unwrap_err();
        assert_eq!(code(&e), Some(Code::PermissionDenied), "{name}: {e}");
    }
    let e = anonymous(&cp)
        .await
        .wait_endpoints_programmed(1, short)
        .await
        .unwrap_err();
    assert!(
        matches!(
            code(&e),
            Some(Code::PermissionDenied | Code::Unauthenticated)
        ),
        "without credentials: {e}"
    );
}
