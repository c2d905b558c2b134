//! Kubernetes fields jotasu does not implement, through the manifest
//! loader as jotactl reads files: refused by name, dropped with a warning,
//! or accepted silently when they say what jotasu does anyway.

use jotasu_api::{ErrorKind, ParseOptions, load_manifest};

/// A pod as `kubectl get pod -o yaml` prints it: defaults Kubernetes
/// filled in, managedFields, selfLink, a status jotasu's types lack fields for.
const EXPORTED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  selfLink: /api/v1/namespaces/default/pods/web
  managedFields:
  - manager: kubectl-client-side-apply
    operation: Update
spec:
  containers:
  - name: web
    image: nginx:1.27
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
    stdin: false
    tty: false
  enableServiceLinks: true
  hostNetwork: false
  schedulerName: default-scheduler
  preemptionPolicy: ""
  priorityClassName: ""
status:
  phase: Running
  qosClass: BestEffort
  hostIPs: [{ip: 192.0.2.1}]
"#;

#[test]
fn an_exported_pod_loads_with_one_warning() {
    let loaded = load_manifest("pod.yaml", EXPORTED, ParseOptions::user(None)).unwrap();
    let pod = &loaded.objects[0].object;
    let json = serde_json::to_value(pod).unwrap();
    assert!(json.get("status").is_none(), "{json}");
    assert!(json["spec"].get("schedulerName").is_none(), "{json}");
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "pod.yaml: document 1 (Pod web): metadata.managedFields: ignored: jotasu does not implement this field: jotasu keeps no field managers (apply replaces the object)"
        ]
    );
    // The server keeps status (the system writes it): there the unknown
    // status fields are still errors.
    assert!(load_manifest("pod.yaml", EXPORTED, ParseOptions::default()).is_err());
}

#[test]
fn fields_that_would_mislead_are_refused_by_name_with_every_other_problem() {
    let text = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      hostNetwork: true
      containers:
      - name: web
        image: nginx
        volumeMounts: [{name: data, mountPath: /d, subPathExpr: $(POD)}]
        bogus: 1
      volumes:
      - name: data
        nfs: {server: nfs.example.test, path: /x}
"#;
    let e = load_manifest("web.yaml", text, ParseOptions::user(None)).unwrap_err();
    let lines: Vec<String> = e.0.iter().map(ToString::to_string).collect();
    let expect = [
        (
            ErrorKind::Unsupported,
            "spec.template.spec.hostNetwork: Forbidden: jotasu does not support this field: every pod has its own network namespace and address",
        ),
        (
            ErrorKind::Unsupported,
            "spec.template.spec.volumes[0].nfs: Forbidden: jotasu does not support this field: jotasu has no such volume plugin; use emptyDir, configMap or secret volumes",
        ),
        (
            ErrorKind::Unsupported,
            "spec.template.spec.containers[0].volumeMounts[0].subPathExpr: Forbidden: jotasu does not support this field: subPathExpr is not expanded yet; use subPath",
        ),
        (
            ErrorKind::UnknownField,
            "spec.template.spec.containers[0].bogus: unknown field `bogus`",
        ),
    ];
    for (kind, message) in expect {
        assert!(
            e.0.iter()
                .any(|err| err.kind == kind && err.to_string().ends_with(message)),
            "missing {message:?} in {lines:#?}"
        );
    }
    assert_eq!(e.0.len(), expect.len(), "{lines:#?}");
}

#[test]
fn an_autoscaler_on_custom_metrics_is_refused_and_a_load_balancer_accepted() {
    let hpa = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 5
  metrics:
  - type: Pods
    pods:
      metric: {name: packets-per-second}
      target: {type: AverageValue, averageValue: 1k}
"#;
    let e = load_manifest("hpa.yaml", hpa, ParseOptions::user(None)).unwrap_err();
    assert!(
        e.to_string().contains("spec.metrics[0].pods: Forbidden: jotasu does not support this field: only Resource metrics (cpu, memory) are served"),
        "{e}"
    );
    let lb = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, appProtocol: http}]
  externalTrafficPolicy: Local
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
"#;
    let loaded = load_manifest("lb.yaml", lb, ParseOptions::user(None)).unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert!(warnings.is_empty(), "Local is served: {warnings:#?}");
    let json = serde_json::to_value(&loaded.objects[0].object).unwrap();
    assert_eq!(json["spec"]["type"], "LoadBalancer");
    assert_eq!(json["spec"]["externalTrafficPolicy"], "Local");
    assert_eq!(json["spec"]["ports"][0]["appProtocol"], "http");
}
