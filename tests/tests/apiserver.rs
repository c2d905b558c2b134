//! The API server end to end: a real `jotasu-controlplane` process on its
//! embedded store, driven through the client library over the unix socket
//! and over mutual TLS.
// The test bodies are plain async fns that the `#[test]`s of both stores
// call, so clippy's allow-unwrap-in-tests does not see them as tests.
#![allow(clippy::unwrap_used)]
use std::time::Duration;

use futures::StreamExt as _;
use jotasu_api::client::{
    Client, ClientError, EventType, Outcome, ServerUrl, TlsFiles, WatchFilter,
};
use jotasu_api::{Kind, Object, ObjectRef};
use jotasu_tests::controlplane::{ControlPlane, Options};
use serde_json::json;

fn obj(v: serde_json::Value) -> Object {
    serde_json::from_value(v).expect("test object")
}

fn config_map(name: &str, labels: serde_json::Value, data: &str) -> Object {
    obj(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {"k": data}
    }))
}

fn deployment(name: &str, image: &str) -> Object {
    obj(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    }))
}

fn cm_ref(name: &str) -> ObjectRef {
    ObjectRef {
        kind: Kind::ConfigMap,
        namespace: Some("default".into()),
        name: name.into(),
    }
}

async fn start(mut options: Options) -> (ControlPlane, Client) {
    // The API alone: no controller may add objects of its own.
    options.args.push("--no-controllers".into());
    let cp = ControlPlane::start(options)
        .await
        .expect("control plane starts");
    let client = cp.client().await.expect("client connects");
    (cp, client)
}

async fn apply_is_idempotent_and_all_or_nothing(options: Options) {
    let (_cp, c) = start(options).await;
    let pair = [
        deployment("web", "nginx:1"),
        config_map("cfg", json!({}), "a"),
    ];
    let outcomes = |applied: &[jotasu_api::client::Applied]| {
        applied.iter().map(|a| a.outcome).collect::<Vec<_>>()
    };
    let applied = c.apply(&pair, false).await.unwrap();
    assert_eq!(outcomes(&applied), [Outcome::Created, Outcome::Created]);
    assert_eq!(
        applied[0].resource_version, applied[1].resource_version,
        "one transaction, one revision"
    );
    let again = c.apply(&pair, false).await.unwrap();
    assert_eq!(outcomes(&again), [Outcome::Unchanged, Outcome::Unchanged]);
    assert_eq!(again[0].resource_version, applied[0].resource_version);

    let got = c.get(&applied[0].object_ref).await.unwrap();
    let meta = got.metadata();
    assert!(
        meta.uid.as_deref().is_some_and(|u| u.len() == 36),
        "{meta:?}"
    );
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    assert_eq!(
        meta.resource_version.as_deref(),
        Some(applied[0].resource_version.as_str())
    );
    let Object::Deployment(d) = &got else {
        panic!("{got:?}")
    };
    assert_eq!(d.spec.template.spec.containers[0].image, "nginx:1");
    let uid = meta.uid.clone();

    let changed = c
        .apply(&[deployment("web", "nginx:2")], false)
        .await
        .unwrap();
    assert_eq!(changed[0].outcome, Outcome::Configured);
    let got = c.get(&changed[0].object_ref).await.unwrap();
    assert_eq!(
        got.metadata().generation,
        Some(2),
        "a spec change bumps the generation"
    );
    assert_eq!(got.metadata().uid, uid, "the uid stays");

    // One invalid object: nothing of the request is written.
    let bad = obj(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"},
        "spec": {"selector": {"matchLabels": {"app": "x"}},
                 "template": {"metadata": {"labels": {"app": "y"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}}
    }));
    let e = c
        .apply(&[config_map("new-one", json!({}), "x"), bad], false)
        .await
        .unwrap_err();
    let api = e.api().expect("a server error");
    assert_eq!(api.reason(), "Invalid");
    assert!(
        api.message()
            .contains("object 2 (Deployment bad): spec.template.metadata.labels"),
        "{e}"
    );
    assert!(c.get(&cm_ref("new-one")).await.unwrap_err().is_not_found());

    // Dry run: outcomes, no writes.
    let dry = c
        .apply(&[config_map("dry", json!({}), "x")], true)
        .await
        .unwrap();
    assert_eq!(dry[0].outcome, Outcome::Created);
    assert!(c.get(&cm_ref("dry")).await.unwrap_err().is_not_found());

    let e = c.get(&cm_ref("nope")).await.unwrap_err();
    assert_eq!(e.to_string(), "configmaps \"nope\" not found");
    let e = c
        .get(&ObjectRef {
            kind: Kind::Deployment,
            namespace: Some("default".into()),
            name: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "deployments.apps \"nope\" not found");
}

async fn optimistic_concurrency_status_and_scale(options: Options) {
    let (_cp, c) = start(options).await;
    let r = c
        .apply(&[deployment("web", "nginx:1")], false)
        .await
        .unwrap()[0]
        .object_ref
        .clone();
    let read = c.get(&r).await.unwrap();

    // A status update with the version read succeeds once; the stale one is refused.
    let mut with_status = read.clone();
    let Object::Deployment(d) = &mut with_status else {
        panic!()
    };
    d.status = Some(serde_json::from_value(json!({"replicas": 2, "readyReplicas": 1})).unwrap());
    let updated = c.update_status(&with_status).await.unwrap();
    assert_ne!(
        updated.metadata().resource_version,
        read.metadata().resource_version
    );
    let e = c.update_status(&with_status).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert_eq!(e.api().unwrap().reason(), "Conflict");

    // The status survives an apply (apply owns the spec, not the status).
    c.apply(&[deployment("web", "nginx:2")], false)
        .await
        .unwrap();
    let Object::Deployment(d) = c.get(&r).await.unwrap() else {
        panic!()
    };
    assert_eq!(d.status.map(|s| s.ready_replicas), Some(1));

    // Apply with a stale resourceVersion is refused.
    let mut stale = deployment("web", "nginx:3");
    stale.metadata_mut().resource_version = read.metadata().resource_version.clone();
    assert!(c.apply(&[stale], false).await.unwrap_err().is_conflict());

    let scaled = c.scale(&r, 7).await.unwrap();
    let Object::Deployment(d) = &scaled else {
        panic!()
    };
    assert_eq!(d.spec.replicas, Some(7));
    let e = c.scale(&cm_ref("x"), 1).await.unwrap_err();
    assert!(e.to_string().contains("cannot be scaled"), "{e}");
    assert!(c.scale(&r, -1).await.is_err());
    let e = c
        .scale(
            &ObjectRef {
                name: "missing".into(),
                ..r.clone()
            },
            1,
        )
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
}

async fn list_selectors_namespaces_and_cascading_delete(options: Options) {
    let (_cp, c) = start(options).await;
    let mut objects = Vec::new();
    for (i, tier) in ["web", "web", "db"].iter().enumerate() {
        objects.push(config_map(&format!("c{i}"), json!({"tier": tier}), "x"));
    }
    let mut other = config_map("c9", json!({"tier": "web"}), "x");
    other.metadata_mut().namespace = Some("other".into());
    // Its namespace comes in the same apply, as a manifest file brings it.
    objects.push(obj(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}),
    ));
    objects.push(other);
    c.apply(&objects, false).await.unwrap();

    let all = c.list(Kind::ConfigMap, None, "").await.unwrap();
    let names: Vec<_> = all
        .items
        .iter()
        .map(|o| format!("{}/{}", o.namespace().unwrap(), o.name()))
        .collect();
    assert_eq!(
        names,
        ["default/c0", "default/c1", "default/c2", "other/c9"]
    );
    assert!(all.revision > 0);
    let web = c
        .list(Kind::ConfigMap, Some("default"), "tier=web")
        .await
        .unwrap();
    assert_eq!(web.items.len(), 2);
    let not_web = c
        .list(Kind::ConfigMap, None, "tier notin (web)")
        .await
        .unwrap();
    assert_eq!(
        not_web.items.iter().map(Object::name).collect::<Vec<_>>(),
        ["c2"]
    );
    let e = c
        .list(Kind::ConfigMap, None, "tier in web")
        .await
        .unwrap_err();
    assert_eq!(e.api().unwrap().reason(), "Invalid");

    // Owner → child → grandchild; deleting the owner takes all three.
    let owner = c
        .apply(&[deployment("owner", "nginx")], false)
        .await
        .unwrap()[0]
        .object_ref
        .clone();
    let owner_uid = c.get(&owner).await.unwrap().metadata().uid.clone().unwrap();
    let mut child = config_map("child", json!({}), "x");
    child.metadata_mut().owner_references = vec![serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "owner", "uid": owner_uid, "controller": true
    })).unwrap()];
    c.apply(&[child], false).await.unwrap();
    let child_uid = c
        .get(&cm_ref("child"))
        .await
        .unwrap()
        .metadata()
        .uid
        .clone()
        .unwrap();
    let mut grandchild = config_map("grandchild", json!({}), "x");
    grandchild.metadata_mut().owner_references = vec![
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap", "name": "child", "uid": child_uid
        }))
        .unwrap(),
    ];
    c.apply(&[grandchild], false).await.unwrap();

    let deleted = c.delete(&owner, None).await.unwrap();
    let names: Vec<_> = deleted.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["owner", "child", "grandchild"]);
    for name in ["child", "grandchild"] {
        assert!(
            c.get(&cm_ref(name)).await.unwrap_err().is_not_found(),
            "{name}"
        );
    }
    assert_eq!(
        c.list(Kind::ConfigMap, None, "").await.unwrap().items.len(),
        4,
        "unowned objects stay"
    );
    assert!(c.delete(&owner, None).await.unwrap_err().is_not_found());
    let rv = c
        .get(&cm_ref("c0"))
        .await
        .unwrap()
        .metadata()
        .resource_version
        .clone()
        .unwrap();
    let stale = (rv.parse::<u64>().unwrap() + 1000).to_string();
    assert!(
        c.delete(&cm_ref("c0"), Some(&stale))
            .await
            .unwrap_err()
            .is_conflict()
    );
    c.delete(&cm_ref("c0"), Some(&rv)).await.unwrap();
}

async fn watch_resumes_filters_and_says_resync(mut options: Options) {
    let embedded = options.etcd_endpoints.is_empty();
    if embedded {
        options.args = vec!["--history".into(), "20".into()];
    }
    let (mut cp, c) = start(options).await;
    let start = c.list(Kind::ConfigMap, None, "").await.unwrap().revision;
    let filter = WatchFilter {
        kinds: vec![Kind::ConfigMap],
        label_selector: "app=a".into(),
        from_revision: start + 1,
        ..WatchFilter::default()
    };
    let mut w = c.watch(&filter).await.unwrap();
    c.apply(&[config_map("x", json!({"app": "a"}), "1")], false)
        .await
        .unwrap();
    c.apply(&[config_map("y", json!({"app": "b"}), "1")], false)
        .await
        .unwrap();
    c.apply(&[config_map("x", json!({"app": "a"}), "2")], false)
        .await
        .unwrap();
    c.apply(&[config_map("x", json!({"app": "b"}), "2")], false)
        .await
        .unwrap();
    c.apply(&[config_map("y", json!({"app": "a"}), "1")], false)
        .await
        .unwrap();
    c.delete(&cm_ref("y"), None).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let e = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("event in time")
            .unwrap()
            .unwrap();
        seen.push((e.kind, e.object.name().to_owned(), e.revision));
    }
    let kinds: Vec<_> = seen.iter().map(|(k, n, _)| (*k, n.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (EventType::Added, "x"),
            (EventType::Modified, "x"),
            (EventType::Deleted, "x"), // stopped matching app=a
            (EventType::Added, "y"),   // started matching
            (EventType::Deleted, "y"),
        ]
    );
    assert!(
        seen.windows(2).all(|w| w[0].2 < w[1].2),
        "revisions increase: {seen:?}"
    );

    // Resume from the middle: the same tail again.
    let mut again = c
        .watch(&WatchFilter {
            from_revision: seen[2].2,
            ..filter.clone()
        })
        .await
        .unwrap();
    let e = again.next().await.unwrap().unwrap();
    assert_eq!(
        (e.kind, e.object.name(), e.revision),
        (EventType::Deleted, "x", seen[2].2)
    );

    // Past the history: a clear resync answer (the embedded store trims
    // its history itself; etcd is compacted by its operator).
    for i in 0..40 {
        c.apply(&[config_map("churn", json!({}), &i.to_string())], false)
            .await
            .unwrap();
    }
    if embedded {
        let e = match c
            .watch(&WatchFilter {
                from_revision: start + 1,
                ..WatchFilter::default()
            })
            .await
        {
            Err(e) => e,
            Ok(mut s) => s.next().await.expect("an answer").unwrap_err(),
        };
        assert!(e.is_resync(), "{e}");
        assert!(e.to_string().starts_with("resync: "), "{e}");
    }

    // Shutdown ends live watches with where to resume.
    let mut live = c.watch(&WatchFilter::default()).await.unwrap();
    let status = cp.terminate().unwrap();
    assert!(status.success(), "{status}");
    let e = tokio::time::timeout(Duration::from_secs(10), live.next())
        .await
        .expect("ended in time")
        .unwrap()
        .unwrap_err();
    assert_eq!(e.api().unwrap().reason(), "ServiceUnavailable");
    assert!(e.to_string().contains("resume from revision"), "{e}");
    assert!(!cp.socket().exists(), "the socket file is removed on exit");
}

async fn addresses_are_allocated_once_and_never_twice(options: Options) {
    let (_cp, client) = start(options).await;
    let service = |name: &str, ip: Option<&str>| {
        let mut spec = json!({"selector": {"app": name}, "ports": [{"port": 80}]});
        if let Some(ip) = ip {
            spec["clusterIP"] = json!(ip);
        }
        obj(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}),
        )
    };
    let cluster_ip = |o: Object| match o {
        Object::Service(s) => s.spec.cluster_ip.unwrap_or_default(),
        other => panic!("not a Service: {other:?}"),
    };
    let svc_ref = |name: &str| ObjectRef {
        kind: Kind::Service,
        namespace: Some("default".into()),
        name: name.into(),
    };
    // Twenty Services applied concurrently: twenty distinct addresses.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let client = client.clone();
        let s = service(&format!("s{i}"), None);
        tasks.push(tokio::spawn(async move { client.apply(&[s], false).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let mut ips = std::collections::HashSet::new();
    for i in 0..20 {
        let ip = cluster_ip(client.get(&svc_ref(&format!("s{i}"))).await.unwrap());
        assert!(
            ip.starts_with("10.96.") && ip != "10.96.0.1" && ip != "10.96.0.10",
            "{ip}"
        );
        assert!(ips.insert(ip.clone()), "{ip} handed out twice");
    }
    // Re-applying keeps the address, and the apply is unchanged.
    let again = client.apply(&[service("s0", None)], false).await.unwrap();
    assert_eq!(again[0].outcome, Outcome::Unchanged);
    // The DNS address is the cluster DNS Service's from the start.
    let dns = ObjectRef {
        kind: Kind::Service,
        namespace: Some("kube-system".into()),
        name: "kube-dns".into(),
    };
    assert_eq!(cluster_ip(client.get(&dns).await.unwrap()), "10.96.0.10");
    // An address on request; a taken one, the DNS one, an out-of-range one
    // and a change are refused.
    client
        .apply(&[service("mine", Some("10.96.0.200"))], false)
        .await
        .unwrap();
    let taken = cluster_ip(client.get(&svc_ref("s0")).await.unwrap());
    for (name, ip, want) in [
        ("dup", taken.as_str(), "provided IP is already allocated"),
        ("dns", "10.96.0.10", "provided IP is already allocated"),
        ("far", "192.0.2.1", "not in the valid range"),
        ("mine", "10.96.0.201", "field is immutable"),
    ] {
        let e = client
            .apply(&[service(name, Some(ip))], false)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(want), "{name}: {e}");
    }
    // A freed address is free again; headless Services get none.
    client.delete(&svc_ref("s0"), None).await.unwrap();
    client
        .apply(&[service("reuse", Some(&taken))], false)
        .await
        .unwrap();
    client
        .apply(&[service("headless", Some("None"))], false)
        .await
        .unwrap();
    assert_eq!(
        cluster_ip(client.get(&svc_ref("headless")).await.unwrap()),
        "None"
    );

    // Nodes get distinct pod CIDRs from the cluster CIDR.
    let node =
        |name: &str| obj(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}));
    client
        .apply(&[node("n1"), node("n2")], false)
        .await
        .unwrap();
    let cidr = |name: &str| {
        let client = client.clone();
        let name = name.to_owned();
        async move {
            let r = ObjectRef {
                kind: Kind::Node,
                namespace: None,
                name,
            };
            match client.get(&r).await.unwrap() {
                Object::Node(n) => n.spec.pod_cidr.unwrap_or_default(),
                other => panic!("not a Node: {other:?}"),
            }
        }
    };
    let (a, b) = (cidr("n1").await, cidr("n2").await);
    assert!(
        a.starts_with("10.244.") && a.ends_with(".0/24") && a != b,
        "{a} {b}"
    );
}

async fn node_ports_are_allocated_once_and_kept(options: Options) {
    let (_cp, client) = start(options).await;
    let service = |name: &str, ty: &str, node_port: Option<i32>| {
        let mut port = json!({"name": "http", "port": 80});
        if let Some(np) = node_port {
            port["nodePort"] = json!(np);
        }
        obj(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": ty, "selector": {"app": name}, "ports": [port]}}),
        )
    };
    let node_port = |o: Object| match o {
        Object::Service(s) => (s.spec.ports[0].node_port, s.spec.external_traffic_policy),
        other => panic!("not a Service: {other:?}"),
    };
    let svc_ref = |name: &str| ObjectRef {
        kind: Kind::Service,
        namespace: Some("default".into()),
        name: name.into(),
    };
    // Ten NodePort Services applied concurrently: ten distinct node ports
    // from the range, with Kubernetes' default traffic policy.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let client = client.clone();
        let s = service(&format!("np{i}"), "NodePort", None);
        tasks.push(tokio::spawn(async move { client.apply(&[s], false).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    for i in 0..10 {
        let (np, policy) = node_port(client.get(&svc_ref(&format!("np{i}"))).await.unwrap());
        let np = np.expect("a node port");
        assert!((30000..=32767).contains(&np), "{np}");
        assert!(seen.insert(np), "{np} handed out twice");
        assert_eq!(
            policy,
            Some(jotasu_api::kinds::service::TrafficPolicy::Cluster)
        );
    }
    // Re-applying the manifest (no node port in it) keeps the port: unchanged.
    let again = client
        .apply(&[service("np0", "NodePort", None)], false)
        .await
        .unwrap();
    assert_eq!(again[0].outcome, Outcome::Unchanged);
    // A port on request; a taken one and an out-of-range one are refused
    // as Kubernetes words it, and nothing is written.
    client
        .apply(&[service("mine", "NodePort", Some(32000))], false)
        .await
        .unwrap();
    let taken = node_port(client.get(&svc_ref("np0")).await.unwrap())
        .0
        .unwrap();
    for (name, np, want) in [
        ("dup", taken, format!("spec.ports[0].nodePort: Invalid value: {taken}: provided port is already allocated")),
        ("far", 40000, "spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767".to_owned()),
    ] {
        let e = client
            .apply(&[service(name, "NodePort", Some(np))], false)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(&want), "{name}: {e}");
        assert!(client.get(&svc_ref(name)).await.is_err(), "{name} was written");
    }
    // A ClusterIP Service may not ask for one; LoadBalancer gets one too.
    let e = client
        .apply(&[service("cip", "ClusterIP", Some(31000))], false)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("may not be used when `type` is 'ClusterIP'"),
        "{e}"
    );
    client
        .apply(&[service("lb", "LoadBalancer", None)], false)
        .await
        .unwrap();
    assert!(
        node_port(client.get(&svc_ref("lb")).await.unwrap())
            .0
            .is_some()
    );
    // A freed port is free again.
    client.delete(&svc_ref("np0"), None).await.unwrap();
    client
        .apply(&[service("reuse", "NodePort", Some(taken))], false)
        .await
        .unwrap();
}

/// A Pod in `default` using ConfigMap `cm` (env) and Secret `secret` (volume).
fn pod_using(name: &str, node: Option<&str>, cm: &str, secret: &str) -> Object {
    let mut spec = json!({
        "containers": [{"name": "c", "image": "busybox", "env": [
            {"name": "A", "valueFrom": {"configMapKeyRef": {"name": cm, "key": "k"}}}]}],
        "volumes": [{"name": "s", "secret": {"secretName": secret}}]
    });
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    obj(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}))
}

fn secret(name: &str) -> Object {
    obj(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
               "stringData": {"password": "x"}}),
    )
}

fn names(list: &jotasu_api::client::List) -> Vec<String> {
    list.items.iter().map(|o| o.name().to_owned()).collect()
}

/// The next `n` events as `(type, kind, name)`, with their revisions.
async fn next_events(
    w: &mut jotasu_api::client::EventStream,
    n: usize,
) -> (Vec<(EventType, Kind, String)>, Vec<i64>) {
    let mut seen = Vec::new();
    let mut revisions = Vec::new();
    for _ in 0..n {
        let e = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .expect("event in time")
            .expect("the watch goes on")
            .expect("an event");
        seen.push((e.kind, e.object.kind(), e.object.name().to_owned()));
        revisions.push(e.revision);
    }
    (seen, revisions)
}

fn ev(t: EventType, k: Kind, name: &str) -> (EventType, Kind, String) {
    (t, k, name.to_owned())
}

async fn node_scoped_list_and_watch(options: Options) {
    let (_cp, c) = start(options).await;
    let node =
        |name: &str| obj(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}));
    c.apply(
        &[
            node("n1"),
            node("n2"),
            config_map("cfg", json!({}), "1"),
            config_map("unrelated", json!({}), "1"),
            secret("creds"),
            pod_using("elsewhere", Some("n2"), "cfg", "creds"),
            pod_using("mine", None, "cfg", "creds"),
        ],
        false,
    )
    .await
    .unwrap();
    // Nothing is bound to n1 yet: no pods, nothing referenced.
    let pods = c.list_for_node(Kind::Pod, "n1").await.unwrap();
    assert!(pods.items.is_empty(), "{:?}", names(&pods));
    assert!(
        c.list_for_node(Kind::ConfigMap, "n1")
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        c.list_for_node(Kind::Secret, "n1")
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        names(&c.list_for_node(Kind::Pod, "n2").await.unwrap()),
        ["elsewhere"]
    );
    assert_eq!(
        names(&c.list_for_node(Kind::ConfigMap, "n2").await.unwrap()),
        ["cfg"]
    );
    // Other kinds are unaffected.
    assert_eq!(
        c.list_for_node(Kind::Node, "n1").await.unwrap().items.len(),
        2
    );

    let filter = WatchFilter {
        kinds: vec![
            Kind::Pod,
            Kind::Service,
            Kind::Endpoints,
            Kind::Node,
            Kind::ConfigMap,
            Kind::Secret,
        ],
        from_revision: pods.revision + 1,
        node: Some("n1".into()),
        ..WatchFilter::default()
    };
    let mut w = c.watch(&filter).await.unwrap();

    // Bound later: its ConfigMap and Secret arrive first, then the pod, at one revision.
    let bound = c
        .bind(vec![jotasu_api::client::Binding {
            namespace: "default".into(),
            name: "mine".into(),
            node: "n1".into(),
            resource_version: String::new(),
        }])
        .await
        .unwrap();
    assert_eq!(bound[0].refusal, 0, "{bound:?}");
    let (seen, revs) = next_events(&mut w, 3).await;
    assert_eq!(
        seen,
        [
            ev(EventType::Added, Kind::ConfigMap, "cfg"),
            ev(EventType::Added, Kind::Secret, "creds"),
            ev(EventType::Added, Kind::Pod, "mine"),
        ]
    );
    assert!(revs.iter().all(|r| *r == revs[0]), "{revs:?}");
    assert_eq!(
        names(&c.list_for_node(Kind::Pod, "n1").await.unwrap()),
        ["mine"]
    );
    assert_eq!(
        names(&c.list_for_node(Kind::ConfigMap, "n1").await.unwrap()),
        ["cfg"]
    );
    assert_eq!(
        names(&c.list_for_node(Kind::Secret, "n1").await.unwrap()),
        ["creds"]
    );

    // Referenced objects' changes pass; others', and other nodes' pods, do not.
    c.apply(&[config_map("cfg", json!({}), "2")], false)
        .await
        .unwrap();
    c.apply(&[config_map("unrelated", json!({}), "2")], false)
        .await
        .unwrap();
    c.apply(
        &[pod_using("elsewhere2", Some("n2"), "unrelated", "creds")],
        false,
    )
    .await
    .unwrap();
    let svc = obj(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "marker"},
                         "spec": {"ports": [{"port": 80}]}}),
    );
    c.apply(&[svc], false).await.unwrap();
    let (seen, _) = next_events(&mut w, 2).await;
    assert_eq!(
        seen,
        [
            ev(EventType::Modified, Kind::ConfigMap, "cfg"),
            ev(EventType::Added, Kind::Service, "marker"),
        ]
    );

    // A pod applied bound to n1 that shares the references: no second ADDED.
    c.apply(&[pod_using("mine2", Some("n1"), "cfg", "creds")], false)
        .await
        .unwrap();
    let (seen, _) = next_events(&mut w, 1).await;
    assert_eq!(seen, [ev(EventType::Added, Kind::Pod, "mine2")]);

    // The pods go: the references leave with the last one, after it.
    let pod_ref = |name: &str| ObjectRef {
        kind: Kind::Pod,
        namespace: Some("default".into()),
        name: name.into(),
    };
    let now = jotasu_api::client::DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    c.delete_with(&pod_ref("mine"), &now).await.unwrap();
    let (seen, _) = next_events(&mut w, 1).await;
    assert_eq!(seen, [ev(EventType::Deleted, Kind::Pod, "mine")]);
    c.delete_with(&pod_ref("mine2"), &now).await.unwrap();
    let (seen, revs) = next_events(&mut w, 3).await;
    assert_eq!(
        seen,
        [
            ev(EventType::Deleted, Kind::Pod, "mine2"),
            ev(EventType::Deleted, Kind::ConfigMap, "cfg"),
            ev(EventType::Deleted, Kind::Secret, "creds"),
        ]
    );
    assert!(revs.iter().all(|r| *r == revs[0]), "{revs:?}");
    // No longer referenced: its changes are not this node's.
    c.apply(&[config_map("cfg", json!({}), "3")], false)
        .await
        .unwrap();
    c.delete(&cm_ref("unrelated"), None).await.unwrap();
    let svc_ref = ObjectRef {
        kind: Kind::Service,
        namespace: Some("default".into()),
        name: "marker".into(),
    };
    c.delete(&svc_ref, None).await.unwrap();
    let (seen, _) = next_events(&mut w, 1).await;
    assert_eq!(seen, [ev(EventType::Deleted, Kind::Service, "marker")]);

    // A watch resumed from before the binding replays it against the
    // references of its start (none now): the pods come and go, and the
    // references the first deletion drops are DELETED (once; the watcher's
    // state before the resume is unknown, so possibly for objects it never
    // had).
    let mut replay = c
        .watch(&WatchFilter {
            kinds: vec![Kind::Pod, Kind::ConfigMap, Kind::Secret],
            ..filter.clone()
        })
        .await
        .unwrap();
    let (seen, _) = next_events(&mut replay, 6).await;
    assert_eq!(
        seen,
        [
            ev(EventType::Added, Kind::Pod, "mine"),
            ev(EventType::Added, Kind::Pod, "mine2"),
            ev(EventType::Deleted, Kind::Pod, "mine"),
            ev(EventType::Deleted, Kind::ConfigMap, "cfg"),
            ev(EventType::Deleted, Kind::Secret, "creds"),
            ev(EventType::Deleted, Kind::Pod, "mine2"),
        ]
    );
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::$name(super::Options::default()).await;
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    // Started on the test thread: it dies with it.
                    let Some(etcd) = jotasu_tests::etcd::EtcdServer::start_or_skip().expect("etcd starts") else {
                        return;
                    };
                    let options = super::Options {
                        etcd_endpoints: vec![etcd.client_url().to_owned()],
                        ..super::Options::default()
                    };
                    super::$name(options).await;
                }
            )*
        }
    };
}

on_both_stores!(
    apply_is_idempotent_and_all_or_nothing,
    optimistic_concurrency_status_and_scale,
    list_selectors_namespaces_and_cascading_delete,
    watch_resumes_filters_and_says_resync,
    addresses_are_allocated_once_and_never_twice,
    node_ports_are_allocated_once_and_kept,
    node_scoped_list_and_watch,
);

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_on_tcp() {
    let cp = ControlPlane::start(Options {
        tls: true,
        ..Options::default()
    })
    .await
    .unwrap();
    let url = ServerUrl::parse(&cp.tls_url().unwrap()).unwrap();
    let c = Client::connect_to(&url, &cp.admin_tls())
        .await
        .expect("admin certificate accepted");
    c.apply(&[config_map("over-tls", json!({}), "x")], false)
        .await
        .unwrap();
    assert_eq!(
        c.list(Kind::ConfigMap, None, "").await.unwrap().items.len(),
        1
    );

    // Without a client certificate the handshake or the first call fails.
    let anonymous = TlsFiles {
        client_certificate: None,
        client_key: None,
        ..cp.admin_tls()
    };
    let refused = match Client::connect_to(&url, &anonymous).await {
        Err(e) => Some(e),
        Ok(c) => c.list(Kind::ConfigMap, None, "").await.err(),
    };
    eprintln!("without a client certificate: {refused:?}");
    assert!(
        refused.is_some(),
        "a client without a certificate must be refused"
    );
    // A CA that is not the cluster's: the server is not trusted.
    let other = tempfile::tempdir().unwrap();
    let other_pki = jotasu_controlplane::pki::PkiPaths::new(other.path());
    jotasu_controlplane::pki::ensure(&other_pki, &[]).unwrap();
    let wrong = TlsFiles {
        certificate_authority: Some(other_pki.ca_cert()),
        ..cp.admin_tls()
    };
    let e = Client::connect_to(&url, &wrong).await.unwrap_err();
    assert!(matches!(e, ClientError::Connect { .. }), "{e}");
    // And a client certificate from another CA is refused by the server.
    let foreign = TlsFiles {
        client_certificate: Some(other_pki.admin_cert()),
        client_key: Some(other_pki.admin_key()),
        ..cp.admin_tls()
    };
    let refused = match Client::connect_to(&url, &foreign).await {
        Err(e) => Some(e),
        Ok(c) => c.list(Kind::ConfigMap, None, "").await.err(),
    };
    assert!(
        refused.is_some(),
        "a certificate of another CA must be refused"
    );
}
