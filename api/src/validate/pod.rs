//! Pod spec rules: containers and init containers, ports, env and envFrom,
//! probes, lifecycle hooks, resources, tolerations, node selector (DNS
//! fields in [`super::dns`], volumes in [`super::pod_volumes`], security
//! contexts in [`super::security`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::FieldError;
use crate::int_or_string::IntOrString;
use crate::kinds::pod::{
    Container, EnvFromSource, EnvVar, KeySelector, LifecycleHandler, PodSpec, Probe,
    TolerationOperator,
};
use crate::path::FieldPath;
use crate::quantity::Quantity;
use crate::validate::{name, names, non_negative, port_number};

pub(super) fn pod_spec(spec: &PodSpec, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let volumes = super::pod_volumes::volumes(&spec.volumes, &path.field("volumes"), errs);
    if spec.containers.is_empty() {
        errs.push(FieldError::required(
            &path.field("containers"),
            "at least one container",
        ));
    }
    let grace = spec.termination_grace_period_seconds.unwrap_or(30);
    let mut seen_names = BTreeSet::new();
    for (i, c) in spec.init_containers.iter().enumerate() {
        let p = path.field("initContainers").index(i);
        if !seen_names.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(&p.field("name"), &c.name));
        }
        let role = if c.is_sidecar() {
            Role::Sidecar
        } else {
            Role::Init
        };
        container(c, role, &volumes, grace, &p, errs);
    }
    let mut seen_ports = BTreeMap::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let p = path.field("containers").index(i);
        if !seen_names.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(&p.field("name"), &c.name));
        }
        container(c, Role::App, &volumes, grace, &p, errs);
        for (j, port) in c.ports.iter().enumerate() {
            let key = (port.container_port, port.protocol.unwrap_or_default());
            let pp = p.field("ports").index(j);
            if let Some(first) = seen_ports.insert(key, pp.clone()) {
                errs.push(FieldError::duplicate(
                    &pp,
                    format!("{}/{} (also at {first})", port.container_port, key.1),
                ));
            }
        }
    }
    for (k, v) in &spec.node_selector {
        let p = path.field("nodeSelector");
        if let Err(e) = names::qualified_name(k) {
            errs.push(FieldError::invalid(&p, k, e));
        }
        if let Err(e) = names::label_value(v) {
            errs.push(FieldError::invalid(&p.key(k), v, e));
        }
    }
    if let Some(a) = &spec.affinity {
        super::affinity::affinity(a, &path.field("affinity"), errs);
    }
    super::affinity::spread(
        &spec.topology_spread_constraints,
        &path.field("topologySpreadConstraints"),
        errs,
    );
    for (i, t) in spec.tolerations.iter().enumerate() {
        let p = path.field("tolerations").index(i);
        if let Some(k) = t.key.as_deref().filter(|k| !k.is_empty()) {
            name(names::qualified_name, k, &p.field("key"), errs);
        }
        let op = t.operator.unwrap_or_default();
        match op {
            TolerationOperator::Exists if t.value.as_deref().is_some_and(|v| !v.is_empty()) => {
                errs.push(FieldError::invalid(
                    &p.field("value"),
                    t.value.as_deref().unwrap_or(""),
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
            TolerationOperator::Equal if t.key.as_deref().is_none_or(str::is_empty) => {
                errs.push(FieldError::invalid(
                    &p.field("operator"),
                    "Equal",
                    "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                ));
            }
            _ => {}
        }
        if t.toleration_seconds.is_some()
            && t.effect != Some(crate::kinds::node::TaintEffect::NoExecute)
        {
            errs.push(FieldError::invalid(
                &p.field("effect"),
                t.effect.map(|e| format!("{e:?}")).unwrap_or_default(),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
    }
    non_negative(
        spec.termination_grace_period_seconds,
        &path.field("terminationGracePeriodSeconds"),
        errs,
    );
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        name(names::dns1123_subdomain, n, &path.field("nodeName"), errs);
    }
    if let Some(sc) = &spec.security_context {
        super::security::pod_security_context(sc, &path.field("securityContext"), errs);
    }
    super::dns::pod_dns(spec, path, errs);
    super::namespace::pod_service_account(spec, path, errs);
}

/// What a container is to its pod: the rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// An init container that runs to completion.
    Init,
    /// An init container with `restartPolicy: Always`.
    Sidecar,
    /// An app container.
    App,
}

fn container(
    c: &Container,
    role: Role,
    volumes: &BTreeSet<&str>,
    grace: i64,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    name(names::dns1123_label, &c.name, &path.field("name"), errs);
    if let Some(rp) = &c.restart_policy {
        if role == Role::App {
            errs.push(FieldError::forbidden(
                &path.field("restartPolicy"),
                "may not be set for non-init containers",
            ));
        } else if rp != "Always" {
            errs.push(FieldError::not_supported(
                &path.field("restartPolicy"),
                rp,
                &["Always"],
            ));
        }
    }
    if role == Role::Init {
        let set = [
            ("lifecycle", c.lifecycle.is_some()),
            ("livenessProbe", c.liveness_probe.is_some()),
            ("readinessProbe", c.readiness_probe.is_some()),
            ("startupProbe", c.startup_probe.is_some()),
        ];
        for (field, is_set) in set {
            if is_set {
                errs.push(FieldError::forbidden(
                    &path.field(field),
                    "may not be set for init containers without restartPolicy=Always",
                ));
            }
        }
    }
    for (i, e) in c.env_from.iter().enumerate() {
        env_from(e, &path.field("envFrom").index(i), errs);
    }
    if let Some(sc) = &c.security_context {
        super::security::security_context(sc, &path.field("securityContext"), errs);
    }
    if let Some(l) = &c.lifecycle {
        let lp = path.field("lifecycle");
        for (field, h) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
            if let Some(h) = h {
                let port_names = c.ports.iter().filter_map(|p| p.name.as_deref()).collect();
                handler(h, grace, &port_names, &lp.field(field), errs);
            }
        }
        if l.stop_signal.is_some() {
            errs.push(FieldError::forbidden(
                &lp.field("stopSignal"),
                "jotasu does not support stopSignal yet (containers are stopped with SIGTERM); remove the field",
            ));
        }
    }
    if c.image.trim().is_empty() {
        errs.push(FieldError::required(&path.field("image"), ""));
    }
    let mut port_names = BTreeSet::new();
    for (i, port) in c.ports.iter().enumerate() {
        let p = path.field("ports").index(i);
        port_number(port.container_port, &p.field("containerPort"), errs);
        if let Some(hp) = port.host_port.filter(|hp| *hp != 0) {
            port_number(hp, &p.field("hostPort"), errs);
        }
        if let Some(n) = &port.name {
            name(names::iana_svc_name, n, &p.field("name"), errs);
            if !port_names.insert(n.as_str()) {
                errs.push(FieldError::duplicate(&p.field("name"), n));
            }
        }
    }
    for (i, e) in c.env.iter().enumerate() {
        env_var(e, &path.field("env").index(i), errs);
    }
    if let Some(r) = &c.resources {
        resources(&r.requests, &r.limits, &path.field("resources"), errs);
    }
    let probes = [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ];
    for (field, probe) in probes {
        if let Some(pr) = probe {
            self::probe(
                pr,
                field != "readinessProbe",
                &port_names,
                &path.field(field),
                errs,
            );
        }
    }
    let mut mount_paths = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().enumerate() {
        let p = path.field("volumeMounts").index(i);
        if m.name.is_empty() {
            errs.push(FieldError::required(&p.field("name"), ""));
        } else if !volumes.contains(m.name.as_str()) {
            errs.push(FieldError::not_found(
                &p.field("name"),
                &m.name,
                "no volume of this name in spec.volumes",
            ));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(&p.field("mountPath"), ""));
        } else if !mount_paths.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid(
                &p.field("mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
        if let Some(sp) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            super::pod_volumes::relative_path(sp, &p.field("subPath"), errs);
        }
        if let Some(mp) = &m.mount_propagation {
            let modes = ["Bidirectional", "HostToContainer", "None"];
            if !modes.contains(&mp.as_str()) {
                errs.push(FieldError::not_supported(
                    &p.field("mountPropagation"),
                    mp,
                    &modes,
                ));
            } else if mp != "None" {
                errs.push(FieldError::forbidden(
                    &p.field("mountPropagation"),
                    format!("jotasu does not support mount propagation {mp} yet (only None); remove the field"),
                ));
            }
        }
    }
}

fn env_var(e: &EnvVar, path: &FieldPath, errs: &mut Vec<FieldError>) {
    name(names::env_var_name, &e.name, &path.field("name"), errs);
    let Some(from) = &e.value_from else { return };
    let vp = path.field("valueFrom");
    if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
        errs.push(FieldError::invalid(
            &vp,
            "",
            "may not be specified when `value` is not empty",
        ));
    }
    let sources = [
        ("configMapKeyRef", &from.config_map_key_ref),
        ("secretKeyRef", &from.secret_key_ref),
    ];
    let count = sources.iter().filter(|(_, s)| s.is_some()).count()
        + usize::from(from.field_ref.is_some())
        + usize::from(from.resource_field_ref.is_some());
    if let Some(f) = &from.field_ref {
        super::downward::field_ref(f, true, &vp.field("fieldRef"), errs);
    }
    if let Some(r) = &from.resource_field_ref {
        super::downward::resource_field_ref(r, false, &vp.field("resourceFieldRef"), errs);
    }
    match count {
        0 => errs.push(FieldError::invalid(
            &vp,
            "",
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        )),
        1 => {}
        _ => errs.push(FieldError::invalid(
            &vp,
            "",
            "may not have more than one field specified at a time",
        )),
    }
    for (field, source) in sources {
        if let Some(KeySelector { name: n, key, .. }) = source {
            let sp = vp.field(field);
            if n.is_empty() {
                errs.push(FieldError::required(&sp.field("name"), ""));
            } else {
                name(names::dns1123_subdomain, n, &sp.field("name"), errs);
            }
            name(names::config_key, key, &sp.field("key"), errs);
        }
    }
}

fn env_from(e: &EnvFromSource, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if let Some(prefix) = e.prefix.as_deref().filter(|p| !p.is_empty())
        && let Err(msg) = names::env_var_name(prefix)
    {
        errs.push(FieldError::invalid(&path.field("prefix"), prefix, msg));
    }
    let sources = [
        ("configMapRef", &e.config_map_ref),
        ("secretRef", &e.secret_ref),
    ];
    match sources.iter().filter(|(_, s)| s.is_some()).count() {
        0 => errs.push(FieldError::invalid(
            path,
            "",
            "must specify one of: `configMapRef` or `secretRef`",
        )),
        1 => {}
        _ => errs.push(FieldError::invalid(
            path,
            "",
            "may not have more than one field specified at a time",
        )),
    }
    for (field, source) in sources {
        if let Some(r) = source {
            let np = path.field(field).field("name");
            if r.name.is_empty() {
                errs.push(FieldError::required(&np, ""));
            } else {
                name(names::dns1123_subdomain, &r.name, &np, errs);
            }
        }
    }
}

/// A lifecycle hook: exactly one of exec, httpGet, sleep (tcpSocket is
/// refused: the kubelet does not run it either).
fn handler(
    h: &LifecycleHandler,
    grace: i64,
    port_names: &BTreeSet<&str>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let count = usize::from(h.exec.is_some())
        + usize::from(h.http_get.is_some())
        + usize::from(h.sleep.is_some())
        + usize::from(h.tcp_socket.is_some());
    match count {
        0 => errs.push(FieldError::required(path, "must specify a handler type")),
        1 => {}
        _ => errs.push(FieldError::forbidden(
            path,
            "may not specify more than 1 handler type",
        )),
    }
    if h.tcp_socket.is_some() {
        errs.push(FieldError::forbidden(
            &path.field("tcpSocket"),
            "tcpSocket is not supported as a lifecycle handler; use exec, httpGet or sleep",
        ));
    }
    if let Some(e) = &h.exec
        && e.command.is_empty()
    {
        errs.push(FieldError::required(
            &path.field("exec").field("command"),
            "",
        ));
    }
    if let Some(g) = &h.http_get {
        http_get(g, port_names, &path.field("httpGet"), errs);
    }
    if let Some(s) = &h.sleep
        && !(0..=grace).contains(&s.seconds)
    {
        errs.push(FieldError::invalid(
            &path.field("sleep").field("seconds"),
            s.seconds,
            format!("must be non-negative and less than terminationGracePeriodSeconds ({grace})"),
        ));
    }
}

fn resources(
    requests: &BTreeMap<String, Quantity>,
    limits: &BTreeMap<String, Quantity>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    for (field, map) in [("requests", requests), ("limits", limits)] {
        for (res, q) in map {
            let p = path.field(field).key(res);
            let standard = matches!(res.as_str(), "cpu" | "memory" | "ephemeral-storage");
            if !standard && (names::qualified_name(res).is_err() || !res.contains(['/', '-'])) {
                errs.push(FieldError::invalid(
                    &p,
                    res,
                    "must be a standard resource (cpu, memory, ephemeral-storage) or a qualified name such as example.com/gpu",
                ));
            }
            if q.is_negative() {
                errs.push(FieldError::invalid(
                    &p,
                    q,
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    for (res, req) in requests {
        if let Some(limit) = limits.get(res)
            && req > limit
        {
            errs.push(FieldError::invalid(
                &path.field("requests").key(res),
                req,
                format!("must be less than or equal to {res} limit of {limit}"),
            ));
        }
    }
}

fn probe(
    p: &Probe,
    single_success: bool,
    port_names: &BTreeSet<&str>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let handlers = usize::from(p.http_get.is_some())
        + usize::from(p.tcp_socket.is_some())
        + usize::from(p.exec.is_some())
        + usize::from(p.grpc.is_some());
    match handlers {
        0 => errs.push(FieldError::required(
            path,
            "must specify a handler type (one of httpGet, tcpSocket, exec, grpc)",
        )),
        1 => {}
        _ => errs.push(FieldError::forbidden(
            path,
            "may not specify more than 1 handler type (httpGet, tcpSocket, exec, grpc)",
        )),
    }
    if let Some(g) = &p.grpc {
        super::port_number(g.port, &path.field("grpc").field("port"), errs);
    }
    if let Some(h) = &p.http_get {
        http_get(h, port_names, &path.field("httpGet"), errs);
    }
    if let Some(t) = &p.tcp_socket {
        probe_port(
            &t.port,
            port_names,
            &path.field("tcpSocket").field("port"),
            errs,
        );
    }
    if let Some(e) = &p.exec
        && e.command.is_empty()
    {
        errs.push(FieldError::required(
            &path.field("exec").field("command"),
            "",
        ));
    }
    non_negative(
        p.initial_delay_seconds,
        &path.field("initialDelaySeconds"),
        errs,
    );
    for (field, v) in [
        ("periodSeconds", p.period_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        if let Some(v) = v
            && v < 1
        {
            errs.push(FieldError::invalid(
                &path.field(field),
                v,
                "must be greater than or equal to 1",
            ));
        }
    }
    if single_success && p.success_threshold.is_some_and(|v| v != 1) {
        errs.push(FieldError::invalid(
            &path.field("successThreshold"),
            p.success_threshold.unwrap_or_default(),
            "must be 1 for liveness and startup probes",
        ));
    }
}

fn probe_port(
    port: &IntOrString,
    port_names: &BTreeSet<&str>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    match port {
        IntOrString::Int(n) => port_number(*n, path, errs),
        IntOrString::String(s) => {
            if let Err(e) = names::iana_svc_name(s) {
                errs.push(FieldError::invalid(path, s, e));
            } else if !port_names.contains(s.as_str()) {
                errs.push(FieldError::not_found(
                    path,
                    s,
                    "no container port of this name",
                ));
            }
        }
    }
}

/// An httpGet action (of a probe or a lifecycle hook): its port resolves,
/// its path is absolute.
fn http_get(
    g: &crate::kinds::pod::HttpGetAction,
    port_names: &BTreeSet<&str>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    probe_port(&g.port, port_names, &path.field("port"), errs);
    if let Some(pp) = g
        .path
        .as_deref()
        .filter(|pp| !pp.is_empty() && !pp.starts_with('/'))
    {
        errs.push(FieldError::invalid(
            &path.field("path"),
            pp,
            "must start with '/'",
        ));
    }
}
