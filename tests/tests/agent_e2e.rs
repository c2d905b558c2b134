//! The agent end to end: a real control plane, a real containerd started
//! by the harness, and one node running `jotasu-agent`, each in network
//! namespaces of this test ([`LocalCluster`]). Workloads go in through the
//! real jotactl; traffic goes from a client pod to a service VIP through
//! the eBPF data plane.
use std::collections::BTreeSet;
use std::time::Duration;

use jotasu_api::Pod;
use jotasu_api::kinds::pod_status::PodPhase;
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::e2e::{Harness, SETTLE, ready, restarts};
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: httpd
        image: jotasu.local/busybox:latest
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && echo ok > /www/healthz && exec httpd -f -p 80 -h /www"]
        ports:
        - {name: http, containerPort: 80}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: http}
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
    command: ["sleep", "3600"]
"#;

/// The deployment serves through the VIP round-robin, heals a killed
/// container, follows readiness, scales, and leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_serves_round_robin_heals_and_scales() {
    if !require_root("a_deployment_serves_round_robin_heals_and_scales") {
        return;
    }
    let h = Harness::start(ClusterOptions::default()).await;
    h.apply(WEB);
    let pods = h.ready_pods("app=web", 3).await;
    let names: BTreeSet<String> = pods.iter().map(|p| p.metadata.name().to_owned()).collect();
    eventually("the client pod running", SETTLE, || async {
        h.pod("client").await.filter(ready)
    })
    .await;
    let vip = h.vip("web").await;
    eventually("three endpoints", SETTLE, || async {
        (h.endpoint_ips("web").await.len() == 3).then_some(())
    })
    .await;

    // 30 requests from the client pod to the VIP: round-robin over the 3.
    let out = eventually("30 answers through the VIP", SETTLE, || async {
        h.get_through(&vip, 30)
    })
    .await;
    let seen: BTreeSet<&String> = out.iter().collect();
    assert_eq!(
        seen.iter().map(|s| s.as_str()).collect::<BTreeSet<_>>(),
        names.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        "every pod answered: {out:?}"
    );
    for (i, line) in out.iter().enumerate().skip(3) {
        assert_eq!(
            line,
            &out[i - 3],
            "request {i} broke the round-robin order: {out:?}"
        );
    }
    assert_ne!(out[0], out[1]);
    assert_ne!(out[1], out[2]);
    assert_ne!(out[0], out[2]);

    // The agent's metrics count those connections on the service, and the pods.
    let metrics = h.metrics(0);
    let balanced: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with(
                "jotasu_agent_service_new_connections_total{namespace=\"default\",service=\"web\"",
            )
        })
        .filter(|l| !l.contains("path=\"rejected\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        balanced >= 30,
        "new connections counted on the service: {balanced}\n{metrics}"
    );
    assert!(
        metrics.contains("jotasu_agent_pods{phase=\"Running\"} 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("jotasu_agent_watch_connected 1"),
        "{metrics}"
    );

    // Logs: httpd -f writes nothing, the client's sleep neither; the
    // container that printed is checked below. Kill one container's
    // process: it is restarted, restart count 1, Ready again.
    let victim = pods[0].metadata.name().to_owned();
    let uid = pods[0].metadata.uid.clone().expect("a uid");
    let cd = h.containerd().await;
    let id = format!("{uid}-0");
    let Some(jotasu_agent::containerd::TaskState::Running { pid }) =
        cd.state(&id).await.expect("task state")
    else {
        panic!("container {id} is not running");
    };
    // SAFETY: kill on the PID of a container process this test's cluster started.
    assert_eq!(
        unsafe { libc::kill(i32::try_from(pid).expect("pid"), libc::SIGKILL) },
        0
    );
    eventually(
        "the killed container restarted once and Ready",
        SETTLE,
        || async {
            h.pod(&victim)
                .await
                .filter(|p| restarts(p) == 1 && ready(p))
        },
    )
    .await;

    // Readiness gates the endpoints.
    let probe_victim = pods[1].metadata.name().to_owned();
    let probe_ip = pods[1]
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("an IP");
    h.ctl(&["exec", &probe_victim, "--", "rm", "/www/healthz"]);
    eventually(
        "a failing readiness probe leaves the endpoints",
        SETTLE,
        || async {
            let ips = h.endpoint_ips("web").await;
            (ips.len() == 2 && !ips.contains(&probe_ip)).then_some(())
        },
    )
    .await;
    h.ctl(&[
        "exec",
        &probe_victim,
        "--",
        "sh",
        "-c",
        "echo ok > /www/healthz",
    ]);
    eventually("a passing readiness probe restores it", SETTLE, || async {
        h.endpoint_ips("web")
            .await
            .contains(&probe_ip)
            .then_some(())
    })
    .await;

    // Scale out and in.
    h.ctl(&["scale", "deployment/web", "--replicas=5"]);
    h.ready_pods("app=web", 5).await;
    eventually("five endpoints", SETTLE, || async {
        (h.endpoint_ips("web").await.len() == 5).then_some(())
    })
    .await;
    h.ctl(&["scale", "deployment/web", "--replicas=1"]);
    h.ready_pods("app=web", 1).await;
    eventually("one endpoint", SETTLE, || async {
        (h.endpoint_ips("web").await.len() == 1).then_some(())
    })
    .await;
    let wide = h.ctl(&["get", "pods", "-o", "wide"]);
    assert!(
        wide.contains(h.cluster.nodes()[0].name()),
        "get pods -o wide shows the node:\n{wide}"
    );

    // Deleting everything leaves no container, namespace, veth, address or
    // map entry on the node.
    h.ctl(&["delete", "deployment", "web"]);
    h.ctl(&["delete", "service", "web"]);
    h.ctl(&["delete", "pod", "client"]);
    eventually("every pod gone", SETTLE, || async {
        h.pods("").await.is_empty().then_some(())
    })
    .await;
    let node = &h.cluster.nodes()[0];
    eventually("no container left", SETTLE, || async {
        cd.list().await.ok().filter(Vec::is_empty)
    })
    .await;
    eventually("no pod namespace, veth or route left", SETTLE, || async {
        let netns_left = std::fs::read_dir("/run/netns")
            .map(|d| {
                d.flatten().any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{}-", node.name()))
                })
            })
            .unwrap_or(false);
        let links = node.netns().ip(&["-o", "link", "show"]).unwrap_or_default();
        let routes = node
            .netns()
            .ip(&["-4", "route", "show"])
            .unwrap_or_default();
        (!netns_left && !links.contains("jtc") && !routes.contains("10.244.")).then_some(())
    })
    .await;
    // The cluster DNS Service (10.96.0.10) and the API's own
    // (default/kubernetes, 10.96.0.1), there from the start, stay.
    let dns = std::net::Ipv4Addr::new(10, 96, 0, 10);
    let api = std::net::Ipv4Addr::new(10, 96, 0, 1);
    eventually("no service or endpoint map entry left", SETTLE, || async {
        let dp = jotasu_ebpf::Datapath::open(node.name()).ok()?;
        let services = dp.services().ok()?;
        let endpoints = dp.pods().endpoints().ok()?;
        (services.iter().all(|s| {
            let vip = s.service.frontend.vip;
            vip.octets()[..2] != [10, 96] || vip == dns || vip == api
        }) && endpoints.is_empty())
        .then_some(())
    })
    .await;
}

const CONFIG: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  greeting: hello from a configmap
  app.conf: "mode=fast\n"
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
stringData:
  password: s3cret
---
apiVersion: v1
kind: Pod
metadata:
  name: configured
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: jotasu.local/busybox:latest
    command: ["sh", "-c", "echo started; echo $GREETING; sleep 3600"]
    env:
    - name: GREETING
      valueFrom:
        configMapKeyRef: {name: settings, key: greeting}
    - name: PASSWORD
      valueFrom:
        secretKeyRef: {name: creds, key: password}
    volumeMounts:
    - {name: conf, mountPath: /etc/app}
    - {name: secret, mountPath: /etc/creds}
  volumes:
  - name: conf
    configMap: {name: settings}
  - name: secret
    secret: {secretName: creds}
---
apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  restartPolicy: Never
  containers:
  - name: hog
    image: jotasu.local/busybox:latest
    command: ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1"]
    resources:
      limits: {memory: 16Mi}
"#;

/// ConfigMap and Secret values reach the pod (env and files; the secret
/// on tmpfs, mode 0400), logs come back through jotactl, and a memory hog
/// over its limit is reported OOMKilled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_secrets_logs_and_oom() {
    if !require_root("config_secrets_logs_and_oom") {
        return;
    }
    let h = Harness::start(ClusterOptions::default()).await;
    h.apply(CONFIG);
    eventually("the configured pod Ready", SETTLE, || async {
        h.pod("configured").await.filter(ready)
    })
    .await;
    let env = h.ctl(&[
        "exec",
        "configured",
        "--",
        "sh",
        "-c",
        "echo $GREETING; echo $PASSWORD",
    ]);
    assert_eq!(env, "hello from a configmap\ns3cret\n");
    let files = h.ctl(&[
        "exec",
        "configured",
        "--",
        "cat",
        "/etc/app/greeting",
        "/etc/app/app.conf",
        "/etc/creds/password",
    ]);
    assert_eq!(files, "hello from a configmapmode=fast\ns3cret");
    let mode = h.ctl(&[
        "exec",
        "configured",
        "--",
        "stat",
        "-L",
        "-c",
        "%a",
        "/etc/creds/password",
    ]);
    assert_eq!(mode.trim(), "400");
    let mounts = h.ctl(&["exec", "configured", "--", "cat", "/proc/mounts"]);
    assert!(
        mounts
            .lines()
            .any(|l| l.contains(" /etc/creds ") && l.starts_with("tmpfs")),
        "the secret volume is on tmpfs:\n{mounts}"
    );
    let logs = h.ctl(&["logs", "configured"]);
    assert_eq!(logs, "started\nhello from a configmap\n");
    let code = h.ctl.at(
        &h.server,
        &["exec", "configured", "--", "sh", "-c", "exit 3"],
    );
    assert_eq!(
        code.code, 3,
        "exec passes the exit code on: {}",
        code.stderr
    );

    let hog = eventually("the hog terminated", SETTLE, || async {
        h.pod("hog").await.filter(|p| {
            p.status
                .as_ref()
                .is_some_and(|s| s.phase == Some(PodPhase::Failed))
        })
    })
    .await;
    let state = hog
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.first())
        .cloned()
        .expect("a status");
    let term = state.state.and_then(|s| s.terminated).expect("terminated");
    assert_eq!(term.reason.as_deref(), Some("OOMKilled"), "{term:?}");
    assert_eq!(term.exit_code, 137);

    // Stopping the cluster with pods still on it leaves nothing behind.
    let prefix = h.cluster.prefix().to_owned();
    drop(h);
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    assert!(!mounts.contains(&prefix), "mounts left:\n{mounts}");
    let netns = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    assert!(
        !netns.iter().any(|n| n.starts_with(&prefix)),
        "namespaces left: {netns:?}"
    );
    let shims = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
                .filter(|c| {
                    String::from_utf8_lossy(c).contains(&format!("/{prefix}/containerd.sock"))
                })
                .count()
        })
        .unwrap_or(0);
    assert_eq!(shims, 0, "processes of the run's containerd left");
    assert!(
        !std::path::Path::new("/sys/fs/bpf/jotasu")
            .join(format!("{prefix}n0"))
            .exists()
    );
}

const HEALING: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: jotasu.local/busybox:latest
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
  - {port: 80}
---
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: sh
    image: jotasu.local/busybox:latest
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  containers:
  - name: main
    image: jotasu.local/busybox:latest
    command: ["sh", "-c", "echo crashing; exit 1"]
---
apiVersion: v1
kind: Pod
metadata:
  name: missing
spec:
  containers:
  - name: main
    image: jotasu.local/nothing:1
---
apiVersion: v1
kind: Pod
metadata:
  name: lively
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: jotasu.local/busybox:latest
    command: ["sh", "-c", "touch /tmp/alive; exec sleep 3600"]
    livenessProbe:
      exec: {command: ["test", "-f", "/tmp/alive"]}
      periodSeconds: 1
      failureThreshold: 1
"#;

fn waiting_reason(p: &Pod) -> Option<(String, String)> {
    let w = p
        .status
        .as_ref()?
        .container_statuses
        .first()?
        .state
        .as_ref()?
        .waiting
        .as_ref()?;
    Some((
        w.reason.clone().unwrap_or_default(),
        w.message.clone().unwrap_or_default(),
    ))
}

/// Kubernetes' reasons for pods that cannot run, liveness restarts, and a
/// node that rides out a control-plane outage and an agent restart: its
/// pods and data plane keep going, and it catches up afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_heal_and_the_node_rides_out_outages() {
    if !require_root("pods_heal_and_the_node_rides_out_outages") {
        return;
    }
    let mut h = Harness::start(ClusterOptions::default()).await;
    h.apply(HEALING);
    h.ready_pods("app=web", 2).await;
    eventually("the client running", SETTLE, || async {
        h.pod("client").await.filter(ready)
    })
    .await;

    let crash = eventually("CrashLoopBackOff", SETTLE, || async {
        let p = h.pod("crasher").await?;
        let (reason, message) = waiting_reason(&p)?;
        (reason == "CrashLoopBackOff" && restarts(&p) >= 1).then_some(message)
    })
    .await;
    // kubelet's words; the delay doubles with each restart (10s, 20s, …).
    assert!(
        crash.starts_with("back-off ")
            && crash.contains("s restarting failed container=main pod=crasher_default("),
        "{crash}"
    );
    eventually("the crashed instance's logs", SETTLE, || async {
        (h.ctl(&["logs", "crasher"]) == "crashing\n").then_some(())
    })
    .await;
    let missing = eventually("ErrImagePull", SETTLE, || async {
        let (reason, message) = waiting_reason(&h.pod("missing").await?)?;
        (reason == "ErrImagePull" || reason == "ImagePullBackOff").then_some(message)
    })
    .await;
    assert!(missing.contains("jotactl image import"), "{missing}");

    // An image pulled by reference from a registry (on the node's loopback).
    let registry = jotasu_tests::registry::Registry::start_in(h.cluster.nodes()[0].netns())
        .expect("docker-registry starts");
    let archive = h.cluster.demo_image().expect("the demo image");
    let (reference, digest) = registry.push(&archive, "demo/busybox:1").expect("the push");
    h.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: pulled}}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - {{name: main, image: \"{reference}\", command: [sleep, \"3600\"]}}\n"
    ));
    let pulled = eventually("a pod of a pulled image running", SETTLE, || async {
        h.pod("pulled").await.filter(ready)
    })
    .await;
    let status = pulled
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.first())
        .cloned()
        .expect("a status");
    assert_eq!(status.image_id.as_deref(), Some(digest.as_str()));
    drop(registry);

    eventually("lively running", SETTLE, || async {
        h.pod("lively").await.filter(ready)
    })
    .await;
    h.ctl(&["exec", "lively", "--", "rm", "/tmp/alive"]);
    eventually(
        "a failed liveness probe restarts the container",
        SETTLE,
        || async {
            h.pod("lively")
                .await
                .filter(|p| restarts(p) == 1 && ready(p))
        },
    )
    .await;

    // The control plane goes away: the node keeps its pods and its data
    // plane, and catches up when it is back.
    let cd = h.containerd().await;
    let node = h.cluster.nodes()[0].name().to_owned();
    let web = h.pods("app=web").await;
    let pids = |pods: &[Pod]| {
        let cd = cd.clone();
        let ids: Vec<String> = pods
            .iter()
            .map(|p| format!("{}-0", p.metadata.uid.clone().expect("a uid")))
            .collect();
        async move {
            let mut out = Vec::new();
            for id in ids {
                out.push(cd.state(&id).await.expect("task state"));
            }
            out
        }
    };
    let before = pids(&web).await;
    assert!(
        before
            .iter()
            .all(|s| matches!(s, Some(jotasu_agent::containerd::TaskState::Running { .. })))
    );
    h.cluster
        .control_plane_mut()
        .kill9()
        .expect("the control plane stops");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pids(&web).await, before, "the pods kept running");
    let dp = jotasu_ebpf::Datapath::open(&node).expect("the data plane");
    let vip: std::net::Ipv4Addr = {
        let services = dp.services().expect("services");
        let s = services
            .iter()
            .find(|s| s.service.backends.len() == 2)
            .expect("the web service is still programmed");
        s.service.frontend.vip
    };
    drop(dp);
    h.cluster
        .control_plane_mut()
        .restart()
        .await
        .expect("the control plane returns");
    h.client = h.cluster.client().await.expect("a client");
    h.ctl(&["scale", "deployment/web", "--replicas=3"]);
    h.ready_pods("app=web", 3).await;
    eventually("three endpoints after the outage", SETTLE, || async {
        (h.endpoint_ips("web").await.len() == 3).then_some(())
    })
    .await;
    let answers = eventually("the VIP answers from all three", SETTLE, || async {
        let seen: BTreeSet<String> = h.get_through(&vip.to_string(), 3)?.into_iter().collect();
        (seen.len() == 3).then_some(seen)
    })
    .await;
    assert_eq!(answers.len(), 3);

    // The agent restarts: it adopts its running pods instead of restarting them.
    let web = h.pods("app=web").await;
    let before = pids(&web).await;
    h.cluster.node_mut(0).stop_agent();
    h.cluster
        .node_mut(0)
        .start_agent()
        .expect("the agent starts again");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        pids(&web).await,
        before,
        "the pods were adopted, not restarted"
    );
    for p in h.pods("app=web").await {
        assert_eq!(restarts(&p), 0, "{} restarted", p.metadata.name());
    }
    h.ctl(&["delete", "pod", web[0].metadata.name()]);
    h.ready_pods("app=web", 3).await;
    let containers = cd.list().await.expect("containers");
    assert_eq!(
        containers
            .iter()
            .filter(|c| c
                .labels
                .get("io.jotasu.pod.name")
                .is_some_and(|n| n.starts_with("web-")))
            .count(),
        3,
        "one container per web pod: {containers:?}"
    );
}
