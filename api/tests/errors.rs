//! One test per kind of bad input: each asserts the file, document, object,
//! field path and rule appear in the message.

use jotasu_api::{ErrorKind, ManifestErrors, ManifestLoader, ParseOptions, load_manifest};

const CONFIG_MAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n";

const DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
        resources:
          requests:
            cpu: 250m
          limits:
            cpu: 500m
";

const SERVICE: &str = "
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
";

/// Loads `text` as `deploy.yaml` and returns every message (it must fail).
fn errors(text: &str) -> ManifestErrors {
    match load_manifest("deploy.yaml", text, ParseOptions::default()) {
        Ok(loaded) => panic!("expected errors, got {} objects", loaded.objects.len()),
        Err(e) => e,
    }
}

/// Asserts one of the messages is exactly `expected`.
fn has(errs: &ManifestErrors, expected: &str) {
    let lines: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
    assert!(
        lines.iter().any(|l| l == expected),
        "wanted\n  {expected}\ngot\n  {}",
        lines.join("\n  ")
    );
}

/// Asserts one of the messages starts with `prefix`.
fn has_prefix(errs: &ManifestErrors, prefix: &str) {
    let lines: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
    assert!(
        lines.iter().any(|l| l.starts_with(prefix)),
        "wanted prefix\n  {prefix}\ngot\n  {}",
        lines.join("\n  ")
    );
}

fn deployment_with(from: &str, to: &str) -> String {
    assert!(DEPLOYMENT.contains(from), "{from}");
    format!("{CONFIG_MAP}---{}", DEPLOYMENT.replacen(from, to, 1))
}

fn service_with(from: &str, to: &str) -> String {
    assert!(SERVICE.contains(from), "{from}");
    SERVICE.replacen(from, to, 1)
}

#[test]
fn the_valid_inputs_are_valid() {
    load_manifest(
        "deploy.yaml",
        &deployment_with("", ""),
        ParseOptions::default(),
    )
    .unwrap();
    load_manifest("svc.yaml", SERVICE, ParseOptions::default()).unwrap();
}

#[test]
fn wrong_type() {
    let e = errors(&deployment_with("replicas: 2", "replicas: three"));
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.replicas: invalid type: string \"three\", expected i32",
    );
    assert_eq!(e.0[0].kind, ErrorKind::Decode);
    let e = errors(&deployment_with("containerPort: 80", "containerPort: [80]"));
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].ports[0].containerPort: invalid type: sequence, expected i32",
    );
}

#[test]
fn unknown_fields_are_all_reported() {
    let text = deployment_with(
        "        image: nginx:1.25",
        "        image: nginx:1.25\n        imagePullSecret: x\n        workingDirectory: /",
    );
    let text = text.replace("  replicas: 2", "  replicas: 2\n  replica: 3");
    let e = errors(&text);
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.replica: unknown field `replica`",
    );
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].imagePullSecret: unknown field `imagePullSecret`",
    );
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].workingDirectory: unknown field `workingDirectory`",
    );
    assert_eq!(e.0.len(), 3);
    assert!(e.0.iter().all(|x| x.kind == ErrorKind::UnknownField));

    // Lenient parsing drops them with warnings.
    let loaded = load_manifest("deploy.yaml", &text, ParseOptions::lenient()).unwrap();
    assert_eq!(loaded.objects.len(), 2);
    assert_eq!(loaded.warnings.len(), 3);
    assert_eq!(
        loaded.warnings[0].to_string(),
        "deploy.yaml: document 2 (Deployment web): spec.replica: unknown field `replica` ignored"
    );
}

#[test]
fn unknown_field_then_type_error() {
    let text = deployment_with("replicas: 2", "replicas: two\n  paws: true");
    let e = errors(&text);
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.paws: unknown field `paws`",
    );
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.replicas: invalid type: string \"two\", expected i32",
    );
}

#[test]
fn invalid_names() {
    let e = errors(&deployment_with("name: web\nspec", "name: Web_1\nspec"));
    has_prefix(
        &e,
        "deploy.yaml: document 2 (Deployment Web_1): metadata.name: Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain must consist of",
    );
    let e = errors(&deployment_with(
        "      - name: web",
        "      - name: web.server",
    ));
    has_prefix(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].name: Invalid value: \"web.server\": a lowercase RFC 1123 label",
    );
    let e = errors(&service_with("name: web\nspec", "name: 9lives\nspec"));
    has_prefix(
        &e,
        "deploy.yaml: document 1 (Service 9lives): metadata.name: Invalid value: \"9lives\": a DNS-1035 label",
    );
    let long = "a".repeat(64);
    let e = errors(&service_with(
        "name: web\nspec",
        &format!("name: {long}\nspec"),
    ));
    has(
        &e,
        &format!(
            "deploy.yaml: document 1 (Service {long}): metadata.name: Invalid value: \"{long}\": must be no more than 63 characters"
        ),
    );
    let e = errors(&service_with("name: web\nspec", "namespace: web\nspec"));
    has(
        &e,
        "deploy.yaml: document 1 (Service): metadata.name: Required value: name or generateName is required",
    );
    let e = errors(&deployment_with(
        "containerPort: 80",
        "containerPort: 80\n          name: HTTP",
    ));
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].ports[0].name: Invalid value: \"HTTP\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
    );
}

#[test]
fn invalid_labels() {
    let e = errors(&service_with(
        "name: web\nspec",
        "name: web\n  labels:\n    -bad: x\n    ok: \"not ok\"\nspec",
    ));
    has_prefix(
        &e,
        "deploy.yaml: document 1 (Service web): metadata.labels: Invalid value: \"-bad\": name part must consist of",
    );
    has_prefix(
        &e,
        "deploy.yaml: document 1 (Service web): metadata.labels.ok: Invalid value: \"not ok\": a valid label must be",
    );
    let e = errors(&service_with("    app: web", "    app: 1.0"));
    has(
        &e,
        "deploy.yaml: document 1 (Service web): spec.selector.app: invalid type: floating point `1.0`, expected a string",
    );
}

#[test]
fn selector_must_match_template_labels() {
    let e = errors(&deployment_with("        app: web", "        app: other"));
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.metadata.labels: Invalid value: \"app=other\": `selector` does not match template `labels` (selector: app=web)",
    );
    let e = errors(&deployment_with(
        "    matchLabels:\n      app: web",
        "    matchLabels: {}",
    ));
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.selector: Invalid value: \"\": empty selector is invalid for deployment and daemonset",
    );
    let e = errors(&deployment_with(
        "    matchLabels:\n      app: web",
        "    matchExpressions:\n    - key: app\n      operator: In",
    ));
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
    );
    let e = errors(&deployment_with(
        "    matchLabels:\n      app: web",
        "    matchExpressions:\n    - key: app\n      operator: Like",
    ));
    has_prefix(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.selector.matchExpressions[0].operator: unknown variant `Like`, expected one of `In`, `NotIn`, `Exists`, `DoesNotExist`",
    );
}

#[test]
fn duplicate_containers_and_ports() {
    let second = "        - containerPort: 80\n      - name: web\n        image: busybox\n        ports:\n        - containerPort: 80\n          protocol: TCP\n        - containerPort: 80\n          protocol: UDP";
    let e = errors(&deployment_with("        - containerPort: 80", second));
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[1].name: Duplicate value: \"web\"",
    );
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[1].ports[0]: Duplicate value: \"80/TCP (also at spec.template.spec.containers[0].ports[0])\"",
    );
    assert_eq!(e.0.len(), 2, "80/UDP is a different port: {e}");
}

#[test]
fn service_ports() {
    let e = errors(&service_with(
        "  - name: http\n    port: 80",
        "  - name: http\n    port: 80\n  - name: http\n    port: 80\n  - port: 0",
    ));
    has(
        &e,
        "deploy.yaml: document 1 (Service web): spec.ports[1].name: Duplicate value: \"http\"",
    );
    has(
        &e,
        "deploy.yaml: document 1 (Service web): spec.ports[1]: Duplicate value: \"80/TCP (also spec.ports[0])\"",
    );
    has(
        &e,
        "deploy.yaml: document 1 (Service web): spec.ports[2].name: Required value: when there is more than one port",
    );
    has(
        &e,
        "deploy.yaml: document 1 (Service web): spec.ports[2].port: Invalid value: \"0\": must be between 1 and 65535, inclusive",
    );
    let e = errors(&service_with(
        "    port: 80",
        "    port: 80\n    targetPort: 70000",
    ));
    has(
        &e,
        "deploy.yaml: document 1 (Service web): spec.ports[0].targetPort: Invalid value: \"70000\": must be between 1 and 65535, inclusive",
    );
    let e = errors(&service_with(
        "    port: 80",
        "    port: 80\n    nodePort: 8080",
    ));
    has(
        &e,
        "deploy.yaml: document 1 (Service web): spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
    );
    let e = errors(&service_with(
        "    port: 80",
        "    port: 80\n    nodePort: 8080\n  type: NodePort",
    ));
    has(
        &e,
        "deploy.yaml: document 1 (Service web): spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767",
    );
    let e = errors(&service_with(
        "    port: 80",
        "    port: 80\n  type: Balanced",
    ));
    has(
        &e,
        "deploy.yaml: document 1 (Service web): spec.type: unknown variant `Balanced`, expected one of `ClusterIP`, `NodePort`, `LoadBalancer`, `ExternalName`",
    );
    let e = errors(&service_with(
        "    port: 80",
        "    port: 80\n    nodePort: 8080\n  type: LoadBalancer",
    ));
    has(
        &e,
        "deploy.yaml: document 1 (Service web): spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767",
    );
    let e = errors(&service_with(
        "    port: 80",
        "    port: 80\n  clusterIP: 10.96.0.5\n  clusterIPs: [10.96.0.5, fd00::5]",
    ));
    has(
        &e,
        "deploy.yaml: document 1 (Service web): spec.clusterIPs[1]: Invalid value: \"fd00::5\": jotasu is single-stack (IPv4): give one address",
    );
    let e = errors(&service_with(
        "    port: 80",
        "    port: 80\n  clusterIP: 10.96.0.5\n  clusterIPs: [10.96.0.6]",
    ));
    has(
        &e,
        "deploy.yaml: document 1 (Service web): spec.clusterIPs[0]: Invalid value: \"10.96.0.6\": must match `clusterIP` \"10.96.0.5\"",
    );
    let e = errors(&service_with(
        "    port: 80",
        "    port: 80\n  clusterIP: 10.96.0.300",
    ));
    has(
        &e,
        "deploy.yaml: document 1 (Service web): spec.clusterIP: Invalid value: \"10.96.0.300\": must be a valid IPv4 address",
    );
}

/// An ExternalName Service `db` with these extra spec lines.
fn external_name(extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: db\nspec:\n  type: ExternalName\n{extra}"
    )
}

#[test]
fn external_name_services() {
    // Valid: no ports needed, a fully qualified name (trailing dot) allowed,
    // no cluster IP; stored as Kubernetes writes it.
    for name in ["db.example.test", "db.example.test.", "localhost"] {
        let text = external_name(&format!("  externalName: {name}\n"));
        let loaded = load_manifest("db.yaml", &text, ParseOptions::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let json = serde_json::to_value(&loaded.objects[0].object).expect("json");
        assert_eq!(json["spec"]["type"], "ExternalName");
        assert_eq!(json["spec"]["externalName"], name);
        assert!(json["spec"].get("clusterIP").is_none(), "{json}");
    }
    let e = errors(&external_name(""));
    has(
        &e,
        "deploy.yaml: document 1 (Service db): spec.externalName: Required value",
    );
    assert_eq!(e.0.len(), 1, "ports are not required: {e}");
    has(
        &errors(&external_name("  externalName: .\n")),
        "deploy.yaml: document 1 (Service db): spec.externalName: Required value",
    );
    has_prefix(
        &errors(&external_name("  externalName: DB.example.test\n")),
        "deploy.yaml: document 1 (Service db): spec.externalName: Invalid value: \"DB.example.test\": a lowercase RFC 1123 subdomain",
    );
    has_prefix(
        &errors(&external_name("  externalName: db..example.test.\n")),
        "deploy.yaml: document 1 (Service db): spec.externalName: Invalid value: \"db..example.test\": a lowercase RFC 1123 subdomain",
    );
    has_prefix(
        &errors(&external_name("  externalName: db.example.test..\n")),
        "deploy.yaml: document 1 (Service db): spec.externalName: Invalid value: \"db.example.test.\"",
    );
    let long = format!("{}.test", vec!["a".repeat(60); 5].join("."));
    has(
        &errors(&external_name(&format!("  externalName: {long}\n"))),
        &format!(
            "deploy.yaml: document 1 (Service db): spec.externalName: Invalid value: \"{long}\": must be no more than 253 characters"
        ),
    );
    for ip in ["10.96.0.50", "None"] {
        has(
            &errors(&external_name(&format!(
                "  externalName: db.example.test\n  clusterIP: {ip}\n"
            ))),
            "deploy.yaml: document 1 (Service db): spec.clusterIPs: Forbidden: may not be set for ExternalName services",
        );
    }
    has(
        &errors(&external_name(
            "  externalName: db.example.test\n  ports:\n  - port: 80\n    nodePort: 30080\n",
        )),
        "deploy.yaml: document 1 (Service db): spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ExternalName'",
    );
}

#[test]
fn replicas_and_hpa_bounds() {
    let e = errors(&deployment_with("replicas: 2", "replicas: -1"));
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.replicas: Invalid value: \"-1\": must be greater than or equal to 0",
    );
    let hpa = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: web\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: web\n  minReplicas: 5\n  maxReplicas: 3\n  metrics:\n  - type: Resource\n    resource:\n      name: cpu\n      target:\n        type: Utilization\n        averageUtilization: 0\n";
    let e = errors(hpa);
    has(
        &e,
        "deploy.yaml: document 1 (HorizontalPodAutoscaler web): spec.maxReplicas: Invalid value: \"3\": must be greater than or equal to `minReplicas` (5) and at least 1",
    );
    has(
        &e,
        "deploy.yaml: document 1 (HorizontalPodAutoscaler web): spec.metrics[0].resource.target.averageUtilization: Invalid value: \"0\": must be greater than 0",
    );
    let e = errors(&hpa.replace("minReplicas: 5", "minReplicas: 0"));
    has(
        &e,
        "deploy.yaml: document 1 (HorizontalPodAutoscaler web): spec.minReplicas: Invalid value: \"0\": must be greater than or equal to 1",
    );
    let e = errors(&hpa.replace("kind: Deployment", "kind: StatefulSet"));
    has(
        &e,
        "deploy.yaml: document 1 (HorizontalPodAutoscaler web): spec.scaleTargetRef.kind: Unsupported value: \"StatefulSet\": supported values: \"Deployment\"",
    );
    let e = errors(&hpa.replace("type: Resource", "type: Pods"));
    has(
        &e,
        "deploy.yaml: document 1 (HorizontalPodAutoscaler web): spec.metrics[0].type: Forbidden: jotasu does not support Pods metrics: only Resource metrics (cpu, memory) are served",
    );
}

#[test]
fn rolling_update_bounds() {
    let e = errors(&deployment_with(
        "  replicas: 2",
        "  replicas: 2\n  strategy:\n    rollingUpdate:\n      maxSurge: 0\n      maxUnavailable: 0%",
    ));
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0\": may not be 0 when `maxSurge` is 0",
    );
    let e = errors(&deployment_with(
        "  replicas: 2",
        "  replicas: 2\n  strategy:\n    rollingUpdate:\n      maxSurge: lots",
    ));
    has_prefix(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.strategy.rollingUpdate.maxSurge: Invalid value: \"lots\": a valid percent string",
    );
    let e = errors(&deployment_with(
        "  replicas: 2",
        "  replicas: 2\n  strategy:\n    type: Recreate\n    rollingUpdate:\n      maxSurge: 1",
    ));
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
    );
}

#[test]
fn env_value_from_needs_exactly_one_source() {
    let env = "        env:\n        - name: A\n          valueFrom:\n            configMapKeyRef: {name: settings, key: a}\n            secretKeyRef: {name: creds, key: a}\n        - name: B\n          valueFrom: {}\n        - name: 1C\n          value: x\n        image: nginx:1.25";
    let e = errors(&deployment_with("        image: nginx:1.25", env));
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].env[0].valueFrom: Invalid value: \"\": may not have more than one field specified at a time",
    );
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].env[1].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
    );
    has_prefix(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].env[2].name: Invalid value: \"1C\": a valid environment variable name",
    );
}

#[test]
fn probes_need_exactly_one_handler() {
    let probes = "        image: nginx:1.25\n        livenessProbe:\n          httpGet: {port: 80}\n          exec: {command: [\"true\"]}\n        readinessProbe:\n          periodSeconds: 0\n        startupProbe:\n          tcpSocket: {port: admin}";
    let e = errors(&deployment_with("        image: nginx:1.25", probes));
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].livenessProbe: Forbidden: may not specify more than 1 handler type (httpGet, tcpSocket, exec, grpc)",
    );
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].readinessProbe: Required value: must specify a handler type (one of httpGet, tcpSocket, exec, grpc)",
    );
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].readinessProbe.periodSeconds: Invalid value: \"0\": must be greater than or equal to 1",
    );
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].startupProbe.tcpSocket.port: Not found: \"admin\": no container port of this name",
    );
    let e = errors(&deployment_with(
        "        image: nginx:1.25",
        "        image: nginx:1.25\n        livenessProbe:\n          httpGet: {port: 80, scheme: FTP}",
    ));
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].livenessProbe.httpGet.scheme: unknown variant `FTP`, expected `HTTP` or `HTTPS`",
    );
}

#[test]
fn volume_mounts_name_existing_volumes() {
    let mounts = "        image: nginx:1.25\n        volumeMounts:\n        - name: config\n          mountPath: /etc/config\n        - name: data\n          mountPath: /etc/config";
    let text = deployment_with("        image: nginx:1.25", mounts)
        + "      volumes:\n      - name: config\n        configMap: {name: settings}\n";
    let e = errors(&text);
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].volumeMounts[1].name: Not found: \"data\": no volume of this name in spec.volumes",
    );
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/etc/config\": must be unique",
    );
    assert_eq!(e.0.len(), 2, "{e}");
}

#[test]
fn limits_must_cover_requests() {
    let e = errors(&deployment_with(
        "            cpu: 500m",
        "            cpu: 200m",
    ));
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].resources.requests.cpu: Invalid value: \"250m\": must be less than or equal to cpu limit of 200m",
    );
    // Equal amounts in different spellings are fine.
    let ok = deployment_with(
        "            cpu: 250m\n          limits:\n            cpu: 500m",
        "            memory: 1Gi\n          limits:\n            memory: 1024Mi",
    );
    load_manifest("deploy.yaml", &ok, ParseOptions::default()).unwrap();
}

#[test]
fn bad_quantities() {
    let e = errors(&deployment_with(
        "            cpu: 500m",
        "            cpu: 2 cores",
    ));
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].resources.limits.cpu: invalid quantity \"2 cores\": unknown suffix \" cores\" (use n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or e<exponent>)",
    );
    let e = errors(&deployment_with(
        "            cpu: 500m",
        "            memory: 1GB",
    ));
    has_prefix(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].resources.limits.memory: invalid quantity \"1GB\": unknown suffix \"GB\"",
    );
    let e = errors(&deployment_with(
        "            cpu: 500m",
        "            cpu: -1",
    ));
    has(
        &e,
        "deploy.yaml: document 2 (Deployment web): spec.template.spec.containers[0].resources.limits.cpu: Invalid value: \"-1\": must be greater than or equal to 0",
    );
}

#[test]
fn secrets_and_config_maps() {
    let secret =
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\ndata:\n  password: cGFzc3dvcmQ\n";
    let e = errors(secret);
    has(
        &e,
        "deploy.yaml: document 1 (Secret creds): data.password: illegal base64 data: length 11 is not a multiple of 4 (missing padding?)",
    );
    let e = errors(&secret.replace("cGFzc3dvcmQ", "pass word!!!"));
    has(
        &e,
        "deploy.yaml: document 1 (Secret creds): data.password: illegal base64 data at input byte 4",
    );
    let e = errors(&CONFIG_MAP.replace("  a: b", "  bad/key: b\n  ..: c"));
    has(&e, "deploy.yaml: document 1 (ConfigMap settings): data[bad/key]: Invalid value: \"bad/key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name', or 'KEY_NAME', or 'key-name')".replace("data[bad/key]", "data").as_str());
    has(
        &e,
        "deploy.yaml: document 1 (ConfigMap settings): data: Invalid value: \"..\": must not be '.' or '..'",
    );
    let tls = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: tls\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: x\n";
    let e = errors(tls);
    has(
        &e,
        "deploy.yaml: document 1 (Secret tls): data[tls.key]: Required value: secrets of type kubernetes.io/tls need it",
    );
}

#[test]
fn unsupported_kinds_and_shapes() {
    let e = errors("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: pi\n");
    has_prefix(
        &e,
        "deploy.yaml: document 1 (Ingress pi): resource mapping not found for name: \"pi\" namespace: \"\" from \"deploy.yaml\": no matches for kind \"Ingress\" in version \"networking.k8s.io/v1\": jotasu does not serve this kind; it serves v1 Pod, apps/v1 Deployment, apps/v1 ReplicaSet",
    );
    assert_eq!(e.0[0].kind, ErrorKind::UnsupportedKind);
    let e = errors("apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata:\n  name: old\n");
    has(
        &e,
        "deploy.yaml: document 1 (Deployment old): resource mapping not found for name: \"old\" namespace: \"\" from \"deploy.yaml\": no matches for kind \"Deployment\" in version \"extensions/v1beta1\": Kubernetes 1.16 removed it, use apiVersion: apps/v1",
    );
    let e = errors("apiVersion: batch/v1beta1\nkind: CronJob\nmetadata:\n  name: nightly\n");
    has(
        &e,
        "deploy.yaml: document 1 (CronJob nightly): resource mapping not found for name: \"nightly\" namespace: \"\" from \"deploy.yaml\": no matches for kind \"CronJob\" in version \"batch/v1beta1\": Kubernetes 1.25 removed it, use apiVersion: batch/v1",
    );
    assert_eq!(e.0[0].kind, ErrorKind::UnsupportedKind);
    let e = errors("kind: Pod\nmetadata:\n  name: p\n");
    has(
        &e,
        "deploy.yaml: document 1 (Pod p): missing field `apiVersion`",
    );
    let e = errors("just a string\n");
    has(
        &e,
        "deploy.yaml: document 1: invalid type: string, expected an object with apiVersion and kind",
    );
    let e = errors(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - image: nginx\n",
    );
    has(
        &e,
        "deploy.yaml: document 1 (Pod p): spec.containers[0]: missing field `name`",
    );
}

#[test]
fn syntax_errors() {
    let e = errors(&format!(
        "{CONFIG_MAP}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: [oops\n"
    ));
    has_prefix(&e, "deploy.yaml: document 2: invalid YAML: ");
    assert_eq!(e.0[0].kind, ErrorKind::Syntax);
    let e = errors("{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\",}");
    has_prefix(
        &e,
        "deploy.yaml: document 1: invalid JSON: trailing comma at line 1 column 42",
    );
}

#[test]
fn list_items_are_located() {
    let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: ok}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: Bad}\n";
    let e = errors(list);
    has_prefix(
        &e,
        "deploy.yaml: document 1, item 2 (ConfigMap Bad): metadata.name: Invalid value: \"Bad\"",
    );
    assert_eq!(e.0.len(), 1);
}

#[test]
fn namespace_option() {
    let opts = ParseOptions {
        namespace: Some("prod".into()),
        ..ParseOptions::default()
    };
    let loaded = load_manifest("svc.yaml", SERVICE, opts.clone()).unwrap();
    assert_eq!(loaded.objects[0].object.namespace(), Some("prod"));
    let text = SERVICE.replace("name: web\nspec", "name: web\n  namespace: dev\nspec");
    let e = load_manifest("svc.yaml", &text, opts).unwrap_err();
    has(
        &e,
        "svc.yaml: document 1 (Service web): metadata.namespace: Invalid value: \"dev\": the namespace of the object does not match the namespace \"prod\" given",
    );
}

#[test]
fn one_apply_gathers_every_error_of_every_file() {
    let mut loader = ManifestLoader::new(ParseOptions::default());
    loader.add("ok.yaml", SERVICE);
    loader.add(
        "deploy.yaml",
        &deployment_with("replicas: 2", "replicas: three"),
    );
    loader.add("svc.yaml", &service_with("port: 80", "port: 99999"));
    loader.add(
        "cm.yaml",
        &format!(
            "{CONFIG_MAP}---\n{}",
            CONFIG_MAP.replace("settings", "Settings")
        ),
    );
    let e = loader.finish().unwrap_err();
    let text = e.to_string();
    assert_eq!(e.0.len(), 3, "{text}");
    assert!(
        text.contains("deploy.yaml: document 2 (Deployment web): spec.replicas:"),
        "{text}"
    );
    assert!(
        text.contains(
            "svc.yaml: document 1 (Service web): spec.ports[0].port: Invalid value: \"99999\""
        ),
        "{text}"
    );
    assert!(
        text.contains("cm.yaml: document 2 (ConfigMap Settings): metadata.name:"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 3);
}

#[test]
fn node_rules() {
    let node = "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  namespace: ignored\nspec:\n  podCIDR: 10.244.1.1/24\n  taints:\n  - key: dedicated\n    effect: NoSchedule\n  - key: dedicated\n    effect: NoSchedule\n";
    let e = errors(node);
    has(
        &e,
        "deploy.yaml: document 1 (Node n1): spec.podCIDR: Invalid value: \"10.244.1.1/24\": host bits must be zero (network is 10.244.1.0/24)",
    );
    has(
        &e,
        "deploy.yaml: document 1 (Node n1): spec.taints[1]: Duplicate value: \"dedicated:NoSchedule\"",
    );
    assert_eq!(
        e.0.len(),
        2,
        "namespace is dropped for cluster-scoped kinds: {e}"
    );
}

#[test]
fn pod_dns_fields() {
    let e = errors(&deployment_with(
        "    spec:\n      containers:",
        "    spec:\n      dnsPolicy: None\n      hostname: Web\n      dnsConfig:\n        searches: [\"shop.example.\", \"a_b\"]\n        options:\n        - value: \"2\"\n      containers:",
    ));
    let d = "deploy.yaml: document 2 (Deployment web): spec.template.spec";
    has(
        &e,
        &format!(
            "{d}.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"
        ),
    );
    has_prefix(
        &e,
        &format!("{d}.hostname: Invalid value: \"Web\": a lowercase RFC 1123 label"),
    );
    let e = errors(&deployment_with(
        "    spec:\n      containers:",
        "    spec:\n      dnsPolicy: ClusterFirst\n      dnsConfig:\n        nameservers: [\"1.1.1.1\", \"dns.example\"]\n        searches: [\"shop.example.\", \"a_b\"]\n        options:\n        - value: \"2\"\n      containers:",
    ));
    has(
        &e,
        &format!(
            "{d}.dnsConfig.nameservers[1]: Invalid value: \"dns.example\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
        ),
    );
    has_prefix(
        &e,
        &format!("{d}.dnsConfig.searches[1]: Invalid value: \"a_b\":"),
    );
    has(
        &e,
        &format!("{d}.dnsConfig.options[0]: Required value: must not be empty"),
    );
    assert_eq!(e.0.len(), 3, "{e}");
    let e = errors(&deployment_with(
        "    spec:\n      containers:",
        "    spec:\n      dnsPolicy: Cluster\n      containers:",
    ));
    has_prefix(
        &e,
        &format!("{d}.dnsPolicy: unknown variant `Cluster`, expected one of `ClusterFirst`"),
    );
}
