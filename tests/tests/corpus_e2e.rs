//! The kubernetes/examples manifests jotasu accepts (tests/corpus,
//! `accepted` in expected.tsv), applied through the real jotactl to a
//! two-node cluster, one example directory per apply (each in a namespace
//! of its own unless its manifests name one), with one change: container
//! images become the local busybox (no registry is reachable here), whose
//! entrypoint sleeps. Every object is accepted by the server, and every
//! pod runs (those the nodes could not hold, or that need their own
//! image's files, are listed in [`NOT_RUNNABLE`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use jotasu_api::kinds::pod_status::PodPhase;
use jotasu_api::manifest::split_documents;
use jotasu_api::{Kind, Object, Pod};
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::e2e::{Harness, SETTLE};
use jotasu_tests::image::IDLE_IMAGE;
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;
use serde_json::Value;

/// Accepted files whose pods cannot run here (their containers need their
/// own image, or their claims cannot be bound), and why.
const NOT_RUNNABLE: &[(&str, &str)] = &[
    (
        "AI/vllm-deployment/vllm-deployment.yaml",
        "runs python3 and asks for an nvidia.com/gpu",
    ),
    ("_archived/cluster-dns/dns-frontend-pod.yaml", "runs python"),
    (
        "_archived/cpu-manager/exclusive-2.yaml",
        "asks for 2 exclusive CPUs, as many as a node here has",
    ),
    (
        "_archived/cpu-manager/exclusive-3.yaml",
        "asks for 3 CPUs; a node here has 2",
    ),
    (
        "_archived/cpu-manager/exclusive-4.yaml",
        "asks for 4 CPUs; a node here has 2",
    ),
    (
        "_archived/javaweb-tomcat-sidecar/javaweb.yaml",
        "its init container copies /sample.war out of its own image",
    ),
    (
        "_archived/javaweb-tomcat-sidecar/javaweb-2.yaml",
        "its init container copies /sample.war out of its own image",
    ),
    // Pods whose claims cannot be bound here; the claims and classes are
    // applied and stay Pending, saying why (`jotactl describe pvc`).
    (
        "AI/model-serving-tensorflow/deployment.yaml",
        "its claim asks for the volume my-model-pv, which has no class while the claim got the default one (Kubernetes refuses the binding too: storageClassName does not match)",
    ),
    (
        "_archived/volumes/azure_disk/claim/blob-based-disk/account-specified-hdd/pod-uses-account-hdd.yaml",
        AZURE_DISK,
    ),
    (
        "_archived/volumes/azure_disk/claim/blob-based-disk/dedicated-hdd/pod-uses-dedicated-hdd.yaml",
        AZURE_DISK,
    ),
    (
        "_archived/volumes/azure_disk/claim/blob-based-disk/shared-hdd/pod-uses-shared-hdd.yaml",
        AZURE_DISK,
    ),
    (
        "_archived/volumes/azure_disk/claim/blob-based-disk/shared-ssd/pod-uses-shared-ssd.yaml",
        AZURE_DISK,
    ),
    (
        "_archived/volumes/azure_disk/claim/managed-disk/managed-hdd/pod-uses-managed-hdd.yaml",
        AZURE_DISK,
    ),
    (
        "_archived/volumes/azure_disk/claim/managed-disk/managed-ssd/pod-uses-managed-ssd.yaml",
        AZURE_DISK,
    ),
    (
        "_archived/volumes/azure_file/azure-2.yaml",
        "its claim (class \"\") binds only the azureFile volume, which jotasu refuses",
    ),
    (
        "_archived/volumes/nfs/nfs-busybox-deployment.yaml",
        "its claim binds only the nfs volume, which jotasu refuses",
    ),
    (
        "_archived/volumes/nfs/nfs-web-deployment.yaml",
        "its claim binds only the nfs volume, which jotasu refuses",
    ),
    (
        "_archived/volumes/nfs/nfs-server-deployment.yaml",
        "its claim is defined in provisioner/, applied to another namespace",
    ),
    (
        "_archived/volumes/portworx/portworx-volume-pvcscpod.yaml",
        "the pod pvpod again (an alternative), with a claim of the portworx provisioner, which jotasu does not run",
    ),
    (
        "_archived/volumes/scaleio/pod-sc-pvc.yaml",
        "its claim's file, sc-pvc.yaml, is not valid YAML",
    ),
    (
        "_archived/volumes/storageos/storageos-pvcpod.yaml",
        "its claim's class fast names a provisioner jotasu does not run",
    ),
    (
        "_archived/volumes/storageos/storageos-sc-pvcpod.yaml",
        "its claim's class fast names a provisioner jotasu does not run",
    ),
    (
        "_archived/volumes/vsphere/vsphere-volume-pvcscpod.yaml",
        "the pod pvpod again (an alternative), with a claim of the vSphere provisioner, which jotasu does not run",
    ),
    (
        "_archived/volumes/vsphere/vsphere-volume-pvcscvsanpod.yaml",
        "the pod pvpod again (an alternative), naming a claim no file defines",
    ),
    (
        "_archived/volumes/vsphere/simple-statefulset.yaml",
        "its claims' class thin-disk names the vSphere provisioner, which jotasu does not run",
    ),
    (
        "databases/cassandra/cassandra-statefulset.yaml",
        "its class fast is defined first by the StorageOS and vSphere examples on this shared cluster; it runs on its own in cassandra_runs_unchanged",
    ),
];

const AZURE_DISK: &str = "its claim's class is defined only as a storage.k8s.io/v1beta1 StorageClass, which Kubernetes removed: the claim stays Pending";

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// Every container's image becomes [`IDLE_IMAGE`] (the one change).
fn replace_images(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for key in ["containers", "initContainers"] {
                if let Some(Value::Array(cs)) = map.get_mut(key) {
                    for c in cs {
                        if let Some(c) = c.as_object_mut() {
                            c.insert("image".into(), Value::String(IDLE_IMAGE.into()));
                        }
                    }
                }
            }
            for child in map.values_mut() {
                replace_images(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(replace_images),
        _ => {}
    }
}

/// Whether any object of `v` (or of its `items`) names a namespace.
fn names_namespace(v: &Value) -> bool {
    v.pointer("/metadata/namespace").is_some()
        || v.get("items")
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(names_namespace))
}

/// Accepted, runnable corpus files by directory.
fn accepted() -> BTreeMap<String, Vec<String>> {
    let table = std::fs::read_to_string(corpus().join("expected.tsv")).expect("expected.tsv");
    let mut by_dir: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in table.lines() {
        let mut cells = line.split('\t');
        let (Some(file), Some("accepted")) = (cells.next(), cells.next()) else {
            continue;
        };
        if NOT_RUNNABLE.iter().any(|(f, _)| *f == file) {
            continue;
        }
        let dir = file.rsplit_once('/').map_or("", |(d, _)| d).to_owned();
        by_dir.entry(dir).or_default().push(file.to_owned());
    }
    by_dir
}

/// A pod's name, phase, scheduling message and containers' waiting reasons.
fn describe(p: &Pod) -> String {
    let status = p.status.as_ref();
    let scheduled = status
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "PodScheduled"))
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    format!(
        "{}/{}: {:?} {scheduled} {}",
        p.metadata.namespace.as_deref().unwrap_or(""),
        p.metadata.name(),
        status.and_then(|s| s.phase),
        serde_json::to_string(&status.map(|s| &s.container_statuses)).unwrap_or_default()
    )
}

/// Whether `v` is a StorageClass, PersistentVolume or PersistentVolumeClaim
/// an earlier file defined (in `dir`, for claims): examples offer one per
/// cloud as alternatives, and their specs cannot change — in Kubernetes as
/// here — so the first stands.
fn redefines_storage(v: &Value, dir: &str, seen: &mut BTreeSet<String>) -> bool {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
    let scope = match kind {
        "StorageClass" | "PersistentVolume" => "",
        "PersistentVolumeClaim" => dir,
        _ => return false,
    };
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_some_and(|name| !seen.insert(format!("{kind}/{scope}/{name}")))
}

fn is_running(p: &Pod) -> bool {
    p.status.as_ref().and_then(|s| s.phase) == Some(PodPhase::Running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accepted_examples_run_on_a_cluster() {
    if !require_root("the_accepted_examples_run_on_a_cluster") {
        return;
    }
    // The nodes allow privileged containers, as the PodSecurityPolicy
    // example's cluster would (without the flag its pod is refused by the
    // node, as the pod security tests check).
    let mut options = ClusterOptions {
        nodes: 2,
        ..ClusterOptions::default()
    };
    options.agent_args.push("--allow-privileged".into());
    let h = Harness::start(options).await;
    h.cluster
        .import_busybox_image(IDLE_IMAGE)
        .expect("the idle busybox image imports");
    let mut namespaces = BTreeSet::new();
    let mut storage = BTreeSet::new();
    let groups = accepted();
    assert!(groups.len() >= 10, "{} example directories", groups.len());
    for (i, (dir, files)) in groups.iter().enumerate() {
        // Each file as its own apply, Namespaces first, as `kubectl apply
        // -f` takes a directory file by file (two files of one example may
        // define the same object: its alternatives).
        let mut per_file: Vec<Vec<Value>> = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(corpus().join("kubernetes-examples").join(f))
                .expect("a corpus file");
            let mut docs = Vec::new();
            for doc in split_documents(&text) {
                let mut v = doc.expect("an accepted file parses");
                if v.is_null() || redefines_storage(&v, dir, &mut storage) {
                    continue;
                }
                replace_images(&mut v);
                docs.push(v);
            }
            if !docs.is_empty() {
                per_file.push(docs);
            }
        }
        let is_namespace = |v: &Value| v.get("kind").and_then(Value::as_str) == Some("Namespace");
        per_file.sort_by_key(|docs| !docs.iter().any(is_namespace));
        let own_namespace = !per_file.iter().flatten().any(names_namespace);
        // Namespaces the example expects to exist (made by a file jotasu
        // refuses, or by hand): made first, as a user would have them.
        let defined: BTreeSet<&str> = per_file
            .iter()
            .flatten()
            .filter(|v| is_namespace(v))
            .filter_map(|v| v.pointer("/metadata/name").and_then(Value::as_str))
            .collect();
        for v in per_file.iter().flatten() {
            if let Some(ns) = v.pointer("/metadata/namespace").and_then(Value::as_str) {
                if !defined.contains(ns) && namespaces.insert(ns.to_owned()) {
                    h.apply(&format!(
                        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
                    ));
                }
                namespaces.insert(ns.to_owned());
            }
        }
        let own = format!("corpus-{i}");
        if own_namespace {
            h.apply(&format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {own}\n"
            ));
            namespaces.insert(own.clone());
        }
        for docs in &per_file {
            let stream: String = docs.iter().map(|v| format!("{v}\n")).collect();
            let run = if own_namespace {
                h.ctl
                    .pipe(&h.server, &["apply", "-n", &own, "-f", "-"], &stream)
            } else {
                h.ctl.pipe(&h.server, &["apply", "-f", "-"], &stream)
            };
            assert_eq!(run.code, 0, "applying {dir}: {}{}", run.stdout, run.stderr);
        }
    }
    let deadline = std::time::Instant::now() + SETTLE * 3;
    let pods = loop {
        let list = h
            .client
            .list(Kind::Pod, None, "")
            .await
            .expect("listing pods");
        let pods: Vec<Pod> = list
            .items
            .into_iter()
            .filter_map(|o| match o {
                Object::Pod(p) => Some(p),
                _ => None,
            })
            .filter(|p| namespaces.contains(p.metadata.namespace.as_deref().unwrap_or("default")))
            .collect();
        let waiting: Vec<String> = pods
            .iter()
            .filter(|p| !is_running(p))
            .map(describe)
            .collect();
        if waiting.is_empty() {
            break pods;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pods not running:\n{}",
            waiting.join("\n")
        );
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    };
    let running = pods.iter().filter(|p| is_running(p)).count();
    eprintln!(
        "corpus on a cluster: {} directories applied, {} pods, {running} running",
        groups.len(),
        pods.len()
    );
    assert!(pods.len() >= 30, "only {} pods", pods.len());
    assert!(
        running * 4 >= pods.len() * 3,
        "{running} of {} pods running",
        pods.len()
    );
}

/// The Cassandra example (a StatefulSet with its headless Service, its
/// claims of the class `fast` of minikube's hostpath provisioner, which
/// jotasu's local provisioner serves), applied unchanged but for the
/// image: cassandra-0 runs on its own bound claim; its readiness probe
/// runs /bin/bash, which busybox lacks, so OrderedReady holds
/// cassandra-1 back, as Kubernetes would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_runs_unchanged() {
    if !require_root("cassandra_runs_unchanged") {
        return;
    }
    let h = Harness::start(ClusterOptions::default()).await;
    h.cluster
        .import_busybox_image(IDLE_IMAGE)
        .expect("the idle busybox image imports");
    let dir = corpus().join("kubernetes-examples/databases/cassandra");
    for file in ["cassandra-service.yaml", "cassandra-statefulset.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).expect("a corpus file");
        let mut stream = String::new();
        for doc in split_documents(&text) {
            let mut v = doc.expect("the file parses");
            if v.is_null() {
                continue;
            }
            replace_images(&mut v);
            stream.push_str(&format!("{v}\n"));
        }
        let run = h.ctl.pipe(&h.server, &["apply", "-f", "-"], &stream);
        assert_eq!(run.code, 0, "applying {file}: {}{}", run.stdout, run.stderr);
    }
    eventually("cassandra-0 running", SETTLE * 2, || async {
        h.pod("cassandra-0").await.filter(is_running)
    })
    .await;
    let claim = h.ctl(&["get", "pvc", "cassandra-data-cassandra-0", "--no-headers"]);
    assert!(claim.contains("Bound") && claim.contains("fast"), "{claim}");
    let hostname = h.ctl(&["exec", "cassandra-0", "--", "hostname"]);
    assert_eq!(hostname, "cassandra-0\n");
    assert!(
        h.pod("cassandra-1").await.is_none(),
        "OrderedReady waits for cassandra-0"
    );
}

/// The chart `helm create` makes, rendered by the real helm with
/// autoscaling on, piped into `jotactl apply -f -`: every object accepted,
/// its pod running (its nginx image replaced by the idle busybox; its
/// probes, which ask nginx for `/`, are dropped with the image).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_helm_create_chart_runs_through_jotactl() {
    let test = "the_helm_create_chart_runs_through_jotactl";
    if !require_root(test) {
        return;
    }
    let Some(helm) = jotasu_tests::k8s_clients::require("helm", test) else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let helm_run = |args: &[&str]| jotasu_tests::k8s_clients::helm(&helm, dir.path(), args);
    helm_run(&["create", "mychart"]);
    let rendered = helm_run(&[
        "template",
        "web",
        "mychart",
        "--set",
        "autoscaling.enabled=true",
    ]);
    let mut stream = String::new();
    for doc in split_documents(&rendered) {
        let mut v = doc.expect("helm's output parses");
        if v.is_null() {
            continue;
        }
        replace_images(&mut v);
        strip_probes(&mut v);
        stream.push_str(&format!("{v}\n"));
    }
    let h = Harness::start(ClusterOptions::default()).await;
    h.cluster
        .import_busybox_image(IDLE_IMAGE)
        .expect("the idle busybox image imports");
    let run = h.ctl.pipe(&h.server, &["apply", "-f", "-"], &stream);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for created in [
        "serviceaccount/web-mychart created",
        "service/web-mychart created",
        "deployment.apps/web-mychart created",
        "horizontalpodautoscaler.autoscaling/web-mychart created",
    ] {
        assert!(
            run.stdout.contains(created),
            "{created} missing from {}",
            run.stdout
        );
    }
    // The Deployment's pod runs (the chart's test pod, a helm hook that
    // `helm template` renders too, runs its wget once and ends).
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let pods = h.pods("app.kubernetes.io/instance=web").await;
        let served = pods.iter().any(|p| {
            p.metadata
                .owner_references
                .iter()
                .any(|o| o.kind == "ReplicaSet")
                && jotasu_tests::e2e::ready(p)
        });
        if served
            && pods
                .iter()
                .any(|p| p.metadata.name() == "web-mychart-test-connection")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the chart's pod never ran: {:?}",
            pods.iter().map(describe).collect::<Vec<_>>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Probes ask the replaced image's server; without it they would fail.
fn strip_probes(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                map.remove(probe);
            }
            map.values_mut().for_each(strip_probes);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_probes),
        _ => {}
    }
}

/// Required pod anti-affinity by host spreads a Deployment's replicas over
/// the nodes, one each; the replica beyond the nodes waits with
/// Kubernetes' reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anti_affinity_spreads_replicas_over_nodes() {
    if !require_root("anti_affinity_spreads_replicas_over_nodes") {
        return;
    }
    let h = Harness::start(ClusterOptions {
        nodes: 2,
        ..ClusterOptions::default()
    })
    .await;
    h.apply(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 3
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: spread}}
            topologyKey: kubernetes.io/hostname
      containers:
      - {name: c, image: jotasu.local/busybox:latest, command: [sleep, "3600"]}
"#,
    );
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let pods = h.pods("app=spread").await;
        let ready: Vec<&Pod> = pods
            .iter()
            .filter(|p| jotasu_tests::e2e::ready(p))
            .collect();
        let nodes: BTreeSet<&str> = ready
            .iter()
            .filter_map(|p| p.spec.node_name.as_deref())
            .collect();
        let waiting: Vec<&Pod> = pods.iter().filter(|p| p.spec.node_name.is_none()).collect();
        let reason = waiting.first().and_then(|p| {
            p.status
                .as_ref()?
                .conditions
                .iter()
                .find(|c| c.type_ == "PodScheduled")?
                .message
                .clone()
        });
        if pods.len() == 3 && ready.len() == 2 && waiting.len() == 1 && reason.is_some() {
            assert_eq!(nodes.len(), 2, "two replicas share a node: {nodes:?}");
            assert_eq!(
                reason.as_deref(),
                Some("0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules.")
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not two replicas running on two nodes and one waiting: {:?}",
            pods.iter()
                .map(|p| (
                    p.metadata.name(),
                    &p.spec.node_name,
                    p.status.as_ref().and_then(|s| s.phase)
                ))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
