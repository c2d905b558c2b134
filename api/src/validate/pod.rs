//! Pod spec rules: containers, ports, env, probes, resources, volumes,
//! tolerations, node selector (DNS fields in [`super::dns`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::FieldError;
use crate::int_or_string::IntOrString;
use crate::kinds::pod::{
    Container, EnvVar, KeySelector, PodSpec, Probe, TolerationOperator, Volume,
};
use crate::path::FieldPath;
use crate::quantity::Quantity;
use crate::validate::{name, names, non_negative, port_number};

pub(super) fn pod_spec(spec: &PodSpec, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let volumes = volumes(&spec.volumes, &path.field("volumes"), errs);
    if spec.containers.is_empty() {
        errs.push(FieldError::required(
            &path.field("containers"),
            "at least one container",
        ));
    }
    let mut seen_names = BTreeSet::new();
    let mut seen_ports = BTreeMap::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let p = path.field("containers").index(i);
        if !seen_names.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(&p.field("name"), &c.name));
        }
        container(c, &volumes, &p, errs);
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
    super::dns::pod_dns(spec, path, errs);
    super::namespace::pod_service_account(spec, path, errs);
}

/// Checks volumes; returns their names.
fn volumes<'a>(
    volumes: &'a [Volume],
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        let p = path.index(i);
        name(names::dns1123_label, &v.name, &p.field("name"), errs);
        if !seen.insert(v.name.as_str()) {
            errs.push(FieldError::duplicate(&p.field("name"), &v.name));
        }
        let sources = usize::from(v.config_map.is_some())
            + usize::from(v.secret.is_some())
            + usize::from(v.empty_dir.is_some());
        match sources {
            0 => errs.push(FieldError::required(
                &p,
                "must specify a volume type (configMap, secret or emptyDir)",
            )),
            1 => {}
            _ => errs.push(FieldError::forbidden(
                &p,
                "may not specify more than 1 volume type",
            )),
        }
        if let Some(cm) = &v.config_map {
            let cp = p.field("configMap");
            name(names::dns1123_subdomain, &cm.name, &cp.field("name"), errs);
            projection(&cm.items, cm.default_mode, &cp, errs);
        }
        if let Some(s) = &v.secret {
            let sp = p.field("secret");
            name(
                names::dns1123_subdomain,
                &s.secret_name,
                &sp.field("secretName"),
                errs,
            );
            projection(&s.items, s.default_mode, &sp, errs);
        }
        if let Some(ed) = &v.empty_dir {
            let ep = p.field("emptyDir");
            if let Some(m) = ed
                .medium
                .as_deref()
                .filter(|m| !m.is_empty() && *m != "Memory")
            {
                errs.push(FieldError::not_supported(
                    &ep.field("medium"),
                    m,
                    &["", "Memory"],
                ));
            }
            if let Some(q) = ed.size_limit.as_ref().filter(|q| q.is_negative()) {
                errs.push(FieldError::invalid(
                    &ep.field("sizeLimit"),
                    q,
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    seen
}

fn projection(
    items: &[crate::kinds::pod::KeyToPath],
    mode: Option<i32>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    file_mode(mode, &path.field("defaultMode"), errs);
    for (i, item) in items.iter().enumerate() {
        let p = path.field("items").index(i);
        name(names::config_key, &item.key, &p.field("key"), errs);
        relative_path(&item.path, &p.field("path"), errs);
        file_mode(item.mode, &p.field("mode"), errs);
    }
}

fn file_mode(mode: Option<i32>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if let Some(m) = mode
        && !(0..=0o777).contains(&m)
    {
        errs.push(FieldError::invalid(
            path,
            m,
            "must be a number between 0 and 0777 (octal), both inclusive",
        ));
    }
}

fn relative_path(p: &str, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if p.is_empty() {
        errs.push(FieldError::required(path, ""));
    } else if p.starts_with('/') {
        errs.push(FieldError::invalid(path, p, "must be a relative path"));
    } else if p.split('/').any(|part| part == "..") {
        errs.push(FieldError::invalid(path, p, "must not contain '..'"));
    }
}

fn container(
    c: &Container,
    volumes: &BTreeSet<&str>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    name(names::dns1123_label, &c.name, &path.field("name"), errs);
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
            relative_path(sp, &p.field("subPath"), errs);
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
    match sources.iter().filter(|(_, s)| s.is_some()).count() {
        0 => errs.push(FieldError::invalid(
            &vp,
            "",
            "must specify one of: `configMapKeyRef` or `secretKeyRef`",
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
        + usize::from(p.exec.is_some());
    match handlers {
        0 => errs.push(FieldError::required(
            path,
            "must specify a handler type (one of httpGet, tcpSocket, exec)",
        )),
        1 => {}
        _ => errs.push(FieldError::forbidden(
            path,
            "may not specify more than 1 handler type (httpGet, tcpSocket, exec)",
        )),
    }
    if let Some(h) = &p.http_get {
        probe_port(
            &h.port,
            port_names,
            &path.field("httpGet").field("port"),
            errs,
        );
        if let Some(pp) = h
            .path
            .as_deref()
            .filter(|pp| !pp.is_empty() && !pp.starts_with('/'))
        {
            errs.push(FieldError::invalid(
                &path.field("httpGet").field("path"),
                pp,
                "must start with '/'",
            ));
        }
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
