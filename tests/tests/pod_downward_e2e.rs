//! The downward API, projected, memory emptyDir and hostPath volumes and
//! lifecycle hooks on a real node ([`Harness`]).
use std::time::Duration;

use jotasu_api::kinds::pod_status::PodPhase;
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::e2e::{Harness, SETTLE, ready};
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;

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
