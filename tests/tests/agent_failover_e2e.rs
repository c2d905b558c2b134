//! Agents that fail over (issue 21, point 4). A one-node cluster whose node
//! joined its first control plane is moved to three control planes on one
//! etcd (the same cluster CA; etcd and all of them in the control plane's
//! namespace, on the underlay address, ports 6444-6446; only the first runs
//! the controllers): the first control plane is killed and the agent is
//! restarted with `--server` naming the dead one first, then two without
//! controllers, then the one with them.
//!
//! - one of the three is killed while the agent uses it: heartbeats and the
//!   pod watch go on through the next (the node stays Ready, a new pod
//!   scheduled to it starts, the running one is not restarted);
//! - every control plane is down and the agent restarts: it stays up, its
//!   containers keep running (same processes) and serve through the
//!   Service's cluster IP; when the control planes come back on the same
//!   etcd and data dirs the node is Ready again and no pod restarted.
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
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
    /// The agent's flag: the dead first control plane, C, D, B.
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
            [url(6445), url(6446), url(6444)].join(","),
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

    /// An admin client of B on its socket.
    async fn client(&self) -> Client {
        self.cps[0].client().await.expect("B answers")
    }

    async fn node_ready(&self) -> bool {
        let Ok(client) = self.cps[0].client().await else {
            return false;
        };
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
        eventually(
            "the node Ready on the etcd control planes",
            SETTLE,
            || async { self.node_ready().await.then_some(()) },
        )
        .await;
    }

    fn apply(&self, yaml: &str) {
        let jotactl = jotasu_tests::lab::workspace_bin("jotactl", "JOTACTL").expect("jotactl");
        let out = Command::new(jotactl)
            .args(["--server", &self.cps[0].url(), "apply", "-f", "-"])
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
                Ok(Object::Pod(p)) if ready(&p) => Some(*p),
                _ => None,
            }
        })
        .await
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

    // The agent dialled C (6445) first: kill it under the agent.
    s.cps[1].kill9().expect("C killed");
    let killed = Instant::now();
    s.apply(&pinned_pod("after", &node, "app: after", "sleep 3600", ""));
    s.ready_pod("after").await;
    assert!(s.node_ready().await, "the node stays Ready");
    let log = s.log();
    assert!(
        log.contains("moving to the next"),
        "the agent did not fail over:\n{log}"
    );
    let again = s.ready_pod("before").await;
    assert_eq!(restarts(&again), 0);
    assert_eq!(started_at(&again), started_at(&before));
    eprintln!(
        "a pod scheduled after the kill ran {:?} after it",
        killed.elapsed()
    );

    // The node may read the published control planes, never write them.
    let pki = PathBuf::from(s.cluster.nodes()[0].state_dir()).join("pki");
    let files = jotasu_api::client::TlsFiles {
        certificate_authority: Some(pki.join("ca.crt")),
        client_certificate: Some(pki.join("node.crt")),
        client_key: Some(pki.join("node.key")),
    };
    let url = jotasu_api::client::ServerUrl::parse_list(&s.server_flag[1]).expect("URLs");
    let as_node = Client::connect_to_any(&url, &files)
        .await
        .expect("the node's client");
    let published = "apiVersion: v1\nkind: Endpoints\nmetadata: {name: kubernetes, namespace: default}\nsubsets:\n- addresses: [{ip: 192.168.77.250}]\n  ports: [{name: https, port: 6443}]\n";
    let object: Object = serde_yaml_ng::from_str(published).expect("a manifest");
    let e = as_node
        .apply(std::slice::from_ref(&object), false)
        .await
        .expect_err("a node must not publish control planes");
    assert_eq!(
        e.api().map(jotasu_api::client::ApiError::code),
        Some(tonic::Code::PermissionDenied),
        "{e}"
    );
    s.client()
        .await
        .apply(&[object], false)
        .await
        .expect("the admin publishes");
    as_node
        .get(&r(Kind::Endpoints, "kubernetes"))
        .await
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
    s.wait_node_ready().await;
    let again = s.ready_pod("web").await;
    assert_eq!(restarts(&again), 0);
    assert_eq!(started_at(&again), started_at(&web));
    assert_eq!(s.tasks().await, tasks, "a container was restarted");
    assert_eq!(hello(&client_pod, vip).as_deref(), Some("web"));
}
