//! securityContext on a real node ([`Harness`]): users, groups, fsGroup,
//! a read-only root, capabilities, no_new_privs, the RuntimeDefault
//! seccomp filter, privileged with and
//! without the agent's `--allow-privileged`, and the refusals, each with
//! the words a user reads.
use jotasu_api::Pod;
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::e2e::{Harness, SETTLE, ready};
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;

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
  name: filtered
spec:
  terminationGracePeriodSeconds: 1
  securityContext:
    runAsUser: 1000
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: app
    image: jotasu.local/busybox:latest
    command: ["sleep", "3600"]
  - name: open
    image: jotasu.local/busybox:latest
    command: ["sleep", "3600"]
    securityContext:
      seccompProfile: {type: Unconfined}
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
    assert_eq!(proc_status(&h, "secured", "app", "Seccomp"), "0");

    // RuntimeDefault from the pod's context: a filter (mode 2) that
    // refuses new namespaces; the container's Unconfined overrides it.
    eventually("the filtered pod Ready", SETTLE, || async {
        h.pod("filtered").await.filter(ready)
    })
    .await;
    assert_eq!(proc_status(&h, "filtered", "app", "Seccomp"), "2");
    assert_eq!(proc_status(&h, "filtered", "open", "Seccomp"), "0");
    let userns = |container: &str| {
        h.ctl.at(
            &h.server,
            &[
                "exec", "filtered", "-c", container, "--", "unshare", "-U", "true",
            ],
        )
    };
    let refused = userns("app");
    assert_ne!(refused.code, 0, "unshare under RuntimeDefault: {refused:?}");
    assert!(
        format!("{}{}", refused.stdout, refused.stderr).contains("Operation not permitted"),
        "{refused:?}"
    );
    let allowed = userns("open");
    assert_eq!(allowed.code, 0, "unshare unconfined: {allowed:?}");

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
    seccompProfile: {type: Localhost, localhostProfile: audit.json}
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
        "spec.securityContext.seccompProfile.type: Forbidden: jotasu does not load Localhost seccomp profiles",
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
