//! The manifest corpus: realistic files in the shapes of well-known examples
//! all parse, default and validate, and round-trip through JSON unchanged.

use std::path::Path;

use jotasu_api::kinds::pod::{DnsPolicy, PodDnsConfigOption, Protocol, PullPolicy, RestartPolicy};
use jotasu_api::kinds::service::{ServiceType, SessionAffinity};
use jotasu_api::kinds::workloads::DeploymentStrategyType;
use jotasu_api::{
    ConfigMap, DaemonSet, Deployment, HorizontalPodAutoscaler, IntOrString, Kind, Loaded,
    ManifestLoader, Node, Object, ParseOptions, Pod, Quantity, Secret, Service, load_manifest,
};

fn load(file: &str) -> Loaded {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/manifests")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("read manifest");
    match load_manifest(file, &text, ParseOptions::default()) {
        Ok(loaded) => {
            assert!(loaded.warnings.is_empty(), "{file}: {:?}", loaded.warnings);
            for o in &loaded.objects {
                round_trip(&o.object);
            }
            loaded
        }
        Err(e) => panic!("{file} failed:\n{e}"),
    }
}

/// JSON out and back gives an equal object, defaults are idempotent, and the
/// object is still valid.
fn round_trip(object: &Object) {
    let json = serde_json::to_string(object).expect("serialise");
    let back: Object = serde_json::from_str(&json).expect("deserialise");
    assert_eq!(&back, object, "{json}");
    assert_eq!(serde_json::to_string(&back).expect("serialise"), json);
    let mut again = back.clone();
    again.apply_defaults();
    assert_eq!(&again, object, "defaults are idempotent");
    again.validate().expect("still valid");
}

/// `Kind/name` of every object loaded, in order.
fn names(loaded: &Loaded) -> Vec<String> {
    loaded
        .objects
        .iter()
        .map(|o| format!("{}/{}", o.object.kind(), o.object.name()))
        .collect()
}

fn get<T: TryFrom<Object>>(loaded: &Loaded, kind: Kind, name: &str) -> T {
    let object = loaded
        .objects
        .iter()
        .find(|o| o.object.kind() == kind && o.object.name() == name)
        .expect("object present");
    T::try_from(object.object.clone())
        .ok()
        .expect("kind matches")
}

#[test]
fn guestbook() {
    let loaded = load("guestbook.yaml");
    let names = names(&loaded);
    assert_eq!(
        names,
        [
            "Deployment/redis-leader",
            "Service/redis-leader",
            "Deployment/redis-follower",
            "Service/redis-follower",
            "Deployment/frontend",
            "Service/frontend"
        ]
    );
    let d: Deployment = get(&loaded, Kind::Deployment, "redis-follower");
    assert_eq!(d.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(d.spec.replicas, Some(2));
    assert_eq!(d.spec.revision_history_limit, Some(10));
    assert_eq!(d.spec.progress_deadline_seconds, Some(600));
    let strategy = d.spec.strategy.clone().unwrap();
    assert_eq!(strategy.type_, Some(DeploymentStrategyType::RollingUpdate));
    let ru = strategy.rolling_update.unwrap();
    assert_eq!(ru.max_surge, Some(IntOrString::from("25%")));
    assert_eq!(ru.max_unavailable, Some(IntOrString::from("25%")));
    let pod = &d.spec.template.spec;
    assert_eq!(pod.restart_policy, Some(RestartPolicy::Always));
    assert_eq!(pod.termination_grace_period_seconds, Some(30));
    assert_eq!(pod.dns_policy, Some(DnsPolicy::ClusterFirst), "defaulted");
    let c = &pod.containers[0];
    assert_eq!(c.image_pull_policy, Some(PullPolicy::IfNotPresent));
    assert_eq!(c.ports[0].protocol, Some(Protocol::Tcp));
    let requests = &c.resources.as_ref().unwrap().requests;
    assert_eq!(requests["cpu"].millis(), 100);
    assert_eq!(requests["memory"].units(), 100 << 20);

    let s: Service = get(&loaded, Kind::Service, "redis-follower");
    assert_eq!(s.spec.type_, Some(ServiceType::ClusterIP));
    assert_eq!(s.spec.session_affinity, Some(SessionAffinity::None));
    assert_eq!(
        s.spec.ports[0].target_port,
        Some(IntOrString::Int(6379)),
        "targetPort defaults to port"
    );
    let s: Service = get(&loaded, Kind::Service, "frontend");
    assert_eq!(s.spec.type_(), ServiceType::NodePort);
    assert_eq!(s.spec.ports[0].node_port, Some(30080));
    // The frontend Service selects the frontend template's pods.
    let d: Deployment = get(&loaded, Kind::Deployment, "frontend");
    let sel = jotasu_api::LabelSelector::from_labels(&s.spec.selector);
    assert!(sel.matches(&d.spec.template.metadata.labels));
}

#[test]
fn nginx() {
    let loaded = load("nginx.yaml");
    let d: Deployment = get(&loaded, Kind::Deployment, "nginx-deployment");
    assert_eq!(d.spec.min_ready_seconds, Some(5));
    let ru = d
        .spec
        .strategy
        .as_ref()
        .unwrap()
        .rolling_update
        .as_ref()
        .unwrap();
    assert_eq!(ru.max_surge, Some(IntOrString::Int(1)));
    assert_eq!(ru.max_unavailable, Some(IntOrString::Int(0)));
    let c = &d.spec.template.spec.containers[0];
    let res = c.resources.as_ref().unwrap();
    assert_eq!(
        res.requests["cpu"],
        Quantity::parse("500m").unwrap(),
        "requests default to limits"
    );
    assert_eq!(res.requests["memory"].as_str(), "128Mi");
    let ready = c.readiness_probe.as_ref().unwrap();
    assert_eq!(ready.period_seconds, Some(10));
    assert_eq!(ready.timeout_seconds, Some(1));
    assert_eq!(ready.success_threshold, Some(1));
    assert_eq!(ready.failure_threshold, Some(3));
    assert_eq!(
        ready.http_get.as_ref().unwrap().port,
        IntOrString::from("http")
    );
    let live = c.liveness_probe.as_ref().unwrap();
    assert_eq!(live.period_seconds, Some(20));
    assert_eq!(live.initial_delay_seconds, Some(15));
    assert_eq!(
        d.spec.template.spec.termination_grace_period_seconds,
        Some(10)
    );
    let s: Service = get(&loaded, Kind::Service, "nginx");
    assert_eq!(s.spec.session_affinity, Some(SessionAffinity::ClientIP));
    assert_eq!(s.spec.ports[0].target_port, Some(IntOrString::from("http")));
    assert_eq!(
        s.spec.ports[0].node_port, None,
        "allocated by the control plane"
    );
}

#[test]
fn pod_with_config_and_secret() {
    let loaded = load("pod-config.yaml");
    assert_eq!(loaded.objects.len(), 4);
    let ns: jotasu_api::Namespace = get(&loaded, Kind::Namespace, "games");
    assert_eq!(ns.metadata.namespace, None);
    assert_eq!(ns.spec.finalizers, ["kubernetes"]);
    let cm: ConfigMap = get(&loaded, Kind::ConfigMap, "game-demo");
    assert_eq!(cm.metadata.namespace.as_deref(), Some("games"));
    assert!(cm.data["game.properties"].contains("player.maximum-lives=5\n"));
    assert_eq!(cm.binary_data["logo.bin"].0, [0, 1, 2, 3, 4]);
    let s: Secret = get(&loaded, Kind::Secret, "db-credentials");
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    assert_eq!(s.data["username"].as_str(), Some("admin"));
    assert_eq!(
        s.data["api-token"].as_str(),
        Some("t0ps3cret"),
        "stringData merged into data"
    );
    assert!(s.string_data.is_empty());
    let p: Pod = get(&loaded, Kind::Pod, "configmap-demo-pod");
    assert_eq!(p.spec.restart_policy, Some(RestartPolicy::OnFailure));
    assert_eq!(p.spec.dns_policy, Some(DnsPolicy::None));
    assert_eq!(p.spec.hostname.as_deref(), Some("demo-0"));
    assert_eq!(p.spec.subdomain.as_deref(), Some("games"));
    let dns = p.spec.dns_config.as_ref().unwrap();
    assert_eq!(dns.nameservers, ["192.0.2.1"]);
    assert_eq!(dns.searches[1], "my.dns.search.suffix.");
    assert_eq!(
        dns.options,
        [
            PodDnsConfigOption {
                name: "ndots".into(),
                value: Some("2".into())
            },
            PodDnsConfigOption {
                name: "edns0".into(),
                value: None
            }
        ]
    );
    let c = &p.spec.containers[0];
    assert_eq!(
        c.image_pull_policy,
        Some(PullPolicy::Always),
        "untagged image"
    );
    let env = &c.env[2]
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (env.name.as_str(), env.key.as_str(), env.optional),
        ("db-credentials", "password", Some(false))
    );
    let res = c.resources.as_ref().unwrap();
    assert!(res.requests["memory"] < res.limits["memory"]);
    assert_eq!(res.limits["memory"].units(), 1_000_000_000);
    let startup = c.startup_probe.as_ref().unwrap();
    assert_eq!(
        (startup.failure_threshold, startup.period_seconds),
        (Some(30), Some(1))
    );
    let vols = &p.spec.volumes;
    assert_eq!(
        vols[0].config_map.as_ref().unwrap().default_mode,
        Some(0o644)
    );
    assert_eq!(
        vols[1].secret.as_ref().unwrap().default_mode,
        Some(0o400),
        "YAML 0400 read as octal"
    );
    assert_eq!(
        vols[2]
            .empty_dir
            .as_ref()
            .unwrap()
            .size_limit
            .as_ref()
            .unwrap()
            .units(),
        64 << 20
    );
}

#[test]
fn daemon_set() {
    let loaded = load("daemonset.yaml");
    let d: DaemonSet = get(&loaded, Kind::DaemonSet, "fluentd-elasticsearch");
    assert_eq!(d.metadata.namespace.as_deref(), Some("kube-system"));
    let ru = d
        .spec
        .update_strategy
        .as_ref()
        .unwrap()
        .rolling_update
        .as_ref()
        .unwrap();
    assert_eq!(ru.max_unavailable, Some(IntOrString::from("10%")));
    assert_eq!(ru.max_surge, Some(IntOrString::Int(0)));
    assert_eq!(
        d.spec.template.spec.tolerations[1].toleration_seconds,
        Some(300)
    );
    assert_eq!(
        d.spec.template.spec.containers[0].ports[0].host_port,
        Some(24231)
    );
}

#[test]
fn hpa() {
    let loaded = load("hpa.yaml");
    let h: HorizontalPodAutoscaler = get(&loaded, Kind::HorizontalPodAutoscaler, "php-apache");
    assert_eq!(h.spec.min_replicas, Some(1));
    assert_eq!(h.spec.max_replicas, 10);
    let target = &h.spec.metrics[0].resource.as_ref().unwrap().target;
    assert_eq!(target.average_utilization, Some(50));
    let down = h
        .spec
        .behavior
        .as_ref()
        .unwrap()
        .scale_down
        .as_ref()
        .unwrap();
    assert_eq!(down.stabilization_window_seconds, Some(300));
    let d: Deployment = get(&loaded, Kind::Deployment, "php-apache");
    assert_eq!(d.spec.replicas(), 1);
}

#[test]
fn multi_document_with_list() {
    let loaded = load("multi-list.yaml");
    let names = names(&loaded);
    assert_eq!(
        names,
        [
            "ConfigMap/app-config",
            "Service/app",
            "Deployment/app",
            "Secret/tls"
        ]
    );
    // Empty documents count in numbering; list items are numbered from 1.
    let locations: Vec<_> = loaded
        .objects
        .iter()
        .map(|o| (o.location.document, o.location.item))
        .collect();
    assert_eq!(
        locations,
        [(2, Some(1)), (2, Some(2)), (2, Some(3)), (4, None)]
    );
    let d: Deployment = get(&loaded, Kind::Deployment, "app");
    assert_eq!(d.spec.replicas, Some(0));
    let s: Secret = get(&loaded, Kind::Secret, "tls");
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(s.data.len(), 2);
}

#[test]
fn json_stream() {
    let loaded = load("cluster.json");
    let n: Node = get(&loaded, Kind::Node, "node-1");
    assert_eq!(n.metadata.namespace, None, "Node is cluster-scoped");
    let status = n.status.as_ref().unwrap();
    assert_eq!(status.allocatable["cpu"].millis(), 1900);
    assert_eq!(status.capacity["memory"].units(), 24 << 30);
    assert_eq!(
        status.conditions[0]
            .last_heartbeat_time
            .as_ref()
            .unwrap()
            .unix_seconds(),
        Some(1_714_564_800)
    );
    let e: jotasu_api::Endpoints = get(&loaded, Kind::Endpoints, "redis-leader");
    assert_eq!(
        e.subsets[0].addresses[0]
            .target_ref
            .as_ref()
            .unwrap()
            .name
            .as_deref(),
        Some("redis-leader-abc12")
    );
}

#[test]
fn a_whole_directory_in_one_loader() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/manifests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut loader = ManifestLoader::new(ParseOptions::default());
    for f in &files {
        loader.add(
            &f.file_name().unwrap().to_string_lossy(),
            &std::fs::read_to_string(f).unwrap(),
        );
    }
    let loaded = loader.finish().unwrap();
    assert_eq!(loaded.objects.len(), 2 + 1 + 6 + 3 + 4 + 2 + 4);
}

#[test]
fn parsed_but_not_defaulted_round_trips_as_written() {
    // A typed object serialises back to the same JSON it was read from.
    let json = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx","resources":{"limits":{"cpu":"0.5","memory":"1Gi"}}}]}}}}"#;
    let obj: Object = serde_json::from_str(json).unwrap();
    assert_eq!(serde_json::to_string(&obj).unwrap(), json);
}
