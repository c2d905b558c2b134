//! Workloads carried across the leader's death, on a highly available
//! cluster on one machine ([`Harness`] with three control-plane machines,
//! each running an etcd member and a control plane): a rolling update under
//! steady load through a ClusterIP Service completes after the leading
//! control plane is killed with SIGKILL in its middle, with no failed
//! request and no pod created twice (counted by the distinct pod UIDs a
//! watch on a surviving control plane saw); and a HorizontalPodAutoscaler
//! whose Deployment burns real CPU (the agents' cgroup accounting, read by
//! the leader) is carried out by the next leader.
//!
//! Needs `/usr/bin/etcd`: missing, the tests say so loudly and pass, except
//! under `CI=true`, where they fail.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use jotasu_api::client::{Client, WatchFilter};
use jotasu_api::{Deployment, HorizontalPodAutoscaler, Kind, Object, Pod, ReplicaSet};
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::dns::PodPlace;
use jotasu_tests::e2e::{Harness, SETTLE, r};
use jotasu_tests::ha::can_run;
use jotasu_tests::lab::testbin_path;
use jotasu_tests::traffic::{HttpLoad, http_load_args};
use jotasu_tests::wait::eventually;

/// One cluster at a time: two of them (six etcd members and control
/// planes, several agents) would starve a 2-core machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Three control-plane machines on etcd and `nodes` nodes (replicas
/// spread), the control planes run with `args` added.
async fn ha_cluster(nodes: usize, args: &[&str]) -> Harness {
    let mut options = ClusterOptions {
        control_planes: 3,
        ..ClusterOptions::spreading(nodes)
    };
    options
        .controlplane_args
        .extend(args.iter().map(|a| (*a).to_owned()));
    let h = Harness::start(options).await;
    assert_eq!(h.cluster.control_planes().len(), 3);
    h
}

/// The leading control plane's index, once there is one.
async fn leader(h: &Harness) -> usize {
    eventually("a leader", SETTLE, || async {
        h.cluster.leader().await.ok().flatten()
    })
    .await
}

/// Kills the leader `leader` with SIGKILL, points the harness's client at a
/// control plane still answering and waits for another leader; its index.
async fn kill_the_leader(h: &mut Harness, leader: usize) -> usize {
    h.cluster
        .kill9_control_plane(leader)
        .expect("the leader is killed");
    h.client = h
        .cluster
        .client()
        .await
        .expect("another control plane answers");
    eventually("another control plane leading", SETTLE, || async {
        h.cluster
            .leader()
            .await
            .ok()
            .flatten()
            .filter(|l| *l != leader)
    })
    .await
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

// ---------------------------------------------------------------------------
// A rolling update under load, the leader killed in its middle.

/// Four HTTP servers with a readiness probe behind a ClusterIP Service
/// (as graceful_e2e's); the env var REVISION changes the template.
const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 4
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: httpd
        image: jotasu.local/busybox:latest
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && echo ok > /www/healthz && httpd -f -p 80 -h /www & wait"]
        env:
        - {name: REVISION, value: "VALUE"}
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
"#;

/// Every pod of `web` a watch saw: uid → (owning ReplicaSet, pod name).
#[derive(Debug, Default)]
struct Seen {
    pods: BTreeMap<String, (String, String)>,
    /// Why the watch ended, if it did.
    ended: Option<String>,
}

impl Seen {
    fn record(&mut self, p: &Pod) {
        let owner = p
            .metadata
            .owner_references
            .iter()
            .find(|o| o.kind == "ReplicaSet")
            .map(|o| o.name.clone())
            .unwrap_or_default();
        if let Some(uid) = p.metadata.uid.clone() {
            self.pods
                .entry(uid)
                .or_insert_with(|| (owner, p.metadata.name().to_owned()));
        }
    }

    /// Distinct pod uids seen per ReplicaSet.
    fn by_replica_set(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (uid, (rs, _)) in &self.pods {
            out.entry(rs.clone()).or_default().insert(uid.clone());
        }
        out
    }
}

/// Records every pod of `web` (listed now, then watched from the list's
/// revision on, so nothing falls between) through `client`.
async fn watch_web_pods(client: Client) -> (Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let list = client
        .list(Kind::Pod, Some("default"), "app=web")
        .await
        .expect("pods listed");
    {
        let mut s = seen.lock().expect("not poisoned");
        for o in &list.items {
            if let Object::Pod(p) = o {
                s.record(p);
            }
        }
    }
    let filter = WatchFilter {
        kinds: vec![Kind::Pod],
        namespace: Some("default".into()),
        label_selector: "app=web".into(),
        from_revision: list.revision + 1,
        node: None,
    };
    let mut stream = client.watch(&filter).await.expect("the watch opens");
    let into = seen.clone();
    let task = tokio::spawn(async move {
        while let Some(event) = stream.next().await {
            match event {
                Ok(e) => {
                    if let Object::Pod(p) = &e.object {
                        into.lock().expect("not poisoned").record(p);
                    }
                }
                Err(e) => {
                    into.lock().expect("not poisoned").ended = Some(format!("{e}"));
                    return;
                }
            }
        }
        into.lock().expect("not poisoned").ended = Some("the stream ended".into());
    });
    (seen, task)
}

/// The ReplicaSets of `web`: name → (spec.replicas, the template's REVISION).
async fn replica_sets(client: &Client) -> BTreeMap<String, (i32, String)> {
    let list = client
        .list(Kind::ReplicaSet, Some("default"), "app=web")
        .await
        .expect("replica sets listed");
    list.items
        .into_iter()
        .filter_map(|o| ReplicaSet::try_from(o).ok())
        .map(|rs| {
            let revision = rs
                .spec
                .template
                .spec
                .containers
                .first()
                .and_then(|c| c.env.iter().find(|e| e.name == "REVISION"))
                .and_then(|e| e.value.clone())
                .unwrap_or_default();
            (
                rs.metadata.name().to_owned(),
                (rs.spec.replicas.unwrap_or(1), revision),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_survives_the_leader_killed_under_load() {
    if !can_run("a_rolling_update_survives_the_leader_killed_under_load") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let mut h = ha_cluster(2, &[]).await;
    h.apply(&WEB.replace("VALUE", "1"));
    let first = h.ready_pods("app=web", 4).await;
    let vip = h.vip("web").await;
    eventually("four endpoints", SETTLE, || async {
        (h.endpoint_ips("web").await.len() == 4).then_some(())
    })
    .await;
    let client_pod = h.client_pod().await;
    eprintln!("cluster and workload up: {:.1} s", secs(started.elapsed()));

    // Which one leads, and a survivor to watch and ask through.
    let old = leader(&h).await;
    let survivor = (old + 1) % 3;
    let survivor_url = h.cluster.control_planes()[survivor].socket_url();
    let watcher = h.cluster.control_planes()[survivor]
        .control_plane()
        .client()
        .await
        .expect("a client of the survivor");
    let (seen, watch) = watch_web_pods(watcher.clone()).await;
    let initial: BTreeSet<String> = first
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    assert_eq!(seen.lock().expect("not poisoned").pods.len(), 4);

    // Steady load: one request every 20 ms, each on a new connection.
    let place = PodPlace::of(&client_pod).expect("the client's place");
    let testbin = testbin_path().expect("jotasu-testbin is built");
    let testbin = testbin.to_str().expect("a UTF-8 path");
    let args = http_load_args(&format!("{vip}:80"), 1, 50.0);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cmd = place.command(Duration::from_secs(900), testbin, &args);
    let load = HttpLoad::start(cmd, "client").expect("the load starts");

    // The rolling update, through the survivor; the leader dies as soon
    // as the first pod of the new revision exists.
    let update = Instant::now();
    let run = h.ctl.pipe(
        &survivor_url,
        &["apply", "-f", "-"],
        &WEB.replace("VALUE", "2"),
    );
    assert_eq!(run.code, 0, "apply failed: {}", run.stderr);
    eventually("a pod of the new revision", SETTLE, || async {
        let s = seen.lock().expect("not poisoned");
        s.pods
            .keys()
            .any(|uid| !initial.contains(uid))
            .then_some(())
    })
    .await;
    let in_progress = replica_sets(&watcher).await;
    eprintln!(
        "rollout under way after {:.1} s ({in_progress:?}); killing leader {}",
        secs(update.elapsed()),
        h.cluster.control_planes()[old].name()
    );
    let killed = Instant::now();
    let next = kill_the_leader(&mut h, old).await;
    eprintln!(
        "control plane {} leads {:.1} s after the kill",
        h.cluster.control_planes()[next].name(),
        secs(killed.elapsed())
    );

    let run = h.ctl.at(
        &survivor_url,
        &["rollout", "status", "deployment/web", "--timeout", "300s"],
    );
    assert_eq!(run.code, 0, "the rollout completes: {run:?}");
    let d: Deployment = match watcher.get(&r(Kind::Deployment, "web")).await {
        Ok(Object::Deployment(d)) => d,
        other => panic!("the Deployment: {other:?}"),
    };
    let status = d.status.expect("a status");
    assert_eq!(
        (
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas,
            status.replicas
        ),
        (4, 4, 4, 4),
        "every replica updated and ready: {status:?}"
    );
    eprintln!(
        "rollout complete {:.1} s after the kill ({:.1} s after the update)",
        secs(killed.elapsed()),
        secs(update.elapsed())
    );
    // Let any late duplicate show up in the watch.
    let second = h.ready_pods("app=web", 4).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = load.stop().expect("the load reports");
    eprintln!(
        "load: {} answered, {} failed",
        report.ok,
        report.failures.len()
    );

    // No pod created twice: the new ReplicaSet's pods, counted by the
    // distinct uids the survivor's watch saw all along, are its replicas;
    // the old ones created none after the update.
    let sets = replica_sets(&watcher).await;
    let s = seen.lock().expect("not poisoned");
    assert_eq!(s.ended, None, "the survivor's watch ended");
    let by_rs = s.by_replica_set();
    eprintln!(
        "replica sets: {sets:?}; pods seen per replica set: {:?}",
        by_rs.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
    );
    let new: Vec<_> = sets.iter().filter(|(_, (_, rev))| rev == "2").collect();
    assert_eq!(new.len(), 1, "one ReplicaSet of the new revision: {sets:?}");
    let (new_name, (new_replicas, _)) = new[0];
    assert_eq!(*new_replicas, 4);
    let created: &BTreeSet<String> = &by_rs[new_name];
    assert_eq!(
        created.len(),
        4,
        "pods of {new_name} created (distinct uids): {:?}",
        created.iter().map(|u| &s.pods[u].1).collect::<Vec<_>>()
    );
    for (name, (replicas, rev)) in &sets {
        if rev == "2" {
            continue;
        }
        assert_eq!(*replicas, 0, "old ReplicaSet {name} scaled to 0");
        let uids = by_rs.get(name).cloned().unwrap_or_default();
        assert!(
            uids.is_subset(&initial),
            "old ReplicaSet {name} created pods during the update: {:?}",
            uids.difference(&initial).collect::<Vec<_>>()
        );
    }
    assert_eq!(by_rs.values().map(BTreeSet::len).sum::<usize>(), 8);
    assert!(
        second
            .iter()
            .all(|p| created.contains(p.metadata.uid.as_deref().unwrap_or_default())),
        "every live pod is one of the new ReplicaSet's"
    );
    drop(s);
    watch.abort();

    assert!(report.ok > 0, "no request answered");
    assert!(
        report.failures.is_empty(),
        "{} of {} requests failed: {:?}",
        report.failures.len(),
        report.ok + report.failures.len() as u64,
        report.failures
    );
    eprintln!("total: {:.1} s", secs(started.elapsed()));
}

// ---------------------------------------------------------------------------
// An autoscaler carried out by the next leader.

/// One busy loop asking 100m and allowed 300m: its utilization of the
/// request is about 300 % when it gets its share of a core.
const BURN: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: burn
spec:
  replicas: 1
  selector:
    matchLabels: {app: burn}
  template:
    metadata:
      labels: {app: burn}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: loop
        image: jotasu.local/busybox:latest
        command: ["sh", "-c", "while :; do :; done"]
        resources:
          requests: {cpu: 100m}
          limits: {cpu: 300m}
"#;

/// Target 50 % of the request. The scale-up window (30 s, counted from
/// each leader's first sight of the HPA, its replicas then as the first
/// recommendation) keeps the first leader from scaling before it is
/// killed, so the scaling is the next leader's.
const HPA: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: burn
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: burn}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 50}
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 30
"#;

/// The HPA's reported CPU utilization (percent of the request), if any.
async fn utilization(client: &Client) -> Option<(i32, HorizontalPodAutoscaler)> {
    let Ok(Object::HorizontalPodAutoscaler(hpa)) =
        client.get(&r(Kind::HorizontalPodAutoscaler, "burn")).await
    else {
        return None;
    };
    let u = hpa
        .status
        .as_ref()?
        .current_metrics
        .iter()
        .find_map(|m| m.resource.as_ref()?.current.average_utilization)?;
    Some((u, hpa))
}

/// The Deployment `burn`'s spec.replicas.
async fn burn_replicas(client: &Client) -> i32 {
    match client.get(&r(Kind::Deployment, "burn")).await {
        Ok(Object::Deployment(d)) => d.spec.replicas.unwrap_or(1),
        other => panic!("the Deployment: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_scales_a_cpu_burning_deployment_across_a_leader_kill() {
    if !can_run("an_hpa_scales_a_cpu_burning_deployment_across_a_leader_kill") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let mut h = ha_cluster(1, &["--hpa-sync-period", "2"]).await;
    h.apply(BURN);
    h.ready_pods("app=burn", 1).await;
    eprintln!("cluster and workload up: {:.1} s", secs(started.elapsed()));

    h.apply(HPA);
    let applied = Instant::now();
    // The agent reports 0 millicores for a running container until it has
    // two cgroup samples to take a rate from (agent/src/pods/manager.rs,
    // `sample_usage`; agent/src/pods/registry.rs, `Registry::usage`), and
    // the HPA takes that 0 as a measurement: such a first report is noted,
    // not taken for the usage; the usage is the first report above 0.
    let zeros = std::sync::atomic::AtomicUsize::new(0);
    let (before, _) = eventually("the HPA reports a utilization", SETTLE, || async {
        let seen = utilization(&h.client).await;
        if seen.as_ref().is_some_and(|(u, _)| *u == 0) {
            zeros.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return None;
        }
        seen
    })
    .await;
    if zeros.into_inner() > 0 {
        eprintln!(
            "!!! the HPA first reported 0 % for a running busy loop: usage reported before it was measured !!!"
        );
    }
    eprintln!(
        "the HPA reports {before} % after {:.1} s",
        secs(applied.elapsed())
    );
    assert!(before > 100, "the busy loop's usage is real: {before} %");
    let old = leader(&h).await;
    eprintln!("killing leader {}", h.cluster.control_planes()[old].name());
    let killed = Instant::now();
    let next = kill_the_leader(&mut h, old).await;
    eprintln!(
        "control plane {} leads {:.1} s after the kill",
        h.cluster.control_planes()[next].name(),
        secs(killed.elapsed())
    );
    assert_eq!(
        burn_replicas(&h.client).await,
        1,
        "the killed leader scaled before its scale-up window passed"
    );

    let replicas = eventually("the Deployment scaled up", SETTLE, || async {
        let n = burn_replicas(&h.client).await;
        (n > 1).then_some(n)
    })
    .await;
    let took = killed.elapsed();
    eprintln!("scaled to {replicas} {:.1} s after the kill", secs(took));
    assert!(
        took < Duration::from_secs(60),
        "the next leader scaled only after {:.1} s",
        secs(took)
    );
    assert!(replicas <= 3, "maxReplicas: {replicas}");
    let (after, hpa) = eventually("the next leader's status", SETTLE, || async {
        utilization(&h.client)
            .await
            .filter(|(_, hpa)| hpa.status.as_ref().is_some_and(|s| s.desired_replicas > 1))
    })
    .await;
    let status = hpa.status.expect("a status");
    eprintln!(
        "the HPA reports {after} %, {} desired, last scaled {:?}",
        status.desired_replicas, status.last_scale_time
    );
    assert!(after > 100, "the usage is real: {after} %");
    assert!(status.last_scale_time.is_some(), "a scale time: {status:?}");
    h.ready_pods("app=burn", usize::try_from(replicas).expect("positive"))
        .await;
    eprintln!("total: {:.1} s", secs(started.elapsed()));
}
