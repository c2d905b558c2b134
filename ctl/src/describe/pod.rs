//! Pods, and the container and volume sections pod templates share.

use jotasu_api::kinds::pod::{Container, EnvVar, PodTemplateSpec, Probe, Volume};
use jotasu_api::kinds::pod_status::{ContainerState, ContainerStatus};
use jotasu_api::{IntOrString, Pod};

use super::writer::{NONE, Writer};
use crate::age::timestamp;
use crate::table::pod_status;

/// A pod.
pub fn describe(pod: &Pod) -> String {
    let mut w = Writer::default();
    let status = pod.status.clone().unwrap_or_default();
    w.name(&pod.metadata);
    let node = match (&pod.spec.node_name, &status.host_ip) {
        (Some(n), Some(ip)) => format!("{n}/{ip}"),
        (Some(n), None) => n.clone(),
        _ => NONE.to_owned(),
    };
    w.field(0, "Node", node);
    if let Some(t) = &status.start_time {
        w.field(0, "Start Time", timestamp(t));
    }
    w.labels_annotations(&pod.metadata);
    let (reason, _, _) = pod_status(pod);
    let phase = if pod.metadata.deletion_timestamp.is_some() {
        "Terminating".to_owned()
    } else {
        format!("{:?}", status.phase.unwrap_or_default())
    };
    w.field(0, "Status", phase);
    if reason == "Terminating" || status.reason.is_some() {
        w.field(0, "Reason", status.reason.as_deref().unwrap_or(&reason));
    }
    if let Some(m) = &status.message {
        w.field(0, "Message", m);
    }
    w.field(0, "IP", status.pod_ip.as_deref().unwrap_or(""));
    w.controlled_by(&pod.metadata);
    if !pod.spec.init_containers.is_empty() {
        let init = &status.init_container_statuses;
        containers(
            &mut w,
            0,
            "Init Containers",
            &pod.spec.init_containers,
            init,
        );
    }
    containers(
        &mut w,
        0,
        "Containers",
        &pod.spec.containers,
        &status.container_statuses,
    );
    w.conditions(&status.conditions, false);
    // No events yet: a condition that is not met says why here (kubectl
    // shows the scheduler's FailedScheduling event instead).
    for c in status
        .conditions
        .iter()
        .filter(|c| c.status != jotasu_api::ConditionStatus::True)
    {
        if let Some(message) = &c.message {
            let reason = c.reason.as_deref().unwrap_or("NotMet");
            w.field(0, &format!("{} {reason}", c.type_), message);
        }
    }
    volumes(&mut w, 0, &pod.spec.volumes);
    w.labels(0, "Node-Selectors", &pod.spec.node_selector);
    let tolerations: Vec<String> = pod
        .spec
        .tolerations
        .iter()
        .map(|t| {
            let mut text = t.key.clone().unwrap_or_default();
            if let Some(v) = &t.value {
                text.push_str(&format!("={v}"));
            }
            if let Some(e) = t.effect {
                text.push_str(&format!(":{e:?}"));
            }
            if t.operator.is_some_and(|o| format!("{o:?}") == "Exists") && t.key.is_none() {
                text = "op=Exists".to_owned();
            }
            if let Some(s) = t.toleration_seconds {
                text.push_str(&format!(" for {s}s"));
            }
            text
        })
        .collect();
    w.multiline(0, "Tolerations", &tolerations);
    w.finish()
}

/// `Pod Template:` of a Deployment or DaemonSet, at level 0.
pub fn template(w: &mut Writer, template: &PodTemplateSpec) {
    w.line(0, "Pod Template:");
    w.labels(1, "Labels", &template.metadata.labels);
    if !template.metadata.annotations.is_empty() {
        w.annotations(1, &template.metadata.annotations);
    }
    if !template.spec.init_containers.is_empty() {
        containers(w, 1, "Init Containers", &template.spec.init_containers, &[]);
    }
    containers(w, 1, "Containers", &template.spec.containers, &[]);
    volumes(w, 1, &template.spec.volumes);
    if !template.spec.node_selector.is_empty() {
        w.labels(1, "Node-Selectors", &template.spec.node_selector);
    }
}

/// `Containers:` and each container's image, ports, state, resources,
/// probes, environment and mounts.
fn containers(
    w: &mut Writer,
    level: usize,
    title: &str,
    list: &[Container],
    statuses: &[ContainerStatus],
) {
    w.line(level, format!("{title}:"));
    for c in list {
        let l = level + 2;
        w.line(level + 1, format!("{}:", c.name));
        let status = statuses.iter().find(|s| s.name == c.name);
        if let Some(id) = status.and_then(|s| s.container_id.as_ref()) {
            w.field(l, "Container ID", id);
        }
        w.field(l, "Image", &c.image);
        let ports: Vec<String> = c
            .ports
            .iter()
            .map(|p| format!("{}/{}", p.container_port, p.protocol.unwrap_or_default()))
            .collect();
        match ports.as_slice() {
            [] => w.field(l, "Port", NONE),
            [one] => w.field(l, "Port", one),
            many => w.field(l, "Ports", many.join(", ")),
        }
        if !c.command.is_empty() {
            multiline_list(w, l, "Command", &c.command);
        }
        if !c.args.is_empty() {
            multiline_list(w, l, "Args", &c.args);
        }
        if let Some(s) = status {
            state(w, l, "State", s.state.as_ref());
            if let Some(last) = &s.last_state {
                state(w, l, "Last State", Some(last));
            }
            w.field(l, "Ready", if s.ready { "True" } else { "False" });
            w.field(l, "Restart Count", s.restart_count);
        }
        if let Some(r) = &c.resources {
            for (title, map) in [("Limits", &r.limits), ("Requests", &r.requests)] {
                if !map.is_empty() {
                    w.line(l, format!("{title}:"));
                    for (k, v) in map {
                        w.field(l + 1, k, v);
                    }
                }
            }
        }
        for (title, probe) in [
            ("Liveness", &c.liveness_probe),
            ("Readiness", &c.readiness_probe),
            ("Startup", &c.startup_probe),
        ] {
            if let Some(p) = probe {
                w.field(l, title, probe_text(p));
            }
        }
        if !c.env_from.is_empty() {
            w.line(l, "Environment Variables from:");
            for e in &c.env_from {
                let (kind, r) = match (&e.config_map_ref, &e.secret_ref) {
                    (Some(r), _) => ("ConfigMap", r),
                    (None, Some(r)) => ("Secret", r),
                    (None, None) => continue,
                };
                let prefix = e
                    .prefix
                    .as_deref()
                    .filter(|p| !p.is_empty())
                    .map(|p| format!(" with prefix '{p}'"))
                    .unwrap_or_default();
                let optional = r.optional.unwrap_or(false);
                w.field(
                    l + 1,
                    &r.name,
                    format!("{kind}{prefix}\tOptional: {optional}"),
                );
            }
        }
        if c.env.is_empty() {
            w.field(l, "Environment", NONE);
        } else {
            w.line(l, "Environment:");
            for e in &c.env {
                w.field(l + 1, &e.name, env_text(e));
            }
        }
        if c.volume_mounts.is_empty() {
            w.field(l, "Mounts", NONE);
        } else {
            w.line(l, "Mounts:");
            for m in &c.volume_mounts {
                let ro = if m.read_only == Some(true) {
                    "ro"
                } else {
                    "rw"
                };
                let sub = m
                    .sub_path
                    .as_ref()
                    .map(|s| format!(",path=\"{s}\""))
                    .unwrap_or_default();
                w.line(
                    l + 1,
                    format!("{} from {} ({ro}{sub})", m.mount_path, m.name),
                );
            }
        }
    }
}

fn multiline_list(w: &mut Writer, level: usize, key: &str, items: &[String]) {
    w.line(level, format!("{key}:"));
    for item in items {
        w.line(level + 1, item);
    }
}

/// `State:  Running` with its details.
fn state(w: &mut Writer, level: usize, key: &str, state: Option<&ContainerState>) {
    let Some(s) = state else {
        w.field(level, key, "Waiting");
        return;
    };
    if let Some(r) = &s.running {
        w.field(level, key, "Running");
        if let Some(t) = &r.started_at {
            w.field(level + 1, "Started", timestamp(t));
        }
    } else if let Some(wt) = &s.waiting {
        w.field(level, key, "Waiting");
        if let Some(r) = &wt.reason {
            w.field(level + 1, "Reason", r);
        }
    } else if let Some(t) = &s.terminated {
        w.field(level, key, "Terminated");
        if let Some(r) = &t.reason {
            w.field(level + 1, "Reason", r);
        }
        w.field(level + 1, "Exit Code", t.exit_code);
        if let Some(sig) = t.signal {
            w.field(level + 1, "Signal", sig);
        }
    } else {
        w.field(level, key, "Waiting");
    }
}

/// `http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3`.
pub fn probe_text(p: &Probe) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        p.initial_delay_seconds.unwrap_or(0),
        p.timeout_seconds.unwrap_or(1),
        p.period_seconds.unwrap_or(10),
        p.success_threshold.unwrap_or(1),
        p.failure_threshold.unwrap_or(3)
    );
    if let Some(h) = &p.http_get {
        let scheme = match h.scheme {
            Some(jotasu_api::kinds::pod::Scheme::Https) => "https",
            _ => "http",
        };
        let host = h.host.as_deref().unwrap_or("");
        let path = h.path.as_deref().unwrap_or("");
        return format!("http-get {scheme}://{host}:{}{path} {attrs}", port(&h.port));
    }
    if let Some(t) = &p.tcp_socket {
        let host = t.host.as_deref().unwrap_or("");
        return format!("tcp-socket {host}:{} {attrs}", port(&t.port));
    }
    if let Some(e) = &p.exec {
        return format!("exec [{}] {attrs}", e.command.join(" "));
    }
    if let Some(g) = &p.grpc {
        // kubectl's form: `grpc <port> <service>`.
        return format!(
            "grpc <{}> {} {attrs}",
            g.port,
            g.service.as_deref().unwrap_or("")
        );
    }
    format!("unknown {attrs}")
}

fn port(p: &IntOrString) -> String {
    p.to_string()
}

/// An environment variable's value, or where it comes from.
fn env_text(e: &EnvVar) -> String {
    if let Some(v) = &e.value {
        return v.clone();
    }
    let Some(from) = &e.value_from else {
        return String::new();
    };
    if let Some(k) = &from.config_map_key_ref {
        let optional = k.optional.unwrap_or(false);
        return format!(
            "<set to the key '{}' of config map '{}'>\tOptional: {optional}",
            k.key, k.name
        );
    }
    if let Some(k) = &from.secret_key_ref {
        let optional = k.optional.unwrap_or(false);
        return format!(
            "<set to the key '{}' in secret '{}'>\tOptional: {optional}",
            k.key, k.name
        );
    }
    if let Some(f) = &from.field_ref {
        let version = f.api_version.as_deref().unwrap_or("v1");
        return format!("({version}:{})", f.field_path);
    }
    if let Some(r) = &from.resource_field_ref {
        return format!("({})", r.resource);
    }
    String::new()
}

/// `Volumes:` with each volume's source.
fn volumes(w: &mut Writer, level: usize, list: &[Volume]) {
    if list.is_empty() {
        w.field(level, "Volumes", NONE);
        return;
    }
    w.line(level, "Volumes:");
    for v in list {
        w.line(level + 1, format!("{}:", v.name));
        let l = level + 2;
        if let Some(c) = &v.config_map {
            w.field(l, "Type", "ConfigMap (a volume populated by a ConfigMap)");
            w.field(l, "Name", &c.name);
            w.field(l, "Optional", c.optional.unwrap_or(false));
        } else if let Some(s) = &v.secret {
            w.field(l, "Type", "Secret (a volume populated by a Secret)");
            w.field(l, "SecretName", &s.secret_name);
            w.field(l, "Optional", s.optional.unwrap_or(false));
        } else if let Some(e) = &v.empty_dir {
            w.field(
                l,
                "Type",
                "EmptyDir (a temporary directory that shares a pod's lifetime)",
            );
            w.field(l, "Medium", e.medium.as_deref().unwrap_or(""));
            w.field(
                l,
                "SizeLimit",
                e.size_limit
                    .as_ref()
                    .map_or_else(|| "<unset>".to_owned(), ToString::to_string),
            );
        } else if v.downward_api.is_some() {
            w.field(
                l,
                "Type",
                "DownwardAPI (a volume populated by information about the pod)",
            );
        } else if v.projected.is_some() {
            w.field(
                l,
                "Type",
                "Projected (a volume that contains injected data from multiple sources)",
            );
        } else if let Some(h) = &v.host_path {
            w.field(l, "Type", "HostPath (bare host directory volume)");
            w.field(l, "Path", &h.path);
            w.field(l, "HostPathType", h.type_.as_deref().unwrap_or(""));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pending_pod_says_why() {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/1 nodes are available: 1 Insufficient cpu."}]}
        }))
        .unwrap();
        let text = describe(&pod);
        assert!(
            text.contains(
                "PodScheduled Unschedulable:  0/1 nodes are available: 1 Insufficient cpu.\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn init_containers_env_from_and_downward_env() {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1"},
            "spec": {
                "initContainers": [{"name": "setup", "image": "busybox"}],
                "containers": [{"name": "web", "image": "nginx",
                    "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}],
                    "env": [{"name": "POD", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}]}],
                "volumes": [{"name": "h", "hostPath": {"path": "/srv", "type": "Directory"}}]},
            "status": {"phase": "Pending",
                "initContainerStatuses": [{"name": "setup", "image": "busybox", "restartCount": 0,
                    "state": {"running": {"startedAt": "2024-05-01T12:00:00Z"}}}]}
        }))
        .unwrap();
        let text = describe(&pod);
        for want in [
            "Init Containers:\n  setup:\n",
            "Containers:\n  web:\n",
            "    Environment Variables from:\n      settings:  ConfigMap with prefix 'CFG_'  Optional: false\n",
            " (v1:metadata.name)\n",
            "    Type:          HostPath (bare host directory volume)\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn running_pod() {
        let pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "default",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                     "uid": "u1", "controller": true}]},
            "spec": {"nodeName": "node-1", "containers": [{
                "name": "web", "image": "nginx:1.25",
                "ports": [{"containerPort": 80}],
                "env": [{"name": "MODE", "value": "prod"},
                        {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pass"}}}],
                "resources": {"limits": {"cpu": "500m"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}}
            }]},
            "status": {"phase": "Running", "podIP": "10.244.1.5", "hostIP": "192.168.100.11",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "web", "ready": true, "restartCount": 1,
                    "image": "nginx:1.25", "state": {"running": {"startedAt": "2024-05-01T12:00:00Z"}}}]}
        }))
        .unwrap();
        let text = describe(&pod);
        for want in [
            "Name:           web-1\n",
            "Node:           node-1/192.168.100.11\n",
            "Status:         Running\n",
            "IP:             10.244.1.5\n",
            "Controlled By:  Deployment/web\n",
            "Containers:\n  web:\n",
            "    Image:          nginx:1.25\n",
            "    Port:           80/TCP\n",
            "    State:          Running\n      Started:      Wed, 01 May 2024 12:00:00 +0000\n",
            "    Restart Count:  1\n",
            "    Limits:\n      cpu:      500m\n",
            "    Readiness:  http-get http://:http/healthz delay=0s timeout=1s period=10s #success=1 #failure=3\n",
            "      MODE:  prod\n",
            "      PASS:  <set to the key 'pass' in secret 'db'>  Optional: false\n",
            "Conditions:\n  Type           Status\n  ----           ------\n  Ready          True\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }
}
