//! Init containers and sidecars on a real node (a control plane, a
//! containerd and one agent in namespaces of this run, [`Harness`]): order,
//! a sidecar beside the app and stopped after it, failures under each
//! restart policy, adoption by a new agent — and envFrom.
use std::time::Duration;

use jotasu_api::Pod;
use jotasu_api::kinds::pod_status::{ContainerStatus, PodPhase};
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::e2e::{Harness, SETTLE, ready};
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;

const INIT: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  color: blue
  size: L
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: numbers
data:
  1st: skipped as no valid variable name
  second: kept
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
  name: ordered
spec:
  terminationGracePeriodSeconds: 5
  volumes:
  - {name: work, emptyDir: {}}
  - {name: host, hostPath: {path: HOST_DIR, type: DirectoryOrCreate}}
  initContainers:
  - name: first
    image: jotasu.local/busybox:latest
    command: ["sh", "-c", "echo first >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: proxy
    image: jotasu.local/busybox:latest
    restartPolicy: Always
    command: ["sh", "-c", "trap 'echo proxy >> /host/stop; exit 0' TERM; sleep 1; echo proxy >> /work/order; touch /tmp/up; while true; do sleep 0.2; done"]
    startupProbe:
      exec: {command: ["test", "-f", "/tmp/up"]}
      periodSeconds: 1
      failureThreshold: 30
    volumeMounts: [{name: work, mountPath: /work}, {name: host, mountPath: /host}]
  - name: second
    image: jotasu.local/busybox:latest
    command: ["sh", "-c", "echo second >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: app
    image: jotasu.local/busybox:latest
    command: ["sh", "-c", "trap 'echo app >> /host/stop; exit 0' TERM; echo app >> /work/order; while true; do sleep 0.2; done"]
    envFrom:
    - configMapRef: {name: settings}
      prefix: CFG_
    - secretRef: {name: creds}
    - configMapRef: {name: absent, optional: true}
    - configMapRef: {name: numbers}
    env:
    - {name: CFG_size, value: XL}
    volumeMounts: [{name: work, mountPath: /work}, {name: host, mountPath: /host}]
---
apiVersion: v1
kind: Pod
metadata:
  name: init-fails
spec:
  restartPolicy: Never
  initContainers:
  - name: broken
    image: jotasu.local/busybox:latest
    command: ["sh", "-c", "exit 3"]
  containers:
  - name: app
    image: jotasu.local/busybox:latest
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Pod
metadata:
  name: job
spec:
  restartPolicy: Never
  initContainers:
  - name: helper
    image: jotasu.local/busybox:latest
    restartPolicy: Always
    command: ["sleep", "3600"]
  containers:
  - name: app
    image: jotasu.local/busybox:latest
    command: ["sh", "-c", "sleep 1; echo done"]
---
apiVersion: v1
kind: Pod
metadata:
  name: init-loops
spec:
  initContainers:
  - name: broken
    image: jotasu.local/busybox:latest
    command: ["sh", "-c", "exit 1"]
  containers:
  - name: app
    image: jotasu.local/busybox:latest
    command: ["sleep", "3600"]
"#;

fn init_status<'a>(p: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    p.status
        .as_ref()?
        .init_container_statuses
        .iter()
        .find(|s| s.name == name)
}

/// The STATUS column of `jotactl get pod NAME`.
fn status_column(h: &Harness, name: &str) -> String {
    let out = h.ctl(&["get", "pod", name]);
    out.lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or_default()
        .to_owned()
}

/// Init containers run in order, each to completion; the sidecar starts in
/// its place, is waited for until its startup probe passes and keeps
/// running beside the app; envFrom gives the app its variables; a failing
/// init container fails the pod under `Never` and crash-loops otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_sidecars_and_env_from() {
    if !require_root("init_containers_sidecars_and_env_from") {
        return;
    }
    let mut h = Harness::start(ClusterOptions::default()).await;
    let host_dir = h.cluster.dir().join("hostpath");
    h.apply(&INIT.replace("HOST_DIR", &host_dir.display().to_string()));
    let pod = eventually("the ordered pod Ready", SETTLE, || async {
        h.pod("ordered").await.filter(ready)
    })
    .await;
    let order = h.ctl(&["exec", "ordered", "-c", "app", "--", "cat", "/work/order"]);
    assert_eq!(order, "first\nproxy\nsecond\napp\n");
    for name in ["first", "second"] {
        let s = init_status(&pod, name).expect("an init container status");
        let t = s.state.as_ref().and_then(|st| st.terminated.as_ref());
        assert_eq!(t.map(|t| t.exit_code), Some(0), "{s:?}");
        assert!(s.ready, "a completed init container is ready: {s:?}");
    }
    let proxy = init_status(&pod, "proxy").expect("the sidecar's status");
    assert!(
        proxy.state.as_ref().is_some_and(|s| s.running.is_some()),
        "{proxy:?}"
    );
    assert_eq!(proxy.started, Some(true));
    // The sidecar runs beside the app.
    let side = h.ctl(&["exec", "ordered", "-c", "proxy", "--", "cat", "/work/order"]);
    assert!(side.ends_with("app\n"), "{side}");
    let row = h.ctl(&["get", "pod", "ordered"]);
    assert!(row.contains(" 2/2 ") && row.contains("Running"), "{row}");

    // A sidecar that dies beside the app is restarted.
    let uid = pod.metadata.uid.clone().expect("a uid");
    let cd = h.containerd().await;
    cd.kill(&format!("{uid}-init-1"), libc::SIGKILL, true)
        .await
        .expect("kill the sidecar");
    eventually("the sidecar restarted and started", SETTLE, || async {
        let p = h.pod("ordered").await?;
        let s = init_status(&p, "proxy")?;
        (s.restart_count == 1 && s.started == Some(true)).then_some(())
    })
    .await;

    // envFrom: prefix, env wins, invalid key skipped, optional missing ignored.
    let env = h.ctl(&["exec", "ordered", "-c", "app", "--", "env"]);
    let mut vars: Vec<&str> = env
        .lines()
        .filter(|l| {
            ["CFG_", "password=", "1st=", "second="]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    vars.sort_unstable();
    assert_eq!(
        vars,
        [
            "CFG_color=blue",
            "CFG_size=XL",
            "password=s3cret",
            "second=kept"
        ],
        "{env}"
    );

    // A failing init container under Never fails the pod.
    let failed = eventually("init-fails Failed", SETTLE, || async {
        h.pod("init-fails").await.filter(|p| {
            p.status
                .as_ref()
                .is_some_and(|s| s.phase == Some(PodPhase::Failed))
        })
    })
    .await;
    let broken = init_status(&failed, "broken").expect("status");
    let t = broken.state.as_ref().and_then(|s| s.terminated.as_ref());
    assert_eq!(t.map(|t| t.exit_code), Some(3), "{broken:?}");
    assert_eq!(status_column(&h, "init-fails"), "Init:Error");
    let app = failed
        .status
        .as_ref()
        .map(|s| s.container_statuses.clone())
        .unwrap_or_default();
    assert!(
        app.iter().all(|c| c.container_id.is_none()),
        "the app never ran: {app:?}"
    );

    // Under Always it is restarted with back-off: Init:CrashLoopBackOff.
    eventually("init-loops in Init:CrashLoopBackOff", SETTLE, || async {
        (status_column(&h, "init-loops") == "Init:CrashLoopBackOff").then_some(())
    })
    .await;
    let looping = h.pod("init-loops").await.expect("the pod");
    assert_eq!(
        looping.status.and_then(|s| s.phase),
        Some(PodPhase::Pending)
    );

    // A Never pod whose app is done stops its sidecar and succeeds.
    let job = eventually("the job Succeeded", SETTLE, || async {
        h.pod("job").await.filter(|p| {
            p.status
                .as_ref()
                .is_some_and(|s| s.phase == Some(PodPhase::Succeeded))
        })
    })
    .await;
    let helper = init_status(&job, "helper").expect("the sidecar's status");
    assert!(
        helper
            .state
            .as_ref()
            .is_some_and(|s| s.terminated.is_some()),
        "the sidecar was stopped: {helper:?}"
    );

    // A new agent adopts the pod: the init containers do not run again.
    h.cluster.node_mut(0).stop_agent();
    h.cluster
        .node_mut(0)
        .start_agent()
        .expect("the agent starts again");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = eventually("the ordered pod Ready again", SETTLE, || async {
        h.pod("ordered").await.filter(ready)
    })
    .await;
    let order = h.ctl(&["exec", "ordered", "-c", "app", "--", "cat", "/work/order"]);
    // The sidecar's restart wrote once more; nothing else ran again.
    assert_eq!(order, "first\nproxy\nsecond\napp\nproxy\n");
    for name in ["first", "second"] {
        let s = init_status(&again, name).expect("an init container status");
        let t = s.state.as_ref().and_then(|st| st.terminated.as_ref());
        assert_eq!(t.map(|t| t.exit_code), Some(0), "still completed: {s:?}");
    }

    // Deleting the pod stops the app, then the sidecar.
    h.ctl(&["delete", "pod", "ordered"]);
    eventually("the ordered pod gone", Duration::from_secs(60), || async {
        h.pod("ordered").await.is_none().then_some(())
    })
    .await;
    let stopped = std::fs::read_to_string(host_dir.join("stop")).unwrap_or_default();
    assert_eq!(stopped, "app\nproxy\n");
}
