//! [`Harness`]: a [`LocalCluster`] with its client and jotactl, and the
//! checks end-to-end tests make on workloads (pods Ready, endpoints, VIPs,
//! requests through a client pod).
use std::collections::BTreeSet;
use std::time::Duration;

use jotasu_agent::containerd::Containerd;
use jotasu_api::client::Client;
use jotasu_api::kinds::pod_status::PodPhase;
use jotasu_api::{Endpoints, Kind, Object, ObjectRef, Pod, Service};

use crate::cluster::{ClusterOptions, LocalCluster};
use crate::jotactl::Ctl;
use crate::wait::eventually;

/// A busybox pod `client` that sleeps: where tests run their clients.
pub const CLIENT_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: sh
    image: jotasu.local/busybox:latest
    command: ["sleep", "3600"]
"#;

/// A busybox pod pinned to node `node` (labels `labels`, a YAML flow-map
/// body such as `app: web`) running the shell line `command`; `container`
/// adds lines to its container (a probe, ports), each starting with a
/// newline and four spaces of indentation. Ends with a document separator.
pub fn pinned_pod(name: &str, node: &str, labels: &str, command: &str, container: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{{labels}}}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  containers:
  - name: main
    image: jotasu.local/busybox:latest
    command: ["sh", "-c", {command:?}]{container}
---
"#
    )
}

/// A generous bound for anything to settle on a loaded 2-core CI machine.
pub const SETTLE: Duration = Duration::from_secs(90);

/// A reference to `kind`/`name` (in "default" if namespaced).
pub fn r(kind: Kind, name: &str) -> ObjectRef {
    ObjectRef {
        kind,
        namespace: kind.namespaced().then(|| "default".to_owned()),
        name: name.to_owned(),
    }
}

/// A running cluster and the ways a test talks to it.
#[derive(Debug)]
pub struct Harness {
    /// The cluster.
    pub cluster: LocalCluster,
    /// A client of its control plane.
    pub client: Client,
    /// jotactl.
    pub ctl: Ctl,
    /// The server URL jotactl uses.
    pub server: String,
}

impl Harness {
    /// Starts a cluster built as `options` says, with the demo image imported.
    pub async fn start(options: ClusterOptions) -> Self {
        let mut cluster = LocalCluster::start(options)
            .await
            .expect("the cluster starts");
        cluster.import_demo_image().expect("the demo image imports");
        let client = cluster.client().await.expect("a client");
        let server = cluster.server();
        Self {
            cluster,
            client,
            ctl: Ctl::new(),
            server,
        }
    }

    /// Applies [`CLIENT_POD`] and waits until it runs.
    pub async fn client_pod(&self) -> Pod {
        self.apply(CLIENT_POD);
        eventually("the client pod running", SETTLE, || async {
            self.pod("client").await.filter(ready)
        })
        .await
    }

    /// `jotactl ARGS` that must succeed; its stdout.
    pub fn ctl(&self, args: &[&str]) -> String {
        let run = self.ctl.at(&self.server, args);
        assert_eq!(run.code, 0, "jotactl {args:?} failed: {}", run.stderr);
        run.stdout
    }

    /// `jotactl apply -f -` that must succeed.
    pub fn apply(&self, yaml: &str) {
        let run = self.ctl.pipe(&self.server, &["apply", "-f", "-"], yaml);
        assert_eq!(run.code, 0, "apply failed: {}", run.stderr);
    }

    /// Pods matching `selector` in the default namespace.
    pub async fn pods(&self, selector: &str) -> Vec<Pod> {
        pods_of(&self.client, selector).await
    }

    /// The pod `name`, if it exists.
    pub async fn pod(&self, name: &str) -> Option<Pod> {
        match self.client.get(&r(Kind::Pod, name)).await {
            Ok(Object::Pod(p)) => Some(p),
            _ => None,
        }
    }

    /// Waits until exactly `n` live pods match and all are Running and Ready.
    pub async fn ready_pods(&self, selector: &str, n: usize) -> Vec<Pod> {
        eventually(&format!("{n} ready pods {selector}"), SETTLE, || async {
            let pods = self.pods(selector).await;
            let all = pods.len();
            let live: Vec<Pod> = pods
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            (live.len() == n && all == n && live.iter().all(ready)).then_some(live)
        })
        .await
    }

    /// The ready addresses of Endpoints `service`.
    pub async fn endpoint_ips(&self, service: &str) -> BTreeSet<String> {
        match self.client.get(&r(Kind::Endpoints, service)).await {
            Ok(Object::Endpoints(e)) => ips(&e),
            _ => BTreeSet::new(),
        }
    }

    /// The node port of port `index` of Service `service` (None: the
    /// Service is missing or has none).
    pub async fn node_port(&self, service: &str, index: usize) -> Option<u16> {
        let Ok(Object::Service(s)) = self.client.get(&r(Kind::Service, service)).await else {
            return None;
        };
        let s: Service = s;
        u16::try_from(s.spec.ports.get(index)?.node_port?).ok()
    }

    /// The cluster IP of Service `service`.
    pub async fn vip(&self, service: &str) -> String {
        let Ok(Object::Service(s)) = self.client.get(&r(Kind::Service, service)).await else {
            panic!("service {service} missing");
        };
        let s: Service = s;
        s.spec.cluster_ip.expect("a cluster IP")
    }

    /// `n` HTTP GETs from the pod `client` to `vip`: the answers' last lines
    /// (busybox-static's wget crashes on static glibc; nc speaks HTTP/1.0).
    pub fn get_through(&self, vip: &str, n: usize) -> Option<Vec<String>> {
        let script = format!(
            "for i in $(seq {n}); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {vip} 80 | tail -n 1; done"
        );
        let run = self
            .ctl
            .at(&self.server, &["exec", "client", "--", "sh", "-c", &script]);
        let lines: Vec<String> = run.stdout.lines().map(str::to_owned).collect();
        (run.code == 0 && lines.len() == n).then_some(lines)
    }

    /// Node `i`'s agent's `/metrics` page.
    pub fn metrics(&self, i: usize) -> String {
        agent_metrics(&self.cluster.nodes()[i]).expect("the metrics endpoint answers")
    }

    /// The nodes' names, in order.
    pub fn node_names(&self) -> Vec<String> {
        self.cluster
            .nodes()
            .iter()
            .map(|n| n.name().to_owned())
            .collect()
    }

    /// containerd, in the first node's namespace.
    pub async fn containerd(&self) -> Containerd {
        let node = &self.cluster.nodes()[0];
        Containerd::connect(self.cluster.containerd().socket(), node.name())
            .await
            .expect("containerd answers")
    }
}

/// Pods matching `selector` in the default namespace, listed by `client`.
pub async fn pods_of(client: &Client, selector: &str) -> Vec<Pod> {
    client
        .list(Kind::Pod, Some("default"), selector)
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter_map(|o| Pod::try_from(o).ok())
        .collect()
}

/// A node's agent's `/metrics` page (from inside the node's namespace).
pub fn agent_metrics(node: &jotasu_dev::cluster::AgentNode) -> std::io::Result<String> {
    node.netns()
        .run(|| {
            use std::io::{Read as _, Write as _};
            let mut s = std::net::TcpStream::connect("127.0.0.1:10249")?;
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok::<_, std::io::Error>(body)
        })
        .map_err(std::io::Error::other)?
}

/// The pod's network namespace, as the agent names it (None until bound).
pub fn netns_of(p: &Pod) -> Option<String> {
    Some(jotasu_agent::pods::pod_netns_name(
        p.spec.node_name.as_deref()?,
        p.metadata.uid.as_deref()?,
    ))
}

/// Running with Ready=True.
pub fn ready(p: &Pod) -> bool {
    p.status.as_ref().is_some_and(|s| {
        s.phase == Some(PodPhase::Running)
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == jotasu_api::ConditionStatus::True)
    })
}

/// The ready addresses.
pub fn ips(e: &Endpoints) -> BTreeSet<String> {
    e.subsets
        .iter()
        .flat_map(|s| s.addresses.iter().map(|a| a.ip.clone()))
        .collect()
}

/// The first container's restart count.
pub fn restarts(p: &Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.first())
        .map_or(0, |c| c.restart_count)
}

/// The value of the sample `name` (with its labels, as printed) on a metrics page.
pub fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}
