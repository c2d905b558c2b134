//! Volumes that outlive pods, on real nodes (a control plane, a containerd
//! and two agents in namespaces of this run, [`Harness`]): a claim of the
//! default class is provisioned on the node its first pod landed on, its
//! content is kept across the pod's deletion and its agent's restart, later
//! pods follow it to that node, a claim deleted while used waits for its
//! pods, reclaim Delete removes the directory and Retain keeps it, and
//! claims that cannot be satisfied say why.
use std::path::PathBuf;
use std::time::Duration;

use jotasu_api::{Kind, Object, PersistentVolume, PersistentVolumeClaim, Pod};
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::e2e::{Harness, SETTLE, r, ready};
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;

const CLAIMS: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 64Mi}}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: keep
provisioner: jotasu.io/local
reclaimPolicy: Retain
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: kept
spec:
  storageClassName: keep
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 16Mi}}
"#;

/// A pod using claim CLAIM that runs SCRIPT with the claim at /data.
fn pod(name: &str, claim: &str, script: &str, node_selector: Option<&str>) -> String {
    let selector = node_selector
        .map(|n| format!("  nodeSelector: {{kubernetes.io/hostname: {n}}}\n"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
{selector}  securityContext: {{fsGroup: 2000}}
  containers:
  - name: app
    image: jotasu.local/busybox:latest
    command: ["sh", "-c", {script:?}]
    volumeMounts: [{{name: data, mountPath: /data}}]
  volumes:
  - name: data
    persistentVolumeClaim: {{claimName: {claim}}}
"#
    )
}

async fn claim(h: &Harness, name: &str) -> Option<PersistentVolumeClaim> {
    match h
        .client
        .get(&r(Kind::PersistentVolumeClaim, name))
        .await
        .ok()?
    {
        Object::PersistentVolumeClaim(c) => Some(c),
        _ => None,
    }
}

async fn volume(h: &Harness, name: &str) -> Option<PersistentVolume> {
    let at = jotasu_api::ObjectRef {
        kind: Kind::PersistentVolume,
        namespace: None,
        name: name.to_owned(),
    };
    match h.client.get(&at).await.ok()? {
        Object::PersistentVolume(v) => Some(v),
        _ => None,
    }
}

/// The claim once Bound, with its volume.
async fn bound(h: &Harness, name: &str) -> (PersistentVolumeClaim, PersistentVolume) {
    eventually(&format!("claim {name} Bound"), SETTLE, || async {
        let c = claim(h, name).await.filter(|c| c.phase() == "Bound")?;
        let v = volume(h, c.spec.volume_name.as_deref()?).await?;
        Some((c, v))
    })
    .await
}

/// The node a volume's affinity pins it to.
fn pinned(v: &PersistentVolume) -> String {
    v.required_terms()
        .first()
        .and_then(|t| t.match_expressions.first())
        .and_then(|r| r.values.first())
        .cloned()
        .expect("a local volume pinned to a node")
}

/// Deletes `kind/name` and waits until it is gone.
async fn gone(h: &Harness, what: &str, kind: &str, name: &str) {
    h.ctl(&["delete", kind, name]);
    let kind = Kind::from_name(kind).expect("a known kind");
    let at = jotasu_api::ObjectRef {
        kind,
        namespace: kind.namespaced().then(|| "default".to_owned()),
        name: name.to_owned(),
    };
    eventually(what, SETTLE, || async {
        h.client.get(&at).await.is_err().then_some(())
    })
    .await;
}

fn scheduled_message(p: &Pod) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled")?
        .message
        .clone()
}

/// A WaitForFirstConsumer claim is provisioned on its first pod's node;
/// what the pod wrote is read by a later pod after the first is deleted
/// and after the node's agent restarted; pods follow the volume to its
/// node (one asked onto the other node is refused in the scheduler's
/// words); deleting the claim removes the directory (Delete), while a
/// Retain class keeps both the volume (Released) and the directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_content_outlives_pods_and_agent_restarts() {
    if !require_root("claim_content_outlives_pods_and_agent_restarts") {
        return;
    }
    let mut h = Harness::start(ClusterOptions {
        nodes: 2,
        ..ClusterOptions::default()
    })
    .await;
    h.apply(CLAIMS);
    eventually("claim data waits for its first pod", SETTLE, || async {
        let page = h.ctl(&["describe", "pvc", "data"]);
        page.contains("waiting for first consumer to be created before binding")
            .then_some(())
    })
    .await;
    h.apply(&pod(
        "writer",
        "data",
        "echo kept-across-pods > /data/file; id -G > /data/groups; sleep 3600",
        None,
    ));
    let writer = eventually("the writer Ready", SETTLE, || async {
        h.pod("writer").await.filter(ready)
    })
    .await;
    let node = writer.spec.node_name.clone().expect("bound");
    let (c, v) = bound(&h, "data").await;
    assert_eq!(pinned(&v), node, "provisioned on the pod's node");
    assert_eq!(c.spec.storage_class_name.as_deref(), Some("standard"));
    let index = h
        .node_names()
        .iter()
        .position(|n| *n == node)
        .expect("the pod's node is a node of the cluster");
    let dir: PathBuf = h.cluster.nodes()[index]
        .state_dir()
        .join("volumes")
        .join(v.metadata.name());
    assert_eq!(
        v.spec.local.as_ref().map(|l| PathBuf::from(&l.path)),
        Some(dir.clone())
    );
    let file = eventually("the file on the node", SETTLE, || async {
        std::fs::read_to_string(dir.join("file")).ok()
    })
    .await;
    assert_eq!(file, "kept-across-pods\n");
    let groups = h.ctl(&["exec", "writer", "--", "cat", "/data/groups"]);
    assert!(
        groups.split_whitespace().any(|g| g == "2000"),
        "fsGroup: {groups}"
    );
    let table = h.ctl(&["get", "pvc", "data"]);
    assert!(
        table.contains("Bound") && table.contains(v.metadata.name()) && table.contains("RWO"),
        "{table}"
    );
    let described = h.ctl(&["describe", "pvc", "data"]);
    assert!(described.contains("Used By:       writer"), "{described}");

    // The pod goes; a new one (placed freely) lands on the volume's node
    // and reads what the first wrote; one asked onto the other node waits.
    gone(&h, "the writer deleted", "pod", "writer").await;
    let other = h
        .node_names()
        .into_iter()
        .find(|n| *n != node)
        .expect("a second node");
    h.apply(&pod("elsewhere", "data", "sleep 3600", Some(&other)));
    h.apply(&pod("reader", "data", "sleep 3600", None));
    let reader = eventually("the reader Ready", SETTLE, || async {
        h.pod("reader").await.filter(ready)
    })
    .await;
    assert_eq!(reader.spec.node_name.as_deref(), Some(node.as_str()));
    assert_eq!(
        h.ctl(&["exec", "reader", "--", "cat", "/data/file"]),
        "kept-across-pods\n"
    );
    let refused = eventually("elsewhere unschedulable", SETTLE, || async {
        scheduled_message(&h.pod("elsewhere").await?)
    })
    .await;
    assert!(
        refused.contains("node(s) had volume node affinity conflict"),
        "{refused}"
    );

    // The node's agent restarts: the volume and its content stay.
    h.cluster.node_mut(index).stop_agent();
    h.cluster
        .node_mut(index)
        .start_agent()
        .expect("the agent starts");
    gone(&h, "the reader deleted", "pod", "reader").await;
    h.apply(&pod(
        "after-restart",
        "data",
        "cat /data/file; sleep 3600",
        None,
    ));
    eventually("after-restart Ready", SETTLE, || async {
        h.pod("after-restart").await.filter(ready)
    })
    .await;
    assert_eq!(
        h.ctl(&["exec", "after-restart", "--", "cat", "/data/file"]),
        "kept-across-pods\n"
    );

    // Retain: the claim goes, the volume is Released, the directory stays.
    h.apply(&pod(
        "retainer",
        "kept",
        "echo retained > /data/file; sleep 3600",
        None,
    ));
    eventually("the retainer Ready", SETTLE, || async {
        h.pod("retainer").await.filter(ready)
    })
    .await;
    let (_, kept) = bound(&h, "kept").await;
    let kept_dir = PathBuf::from(&kept.spec.local.as_ref().expect("a local volume").path);
    gone(&h, "the retainer deleted", "pod", "retainer").await;
    gone(&h, "claim kept deleted", "pvc", "kept").await;
    let released = eventually("the kept volume Released", SETTLE, || async {
        volume(&h, kept.metadata.name())
            .await
            .filter(|v| v.phase() == "Released")
    })
    .await;
    assert_eq!(
        released.spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Retain")
    );
    // Two of the agent's passes over its volumes (5 s apart) have run.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        std::fs::read_to_string(kept_dir.join("file"))
            .ok()
            .as_deref(),
        Some("retained\n"),
        "Retain keeps the directory"
    );

    // pvc-protection: deleting the claim while pods use it only marks it;
    // the running pod keeps its data.
    h.ctl(&["delete", "pvc", "data"]);
    let marked = claim(&h, "data")
        .await
        .expect("the claim is kept while used");
    assert!(marked.metadata.deletion_timestamp.is_some());
    let row = h.ctl(&["get", "pvc", "data"]);
    assert!(row.contains("Terminating"), "{row}");
    assert_eq!(
        h.ctl(&["exec", "after-restart", "--", "cat", "/data/file"]),
        "kept-across-pods\n"
    );
    // Delete: the pods go, then the claim, the volume and its directory.
    gone(&h, "after-restart deleted", "pod", "after-restart").await;
    gone(&h, "elsewhere deleted", "pod", "elsewhere").await;
    eventually("claim data gone with its pods", SETTLE, || async {
        claim(&h, "data").await.is_none().then_some(())
    })
    .await;
    eventually("the data volume deleted", SETTLE, || async {
        volume(&h, v.metadata.name()).await.is_none().then_some(())
    })
    .await;
    eventually("its directory removed", SETTLE, || async {
        (!dir.exists()).then_some(())
    })
    .await;
}

/// Claims that cannot be satisfied stay Pending and say why, in
/// Kubernetes' words, in `jotactl describe pvc`; a pod naming a missing
/// claim, or one whose volume fits no node, waits saying so; a static
/// volume made by hand binds a claim without a class.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsatisfiable_claims_say_why() {
    if !require_root("unsatisfiable_claims_say_why") {
        return;
    }
    let h = Harness::start(ClusterOptions::default()).await;
    let static_dir = h.cluster.dir().join("static-volume");
    std::fs::create_dir_all(&static_dir).expect("the static volume's directory");
    h.apply(&format!(
        r#"apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: gold}}
spec:
  storageClassName: gold
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: classless}}
spec:
  storageClassName: ""
  accessModes: [ReadWriteMany]
  resources: {{requests: {{storage: 1Gi}}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: huge}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Pi}}}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: by-hand}}
spec:
  storageClassName: ""
  capacity: {{storage: 2Gi}}
  accessModes: [ReadWriteOnce]
  hostPath: {{path: {}, type: Directory}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: small}}
spec:
  storageClassName: ""
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
"#,
        static_dir.display()
    ));
    for (name, why) in [
        ("gold", r#"storageclass.storage.k8s.io "gold" not found"#),
        (
            "classless",
            "no persistent volumes available for this claim and no storage class is set",
        ),
    ] {
        let page = eventually(&format!("claim {name} says why"), SETTLE, || async {
            let page = h.ctl(&["describe", "pvc", name]);
            page.contains(why).then_some(page)
        })
        .await;
        assert!(page.contains("Status:        Pending"), "{page}");
    }
    let (_, v) = bound(&h, "small").await;
    assert_eq!(v.metadata.name(), "by-hand", "the static volume binds");
    h.apply(&pod("missing", "nope", "sleep 3600", None));
    h.apply(&pod("too-big", "huge", "sleep 3600", None));
    h.apply(&pod(
        "on-static",
        "small",
        "echo by-hand > /data/f; sleep 3600",
        None,
    ));
    let m = eventually("missing unschedulable", SETTLE, || async {
        scheduled_message(&h.pod("missing").await?)
    })
    .await;
    assert!(
        m.contains(r#"persistentvolumeclaim "nope" not found"#),
        "{m}"
    );
    let m = eventually("too-big unschedulable", SETTLE, || async {
        scheduled_message(&h.pod("too-big").await?)
    })
    .await;
    assert!(
        m.contains("node(s) did not have enough free storage"),
        "{m}"
    );
    assert!(
        claim(&h, "huge")
            .await
            .is_some_and(|c| c.phase() == "Pending")
    );
    eventually("on-static Ready", SETTLE, || async {
        h.pod("on-static").await.filter(ready)
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(static_dir.join("f"))
            .ok()
            .as_deref(),
        Some("by-hand\n")
    );
    // The same claim mounted readOnly: readable, not writable.
    h.apply(
        &pod("read-only", "small", "sleep 3600", None)
            .replace("{claimName: small}", "{claimName: small, readOnly: true}"),
    );
    eventually("read-only Ready", SETTLE, || async {
        h.pod("read-only").await.filter(ready)
    })
    .await;
    assert_eq!(
        h.ctl(&["exec", "read-only", "--", "cat", "/data/f"]),
        "by-hand\n"
    );
    let write = h.ctl.at(
        &h.server,
        &["exec", "read-only", "--", "sh", "-c", "echo x > /data/g"],
    );
    assert_ne!(write.code, 0, "a readOnly claim is mounted read-only");
    assert!(!static_dir.join("g").exists());
    let table = h.ctl(&["get", "pv"]);
    assert!(
        table.contains("by-hand") && table.contains("default/small"),
        "{table}"
    );
    let classes = h.ctl(&["get", "storageclass"]);
    assert!(
        classes.contains("standard (default)") && classes.contains("WaitForFirstConsumer"),
        "{classes}"
    );
}
