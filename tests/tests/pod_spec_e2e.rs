//! The pod spec as users write it, on a real node (a control plane, a
//! containerd and one agent in namespaces of this run, [`Harness`]): init
//! containers in order, a sidecar beside the app, envFrom, security
//! contexts, the downward API, memory-backed emptyDirs — and the
//! refusals, each with the words a user reads.
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

const SECURED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: secured
spec:
  terminationGracePeriodSeconds: 1
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    fsGroup: 2000
    supplementalGroups: [4000]
    runAsNonRoot: true
  volumes:
  - {name: data, emptyDir: {}}
  containers:
  - name: app
    image: jotasu.local/busybox:latest
    command: ["sleep", "3600"]
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
    volumeMounts: [{name: data, mountPath: /data}]
  - name: caps
    image: jotasu.local/busybox:latest
    command: ["sleep", "3600"]
    securityContext:
      runAsUser: 0
      runAsNonRoot: false
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
---
apiVersion: v1
kind: Pod
metadata:
  name: privileged
spec:
  containers:
  - name: app
    image: jotasu.local/busybox:latest
    command: ["sleep", "3600"]
    securityContext: {privileged: true}
---
apiVersion: v1
kind: Pod
metadata:
  name: rootful
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - name: app
    image: jotasu.local/busybox:latest
    command: ["sleep", "3600"]
"#;

/// The waiting reason and message of a pod's first container.
fn waiting(p: &Pod) -> Option<(String, String)> {
    let w = p
        .status
        .as_ref()?
        .container_statuses
        .first()?
        .state
        .as_ref()?
        .waiting
        .clone()?;
    Some((w.reason.unwrap_or_default(), w.message.unwrap_or_default()))
}

/// A line of `/proc/self/status` in a container.
fn proc_status(h: &Harness, pod: &str, container: &str, field: &str) -> String {
    let status = h.ctl(&[
        "exec",
        pod,
        "-c",
        container,
        "--",
        "cat",
        "/proc/self/status",
    ]);
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no {field} in\n{status}"))
}

/// securityContext on a real node: users and groups, fsGroup on the
/// volume, a read-only root, no_new_privs, capabilities; privileged and
/// runAsNonRoot refused with the kubelet's words; unsupported fields and
/// bad capability names refused at apply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_contexts() {
    if !require_root("security_contexts") {
        return;
    }
    let mut h = Harness::start(ClusterOptions::default()).await;
    h.apply(SECURED);
    eventually("the secured pod Ready", SETTLE, || async {
        h.pod("secured").await.filter(ready)
    })
    .await;
    assert_eq!(
        h.ctl(&["exec", "secured", "-c", "app", "--", "id", "-u"]),
        "1000\n"
    );
    let groups = h.ctl(&["exec", "secured", "-c", "app", "--", "id", "-G"]);
    let groups: Vec<&str> = groups.split_whitespace().collect();
    assert_eq!(groups, ["3000", "2000", "4000"]);
    let write = h.ctl.at(
        &h.server,
        &[
            "exec",
            "secured",
            "-c",
            "app",
            "--",
            "touch",
            "/rootfs-file",
        ],
    );
    assert_ne!(write.code, 0, "the root filesystem is read-only");
    assert!(
        write.stderr.contains("Read-only file system")
            || write.stdout.contains("Read-only file system"),
        "{write:?}"
    );
    let owned = h.ctl(&[
        "exec",
        "secured",
        "-c",
        "app",
        "--",
        "sh",
        "-c",
        "touch /data/f && stat -c %g /data/f",
    ]);
    assert_eq!(
        owned, "2000\n",
        "files made in the fsGroup volume belong to it"
    );
    assert_eq!(proc_status(&h, "secured", "app", "NoNewPrivs"), "1");
    // Root with every capability dropped but one.
    assert_eq!(
        h.ctl(&["exec", "secured", "-c", "caps", "--", "id", "-u"]),
        "0\n"
    );
    assert_eq!(
        proc_status(&h, "secured", "caps", "CapEff"),
        "0000000000000400"
    );
    assert_eq!(
        proc_status(&h, "secured", "caps", "CapBnd"),
        "0000000000000400"
    );
    assert_eq!(proc_status(&h, "secured", "caps", "NoNewPrivs"), "0");

    // Refused by the agent, as the kubelet words it.
    let (reason, message) = eventually("the privileged pod refused", SETTLE, || async {
        h.pod("privileged")
            .await
            .as_ref()
            .and_then(waiting)
            .filter(|(r, _)| r == "CreateContainerConfigError")
    })
    .await;
    assert_eq!(reason, "CreateContainerConfigError");
    assert_eq!(
        message,
        "spec.containers[0].securityContext.privileged: Forbidden: privileged containers are not allowed on this node (its jotasu-agent runs without --allow-privileged)"
    );
    let (_, message) = eventually("the root pod refused", SETTLE, || async {
        h.pod("rootful")
            .await
            .as_ref()
            .and_then(waiting)
            .filter(|(r, _)| r == "CreateContainerConfigError")
    })
    .await;
    assert!(
        message.starts_with(
            "container has runAsNonRoot and image will run as root (pod: \"rootful_default("
        ),
        "{message}"
    );

    // Refused at apply: fields jotasu does not implement, bad capabilities.
    let bad = r#"
apiVersion: v1
kind: Pod
metadata:
  name: unsupported
spec:
  securityContext:
    seLinuxOptions: {level: "s0:c1,c2"}
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: app
    image: jotasu.local/busybox:latest
    securityContext:
      capabilities: {add: [NET_ADMINS]}
"#;
    let run = h.ctl.pipe(&h.server, &["apply", "-f", "-"], bad);
    assert_ne!(run.code, 0);
    for want in [
        "spec.securityContext.seLinuxOptions: Forbidden: jotasu does not support seLinuxOptions yet; remove the field",
        "spec.securityContext.seccompProfile.type: Forbidden: jotasu does not apply seccomp profiles yet (RuntimeDefault)",
        "spec.containers[0].securityContext.capabilities.add[0]: Invalid value: \"NET_ADMINS\": not a Linux capability",
    ] {
        assert!(
            run.stderr.contains(want),
            "wanted {want:?} in\n{}",
            run.stderr
        );
    }
    assert!(h.pod("unsupported").await.is_none());

    // On an agent started with --allow-privileged the same pod runs, with
    // every capability and /proc unmasked.
    h.cluster
        .node_mut(0)
        .restart_agent_with(&["--allow-privileged".to_owned()])
        .expect("the agent restarts");
    eventually("the privileged pod Ready", SETTLE, || async {
        h.pod("privileged").await.filter(ready)
    })
    .await;
    // Every capability the node holds (a nested node may lack some).
    let own = std::fs::read_to_string("/proc/self/status").expect("own status");
    let held = own
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| v.trim().to_owned())
        .expect("CapBnd");
    assert_eq!(proc_status(&h, "privileged", "app", "CapEff"), held);
    let timers = |pod: &str| h.ctl(&["exec", pod, "--", "sh", "-c", "wc -c < /proc/timer_list"]);
    assert_ne!(
        timers("privileged").trim(),
        "0",
        "/proc/timer_list is not masked"
    );
    assert_eq!(
        timers("secured").trim(),
        "0",
        "masked in an unprivileged container"
    );
}

const DOWNWARD: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  color: blue
---
apiVersion: v1
kind: Pod
metadata:
  name: downward
  labels: {app: web, tier: front}
  annotations: {note: hello}
spec:
  terminationGracePeriodSeconds: 10
  volumes:
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: note, fieldRef: {fieldPath: "metadata.annotations['note']"}}
      - {path: cpu, resourceFieldRef: {containerName: app, resource: limits.cpu, divisor: 1m}}
  - name: all
    projected:
      sources:
      - configMap: {name: settings}
      - downwardAPI: {items: [{path: pod, fieldRef: {fieldPath: metadata.name}}]}
  - {name: scratch, emptyDir: {medium: Memory}}
  - {name: host, hostPath: {path: HOST_DIR, type: DirectoryOrCreate}}
  containers:
  - name: app
    image: jotasu.local/busybox:latest
    command: ["sh", "-c", "trap 'echo term >> /host/order; exit 0' TERM; while true; do sleep 0.2; done"]
    # Burstable: a Guaranteed pod's oom_score_adj (-997) cannot be set
    # on a node without CAP_SYS_RESOURCE (this machine's nested nodes).
    resources:
      requests: {cpu: 100m, memory: 32Mi}
      limits: {cpu: 500m, memory: 64Mi}
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
    - {name: MEM_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "echo poststart >> /host/order"]}
      preStop:
        exec: {command: ["sh", "-c", "echo prestop >> /host/order"]}
    volumeMounts:
    - {name: info, mountPath: /etc/info}
    - {name: all, mountPath: /etc/all}
    - {name: scratch, mountPath: /scratch}
    - {name: host, mountPath: /host}
---
apiVersion: v1
kind: Pod
metadata:
  name: hook-fails
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: jotasu.local/busybox:latest
    command: ["sleep", "3600"]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "exit 7"]}
"#;

/// The downward API in env and volumes, a projected volume, a memory
/// emptyDir on tmpfs sized by the pod's limit, a hostPath made for the
/// pod, and lifecycle hooks: postStart after the start, preStop before
/// SIGTERM, a failing postStart killing its container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downward_api_volumes_and_hooks() {
    if !require_root("downward_api_volumes_and_hooks") {
        return;
    }
    let h = Harness::start(ClusterOptions::default()).await;
    let host_dir = h.cluster.dir().join("hostpath");
    h.apply(&DOWNWARD.replace("HOST_DIR", &host_dir.display().to_string()));
    let pod = eventually("the downward pod Ready", SETTLE, || async {
        h.pod("downward").await.filter(ready)
    })
    .await;
    let ip = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("an IP");
    let node = pod.spec.node_name.clone().expect("a node");
    let env = h.ctl(&[
        "exec",
        "downward",
        "--",
        "sh",
        "-c",
        "echo $POD_NAME $POD_NS $POD_IP $NODE $APP $MEM_MI",
    ]);
    assert_eq!(env, format!("downward default {ip} {node} web 64\n"));
    let files = h.ctl(&[
        "exec", "downward", "--", "sh", "-c",
        "cat /etc/info/labels; echo; cat /etc/info/note; echo; cat /etc/info/cpu; echo; cat /etc/all/color /etc/all/pod",
    ]);
    assert_eq!(
        files,
        "app=\"web\"\ntier=\"front\"\nhello\n500\nbluedownward"
    );
    let mounts = h.ctl(&["exec", "downward", "--", "cat", "/proc/mounts"]);
    let scratch = mounts
        .lines()
        .find(|l| l.contains(" /scratch "))
        .unwrap_or_else(|| panic!("no /scratch in\n{mounts}"));
    assert!(scratch.starts_with("tmpfs "), "{scratch}");
    assert!(
        scratch.contains("size=65536k"),
        "sized by the pod's memory limit: {scratch}"
    );
    assert!(
        host_dir.is_dir(),
        "DirectoryOrCreate made {}",
        host_dir.display()
    );
    let order = host_dir.join("order");
    assert_eq!(
        std::fs::read_to_string(&order).unwrap_or_default(),
        "poststart\n"
    );

    // A postStart hook that fails kills its container.
    let failed = eventually("hook-fails terminated", SETTLE, || async {
        h.pod("hook-fails").await.filter(|p| {
            p.status
                .as_ref()
                .is_some_and(|s| s.phase == Some(PodPhase::Failed))
        })
    })
    .await;
    let term = failed
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.clone())
        .expect("terminated");
    let message = term.message.unwrap_or_default();
    assert!(
        message.starts_with(
            "PostStartHookError: Exec lifecycle hook ([sh -c exit 7]) for Container \"app\""
        ),
        "{message}"
    );

    // Deletion: preStop, then SIGTERM.
    h.ctl(&["delete", "pod", "downward"]);
    eventually("the downward pod gone", Duration::from_secs(60), || async {
        h.pod("downward").await.is_none().then_some(())
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(&order).unwrap_or_default(),
        "poststart\nprestop\nterm\n"
    );
    assert!(host_dir.is_dir(), "a hostPath outlives its pod");
}
