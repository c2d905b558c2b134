//! Agents that fail over (issue 21, point 4). A one-node cluster whose node
//! joined its first control plane is moved to three control planes on one
//! etcd (the same cluster CA; etcd and all of them in the control plane's
//! namespace, on the underlay address, ports 6444-6446; only the first, B,
//! runs the controllers): the first control plane is killed and the agent
//! is restarted with `--server` naming the dead one first, then B, C, D.
//!
//! Heartbeats are held in memory by the control plane that receives them
//! until node Leases are stored: the node lifecycle controller (on B) sees
//! only the heartbeats sent to B. So:
//!
//! - B, the one the agent uses, is killed (the controllers with it): the
//!   agent moves on to C; its heartbeats go on without a failure, its pod
//!   watch too (a pod bound to the node through C — `nodeName`, as no
//!   scheduler runs now — starts and reports Ready), the running pod is
//!   not restarted and the node stays Ready;
//! - every control plane is down and the agent restarts: it stays up, its
//!   containers keep running (same processes) and serve through the
//!   Service's cluster IP; when the control planes come back on the same
//!   etcd and data dirs the node is Ready again and no pod restarted.
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jotasu_agent::containerd::{Containerd, TaskState};
use jotasu_api::client::Client;
use jotasu_api::{ConditionStatus, Kind, Object, Pod};
use jotasu_tests::cluster::{ClusterOptions, LocalCluster};
use jotasu_tests::controlplane::{ControlPlane, Options};
use jotasu_tests::e2e::{SETTLE, netns_of, pinned_pod, r, ready, restarts};
use jotasu_tests::etcd::ETCD_BIN;
use jotasu_tests::netns::{enter, run_in};
use jotasu_tests::privilege::require_root;
use jotasu_tests::process::{ProcessRecord, die_with_spawner};
use jotasu_tests::wait::eventually;

/// The clusters of these tests are big for a 2-core machine: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// etcd inside the control plane's namespace (on its loopback), killed by
/// its PID on drop.
struct NetnsEtcd {
    child: Child,
    _dir: tempfile::TempDir,
}

const ETCD_CLIENT: &str = "http://127.0.0.1:2379";

impl NetnsEtcd {
    fn start(ns: &str, parent: &Path) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("etcd-")
            .tempdir_in(parent)
            .expect("etcd's dir");
        let peer = "http://127.0.0.1:2380";
        let mut cmd = enter(ns, ETCD_BIN);
        cmd.args(["--name", "failover", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", ETCD_CLIENT])
            .args(["--advertise-client-urls", ETCD_CLIENT])
            .args(["--listen-peer-urls", peer])
            .args(["--initial-advertise-peer-urls", peer])
            .args(["--initial-cluster", &format!("failover={peer}")])
            .args(["--initial-cluster-state", "new", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("etcd.log")).expect("etcd.log"),
            ));
        die_with_spawner(&mut cmd);
        let mut me = Self {
            child: cmd.spawn().expect("etcd spawns"),
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = me.child.try_wait() {
                panic!("etcd exited: {status}");
            }
            let healthy = run_in(ns, || {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 2379));
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
                s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
                s.write_all(b"GET /health HTTP/1.0\r\n\r\n").ok()?;
                let mut body = String::new();
                s.read_to_string(&mut body).ok()?;
                Some(body.contains("\"health\":\"true\""))
            })
            .expect("entering the namespace");
            if healthy == Some(true) {
                return me;
            }
            assert!(Instant::now() < deadline, "etcd not healthy within 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for NetnsEtcd {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The cluster, moved onto three control planes on etcd.
struct Setup {
    /// B (controllers), C, D on ports 6444, 6445, 6446. Dropped first.
    cps: Vec<ControlPlane>,
    _etcd: NetnsEtcd,
    cluster: LocalCluster,
    /// The agent's flag: B, C, D (after the dead first control plane).
    server_flag: Vec<String>,
}

impl Setup {
    async fn start(test: &str) -> Option<Self> {
        if !require_root(test) {
            return None;
        }
        if !Path::new(ETCD_BIN).exists() {
            let msg =
                format!("!!! {test}: {ETCD_BIN} is missing (apt-get install etcd-server) !!!");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
            eprintln!("{msg}");
            return None;
        }
        let mut cluster = LocalCluster::start(ClusterOptions {
            quiet: true,
            ..ClusterOptions::default()
        })
        .await
        .expect("the cluster starts");
        cluster.import_demo_image().expect("the demo image imports");
        let ns = cluster.plan().control_plane_netns();
        let etcd = NetnsEtcd::start(&ns, cluster.dir());
        let ip = cluster.plan().control_plane_ip();
        let first_dir = cluster.control_plane().data_dir().to_owned();
        let mut cps = Vec::new();
        for (i, port) in [6444u16, 6445, 6446].into_iter().enumerate() {
            let dir = cluster.dir().join(format!("cp-{port}"));
            share_ca(&first_dir, &dir);
            let mut args: Vec<String> = [
                "--node-grace-period",
                "4",
                "--pod-eviction-timeout",
                "10",
                "--service-cidr",
                "10.96.0.0/16",
                "--tls-san",
            ]
            .map(String::from)
            .to_vec();
            args.push(ip.to_string());
            args.extend(["--listen".into(), format!("{ip}:{port}")]);
            if i > 0 {
                args.push("--no-controllers".into());
            }
            cps.push(
                ControlPlane::start(Options {
                    args,
                    netns: Some(ns.clone()),
                    etcd_endpoints: vec![ETCD_CLIENT.into()],
                    data_dir: Some(dir),
                    ..Options::default()
                })
                .await
                .expect("a control plane on etcd starts"),
            );
        }
        // The node's first control plane (its own store) goes for good.
        cluster.control_plane_mut().kill9().expect("killed");
        let url = |port: u16| format!("https://{ip}:{port}");
        let server_flag = vec![
            "--server".to_owned(),
            [url(6444), url(6445), url(6446)].join(","),
        ];
        let mut me = Self {
            cps,
            _etcd: etcd,
            cluster,
            server_flag,
        };
        me.restart_agent();
        me.wait_node_ready().await;
        Some(me)
    }

    /// Restarts the agent with the usual `--server` (the dead first control
    /// plane) and [`Self::server_flag`] after it.
    fn restart_agent(&mut self) {
        let extra = self.server_flag.clone();
        self.cluster
            .node_mut(0)
            .restart_agent_with(&extra)
            .expect("the agent starts");
    }

    fn node(&self) -> String {
        self.cluster.nodes()[0].name().to_owned()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.cluster.dir().join(format!("{}.log", self.node())))
            .unwrap_or_default()
    }

    /// An admin client of the first running control plane, on its socket.
    async fn client(&self) -> Client {
        let cp = self
            .cps
            .iter()
            .find(|c| c.pid().is_some())
            .expect("a control plane runs");
        cp.client().await.expect("it answers")
    }

    async fn node_ready(&self) -> bool {
        let client = self.client().await;
        match client.get(&r(Kind::Node, &self.node())).await {
            Ok(Object::Node(n)) => n.status.is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
            }),
            _ => false,
        }
    }

    async fn wait_node_ready(&self) {
        let deadline = Instant::now() + SETTLE;
        while !self.node_ready().await {
            assert!(
                Instant::now() < deadline,
                "the node is not Ready on the etcd control planes; the agent's log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The socket URL of the first running control plane.
    fn live_url(&self) -> String {
        self.cps
            .iter()
            .find(|c| c.pid().is_some())
            .expect("a control plane runs")
            .url()
    }

    fn apply(&self, yaml: &str) {
        let jotactl = jotasu_tests::lab::workspace_bin("jotactl", "JOTACTL").expect("jotactl");
        let out = Command::new(jotactl)
            .args(["--server", &self.live_url(), "apply", "-f", "-"])
            .env_remove("JOTASU_SERVER")
            .env_remove("JOTASU_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().expect("stdin").write_all(yaml.as_bytes())?;
                c.wait_with_output()
            })
            .expect("jotactl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    async fn ready_pod(&self, name: &str) -> Pod {
        let client = self.client().await;
        eventually(&format!("pod {name} Ready"), SETTLE, || async {
            match client.get(&r(Kind::Pod, name)).await {
                Ok(Object::Pod(p)) if ready(&p) => Some(p),
                _ => None,
            }
        })
        .await
    }

    /// With the node's own certificate, from inside the node's namespace
    /// (the underlay is reachable only there): applies `object`, or without
    /// one reads the Endpoints `default/kubernetes`.
    fn as_node(&self, object: Option<Object>) -> Result<(), jotasu_api::client::ClientError> {
        let node = &self.cluster.nodes()[0];
        let pki = node.state_dir().join("pki");
        let files = jotasu_api::client::TlsFiles {
            certificate_authority: Some(pki.join("ca.crt")),
            client_certificate: Some(pki.join("node.crt")),
            client_key: Some(pki.join("node.key")),
        };
        let urls = jotasu_api::client::ServerUrl::parse_list(&self.server_flag[1]).expect("URLs");
        run_in(node.netns().name(), move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let client = Client::connect_to_any(&urls, &files).await?;
                match object {
                    Some(o) => client.apply(&[o], false).await.map(drop),
                    None => client
                        .get(&r(Kind::Endpoints, "kubernetes"))
                        .await
                        .map(drop),
                }
            })
        })
        .expect("entering the node's namespace")
    }

    /// The node's containers and their processes.
    async fn tasks(&self) -> Vec<(String, u32)> {
        let containerd = Containerd::connect(self.cluster.containerd().socket(), &self.node())
            .await
            .expect("containerd answers");
        let mut out = Vec::new();
        for c in containerd.list().await.expect("containers") {
            if let Ok(Some(TaskState::Running { pid })) = containerd.state(&c.id).await {
                out.push((c.id, pid));
            }
        }
        out.sort();
        out
    }
}

/// Copies `from`'s cluster CA into the data dir `to`.
fn share_ca(from: &Path, to: &Path) {
    let pki = to.join("pki");
    std::fs::create_dir_all(&pki).expect("pki dir");
    for file in ["ca.crt", "ca.key"] {
        std::fs::copy(from.join("pki").join(file), pki.join(file)).expect("copy CA");
    }
}

fn started_at(p: &Pod) -> Option<String> {
    let s = p.status.as_ref()?.container_statuses.first()?;
    Some(format!(
        "{:?}",
        s.state.as_ref()?.running.as_ref()?.started_at
    ))
}

const ECHO: &str = "exec nc -ll -p 7000 -e /bin/sh -c 'hostname; exec cat'";

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  selector: {app: echo}
  ports:
  - {name: echo, port: 7000, targetPort: 7000}
"#;

/// The first line a connection to `vip`:7000 from `client`'s namespace reads.
fn hello(client: &Pod, vip: Ipv4Addr) -> Option<String> {
    let ns = netns_of(client)?;
    run_in(&ns, || {
        let addr = SocketAddr::from((vip, 7000));
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).trim().to_owned())
    })
    .ok()
    .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_keeps_working_when_one_of_three_control_planes_dies() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut s) =
        Setup::start("an_agent_keeps_working_when_one_of_three_control_planes_dies").await
    else {
        return;
    };
    let node = s.node();
    s.apply(&pinned_pod(
        "before",
        &node,
        "app: before",
        "sleep 3600",
        "",
    ));
    let before = s.ready_pod("before").await;

    // The agent uses B: kill it under the agent.
    s.cps[0].kill9().expect("B killed");
    let killed = Instant::now();
    // Bound to the node directly: the scheduler died with B.
    s.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: after, labels: {{app: after}}}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: jotasu.local/busybox:latest\n    command: [sleep, \"3600\"]\n"
    ));
    s.ready_pod("after").await;
    eprintln!(
        "a pod bound after the kill ran {:?} after it",
        killed.elapsed()
    );
    let log = s.log();
    let failover = log
        .find("moving to the next")
        .unwrap_or_else(|| panic!("the agent did not fail over:\n{log}"));
    assert!(
        !log[failover..].contains("heartbeat failed"),
        "a heartbeat failed after the failover:\n{log}"
    );
    // No controller runs now to change it: the condition B last wrote.
    assert!(s.node_ready().await, "the node stays Ready");
    let again = s.ready_pod("before").await;
    assert_eq!(restarts(&again), 0);
    assert_eq!(started_at(&again), started_at(&before));

    // The node may read the published control planes, never write them.
    let published = "apiVersion: v1\nkind: Endpoints\nmetadata: {name: kubernetes, namespace: default}\nsubsets:\n- addresses: [{ip: 192.168.77.250}]\n  ports: [{name: https, port: 6443}]\n";
    let object: Object = serde_yaml_ng::from_str(published).expect("a manifest");
    let e = s
        .as_node(Some(object.clone()))
        .expect_err("a node must not publish control planes");
    assert_eq!(
        e.api().map(jotasu_api::client::ApiError::code),
        Some(tonic::Code::PermissionDenied),
        "{e}"
    );
    let service: Object = serde_yaml_ng::from_str(
        "apiVersion: v1\nkind: Service\nmetadata: {name: kubernetes, namespace: default}\nspec:\n  ports: [{name: https, port: 443, targetPort: 6443}]\n",
    )
    .expect("a manifest");
    s.client()
        .await
        .apply(&[service, object], false)
        .await
        .expect("the admin publishes");
    s.as_node(None)
        .expect("a node reads the published control planes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_started_while_every_control_plane_is_down_runs_its_pods_on() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(mut s) =
        Setup::start("an_agent_started_while_every_control_plane_is_down_runs_its_pods_on").await
    else {
        return;
    };
    let node = s.node();
    let mut yaml = pinned_pod("web", &node, "app: echo", ECHO, "");
    yaml.push_str(&pinned_pod(
        "client",
        &node,
        "app: client",
        "sleep 3600",
        "",
    ));
    yaml.push_str(SERVICE);
    s.apply(&yaml);
    let web = s.ready_pod("web").await;
    let client_pod = s.ready_pod("client").await;
    let vip: Ipv4Addr = match s.client().await.get(&r(Kind::Service, "echo")).await {
        Ok(Object::Service(svc)) => svc
            .spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok())
            .expect("a cluster IP"),
        other => panic!("service echo: {other:?}"),
    };
    eventually("the echo service answering", SETTLE, || async {
        (hello(&client_pod, vip).as_deref() == Some("web")).then_some(())
    })
    .await;
    let tasks = s.tasks().await;
    assert!(tasks.len() >= 2, "{tasks:?}");

    for cp in &mut s.cps {
        cp.kill9().expect("killed");
    }
    s.restart_agent();
    // The agent keeps trying, and touches nothing.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let pid = s.cluster.nodes()[0]
        .agent_pid()
        .expect("the agent was started");
    assert!(
        ProcessRecord::of(pid).is_some(),
        "the agent exited without a control plane:\n{}",
        s.log()
    );
    assert!(
        s.log().contains("NO CONTROL PLANE ANSWERS"),
        "no loud log:\n{}",
        s.log()
    );
    assert_eq!(
        s.tasks().await,
        tasks,
        "containers changed with no control plane"
    );
    assert_eq!(hello(&client_pod, vip).as_deref(), Some("web"));

    // A control plane comes back on the same etcd and data dir.
    s.cps[0].restart().await.expect("B starts again");
    // The Node's condition is the one B wrote before it died: the agent's
    // return shows in its log and in a new pod it runs.
    let deadline = Instant::now() + SETTLE;
    while !s.log().contains("a control plane answers again") {
        assert!(
            Instant::now() < deadline,
            "the agent did not resync:\n{}",
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    s.wait_node_ready().await;
    s.apply(&pinned_pod("later", &node, "app: later", "sleep 3600", ""));
    s.ready_pod("later").await;
    let again = s.ready_pod("web").await;
    assert_eq!(restarts(&again), 0);
    assert_eq!(started_at(&again), started_at(&web));
    let now = s.tasks().await;
    assert!(
        tasks.iter().all(|t| now.contains(t)),
        "a container was restarted: {tasks:?} then {now:?}"
    );
    // The node was NotReady to B for a moment (its endpoints with it).
    eventually("the echo service answering again", SETTLE, || async {
        (hello(&client_pod, vip).as_deref() == Some("web")).then_some(())
    })
    .await;
}
