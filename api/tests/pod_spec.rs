//! The pod spec as users write it: envFrom, init containers and sidecars,
//! security contexts, lifecycle hooks, the downward API and the newer
//! volumes — what parses, what defaults, and each refusal's path and words.

use jotasu_api::{Object, ParseOptions, load_manifest};

/// A pod whose spec is `spec` (YAML indented by two spaces).
fn pod(spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n{spec}")
}

/// Every message of loading `text` (empty when it loads).
fn messages(text: &str) -> Vec<String> {
    match load_manifest("pod.yaml", text, ParseOptions::default()) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn loads(text: &str) -> jotasu_api::Pod {
    match load_manifest("pod.yaml", text, ParseOptions::default()) {
        Ok(mut l) => match l.objects.remove(0).object {
            Object::Pod(p) => p,
            other => panic!("not a pod: {other:?}"),
        },
        Err(e) => panic!("{e}"),
    }
}

/// Asserts a message is exactly `pod.yaml: document 1 (Pod p): <want>`.
fn has(text: &str, want: &str) {
    let got = messages(text);
    let full = format!("pod.yaml: document 1 (Pod p): {want}");
    assert!(
        got.contains(&full),
        "wanted\n  {full}\ngot\n  {}",
        got.join("\n  ")
    );
}

const APP: &str = "  containers:\n  - {name: app, image: busybox}\n";

#[test]
fn the_whole_spec_parses_and_defaults() {
    let p = loads(&pod(
        r#"  securityContext: {runAsUser: 1000, runAsGroup: 3000, fsGroup: 2000, supplementalGroups: [4000], runAsNonRoot: true}
  initContainers:
  - {name: setup, image: busybox, command: ["true"]}
  - name: proxy
    image: busybox
    restartPolicy: Always
    startupProbe: {exec: {command: ["true"]}}
  containers:
  - name: app
    image: busybox
    envFrom:
    - configMapRef: {name: settings}
      prefix: CFG_
    - secretRef: {name: creds, optional: true}
    env:
    - name: POD
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: TEAM
      valueFrom: {fieldRef: {fieldPath: "metadata.labels['team']"}}
    - name: MEM
      valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE, CAP_CHOWN]}
      seccompProfile: {type: Unconfined}
    lifecycle:
      postStart: {exec: {command: [touch, /tmp/started]}}
      preStop: {sleep: {seconds: 2}}
    volumeMounts:
    - {name: info, mountPath: /etc/info}
    - {name: all, mountPath: /etc/all, mountPropagation: None}
    - {name: scratch, mountPath: /scratch}
    - {name: host, mountPath: /host}
  volumes:
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: mem, resourceFieldRef: {containerName: app, resource: requests.memory}}
  - name: all
    projected:
      sources:
      - configMap: {name: settings}
      - secret: {name: creds, items: [{key: a, path: a.txt}]}
      - downwardAPI: {items: [{path: name, fieldRef: {fieldPath: metadata.name}}]}
  - {name: scratch, emptyDir: {medium: Memory, sizeLimit: 16Mi}}
  - {name: host, hostPath: {path: /var/lib/thing, type: DirectoryOrCreate}}
"#,
    ));
    assert_eq!(p.spec.init_containers.len(), 2);
    assert!(p.spec.init_containers[1].is_sidecar());
    assert!(!p.spec.init_containers[0].is_sidecar());
    let app = &p.spec.containers[0];
    assert_eq!(app.env_from.len(), 2);
    let field = app.env[0]
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref());
    assert_eq!(field.and_then(|f| f.api_version.as_deref()), Some("v1"));
    let info = &p.spec.volumes[0];
    assert_eq!(
        info.downward_api.as_ref().and_then(|d| d.default_mode),
        Some(0o644)
    );
    let sc = p
        .spec
        .security_context
        .as_ref()
        .expect("pod security context");
    assert_eq!(sc.fs_group, Some(2000));
    // Serialized as Kubernetes spells it.
    let json = serde_json::to_value(&p).expect("serializes");
    assert!(
        json["spec"]["volumes"][0]["downwardAPI"].is_object(),
        "{json}"
    );
    assert!(json["spec"]["initContainers"][1]["restartPolicy"] == "Always");
    assert!(json["spec"]["volumes"][3]["hostPath"]["type"] == "DirectoryOrCreate");
}

#[test]
fn env_from_needs_one_source_and_a_valid_prefix() {
    let spec = "  containers:\n  - name: app\n    image: busybox\n    envFrom:\n    - prefix: 1BAD\n      configMapRef: {name: a}\n      secretRef: {name: b}\n    - {}\n    - configMapRef: {name: ''}\n";
    let text = pod(spec);
    has(
        &text,
        "spec.containers[0].envFrom[0]: Invalid value: \"\": may not have more than one field specified at a time",
    );
    has(
        &text,
        "spec.containers[0].envFrom[1]: Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`",
    );
    has(
        &text,
        "spec.containers[0].envFrom[2].configMapRef.name: Required value",
    );
    let got = messages(&text);
    assert!(
        got.iter()
            .any(|m| m.contains("spec.containers[0].envFrom[0].prefix: Invalid value: \"1BAD\"")),
        "{got:?}"
    );
}

#[test]
fn container_names_are_unique_across_init_and_app_containers() {
    has(
        &pod(
            "  initContainers:\n  - {name: app, image: busybox}\n  containers:\n  - {name: app, image: busybox}\n",
        ),
        "spec.containers[0].name: Duplicate value: \"app\"",
    );
}

#[test]
fn init_containers_take_no_probes_or_hooks_but_sidecars_do() {
    let text = pod(&format!(
        "  initContainers:\n  - name: once\n    image: busybox\n    readinessProbe: {{exec: {{command: ['true']}}}}\n    lifecycle: {{preStop: {{sleep: {{seconds: 1}}}}}}\n  - name: side\n    image: busybox\n    restartPolicy: Always\n    readinessProbe: {{exec: {{command: ['true']}}}}\n  - {{name: bad, image: busybox, restartPolicy: Never}}\n{APP}"
    ));
    has(
        &text,
        "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
    );
    has(
        &text,
        "spec.initContainers[0].lifecycle: Forbidden: may not be set for init containers without restartPolicy=Always",
    );
    has(
        &text,
        "spec.initContainers[2].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
    );
    assert!(
        !messages(&text)
            .iter()
            .any(|m| m.contains("initContainers[1]"))
    );
    has(
        &pod("  containers:\n  - {name: app, image: busybox, restartPolicy: Always}\n"),
        "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
    );
}

#[test]
fn security_context_rules_and_refusals() {
    let text = pod(r#"  securityContext:
    runAsUser: -1
    seLinuxOptions: {level: "s0:c123,c456"}
    sysctls: [{name: net.core.somaxconn, value: "1024"}]
    seccompProfile: {type: Localhost, localhostProfile: profiles/audit.json}
  containers:
  - name: app
    image: busybox
    securityContext:
      privileged: true
      allowPrivilegeEscalation: false
      capabilities: {add: [NET_ADMIN, BOGUS], drop: [all_of_them]}
      procMount: Unmasked
      appArmorProfile: {type: RuntimeDefault}
"#);
    has(
        &text,
        "spec.securityContext.runAsUser: Invalid value: \"-1\": must be between 0 and 2147483647, inclusive",
    );
    has(
        &text,
        "spec.securityContext.seLinuxOptions: Forbidden: jotasu does not support seLinuxOptions yet; remove the field",
    );
    has(
        &text,
        "spec.securityContext.sysctls: Forbidden: jotasu does not support sysctls yet; remove the field",
    );
    has(
        &text,
        "spec.securityContext.seccompProfile.type: Forbidden: jotasu does not load Localhost seccomp profiles: use RuntimeDefault (the runtime's default filter) or Unconfined",
    );
    has(
        &text,
        "spec.containers[0].securityContext: Invalid value: \"\": cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
    );
    has(
        &text,
        "spec.containers[0].securityContext.capabilities.add[1]: Invalid value: \"BOGUS\": not a Linux capability (names as NET_ADMIN or CAP_NET_ADMIN, or ALL)",
    );
    has(
        &text,
        "spec.containers[0].securityContext.capabilities.drop[0]: Invalid value: \"all_of_them\": not a Linux capability (names as NET_ADMIN or CAP_NET_ADMIN, or ALL)",
    );
    has(
        &text,
        "spec.containers[0].securityContext.procMount: Forbidden: jotasu does not support procMount: Unmasked yet; remove the field",
    );
    has(
        &text,
        "spec.containers[0].securityContext.appArmorProfile: Forbidden: jotasu does not support appArmorProfile yet; remove the field",
    );
    assert!(!messages(&text).iter().any(|m| m.contains("add[0]")));
}

#[test]
fn lifecycle_handlers() {
    let text = pod(
        "  terminationGracePeriodSeconds: 5\n  containers:\n  - name: app\n    image: busybox\n    lifecycle:\n      postStart: {}\n      preStop: {sleep: {seconds: 10}}\n      stopSignal: SIGUSR1\n",
    );
    has(
        &text,
        "spec.containers[0].lifecycle.postStart: Required value: must specify a handler type",
    );
    has(
        &text,
        "spec.containers[0].lifecycle.preStop.sleep.seconds: Invalid value: \"10\": must be non-negative and less than terminationGracePeriodSeconds (5)",
    );
    has(
        &text,
        "spec.containers[0].lifecycle.stopSignal: Forbidden: jotasu does not support stopSignal yet (containers are stopped with SIGTERM); remove the field",
    );
}

#[test]
fn downward_api_paths() {
    let text = pod(r#"  containers:
  - name: app
    image: busybox
    env:
    - {name: A, valueFrom: {fieldRef: {fieldPath: metadata.labels}}}
    - {name: B, valueFrom: {fieldRef: {fieldPath: spec.hostname}}}
    - {name: C, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 2}}}
    - {name: D, valueFrom: {resourceFieldRef: {resource: limits.gpu}}}
    - {name: E, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
  volumes:
  - name: v
    downwardAPI:
      items:
      - {path: ip, fieldRef: {fieldPath: status.podIP}}
      - {path: mem, resourceFieldRef: {resource: limits.memory}}
"#);
    let got = messages(&text);
    assert!(
        got.iter().any(|m| m.contains("spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"metadata.labels\"")),
        "{got:?}"
    );
    assert!(
        got.iter().any(|m| m
            .contains("env[1].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.hostname\"")),
        "{got:?}"
    );
    has(
        &text,
        "spec.containers[0].env[2].valueFrom.resourceFieldRef.divisor: Invalid value: \"2\": only divisor's values 1m and 1 are supported with the cpu resource",
    );
    assert!(
        got.iter().any(|m| m.contains(
            "env[3].valueFrom.resourceFieldRef.resource: Unsupported value: \"limits.gpu\""
        )),
        "{got:?}"
    );
    assert!(!got.iter().any(|m| m.contains("env[4]")), "{got:?}");
    assert!(
        got.iter().any(|m| m.contains("spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath: Unsupported value: \"status.podIP\"")),
        "{got:?}"
    );
    has(
        &text,
        "spec.volumes[0].downwardAPI.items[1].resourceFieldRef.containerName: Required value",
    );
}

#[test]
fn volume_refusals() {
    let text = pod(r#"  containers:
  - name: app
    image: busybox
    volumeMounts:
    - {name: tok, mountPath: /var/run/secrets/tokens, mountPropagation: HostToContainer}
  volumes:
  - name: tok
    projected:
      sources:
      - serviceAccountToken: {path: token}
  - {name: h, hostPath: {path: /srv, type: Folder}}
  - {name: h2, hostPath: {path: ""}}
"#);
    has(
        &text,
        "spec.volumes[0].projected.sources[0].serviceAccountToken: Forbidden: jotasu mounts no service account tokens yet; remove this source",
    );
    has(
        &text,
        "spec.containers[0].volumeMounts[0].mountPropagation: Forbidden: jotasu does not support mount propagation HostToContainer yet (only None); remove the field",
    );
    let got = messages(&text);
    assert!(
        got.iter()
            .any(|m| m.contains("spec.volumes[1].hostPath.type: Unsupported value: \"Folder\"")),
        "{got:?}"
    );
    has(&text, "spec.volumes[2].hostPath.path: Required value");
}

#[test]
fn grpc_probes_take_a_port_number_and_no_other_handler() {
    let ok = loads(&pod(
        "  containers:\n  - name: c\n    image: x\n    livenessProbe:\n      grpc: {port: 9090, service: web}\n",
    ));
    let g = ok.spec.containers[0]
        .liveness_probe
        .as_ref()
        .and_then(|p| p.grpc.as_ref());
    assert_eq!(
        g.map(|g| (g.port, g.service.as_deref())),
        Some((9090, Some("web")))
    );
    has(
        &pod(
            "  containers:\n  - name: c\n    image: x\n    readinessProbe:\n      grpc: {port: 0}\n",
        ),
        "spec.containers[0].readinessProbe.grpc.port: Invalid value: \"0\": must be between 1 and 65535, inclusive",
    );
    has(
        &pod(
            "  containers:\n  - name: c\n    image: x\n    readinessProbe:\n      grpc: {port: 9090}\n      tcpSocket: {port: 9090}\n",
        ),
        "spec.containers[0].readinessProbe: Forbidden: may not specify more than 1 handler type (httpGet, tcpSocket, exec, grpc)",
    );
}
