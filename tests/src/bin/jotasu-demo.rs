//! The main demo, on a local cluster that `jotactl dev up` started
//! (`scripts/demo.sh` runs both): an example app applied with jotactl (a
//! web Deployment behind a Service, and a client pod). It
//! shows the pods spread over the nodes, requests from the client answered
//! round-robin by pods on every node (the eBPF data plane balances; the
//! overlay carries the packets between nodes), the app scaled out and in,
//! and one node stopped: its pods leave the Service and are replaced on the
//! other nodes while requests keep being answered. The app is deleted at
//! the end, Ctrl-C included; `jotactl dev down` removes the cluster.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use jotasu_api::client::Client;
use jotasu_api::{ConditionStatus, Kind, Object, ObjectRef, Pod};
use jotasu_tests::devcluster::{Phase, State};
use jotasu_tests::jotactl::Ctl;
use jotasu_tests::{privilege, signals};

/// Run the jotasu demo on a cluster made by `jotactl dev up` (needs root).
#[derive(Parser)]
struct Cli {
    /// The cluster (`jotactl dev up --name NAME`).
    #[arg(long, default_value = "demo")]
    cluster: String,
    /// Replicas of the example app.
    #[arg(long, default_value_t = 6)]
    replicas: usize,
    /// Requests sent to the service each time.
    #[arg(long, default_value_t = 12)]
    requests: usize,
}

/// The demo's Service, which the client reaches by name.
const SERVICE: &str = "hello";

const APP: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
spec:
  replicas: REPLICAS
  selector:
    matchLabels: {app: hello}
  template:
    metadata:
      labels: {app: hello}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: web
        image: jotasu.local/busybox:latest
        command: ["sh", "-c", "mkdir -p /www && echo \"hello from $(hostname)\" > /www/index.html && exec httpd -f -p 8080 -h /www"]
        ports:
        - {name: http, containerPort: 8080}
        readinessProbe:
          tcpSocket: {port: http}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: hello
spec:
  selector: {app: hello}
  ports:
  - {port: 80, targetPort: http}
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  labels: {role: client}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: NODE0}
  containers:
  - name: sh
    image: jotasu.local/busybox:latest
    command: ["sleep", "86400"]
"#;

struct Demo {
    ctl: Ctl,
    server: String,
    client: Client,
}

fn is_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
        })
}

impl Demo {
    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.ctl.at(&self.server, args);
        if out.code != 0 {
            bail!("jotactl {} failed: {}", args.join(" "), out.stderr.trim());
        }
        Ok(out.stdout)
    }

    fn show(&self, args: &[&str]) -> anyhow::Result<()> {
        println!("$ jotactl {}", args.join(" "));
        print!("{}", self.run(args)?);
        Ok(())
    }

    async fn pods(&self, selector: &str) -> anyhow::Result<Vec<Pod>> {
        Ok(self
            .client
            .list(Kind::Pod, Some("default"), selector)
            .await?
            .items
            .into_iter()
            .filter_map(|o| Pod::try_from(o).ok())
            .collect())
    }

    /// Waits until `n` pods match, all Ready (and none terminating), and
    /// none on `avoid`.
    async fn settle(
        &self,
        selector: &str,
        n: usize,
        avoid: Option<&str>,
    ) -> anyhow::Result<Vec<Pod>> {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            signals::check()?;
            let pods = self.pods(selector).await?;
            let ok = pods.len() == n
                && pods.iter().all(is_ready)
                && avoid
                    .is_none_or(|a| pods.iter().all(|p| p.spec.node_name.as_deref() != Some(a)));
            if ok {
                return Ok(pods);
            }
            if Instant::now() > deadline {
                bail!("{selector}: {n} Ready pods did not come within 180 s");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn endpoints(&self) -> anyhow::Result<usize> {
        let r = ObjectRef {
            kind: Kind::Endpoints,
            namespace: Some("default".into()),
            name: "hello".into(),
        };
        Ok(match self.client.get(&r).await {
            Ok(Object::Endpoints(e)) => e.subsets.iter().map(|s| s.addresses.len()).sum(),
            _ => 0,
        })
    }

    /// Requests from the client pod to `target` (the Service's name); prints
    /// who answered, on which node.
    async fn requests(&self, target: &str, n: usize) -> anyhow::Result<()> {
        let node_of: BTreeMap<String, String> = self
            .pods("app=hello")
            .await?
            .into_iter()
            .map(|p| {
                (
                    p.metadata.name().to_owned(),
                    p.spec.node_name.unwrap_or_default(),
                )
            })
            .collect();
        println!("$ jotactl exec client -- sh -c 'for i in $(seq {n}); do … nc {target} 80; done'");
        // HTTP/1.0 over busybox nc (busybox-static's wget crashes: static glibc).
        let script = format!(
            "for i in $(seq {n}); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {target} 80 | tail -n 1; done"
        );
        let answers = self.run(&["exec", "client", "--", "sh", "-c", &script])?;
        for (i, line) in answers.lines().enumerate() {
            let pod = line.trim().strip_prefix("hello from ").unwrap_or(line);
            let node = node_of.get(pod).map_or("?", String::as_str);
            println!("  request {:>2} -> {line:<32} (node {node})", i + 1);
        }
        Ok(())
    }

    async fn spread(&self) -> anyhow::Result<()> {
        let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
        for p in self.pods("app=hello").await? {
            *per_node
                .entry(p.spec.node_name.unwrap_or_default())
                .or_default() += 1;
        }
        let text: Vec<String> = per_node.iter().map(|(n, c)| format!("{n}: {c}")).collect();
        println!("pods per node: {}", text.join(", "));
        Ok(())
    }
}

fn step(text: &str) {
    println!("\n== {text}");
}

async fn demo(cli: &Cli) -> anyhow::Result<()> {
    let state = State::load(&cli.cluster)?
        .filter(|s| s.phase == Phase::Ready && s.supervisor_alive())
        .with_context(|| {
            format!(
                "cluster {} is not up: jotactl dev up --nodes 3 --name {}",
                cli.cluster, cli.cluster
            )
        })?;
    let server = state.server.clone().context("the cluster has no server")?;
    let client = Client::connect_to(
        &jotasu_api::client::ServerUrl::parse(&server)?,
        &jotasu_api::client::TlsFiles::default(),
    )
    .await?;
    let d = Demo {
        ctl: Ctl::new(),
        server,
        client,
    };
    let nodes: Vec<String> = state.nodes.iter().map(|n| n.name.clone()).collect();
    step(&format!(
        "cluster {}: {} nodes, each a network namespace with containerd and jotasu-agent, on one underlay bridge",
        cli.cluster,
        nodes.len()
    ));
    d.show(&["get", "nodes", "-o", "wide"])?;

    signals::check()?;
    step(&format!(
        "applying the example app: {} web pods, a Service, a client pod on {}",
        cli.replicas, nodes[0]
    ));
    let manifest = APP
        .replace("REPLICAS", &cli.replicas.to_string())
        .replace("NODE0", &nodes[0]);
    let out = d.ctl.pipe(&d.server, &["apply", "-f", "-"], &manifest);
    if out.code != 0 {
        bail!("apply failed: {}", out.stderr);
    }
    print!("{}", out.stdout);
    d.show(&["rollout", "status", "deployment/hello", "--timeout=120s"])?;
    d.settle("app=hello", cli.replicas, None).await?;
    d.settle("role=client", 1, None).await?;
    d.show(&["get", "pods", "-o", "wide"])?;
    d.spread().await?;
    d.show(&["get", "service", "hello"])?;
    let Ok(Object::Service(svc)) = d
        .client
        .get(&ObjectRef {
            kind: Kind::Service,
            namespace: Some("default".into()),
            name: SERVICE.into(),
        })
        .await
    else {
        bail!("service {SERVICE} is missing");
    };
    let vip = svc
        .spec
        .cluster_ip
        .context("the service has no cluster IP")?;

    signals::check()?;
    step(&format!(
        "{} requests from the client pod to http://hello/ — the Service by name (answered by the client's own node: {vip}), round-robin over pods on every node (eBPF balancing, VXLAN overlay between nodes)",
        cli.requests
    ));
    d.requests(SERVICE, cli.requests).await?;

    signals::check()?;
    let out_to = cli.replicas + 3;
    step(&format!("scaling out to {out_to} replicas"));
    d.show(&["scale", "deployment/hello", &format!("--replicas={out_to}")])?;
    d.settle("app=hello", out_to, None).await?;
    d.spread().await?;
    let in_to = cli.replicas.div_ceil(2).max(1);
    step(&format!("scaling in to {in_to} replicas"));
    d.show(&["scale", "deployment/hello", &format!("--replicas={in_to}")])?;
    d.settle("app=hello", in_to, None).await?;
    d.spread().await?;
    step(&format!("back to {} replicas", cli.replicas));
    d.show(&[
        "scale",
        "deployment/hello",
        &format!("--replicas={}", cli.replicas),
    ])?;
    d.settle("app=hello", cli.replicas, None).await?;
    d.spread().await?;

    signals::check()?;
    let victim = nodes.last().context("the cluster has no node")?.clone();
    step(&format!(
        "stopping node {victim}: its agent and its pods die, its link goes down"
    ));
    let stopped = Instant::now();
    d.show(&["dev", "node", "stop", &victim, "--name", &cli.cluster])?;
    let before = d.endpoints().await?;
    println!("endpoints of hello: {before}");
    let on_victim = d
        .pods("app=hello")
        .await?
        .iter()
        .filter(|p| p.spec.node_name.as_deref() == Some(victim.as_str()))
        .count();
    let deadline = Instant::now() + Duration::from_secs(120);
    while d.endpoints().await? > cli.replicas - on_victim {
        signals::check()?;
        if Instant::now() > deadline {
            bail!("the stopped node's pods did not leave the endpoints");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "{:.1} s: {victim} is NotReady; its {on_victim} pods left the endpoints (now {})",
        stopped.elapsed().as_secs_f64(),
        d.endpoints().await?
    );
    d.show(&["get", "nodes"])?;
    d.requests(SERVICE, cli.requests).await?;
    d.settle("app=hello", cli.replicas, Some(&victim)).await?;
    println!(
        "{:.1} s: its pods were evicted and replaced on the other nodes",
        stopped.elapsed().as_secs_f64()
    );
    d.show(&["get", "pods", "-o", "wide"])?;
    d.spread().await?;
    d.requests(SERVICE, cli.requests).await?;

    step("removing the app");
    let out = d.ctl.pipe(&d.server, &["delete", "-f", "-"], &manifest);
    print!("{}", out.stdout);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    signals::install();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    anyhow::ensure!(
        privilege::require_root("jotasu-demo"),
        "the demo needs root"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(demo(&cli))
}
