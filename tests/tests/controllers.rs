//! The scheduler and controllers end to end: a real `jotasu-controlplane`
//! (embedded store) with simulated nodes that register, heartbeat and
//! report pod status over gRPC as agents do ([`SimNode`]). Workloads are
//! driven through the client library and the real `jotactl`.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use jotasu_api::client::{BindRefusal, Binding, Client, DeleteOptions, EventType, WatchFilter};
use jotasu_api::{Deployment, Endpoints, Kind, Object, ObjectRef, Pod};
use jotasu_controlplane::runtime::status::{is_node_ready, is_ready};
use jotasu_tests::controlplane::{ControlPlane, Options};
use jotasu_tests::e2e::pods_of as pods;
use jotasu_tests::jotactl::Ctl;
use jotasu_tests::simnode::{NodeSpec, SimNode};
use jotasu_tests::wait::eventually;
use serde_json::json;

/// Generous bound for anything to settle on a loaded 2-core CI machine.
const SETTLE: Duration = Duration::from_secs(60);
/// Test settings: heartbeat grace and eviction delay in seconds.
const GRACE: u64 = 2;
const EVICTION: u64 = 3;

fn obj(v: serde_json::Value) -> Object {
    serde_json::from_value(v).expect("test object")
}

fn r(kind: Kind, name: &str) -> ObjectRef {
    ObjectRef {
        kind,
        namespace: kind.namespaced().then(|| "default".to_owned()),
        name: name.to_owned(),
    }
}

async fn cluster(nodes: &[NodeSpec]) -> (ControlPlane, Client, Vec<SimNode>) {
    let options = Options {
        args: vec![
            "--node-grace-period".into(),
            GRACE.to_string(),
            "--pod-eviction-timeout".into(),
            EVICTION.to_string(),
            "--hpa-sync-period".into(),
            "1".into(),
        ],
        ..Options::default()
    };
    let cp = ControlPlane::start(options)
        .await
        .expect("control plane starts");
    let client = cp.client().await.expect("client connects");
    let mut sims = Vec::new();
    for spec in nodes {
        sims.push(
            SimNode::start(client.clone(), spec.clone())
                .await
                .expect("node registers"),
        );
    }
    for spec in nodes {
        node_ready(&client, &spec.name).await;
    }
    (cp, client, sims)
}

/// Waits until the node lifecycle controller has seen the node's heartbeats.
async fn node_ready(client: &Client, name: &str) {
    eventually(&format!("node {name} Ready"), SETTLE, || async {
        let Ok(Object::Node(n)) = client.get(&r(Kind::Node, name)).await else {
            return None;
        };
        is_node_ready(&n).then_some(())
    })
    .await;
}

fn nodes(n: u8) -> Vec<NodeSpec> {
    (1..=n)
        .map(|i| NodeSpec::new(&format!("node-{i}"), i))
        .collect()
}

fn live(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
}

/// Waits until exactly `n` live pods match `selector` and all are Ready.
async fn ready_pods(client: &Client, selector: &str, n: usize) -> Vec<Pod> {
    eventually(&format!("{n} ready pods {selector}"), SETTLE, || async {
        let all = pods(client, selector).await;
        let live: Vec<Pod> = all.iter().filter(|p| live(p)).cloned().collect();
        (all.len() == n && live.iter().all(is_ready)).then_some(live)
    })
    .await
}

fn web(name: &str, replicas: i32, image: &str, extra: serde_json::Value) -> Object {
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{
                "name": "web", "image": image,
                "ports": [{"name": "http", "containerPort": 8080}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}
            }]}
        }
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    obj(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}),
    )
}

async fn deployment(client: &Client, name: &str) -> Deployment {
    Deployment::try_from(
        client
            .get(&r(Kind::Deployment, name))
            .await
            .expect("get deployment"),
    )
    .expect("a Deployment")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_three_to_ten_to_two() {
    let (_cp, client, _nodes) = cluster(&nodes(3)).await;
    client
        .apply(&[web("web", 3, "busybox:1", json!({}))], false)
        .await
        .unwrap();
    let running = ready_pods(&client, "app=web", 3).await;
    assert!(running.iter().all(|p| p.spec.node_name.is_some()));
    client.scale(&r(Kind::Deployment, "web"), 10).await.unwrap();
    ready_pods(&client, "app=web", 10).await;
    eventually("deployment status 10 available", SETTLE, || async {
        let d = deployment(&client, "web").await;
        let s = d.status.unwrap_or_default();
        (s.available_replicas == 10 && s.replicas == 10).then_some(())
    })
    .await;
    client.scale(&r(Kind::Deployment, "web"), 2).await.unwrap();
    ready_pods(&client, "app=web", 2).await;
    // Only one ReplicaSet: scaling is not a rollout.
    let rs = client
        .list(Kind::ReplicaSet, Some("default"), "app=web")
        .await
        .unwrap();
    assert_eq!(rs.items.len(), 1, "{:?}", rs.items);
}

/// The pods of the Deployment, as a watch sees them, checked after every event.
#[derive(Default)]
struct Observed {
    pods: HashMap<String, Pod>,
    worst_total: usize,
    worst_available: usize,
    events: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_keeps_surge_and_unavailability_bounds() {
    let mut specs = nodes(3);
    for s in &mut specs {
        s.ready_after = Duration::from_millis(400);
    }
    let (_cp, client, _nodes) = cluster(&specs).await;
    let strategy = json!({"strategy": {"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}});
    client
        .apply(&[web("roll", 4, "busybox:1", strategy.clone())], false)
        .await
        .unwrap();
    ready_pods(&client, "app=roll", 4).await;
    eventually("v1 rolled out", SETTLE, || async {
        let s = deployment(&client, "roll").await.status.unwrap_or_default();
        (s.available_replicas == 4 && s.updated_replicas == 4).then_some(())
    })
    .await;

    // Watch every pod change from here on and check the bounds after each.
    let list = client
        .list(Kind::Pod, Some("default"), "app=roll")
        .await
        .unwrap();
    let observed = Arc::new(Mutex::new(Observed::default()));
    {
        let mut o = observed.lock().unwrap();
        for item in list.items {
            let p = Pod::try_from(item).unwrap();
            o.pods.insert(p.metadata.name().to_owned(), p);
        }
        o.worst_available = usize::MAX;
    }
    let filter = WatchFilter {
        kinds: vec![Kind::Pod],
        namespace: Some("default".into()),
        label_selector: "app=roll".into(),
        from_revision: list.revision + 1,
        ..WatchFilter::default()
    };
    let mut events = client.watch(&filter).await.unwrap();
    let seen = Arc::clone(&observed);
    let watcher = tokio::spawn(async move {
        while let Some(Ok(ev)) = events.next().await {
            let Ok(p) = Pod::try_from(ev.object) else {
                continue;
            };
            let mut o = seen.lock().unwrap();
            let name = p.metadata.name().to_owned();
            if ev.kind == EventType::Deleted {
                o.pods.remove(&name);
            } else {
                o.pods.insert(name, p);
            }
            let total = o.pods.values().filter(|p| live(p)).count();
            let available = o.pods.values().filter(|p| live(p) && is_ready(p)).count();
            o.worst_total = o.worst_total.max(total);
            o.worst_available = o.worst_available.min(available);
            o.events += 1;
        }
    });

    client
        .apply(&[web("roll", 4, "busybox:2", strategy)], false)
        .await
        .unwrap();
    eventually("v2 rolled out", SETTLE, || async {
        let d = deployment(&client, "roll").await;
        let s = d.status.unwrap_or_default();
        let all = pods(&client, "app=roll").await;
        let done = s.updated_replicas == 4
            && s.available_replicas == 4
            && s.replicas == 4
            && all.len() == 4
            && all
                .iter()
                .all(|p| p.spec.containers[0].image == "busybox:2" && is_ready(p));
        done.then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    watcher.abort();
    let o = observed.lock().unwrap();
    eprintln!(
        "rolling update: {} pod events; at most {} pods, at least {} available",
        o.events, o.worst_total, o.worst_available
    );
    assert!(
        o.events > 8,
        "the watch saw the rollout ({} events)",
        o.events
    );
    assert!(
        o.worst_total <= 5,
        "maxSurge 1 broken: {} pods at once",
        o.worst_total
    );
    assert!(
        o.worst_available >= 3,
        "maxUnavailable 1 broken: {} available",
        o.worst_available
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_undo_restores_the_previous_template() {
    let (cp, client, _nodes) = cluster(&nodes(2)).await;
    let ctl = Ctl::new();
    let url = cp.url();
    client
        .apply(&[web("app", 2, "busybox:1", json!({}))], false)
        .await
        .unwrap();
    ctl.at(
        &url,
        &["rollout", "status", "deployment/app", "--timeout", "60s"],
    )
    .ok();
    client
        .apply(&[web("app", 2, "busybox:2", json!({}))], false)
        .await
        .unwrap();
    let status = ctl.at(
        &url,
        &["rollout", "status", "deployment/app", "--timeout", "60s"],
    );
    assert!(
        status.ok().contains("successfully rolled out"),
        "{status:?}"
    );
    let history = ctl.at(&url, &["rollout", "history", "deployment/app"]);
    let text = history.ok();
    assert!(
        text.contains("REVISION") && text.contains('1') && text.contains('2'),
        "{text}"
    );

    let undo = ctl.at(&url, &["rollout", "undo", "deployment/app"]);
    assert!(undo.ok().contains("rolled back"), "{undo:?}");
    let d = deployment(&client, "app").await;
    assert_eq!(d.spec.template.spec.containers[0].image, "busybox:1");
    ctl.at(
        &url,
        &["rollout", "status", "deployment/app", "--timeout", "60s"],
    )
    .ok();
    let running = ready_pods(&client, "app=app", 2).await;
    assert!(
        running
            .iter()
            .all(|p| p.spec.containers[0].image == "busybox:1")
    );
    // The old ReplicaSet came back as revision 3; no third one was made.
    let rs = client
        .list(Kind::ReplicaSet, Some("default"), "app=app")
        .await
        .unwrap();
    assert_eq!(rs.items.len(), 2);
    let d = deployment(&client, "app").await;
    assert_eq!(
        d.metadata
            .annotations
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("3")
    );
    let bad = ctl.at(
        &url,
        &["rollout", "undo", "deployment/app", "--to-revision", "9"],
    );
    assert!(
        bad.failed().contains("unable to find specified revision 9"),
        "{bad:?}"
    );
}

fn endpoint_nodes(e: &Endpoints) -> Vec<String> {
    e.subsets
        .iter()
        .flat_map(|s| s.addresses.iter())
        .map(|a| a.node_name.clone().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_leaves_the_endpoints_and_its_pods_move() {
    let (_cp, client, mut sims) = cluster(&nodes(3)).await;
    let service = obj(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}),
    );
    let spread = json!({"template": {
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "busybox:1",
            "ports": [{"name": "http", "containerPort": 8080}],
            "resources": {"requests": {"cpu": "1"}}}]}}});
    // 1 CPU each on 4-CPU nodes: bin-packing fills one node, then the
    // next; the two nodes left after one dies still hold all six.
    client
        .apply(&[web("web", 6, "busybox:1", spread), service], false)
        .await
        .unwrap();
    let before = ready_pods(&client, "app=web", 6).await;
    let victim = before[0].spec.node_name.clone().expect("bound");
    assert!(
        before
            .iter()
            .any(|p| p.spec.node_name.as_deref() == Some(victim.as_str()))
    );
    let ep = eventually("6 endpoints on port 8080", SETTLE, || async {
        let e = Endpoints::try_from(client.get(&r(Kind::Endpoints, "web")).await.ok()?).ok()?;
        let ok = endpoint_nodes(&e).len() == 6
            && e.subsets
                .iter()
                .all(|s| s.ports.iter().all(|p| p.port == 8080));
        ok.then_some(e)
    })
    .await;
    assert!(endpoint_nodes(&ep).contains(&victim));

    let index = sims
        .iter()
        .position(|s| s.name() == victim)
        .expect("a node");
    sims[index].stop();
    let stopped = Instant::now();
    eventually(
        "the dead node's pods leave the endpoints",
        SETTLE,
        || async {
            let e = Endpoints::try_from(client.get(&r(Kind::Endpoints, "web")).await.ok()?).ok()?;
            (!endpoint_nodes(&e).contains(&victim)).then_some(())
        },
    )
    .await;
    eprintln!(
        "endpoints lost node {victim} {:.1} s after its last heartbeat (grace {GRACE} s)",
        stopped.elapsed().as_secs_f64()
    );
    let node = client.get(&r(Kind::Node, &victim)).await.unwrap();
    let Object::Node(node) = node else {
        panic!("a Node")
    };
    let ready_condition = node
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_ne!(ready_condition.status, jotasu_api::ConditionStatus::True);

    // After the eviction delay its pods are replaced on the other nodes.
    let after = eventually("6 ready pods, none on the dead node", SETTLE, || async {
        let all = pods(&client, "app=web").await;
        let ok = all.len() == 6
            && all
                .iter()
                .all(|p| is_ready(p) && p.spec.node_name.as_deref() != Some(victim.as_str()));
        ok.then_some(all)
    })
    .await;
    assert!(after.iter().all(|p| p.spec.node_name.is_some()));
    eventually("6 endpoints again", SETTLE, || async {
        let e = Endpoints::try_from(client.get(&r(Kind::Endpoints, "web")).await.ok()?).ok()?;
        (endpoint_nodes(&e).len() == 6).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_follows_nodes_joining_and_leaving() {
    let (_cp, client, mut sims) = cluster(&nodes(2)).await;
    let ds = obj(
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "a", "image": "busybox:1"}]}}}}),
    );
    client.apply(&[ds], false).await.unwrap();
    let on = |ps: &[Pod]| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for p in ps.iter().filter(|p| live(p)) {
            *m.entry(p.spec.node_name.clone().unwrap_or_default())
                .or_default() += 1;
        }
        m
    };
    let two = ready_pods(&client, "app=agent", 2).await;
    assert_eq!(
        on(&two),
        BTreeMap::from([("node-1".into(), 1), ("node-2".into(), 1)])
    );

    sims.push(
        SimNode::start(client.clone(), NodeSpec::new("node-3", 3))
            .await
            .unwrap(),
    );
    let three = ready_pods(&client, "app=agent", 3).await;
    assert_eq!(on(&three).get("node-3"), Some(&1));

    let leaving = sims.remove(1);
    leaving.leave().await.unwrap();
    let left = eventually("the leaving node's pod is gone", SETTLE, || async {
        let all = pods(&client, "app=agent").await;
        let m = on(&all);
        (all.len() == 2 && !m.contains_key("node-2")).then_some(m)
    })
    .await;
    assert_eq!(
        left,
        BTreeMap::from([("node-1".into(), 1), ("node-3".into(), 1)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpa_scales_up_on_cpu_and_down_after_stabilization() {
    let (_cp, client, sims) = cluster(&nodes(2)).await;
    let hpa = obj(
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 4,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 4}}}}),
    );
    client
        .apply(&[web("web", 1, "busybox:1", json!({})), hpa], false)
        .await
        .unwrap();
    ready_pods(&client, "app=web", 1).await;
    // 100m requested, 150m used: 150 % of request against a 50 % target.
    for s in &sims {
        s.set_cpu(150);
    }
    eventually("scaled up to the maximum", SETTLE, || async {
        let d = deployment(&client, "web").await;
        (d.spec.replicas == Some(4)).then_some(())
    })
    .await;
    ready_pods(&client, "app=web", 4).await;
    let Object::HorizontalPodAutoscaler(h) = client
        .get(&r(Kind::HorizontalPodAutoscaler, "web"))
        .await
        .unwrap()
    else {
        panic!("an HPA")
    };
    let status = h.status.expect("hpa status");
    assert_eq!(status.desired_replicas, 4);

    // Idle: down to the minimum, but only after the stabilization window.
    for s in &sims {
        s.set_cpu(5);
    }
    let idle = Instant::now();
    eventually("scaled down to the minimum", SETTLE, || async {
        let d = deployment(&client, "web").await;
        (d.spec.replicas == Some(1)).then_some(())
    })
    .await;
    assert!(
        idle.elapsed() >= Duration::from_secs(3),
        "scale-down waited for the 4 s stabilization window"
    );
    ready_pods(&client, "app=web", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unschedulable_pod_waits_with_a_reason_and_is_placed_when_room_appears() {
    let mut small = NodeSpec::new("small", 1);
    small.cpu = "1";
    let (cp, client, mut sims) = cluster(&[small]).await;
    let pod = obj(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big"},
        "spec": {"containers": [{"name": "c", "image": "busybox:1",
            "resources": {"requests": {"cpu": "2"}}}]}}),
    );
    client.apply(&[pod], false).await.unwrap();
    let message = eventually("the pod is marked unschedulable", SETTLE, || async {
        let p = Pod::try_from(client.get(&r(Kind::Pod, "big")).await.ok()?).ok()?;
        let c = p
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "PodScheduled")?;
        (c.reason.as_deref() == Some("Unschedulable")).then_some(c.message.unwrap_or_default())
    })
    .await;
    assert!(
        message.contains("0/1 nodes are available") && message.contains("Insufficient cpu"),
        "{message}"
    );
    let described = Ctl::new().at(&cp.url(), &["describe", "pod", "big"]);
    assert!(described.ok().contains("Insufficient cpu"), "{described:?}");

    sims.push(
        SimNode::start(client.clone(), NodeSpec::new("roomy", 2))
            .await
            .unwrap(),
    );
    let placed = eventually("the pod is placed on the new node", SETTLE, || async {
        let p = Pod::try_from(client.get(&r(Kind::Pod, "big")).await.ok()?).ok()?;
        p.spec.node_name.clone()
    })
    .await;
    assert_eq!(placed, "roomy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_and_graceful_delete_through_the_api() {
    let cp = ControlPlane::start(Options {
        args: vec!["--no-controllers".into()],
        ..Options::default()
    })
    .await
    .unwrap();
    let client = cp.client().await.unwrap();
    let pod = |name: &str| {
        obj(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}),
        )
    };
    client.apply(&[pod("a"), pod("b")], false).await.unwrap();
    let bind = |name: &str, node: &str| Binding {
        namespace: "default".into(),
        name: name.into(),
        node: node.into(),
        resource_version: String::new(),
    };
    let results = client
        .bind(vec![bind("a", "n1"), bind("b", "n1"), bind("nope", "n1")])
        .await
        .unwrap();
    let refusals: Vec<_> = results.iter().map(|r| r.refusal()).collect();
    assert_eq!(
        refusals,
        [BindRefusal::None, BindRefusal::None, BindRefusal::NotFound]
    );
    let again = client.bind(vec![bind("a", "n2")]).await.unwrap();
    assert_eq!(again[0].refusal(), BindRefusal::AlreadyBound);
    let Object::Pod(a) = client.get(&r(Kind::Pod, "a")).await.unwrap() else {
        panic!()
    };
    assert_eq!(a.spec.node_name.as_deref(), Some("n1"));

    // A bound pod is only marked terminating; grace 0 removes it.
    client.delete(&r(Kind::Pod, "a"), None).await.unwrap();
    let Object::Pod(a) = client.get(&r(Kind::Pod, "a")).await.unwrap() else {
        panic!()
    };
    assert!(a.metadata.deletion_timestamp.is_some());
    assert_eq!(a.metadata.deletion_grace_period_seconds, Some(30));
    let refused = client.bind(vec![bind("a", "n1")]).await.unwrap();
    assert_eq!(refused[0].refusal(), BindRefusal::Terminating);
    let now = DeleteOptions {
        resource_version: None,
        grace_period_seconds: Some(0),
    };
    client.delete_with(&r(Kind::Pod, "a"), &now).await.unwrap();
    assert!(
        client
            .get(&r(Kind::Pod, "a"))
            .await
            .unwrap_err()
            .is_not_found()
    );

    // Heartbeats need a registered node.
    let err = client.heartbeat("ghost", vec![]).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
}
