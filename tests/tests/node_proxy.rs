//! Logs, exec and image import through the real control plane and jotactl,
//! to fake agents: `jotasu.v1.Node` servers on 127.0.0.1 in this process,
//! registered as Nodes (InternalIP 127.0.0.1, their port as
//! `daemonEndpoints.kubeletEndpoint.Port`). The real agent is tested
//! elsewhere; here the forwarding is: requests reach the right agent with
//! the container resolved, streams flow both ways, errors read as kubectl's,
//! and a caller that leaves cancels the agent's stream.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt as _, Stream, StreamExt as _};
use jotasu_agent::server::{NodePort, serve_node};
use jotasu_api::client::Credentials;
use jotasu_api::grpc::v1::exec_input::Input;
use jotasu_api::grpc::v1::exec_output::Output;
use jotasu_api::grpc::v1::node_server::Node;
use jotasu_api::grpc::v1::{
    ExecInput, ExecOutput, ImageChunk, ImageImported, ImportImageResponse, LogChunk, LogsRequest,
};
use jotasu_api::{Kind, Object, ObjectRef};
use jotasu_controlplane::pki::{PkiPaths, Signer};
use jotasu_tests::controlplane::{ControlPlane, Options};
use jotasu_tests::jotactl::{Ctl, Run};
use serde_json::json;
use tonic::{Request, Response, Status, Streaming};

type Reply<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// What a fake agent saw.
#[derive(Debug, Default)]
struct Seen {
    logs: Vec<LogsRequest>,
    execs: Vec<(String, String, Vec<String>)>,
    /// Per import: the first message's nodes, the bytes, the largest chunk.
    imports: Vec<(Vec<String>, Vec<u8>, usize)>,
}

/// A fake agent of one node.
#[derive(Debug, Clone)]
struct FakeAgent {
    node: String,
    broken: bool,
    seen: Arc<Mutex<Seen>>,
    /// Set when a followed log stream is dropped (its caller went away).
    follow_dropped: Arc<AtomicBool>,
}

/// Sets its flag when dropped.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

const LOG: &str = "line 1\nline 2\n";

#[tonic::async_trait]
impl Node for FakeAgent {
    type LogsStream = Reply<LogChunk>;

    async fn logs(
        &self,
        request: Request<LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let request = request.into_inner();
        self.seen.lock().unwrap().logs.push(request.clone());
        if self.broken {
            return Err(Status::not_found(format!(
                "container {:?} is not running",
                request.container
            )));
        }
        let lines: Vec<&str> = LOG.lines().collect();
        let skip = match request.tail_lines {
            Some(n) => lines.len().saturating_sub(usize::try_from(n).unwrap()),
            None => 0,
        };
        let text: String = lines[skip..].iter().map(|l| format!("{l}\n")).collect();
        let first = futures::stream::once(async move {
            Ok::<_, Status>(LogChunk {
                data: text.into_bytes(),
            })
        });
        if !request.follow {
            return Ok(Response::new(Box::pin(first)));
        }
        // Follow: a tick every 100 ms until the caller goes away.
        let flag = DropFlag(self.follow_dropped.clone());
        let ticks = futures::stream::unfold((flag, 0), |(flag, n)| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let chunk = LogChunk {
                data: format!("tick {n}\n").into_bytes(),
            };
            Some((Ok(chunk), (flag, n + 1)))
        });
        Ok(Response::new(Box::pin(first.chain(ticks))))
    }

    type ExecStream = Reply<ExecOutput>;

    async fn exec(
        &self,
        request: Request<Streaming<ExecInput>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let mut input = request.into_inner();
        let Some(ExecInput {
            input: Some(Input::Start(start)),
        }) = input.message().await?
        else {
            return Err(Status::invalid_argument("no start"));
        };
        self.seen.lock().unwrap().execs.push((
            start.namespace.clone(),
            start.container.clone(),
            start.command.clone(),
        ));
        let (mut tx, rx) = futures::channel::mpsc::channel(16);
        tokio::spawn(async move {
            let out = |o| Ok(ExecOutput { output: Some(o) });
            let args = start.command[1..].join(" ");
            let code = match start.command[0].as_str() {
                "echo" => {
                    let _ = tx
                        .send(out(Output::Stdout(format!("{args}\n").into_bytes())))
                        .await;
                    0
                }
                "fail" => {
                    let _ = tx.send(out(Output::Stderr(b"oops\n".to_vec()))).await;
                    3
                }
                "cat" => {
                    while let Ok(Some(m)) = input.message().await {
                        match m.input {
                            Some(Input::Stdin(data)) => {
                                let _ = tx.send(out(Output::Stdout(data))).await;
                            }
                            Some(Input::StdinClosed(_)) | None => break,
                            Some(Input::Start(_)) => {
                                let _ = tx
                                    .send(Err(Status::invalid_argument("a second start")))
                                    .await;
                                return;
                            }
                        }
                    }
                    0
                }
                other => {
                    let _ = tx
                        .send(out(Output::Stderr(
                            format!("{other}: not found\n").into_bytes(),
                        )))
                        .await;
                    127
                }
            };
            let _ = tx.send(out(Output::ExitCode(code))).await;
        });
        Ok(Response::new(Box::pin(rx)))
    }

    async fn import_image(
        &self,
        request: Request<Streaming<ImageChunk>>,
    ) -> Result<Response<ImportImageResponse>, Status> {
        let mut input = request.into_inner();
        let mut nodes = Vec::new();
        let mut bytes = Vec::new();
        let mut largest = 0;
        let mut first = true;
        while let Some(chunk) = input.message().await? {
            if first {
                nodes = chunk.nodes.clone();
                first = false;
            }
            largest = largest.max(chunk.data.len());
            bytes.extend_from_slice(&chunk.data);
        }
        let digest = format!("sha256:{:016x}", fnv(&bytes));
        self.seen
            .lock()
            .unwrap()
            .imports
            .push((nodes, bytes, largest));
        if self.broken {
            return Err(Status::internal("unpacking the archive failed: not a tar"));
        }
        Ok(Response::new(ImportImageResponse {
            images: vec![ImageImported {
                node: self.node.clone(),
                names: vec!["example.test/busybox:1".into()],
                digest,
            }],
        }))
    }

    async fn pod_usage(
        &self,
        _: Request<jotasu_api::grpc::v1::PodUsageRequest>,
    ) -> Result<Response<jotasu_api::grpc::v1::PodUsageList>, Status> {
        Ok(Response::new(jotasu_api::grpc::v1::PodUsageList::default()))
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A fake agent serving on a free port of 127.0.0.1 until dropped (then
/// it stops accepting and closes its connections).
struct Served {
    agent: FakeAgent,
    address: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Node `node`'s credentials, signed by the control plane's CA as a join
/// would have them signed.
fn node_credentials(data_dir: &std::path::Path, node: &str) -> Arc<Credentials> {
    let signer = Signer::load(&PkiPaths::new(data_dir)).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let issued = signer
        .sign_node_csr(node, &csr, Duration::from_secs(3600))
        .unwrap();
    Arc::new(
        Credentials::from_pem(signer.ca_pem(), &issued.cert_pem, &key.serialize_pem()).unwrap(),
    )
}

/// A fake agent of `node` on 127.0.0.1, served as the real agent serves
/// its port (TLS with the node's certificate, only the control plane let in).
async fn serve(data_dir: &std::path::Path, node: &str, broken: bool) -> Served {
    let agent = FakeAgent {
        node: node.into(),
        broken,
        seen: Arc::default(),
        follow_dropped: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let port = NodePort::Tls(node_credentials(data_dir, node));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let service = agent.clone();
    tokio::spawn(async move {
        let _ = stopped.await;
        let _ = stop_tx.send(true);
    });
    tokio::spawn(async move {
        let _ = serve_node(listener, service, port, stop_rx).await;
    });
    Served {
        agent,
        address,
        stop: Some(stop),
    }
}

fn obj(v: serde_json::Value) -> Object {
    serde_json::from_value(v).unwrap()
}

/// Registers a Node with an agent endpoint (`port`) and a Ready condition.
async fn register(c: &jotasu_api::client::Client, name: &str, port: Option<u16>, ready: bool) {
    c.apply(
        &[obj(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}),
        )],
        false,
    )
    .await
    .unwrap();
    let r = ObjectRef {
        kind: Kind::Node,
        namespace: None,
        name: name.into(),
    };
    let Object::Node(mut node) = c.get(&r).await.unwrap() else {
        panic!("not a node")
    };
    let mut status = json!({
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "nodeInfo": {"kernelVersion": "6.18.0-test", "containerRuntimeVersion": "containerd://1.6.20"}
    });
    if let Some(port) = port {
        status["daemonEndpoints"] = json!({"kubeletEndpoint": {"Port": port}});
    }
    node.status = Some(serde_json::from_value(status).unwrap());
    c.update_status(&Object::Node(node)).await.unwrap();
}

fn pod(name: &str, node: Option<&str>, containers: &[&str]) -> Object {
    let containers: Vec<_> = containers
        .iter()
        .map(|c| json!({"name": c, "image": "busybox"}))
        .collect();
    let mut spec = json!({"containers": containers});
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    obj(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}))
}

/// `jotactl --server URL args…` off the async threads (the fake agents run there).
async fn ctl(url: &str, args: &[&str]) -> Run {
    ctl_with_stdin(url, args, None).await
}

async fn ctl_with_stdin(url: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let url = url.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let ctl = Ctl::new();
        match stdin {
            Some(text) => ctl.pipe(&url, &args, &text),
            None => ctl.at(&url, &args),
        }
    })
    .await
    .unwrap()
}

struct Cluster {
    cp: ControlPlane,
    n1: Served,
    n2: Served,
    broken: Served,
}

async fn cluster() -> Cluster {
    let mut options = Options::default();
    options.args.push("--no-controllers".into());
    let cp = ControlPlane::start(options).await.unwrap();
    let c = cp.client().await.unwrap();
    let n1 = serve(cp.data_dir(), "n1", false).await;
    let n2 = serve(cp.data_dir(), "n2", false).await;
    let broken = serve(cp.data_dir(), "broken", true).await;
    register(&c, "n1", Some(n1.address.port()), true).await;
    register(&c, "n2", Some(n2.address.port()), true).await;
    register(&c, "broken", Some(broken.address.port()), false).await;
    register(&c, "silent", None, false).await;
    c.apply(
        &[
            pod("web", Some("n1"), &["app"]),
            pod("two", Some("n2"), &["a", "b"]),
            pod("pending", None, &["app"]),
            pod("on-broken", Some("broken"), &["app"]),
            pod("on-silent", Some("silent"), &["app"]),
        ],
        false,
    )
    .await
    .unwrap();
    Cluster { cp, n1, n2, broken }
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_through_the_control_plane() {
    let k = cluster().await;
    let url = k.cp.url();
    assert_eq!(ctl(&url, &["logs", "web"]).await.ok(), LOG);
    assert_eq!(
        ctl(&url, &["logs", "pod/web", "--tail", "1"]).await.ok(),
        "line 2\n"
    );
    assert_eq!(ctl(&url, &["logs", "two", "-c", "b"]).await.ok(), LOG);
    {
        let seen = k.n1.agent.seen.lock().unwrap();
        let r = &seen.logs[0];
        assert_eq!(
            (
                r.namespace.as_str(),
                r.name.as_str(),
                r.container.as_str(),
                r.follow
            ),
            ("default", "web", "app", false),
            "the control plane names the pod's only container"
        );
        assert_eq!(seen.logs[1].tail_lines, Some(1));
        assert_eq!(k.n2.agent.seen.lock().unwrap().logs[0].container, "b");
    }
    // kubectl's errors.
    for (args, want) in [
        (
            vec!["logs", "two"],
            "Error from server (BadRequest): a container name must be specified for pod two, choose one of: [a b]\n",
        ),
        (
            vec!["logs", "web", "-c", "nope"],
            "Error from server (BadRequest): container nope is not valid for pod web\n",
        ),
        (
            vec!["logs", "pending"],
            "Error from server (BadRequest): pod pending does not have a host assigned\n",
        ),
        (
            vec!["logs", "nope"],
            "Error from server (NotFound): pods \"nope\" not found\n",
        ),
        (
            vec!["logs", "on-broken"],
            "Error from server (NotFound): container \"app\" is not running\n",
        ),
    ] {
        assert_eq!(ctl(&url, &args).await.failed(), want, "{args:?}");
    }
    let e = ctl(&url, &["logs", "on-silent"]).await;
    assert!(
        e.failed().contains("node silent has no agent endpoint"),
        "{e:#?}"
    );
    // An agent that is gone (once its server has closed its connections).
    let gone = k.broken.address;
    drop(k.broken);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let e = ctl(&url, &["logs", "on-broken"]).await;
        let unreachable = format!(
            "Error from server (ServiceUnavailable): cannot reach the agent of node broken at {gone}: "
        );
        if e.failed().starts_with(&unreachable) {
            break;
        }
        assert!(Instant::now() < deadline, "{e:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_follow_until_the_caller_leaves() {
    let k = cluster().await;
    let bin = jotasu_tests::lab::workspace_bin("jotactl", "JOTACTL").unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin)
        .args(["--server", &k.cp.url(), "logs", "-f", "web"])
        .env_remove("JOTASU_SERVER")
        .env_remove("JOTASU_CONFIG")
        .env("HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .take(5)
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(lines, ["line 1", "line 2", "tick 0", "tick 1", "tick 2"]);
    assert!(k.n1.agent.seen.lock().unwrap().logs[0].follow);
    assert!(!k.n1.agent.follow_dropped.load(Ordering::SeqCst));
    // The caller goes away: the agent's stream is dropped.
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !k.n1.agent.follow_dropped.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "the agent's stream outlived its caller"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_streams_both_ways_and_keeps_the_exit_code() {
    let k = cluster().await;
    let url = k.cp.url();
    let run = ctl(&url, &["exec", "web", "--", "echo", "hello", "world"]).await;
    assert_eq!(run.ok(), "hello world\n");
    assert_eq!(
        k.n1.agent.seen.lock().unwrap().execs[0],
        (
            "default".to_owned(),
            "app".to_owned(),
            vec!["echo".to_owned(), "hello".into(), "world".into()]
        )
    );
    // The command's exit code becomes jotactl's, with kubectl's line.
    let run = ctl(&url, &["exec", "web", "--", "fail"]).await;
    assert_eq!(run.code, 3, "{run:#?}");
    assert_eq!(run.stderr, "oops\ncommand terminated with exit code 3\n");
    let run = ctl(&url, &["exec", "two", "--", "nosuch"]).await;
    assert_eq!(run.code, 127, "{run:#?}");
    assert_eq!(
        k.n2.agent.seen.lock().unwrap().execs[0].1,
        "a",
        "exec defaults to the first container"
    );
    // stdin with -i.
    let input = "some input\nand more\n";
    let run = ctl_with_stdin(&url, &["exec", "-i", "web", "--", "cat"], Some(input)).await;
    assert_eq!(run.ok(), input);
    // Without -i, stdin is closed at once.
    let run = ctl(&url, &["exec", "web", "--", "cat"]).await;
    assert_eq!(run.ok(), "");
    let run = ctl(&url, &["exec", "pending", "--", "echo"]).await;
    assert_eq!(
        run.failed(),
        "Error from server (BadRequest): pod pending does not have a host assigned\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn image_import_reaches_every_ready_node() {
    let k = cluster().await;
    let url = k.cp.url();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("busybox.tar");
    // 2.5 MiB: three chunks.
    let data: Vec<u8> = (0..(5u32 << 19)).map(|i| (i % 251) as u8).collect();
    std::fs::write(&archive, &data).unwrap();
    let path = archive.to_str().unwrap();
    let digest = format!("sha256:{:016x}", fnv(&data));

    let run = ctl(&url, &["image", "import", path]).await;
    assert_eq!(
        run.ok(),
        format!(
            "imported example.test/busybox:1 ({digest}) on n1\nimported example.test/busybox:1 ({digest}) on n2\n"
        ),
        "every Ready node, not the NotReady ones"
    );
    for (served, node) in [(&k.n1, "n1"), (&k.n2, "n2")] {
        let seen = served.agent.seen.lock().unwrap();
        let (nodes, bytes, largest) = &seen.imports[0];
        assert_eq!(nodes, &[node.to_owned()]);
        assert!(bytes == &data, "{node} received the archive as it was");
        assert!(*largest <= 1 << 20, "chunks of at most 1 MiB: {largest}");
    }
    assert!(k.broken.agent.seen.lock().unwrap().imports.is_empty());

    // Named nodes: a failing one fails the call, naming it.
    let run = ctl(&url, &["image", "import", path, "--node", "n1,broken"]).await;
    assert_eq!(
        run.failed(),
        "Error from server (InternalError): importing the image onto node broken failed: unpacking the archive failed: not a tar (imported onto n1)\n"
    );
    assert_eq!(
        k.n1.agent.seen.lock().unwrap().imports.len(),
        2,
        "n1 was tried too"
    );
    let run = ctl(&url, &["image", "import", path, "--node", "silent"]).await;
    assert!(
        run.failed().contains("node silent has no agent endpoint"),
        "{run:#?}"
    );
    let run = ctl(&url, &["image", "import", path, "--node", "nx"]).await;
    assert_eq!(
        run.failed(),
        "Error from server (NotFound): nodes \"nx\" not found\n"
    );
    let run = ctl(&url, &["image", "import", "/nonexistent/x.tar"]).await;
    assert!(
        run.failed()
            .starts_with("error: cannot read /nonexistent/x.tar:"),
        "{run:#?}"
    );
    // Nothing is left in the control plane's scratch dir.
    let tmp = k.cp.data_dir().join("tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wide_tables_show_nodes_and_their_agents() {
    let k = cluster().await;
    let url = k.cp.url();
    let pods = ctl(&url, &["get", "pods", "-o", "wide"]).await;
    let header = pods.ok().lines().next().unwrap().to_owned();
    assert!(
        header.contains("IP")
            && header.contains("NODE")
            && header.ends_with("NOMINATED NODE   READINESS GATES"),
        "{header}"
    );
    let web = pods.stdout.lines().find(|l| l.starts_with("web ")).unwrap();
    assert!(web.contains(" n1 "), "{web}");
    let nodes = ctl(&url, &["get", "nodes", "-o", "wide"]).await;
    let n1 = nodes.ok().lines().find(|l| l.starts_with("n1 ")).unwrap();
    for cell in ["127.0.0.1", "6.18.0-test", "containerd://1.6.20"] {
        assert!(n1.contains(cell), "{n1}");
    }
}
