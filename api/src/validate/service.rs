//! Service and Endpoints rules: ports, node ports, cluster IP, the
//! external name, selector.

use std::collections::BTreeMap;

use crate::error::FieldError;
use crate::int_or_string::IntOrString;
use crate::kinds::discovery::EndpointSlice;
use crate::kinds::service::{
    Endpoints, MAX_AFFINITY_TIMEOUT_S, Service, ServiceType, SessionAffinity,
};
use crate::path::FieldPath;
use crate::validate::{meta, name, names, port_number};

/// The node port range.
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i32> = 30000..=32767;

pub(super) fn service(s: &Service, errs: &mut Vec<FieldError>) {
    let spec = FieldPath::new("spec");
    let ty = s.spec.type_();
    if s.spec.ports.is_empty() && ty != ServiceType::ExternalName {
        errs.push(FieldError::required(&spec.field("ports"), ""));
    }
    let many = s.spec.ports.len() > 1;
    let mut by_name = BTreeMap::new();
    let mut by_port = BTreeMap::new();
    let mut by_node_port = BTreeMap::new();
    for (i, p) in s.spec.ports.iter().enumerate() {
        let pp = spec.field("ports").index(i);
        match p.name.as_deref().filter(|n| !n.is_empty()) {
            Some(n) => {
                name(names::dns1123_label, n, &pp.field("name"), errs);
                if by_name.insert(n, i).is_some() {
                    errs.push(FieldError::duplicate(&pp.field("name"), n));
                }
            }
            None if many => errs.push(FieldError::required(
                &pp.field("name"),
                "when there is more than one port",
            )),
            None => {}
        }
        port_number(p.port, &pp.field("port"), errs);
        let proto = p.protocol.unwrap_or_default();
        if let Some(first) = by_port.insert((p.port, proto), i) {
            errs.push(FieldError::duplicate(
                &pp,
                format!("{}/{proto} (also spec.ports[{first}])", p.port),
            ));
        }
        match &p.target_port {
            // A defaulted targetPort equals port, already checked.
            Some(IntOrString::Int(t)) if *t != p.port => {
                port_number(*t, &pp.field("targetPort"), errs)
            }
            Some(IntOrString::Int(_)) => {}
            Some(IntOrString::String(t)) => {
                name(names::iana_svc_name, t, &pp.field("targetPort"), errs)
            }
            None => {}
        }
        if let Some(np) = p.node_port.filter(|np| *np != 0) {
            if !matches!(ty, ServiceType::NodePort | ServiceType::LoadBalancer) {
                errs.push(FieldError::forbidden(
                    &pp.field("nodePort"),
                    format!("may not be used when `type` is '{ty:?}'"),
                ));
            } else if !NODE_PORT_RANGE.contains(&np) {
                errs.push(FieldError::invalid_number(&pp.field("nodePort"), i64::from(np), "provided port is not in the valid range. The range of valid ports is 30000-32767"));
            } else if by_node_port.insert((np, proto), i).is_some() {
                errs.push(FieldError::duplicate(&pp.field("nodePort"), np));
            }
        }
    }
    if ty == ServiceType::ExternalName {
        external_name(s, &spec, errs);
        meta::labels(&s.spec.selector, &spec.field("selector"), errs);
        return;
    }
    match s.spec.cluster_ip.as_deref() {
        None | Some("") => {}
        Some("None") if matches!(ty, ServiceType::NodePort | ServiceType::LoadBalancer) => {
            errs.push(FieldError::invalid(
                &spec.field("clusterIP"),
                "None",
                format!("may not be set to 'None' for {ty:?} services"),
            ));
        }
        Some("None") => {}
        Some(ip) => name(names::ipv4, ip, &spec.field("clusterIP"), errs),
    }
    single_stack(
        s.spec.cluster_ip.as_deref(),
        &s.spec.cluster_ips,
        &spec.field("clusterIPs"),
        "clusterIP",
        errs,
    );
    external(s, &spec, errs);
    meta::labels(&s.spec.selector, &spec.field("selector"), errs);
}

/// External IPs, the external traffic policy and session affinity, as
/// Kubernetes checks them.
fn external(s: &Service, spec: &FieldPath, errs: &mut Vec<FieldError>) {
    for (i, ip) in s.spec.external_ips.iter().enumerate() {
        let path = spec.field("externalIPs").index(i);
        match ip.parse::<std::net::Ipv4Addr>() {
            Err(_) => errs.push(FieldError::invalid(
                &path,
                ip,
                "must be a valid IPv4 address (jotasu is IPv4 only)",
            )),
            Ok(a) if a.is_unspecified() => errs.push(FieldError::invalid(
                &path,
                ip,
                "may not be unspecified (0.0.0.0)",
            )),
            Ok(a) if a.is_loopback() => errs.push(FieldError::invalid(
                &path,
                ip,
                "may not be in the loopback range (127.0.0.0/8)",
            )),
            Ok(a) if a.is_link_local() => errs.push(FieldError::invalid(
                &path,
                ip,
                "may not be in the link-local range (169.254.0.0/16)",
            )),
            Ok(a) if a.is_multicast() || a.is_broadcast() => errs.push(FieldError::invalid(
                &path,
                ip,
                "may not be a multicast or broadcast address",
            )),
            Ok(_) => {}
        }
    }
    if let Some(policy) = s.spec.external_traffic_policy
        && !s.spec.externally_accessible()
    {
        errs.push(FieldError::invalid(
            &spec.field("externalTrafficPolicy"),
            format!("{policy:?}"),
            "may only be set for externally-accessible services",
        ));
    }
    let config = spec.field("sessionAffinityConfig");
    match (s.spec.session_affinity, &s.spec.session_affinity_config) {
        (Some(SessionAffinity::ClientIP), Some(c)) => {
            let timeout = c.client_ip.as_ref().and_then(|c| c.timeout_seconds);
            if let Some(t) = timeout
                && !(1..=MAX_AFFINITY_TIMEOUT_S).contains(&t)
            {
                errs.push(FieldError::invalid_number(
                    &config.field("clientIP").field("timeoutSeconds"),
                    i64::from(t),
                    format!("must be greater than 0 and less than {MAX_AFFINITY_TIMEOUT_S}"),
                ));
            }
        }
        (_, None) => {}
        (_, Some(_)) => errs.push(FieldError::forbidden(
            &config,
            "must not be set when session affinity is None",
        )),
    }
}

/// The list form of an address (`clusterIPs`, `podCIDRs`): jotasu is
/// single-stack IPv4, so at most one entry, the same as `field`'s.
pub(super) fn single_stack(
    value: Option<&str>,
    list: &[String],
    path: &FieldPath,
    field: &str,
    errs: &mut Vec<FieldError>,
) {
    if list.len() > 1 {
        errs.push(FieldError::invalid(
            &path.index(1),
            &list[1],
            "jotasu is single-stack (IPv4): give one address",
        ));
    }
    if let (Some(v), Some(first)) = (value.filter(|v| !v.is_empty()), list.first())
        && v != first
    {
        errs.push(FieldError::invalid(
            &path.index(0),
            first,
            format!("must match `{field}` \"{v}\""),
        ));
    }
}

/// An `ExternalName` Service, as Kubernetes checks it: no cluster IP
/// (Kubernetes reports it on `clusterIPs`, which it fills from
/// `clusterIP`), and an external name that is a DNS-1123 subdomain once a
/// trailing dot (fully qualified) is dropped.
fn external_name(s: &Service, spec: &FieldPath, errs: &mut Vec<FieldError>) {
    if s.spec
        .cluster_ip
        .as_deref()
        .is_some_and(|ip| !ip.is_empty())
    {
        errs.push(FieldError::forbidden(
            &spec.field("clusterIPs"),
            "may not be set for ExternalName services",
        ));
    }
    let path = spec.field("externalName");
    match s
        .spec
        .external_name
        .as_deref()
        .map(|n| n.strip_suffix('.').unwrap_or(n))
    {
        None | Some("") => errs.push(FieldError::required(&path, "")),
        Some(cname) => name(names::dns1123_subdomain, cname, &path, errs),
    }
}

/// An EndpointSlice, as Kubernetes checks it (IPv4 only: jotasu is
/// single-stack).
pub(super) fn endpoint_slice(e: &EndpointSlice, errs: &mut Vec<FieldError>) {
    let at = FieldPath::new("addressType");
    match e.address_type.as_str() {
        "IPv4" => {}
        "" => errs.push(FieldError::required(&at, "")),
        "IPv6" | "FQDN" => errs.push(FieldError::forbidden(
            &at,
            format!(
                "jotasu is single-stack: {:?} slices are not supported; use IPv4",
                e.address_type
            ),
        )),
        other => errs.push(FieldError::not_supported(
            &at,
            other,
            &["IPv4", "IPv6", "FQDN"],
        )),
    }
    let ep = FieldPath::new("endpoints");
    if e.endpoints.len() > 1000 {
        errs.push(FieldError::new(
            &ep,
            format!(
                "Too many: {}: must have at most 1000 items",
                e.endpoints.len()
            ),
        ));
    }
    for (i, end) in e.endpoints.iter().enumerate() {
        let p = ep.index(i);
        if end.addresses.len() != 1 {
            errs.push(FieldError::invalid(
                &p.field("addresses"),
                end.addresses.len(),
                "must contain exactly 1 address",
            ));
        }
        for (j, a) in end.addresses.iter().enumerate() {
            name(names::ipv4, a, &p.field("addresses").index(j), errs);
        }
        if let Some(h) = end.hostname.as_deref() {
            name(names::dns1123_label, h, &p.field("hostname"), errs);
        }
        if let Some(n) = end.node_name.as_deref() {
            name(names::dns1123_subdomain, n, &p.field("nodeName"), errs);
        }
    }
    if e.ports.len() > 100 {
        errs.push(FieldError::new(
            &FieldPath::new("ports"),
            format!("Too many: {}: must have at most 100 items", e.ports.len()),
        ));
    }
    for (j, p) in e.ports.iter().enumerate() {
        let pp = FieldPath::new("ports").index(j);
        if let Some(port) = p.port {
            port_number(port, &pp.field("port"), errs);
        }
        if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
            name(names::dns1123_label, n, &pp.field("name"), errs);
        }
    }
}

pub(super) fn endpoints(e: &Endpoints, errs: &mut Vec<FieldError>) {
    for (i, subset) in e.subsets.iter().enumerate() {
        let sp = FieldPath::new("subsets").index(i);
        for (field, list) in [
            ("addresses", &subset.addresses),
            ("notReadyAddresses", &subset.not_ready_addresses),
        ] {
            for (j, a) in list.iter().enumerate() {
                let ap = sp.field(field).index(j);
                name(names::ipv4, &a.ip, &ap.field("ip"), errs);
                if let Some(n) = a.node_name.as_deref() {
                    name(names::dns1123_subdomain, n, &ap.field("nodeName"), errs);
                }
            }
        }
        if subset.ports.len() > 1 {
            for (j, p) in subset.ports.iter().enumerate() {
                if p.name.as_deref().is_none_or(str::is_empty) {
                    errs.push(FieldError::required(
                        &sp.field("ports").index(j).field("name"),
                        "when there is more than one port",
                    ));
                }
            }
        }
        for (j, p) in subset.ports.iter().enumerate() {
            let pp = sp.field("ports").index(j);
            port_number(p.port, &pp.field("port"), errs);
            if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
                name(names::dns1123_label, n, &pp.field("name"), errs);
            }
        }
    }
}
