//! The main demo: a real jotasu cluster on this machine — containerd, the
//! control plane and a node running `jotasu-agent`, each in network
//! namespaces the demo makes — then an example app applied with jotactl
//! (a 3-replica web Deployment behind a Service, and a client pod), and
//! requests from the client to the Service's VIP, answered round-robin by
//! the pods through the eBPF data plane. Everything is removed at the end,
//! Ctrl-C included.
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use jotasu_api::{Kind, Object, ObjectRef};
use jotasu_tests::cluster::{ClusterOptions, LocalCluster};
use jotasu_tests::jotactl::Ctl;
use jotasu_tests::{privilege, signals};

/// Run the jotasu demo (needs root; everything stays in namespaces it creates).
#[derive(Parser)]
struct Cli {
    /// Requests sent to the service.
    #[arg(long, default_value_t = 9)]
    requests: usize,
    /// Replicas of the example app.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
}

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
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: sh
    image: jotasu.local/busybox:latest
    command: ["sleep", "86400"]
"#;

struct Demo {
    ctl: Ctl,
    server: String,
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
}

fn step(text: &str) {
    println!("\n== {text}");
}

async fn demo(cli: &Cli) -> anyhow::Result<()> {
    step("starting containerd, the control plane and a node (each in its own network namespace)");
    let started = Instant::now();
    let cluster = LocalCluster::start(ClusterOptions {
        quiet: true,
        ..ClusterOptions::default()
    })
    .await?;
    println!("ready in {:.1} s", started.elapsed().as_secs_f64());
    let d = Demo {
        ctl: Ctl::new(),
        server: cluster.server(),
    };
    d.show(&["get", "nodes", "-o", "wide"])?;

    signals::check()?;
    step("importing the demo image (busybox from Debian's busybox-static) onto the node");
    let image = cluster.import_demo_image()?;
    println!("imported {image}");

    signals::check()?;
    step(&format!(
        "applying the example app: {} web pods, a Service, a client pod",
        cli.replicas
    ));
    let manifest = APP.replace("REPLICAS", &cli.replicas.to_string());
    let out = d.ctl.pipe(&d.server, &["apply", "-f", "-"], &manifest);
    if out.code != 0 {
        bail!("apply failed: {}", out.stderr);
    }
    print!("{}", out.stdout);
    d.show(&["rollout", "status", "deployment/hello", "--timeout=120s"])?;
    let client = cluster.client().await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        signals::check()?;
        let ready = match client
            .get(&ObjectRef {
                kind: Kind::Pod,
                namespace: Some("default".into()),
                name: "client".into(),
            })
            .await
        {
            Ok(Object::Pod(p)) => p.status.is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == jotasu_api::ConditionStatus::True)
            }),
            _ => false,
        };
        if ready {
            break;
        }
        if Instant::now() > deadline {
            bail!("the client pod did not become ready within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    d.show(&["get", "pods", "-o", "wide"])?;
    d.show(&["get", "service", "hello"])?;
    let Ok(Object::Service(svc)) = client
        .get(&ObjectRef {
            kind: Kind::Service,
            namespace: Some("default".into()),
            name: "hello".into(),
        })
        .await
    else {
        bail!("service hello is missing");
    };
    let vip = svc
        .spec
        .cluster_ip
        .context("the service has no cluster IP")?;

    signals::check()?;
    step(&format!(
        "{} requests from the client pod to http://{vip}/ — balanced round-robin by the eBPF data plane",
        cli.requests
    ));
    // HTTP/1.0 over busybox nc (busybox-static's wget crashes: static glibc).
    let script = format!(
        "for i in $(seq {}); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {vip} 80 | tail -n 1; done",
        cli.requests
    );
    let answers = d.run(&["exec", "client", "--", "sh", "-c", &script])?;
    for (i, line) in answers.lines().enumerate() {
        println!("  request {:>2} -> {line}", i + 1);
    }

    step("removing the app");
    let out = d.ctl.pipe(&d.server, &["delete", "-f", "-"], &manifest);
    print!("{}", out.stdout);
    step("stopping the node, the control plane and containerd; removing namespaces, pins, cgroups");
    drop(cluster);
    println!("done.");
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
