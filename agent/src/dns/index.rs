//! The cluster's DNS names and their records, built from the node's view
//! (Services, Endpoints, Nodes) as the "Kubernetes DNS-Based Service
//! Discovery" specification, schema 1.1.0, lays them out. Pure data: no
//! sockets, no clocks.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnetwork::Ipv4Network;
use jotasu_api::kinds::pod::Protocol;
use jotasu_api::kinds::service::{EndpointAddress, ServiceType};
use jotasu_api::{Endpoints, Service};

use crate::watch::ClusterView;

/// The specification's schema version, answered at `dns-version.DOMAIN`.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// The zone of reverse (PTR) names.
pub const REVERSE_ZONE: &str = "in-addr.arpa";

/// The data of one record (owner names are the index's keys).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rdata {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An alias (ExternalName Services), a name without the trailing dot.
    Cname(String),
    /// A service port: priority 0, weight 100, this port, this target.
    Srv {
        /// The port number.
        port: u16,
        /// The target name, without the trailing dot.
        target: String,
    },
    /// A reverse name's owner, without the trailing dot.
    Ptr(String),
    /// A text string.
    Txt(String),
}

/// What the index holds for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The name exists, with these records (possibly none: an empty
    /// non-terminal, a Service without ready endpoints).
    Found(Vec<Rdata>),
    /// The name is inside the index's zones but does not exist.
    NotFound,
    /// The name is outside the index's zones: another server answers it.
    Outside,
}

/// The cluster's DNS names, lowercase and without trailing dots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsIndex {
    domain: String,
    service_cidr: Option<Ipv4Network>,
    pod_cidrs: Vec<Ipv4Network>,
    /// Each name's records, sorted and without duplicates (a Vec: most
    /// names hold one record or none, and a set's node would be ten times
    /// their size).
    names: BTreeMap<Box<str>, Vec<Rdata>>,
    /// ClusterIP Services by `name.ns`, kept by shape rather than spelled
    /// out: their A, SRV and PTR names and the `_proto` names between
    /// are answered from this (a tenth of the memory of every name
    /// written out, which matters at 10,000 Services).
    services: HashMap<Arc<str>, ClusterIpService>,
    /// ClusterIP → `name.ns`, for PTR.
    addresses: HashMap<Ipv4Addr, Arc<str>>,
    /// `.svc.DOMAIN`.
    svc_suffix: Box<str>,
    serial: u32,
}

/// A ClusterIP Service's address and named ports.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClusterIpService {
    ip: Ipv4Addr,
    ports: Box<[NamedPort]>,
}

/// A named port: `_name._proto` answers SRV with `port`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NamedPort {
    name: Box<str>,
    proto: &'static str,
    port: u16,
}

/// Lowercases and drops a trailing dot: the index's form of a name.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The reverse name of an address: `d.c.b.a.in-addr.arpa`.
pub fn reverse_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.{REVERSE_ZONE}")
}

/// The address a full reverse name stands for (`None` for partial names).
pub fn parse_reverse(name: &str) -> Option<Ipv4Addr> {
    let rest = name.strip_suffix(REVERSE_ZONE)?.strip_suffix('.')?;
    let [d, c, b, a] = octets(rest, '.')?;
    Some(Ipv4Addr::new(a, b, c, d))
}

/// Four decimal octets separated by `sep`, without leading zeros.
fn octets(text: &str, sep: char) -> Option<[u8; 4]> {
    let octets: Vec<u8> = text
        .split(sep)
        .map(|l| {
            l.parse()
                .ok()
                .filter(|_| l.len() == 1 || !l.starts_with('0'))
        })
        .collect::<Option<_>>()?;
    octets.try_into().ok()
}

/// The dashed form of an address, `a-b-c-d`.
pub fn dashed(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}

fn undashed(label: &str) -> Option<Ipv4Addr> {
    octets(label, '-').map(Ipv4Addr::from)
}

fn proto_label(p: Option<Protocol>) -> &'static str {
    match p.unwrap_or_default() {
        Protocol::Tcp => "_tcp",
        Protocol::Udp => "_udp",
        Protocol::Sctp => "_sctp",
    }
}

fn port_u16(port: i32) -> Option<u16> {
    u16::try_from(port).ok().filter(|p| *p != 0)
}

impl DnsIndex {
    /// An empty index for the cluster domain (e.g. `cluster.local`); pod
    /// names answer for addresses in `pod_cidrs`, reverse names are ours
    /// inside `service_cidr` and `pod_cidrs`.
    pub fn new(
        domain: &str,
        service_cidr: Option<Ipv4Network>,
        pod_cidrs: Vec<Ipv4Network>,
    ) -> Self {
        let domain = normalize(domain);
        let mut index = Self {
            svc_suffix: format!(".svc.{domain}").into(),
            domain,
            service_cidr,
            pod_cidrs,
            names: BTreeMap::new(),
            services: HashMap::new(),
            addresses: HashMap::new(),
            serial: 1,
        };
        for sub in ["svc", "pod"] {
            let name = format!("{sub}.{}", index.domain);
            index.touch(&name);
        }
        let version = format!("dns-version.{}", index.domain);
        index.insert(&version, Rdata::Txt(SCHEMA_VERSION.into()));
        index
    }

    /// The index of a node's view: every Service with its Endpoints
    /// (ExternalName ones as aliases of their external name); pod CIDRs
    /// from the Nodes' `spec.podCIDR`.
    pub fn build(view: &ClusterView, domain: &str, service_cidr: Option<Ipv4Network>) -> Self {
        let pod_cidrs = view
            .nodes
            .values()
            .filter_map(|n| n.spec.pod_cidr.as_deref()?.parse().ok())
            .collect();
        let mut index = Self::new(domain, service_cidr, pod_cidrs);
        for (key, service) in &view.services {
            if service.spec.type_() != ServiceType::ExternalName {
                let endpoints = view.endpoints.get(key);
                match view.terminating.get(key) {
                    Some(gone) => {
                        let answered = endpoints.map(|e| without(e, gone));
                        index.add_service(service, answered.as_ref());
                    }
                    None => index.add_service(service, endpoints),
                }
            } else if let Some(external) = service.spec.external_name() {
                index.add_external_name(&key.0, &key.1, external);
            }
        }
        index
    }

    /// The SOA serial (1 unless set).
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Sets the SOA serial (the caller bumps it when it rebuilds).
    pub fn with_serial(mut self, serial: u32) -> Self {
        self.serial = serial;
        self
    }

    /// The cluster domain, lowercase, without the trailing dot.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Adds a Service's names (`svc.ns.svc.DOMAIN`, its SRV and PTR names,
    /// headless endpoints' names) given its Endpoints.
    pub fn add_service(&mut self, service: &Service, endpoints: Option<&Endpoints>) {
        let (Some(ns), Some(name)) = (
            service.metadata.namespace.as_deref(),
            service.metadata.name.as_deref(),
        ) else {
            return;
        };
        let fqdn = format!("{name}.{ns}.svc.{}", self.domain);
        match service.spec.cluster_ip.as_deref() {
            Some("None") => {
                self.touch(&fqdn);
                self.add_headless(&fqdn, endpoints);
            }
            ip => {
                let Some(ip) = ip.and_then(|ip| ip.parse::<Ipv4Addr>().ok()) else {
                    // Not allocated yet: the name exists without an address.
                    self.touch(&fqdn);
                    return;
                };
                self.touch(&format!("{ns}.svc.{}", self.domain));
                let ports = service
                    .spec
                    .ports
                    .iter()
                    .filter_map(|p| {
                        Some(NamedPort {
                            name: p.name.as_deref()?.to_ascii_lowercase().into(),
                            proto: proto_label(p.protocol),
                            port: port_u16(p.port)?,
                        })
                    })
                    .collect();
                let key: Arc<str> = normalize(&format!("{name}.{ns}")).into();
                self.addresses.insert(ip, Arc::clone(&key));
                self.services.insert(key, ClusterIpService { ip, ports });
            }
        }
    }

    /// What a ClusterIP Service answers for `name` (normalized), if the
    /// name is one of its: A, the `_proto` level, SRV, PTR.
    fn cluster_ip_lookup(&self, name: &str) -> Option<Vec<Rdata>> {
        if let Some(ip) = parse_reverse(name) {
            let key = self.addresses.get(&ip)?;
            return Some(vec![Rdata::Ptr(format!("{key}{}", self.svc_suffix))]);
        }
        let rest = name.strip_suffix(&*self.svc_suffix)?;
        let labels: Vec<&str> = rest.split('.').collect();
        let key = |svc: &str, ns: &str| format!("{svc}.{ns}");
        match labels[..] {
            [_, _] => Some(vec![Rdata::A(self.services.get(rest)?.ip)]),
            [proto, svc, ns] => {
                let s = self.services.get(key(svc, ns).as_str())?;
                s.ports.iter().any(|p| p.proto == proto).then(Vec::new)
            }
            [port, proto, svc, ns] => {
                let s = self.services.get(key(svc, ns).as_str())?;
                let p = s
                    .ports
                    .iter()
                    .find(|p| p.proto == proto && port.strip_prefix('_') == Some(&*p.name))?;
                let target = format!("{svc}.{ns}{}", self.svc_suffix);
                Some(vec![Rdata::Srv {
                    port: p.port,
                    target,
                }])
            }
            _ => None,
        }
    }

    /// Adds an ExternalName Service: `svc.ns.svc.DOMAIN` CNAME `external`.
    pub fn add_external_name(&mut self, namespace: &str, name: &str, external: &str) {
        let fqdn = format!("{name}.{namespace}.svc.{}", self.domain);
        self.insert(&normalize(&fqdn), Rdata::Cname(normalize(external)));
    }

    fn add_headless(&mut self, fqdn: &str, endpoints: Option<&Endpoints>) {
        for subset in endpoints.map(|e| e.subsets.as_slice()).unwrap_or_default() {
            for address in &subset.addresses {
                let Ok(ip) = address.ip.parse::<Ipv4Addr>() else {
                    continue;
                };
                self.insert(fqdn, Rdata::A(ip));
                let target = self.endpoint_name(fqdn, address, ip);
                self.insert(&target, Rdata::A(ip));
                if address.hostname.is_some() {
                    self.insert(&reverse_name(ip), Rdata::Ptr(target.clone()));
                }
                for p in &subset.ports {
                    let (Some(port_name), Some(port)) = (&p.name, port_u16(p.port)) else {
                        continue;
                    };
                    let srv = format!("_{port_name}.{}.{fqdn}", proto_label(p.protocol));
                    let target = target.clone();
                    self.insert(&normalize(&srv), Rdata::Srv { port, target });
                }
            }
        }
    }

    /// `hostname.svc.ns.svc.DOMAIN`, or the dashed address when the
    /// endpoint has no hostname (as CoreDNS names it).
    fn endpoint_name(&self, fqdn: &str, address: &EndpointAddress, ip: Ipv4Addr) -> String {
        match address.hostname.as_deref().filter(|h| !h.is_empty()) {
            Some(h) => normalize(&format!("{h}.{fqdn}")),
            None => format!("{}.{fqdn}", dashed(ip)),
        }
    }

    /// Marks a name (and every ancestor inside the zone) as existing.
    fn touch(&mut self, name: &str) {
        let name = normalize(name);
        let zone = if name.ends_with(REVERSE_ZONE) {
            REVERSE_ZONE
        } else {
            self.domain.as_str()
        };
        let mut rest = name.as_str();
        loop {
            if !self.names.contains_key(rest) {
                self.names.insert(rest.into(), Vec::new());
            }
            if rest == zone {
                break;
            }
            match rest.split_once('.') {
                Some((_, parent)) if parent.len() >= zone.len() => rest = parent,
                _ => break,
            }
        }
    }

    fn insert(&mut self, name: &str, data: Rdata) {
        let name = normalize(name);
        self.touch(&name);
        let records = self.names.entry(name.into()).or_default();
        if let Err(at) = records.binary_search(&data) {
            records.insert(at, data);
        }
    }

    /// Whether a reverse address is ours: a known record, or inside the
    /// service CIDR or a pod CIDR.
    pub fn owns_address(&self, ip: Ipv4Addr) -> bool {
        // Cheapest first: every query's source is checked here.
        self.pod_cidrs.iter().any(|n| n.contains(ip))
            || self.service_cidr.is_some_and(|n| n.contains(ip))
            || self.addresses.contains_key(&ip)
            || self.names.contains_key(reverse_name(ip).as_str())
    }

    /// The zone a name belongs to (the cluster domain or `in-addr.arpa`
    /// for addresses we own), `None` when another server answers it.
    pub fn zone_of(&self, name: &str) -> Option<&str> {
        let name = normalize(name);
        let inside = |zone: &str| {
            name == zone
                || name
                    .strip_suffix(zone)
                    .is_some_and(|rest| rest.ends_with('.'))
        };
        if inside(&self.domain) {
            return Some(&self.domain);
        }
        if inside(REVERSE_ZONE) && parse_reverse(&name).is_some_and(|ip| self.owns_address(ip)) {
            return Some(REVERSE_ZONE);
        }
        None
    }

    /// What the index holds for a name (any case, trailing dot or not).
    pub fn lookup(&self, name: &str) -> Lookup {
        let name = normalize(name);
        if self.zone_of(&name).is_none() {
            return Lookup::Outside;
        }
        if let Some(records) = self.cluster_ip_lookup(&name) {
            return Lookup::Found(records);
        }
        if let Some(records) = self.names.get(name.as_str()) {
            return Lookup::Found(records.to_vec());
        }
        if let Some(ip) = self.pod_address(&name) {
            return Lookup::Found(vec![Rdata::A(ip)]);
        }
        if name == self.domain {
            return Lookup::Found(Vec::new());
        }
        Lookup::NotFound
    }

    /// The names answered with exactly one A record and nothing else (a
    /// ClusterIP Service, a headless endpoint's name): the answers the
    /// kernel's fast path may give in the resolver's place.
    pub fn single_a_names(&self) -> BTreeMap<String, Ipv4Addr> {
        self.names
            .iter()
            .filter_map(|(name, records)| match records.as_slice() {
                [Rdata::A(ip)] => Some((name.to_string(), *ip)),
                _ => None,
            })
            .chain(
                self.services
                    .iter()
                    .map(|(key, s)| (format!("{key}{}", self.svc_suffix), s.ip)),
            )
            .collect()
    }

    /// `a-b-c-d.ns.pod.DOMAIN` for an address inside a pod CIDR (CoreDNS's
    /// `pods verified` would also require a known pod; the node only sees
    /// its own pods, so the CIDR is the check).
    fn pod_address(&self, name: &str) -> Option<Ipv4Addr> {
        let rest = name.strip_suffix(&self.domain)?.strip_suffix(".pod.")?;
        let (label, ns) = rest.split_once('.')?;
        if ns.is_empty() || ns.contains('.') {
            return None;
        }
        undashed(label).filter(|ip| self.pod_cidrs.iter().any(|n| n.contains(*ip)))
    }
}

/// `endpoints` without the addresses in `terminating`: a terminating pod
/// is never handed out by name (CoreDNS answers with ready endpoints
/// only), even while the data plane still sends it flows because every
/// endpoint of its Service is terminating.
fn without(endpoints: &Endpoints, terminating: &std::collections::BTreeSet<String>) -> Endpoints {
    let mut e = endpoints.clone();
    for s in &mut e.subsets {
        s.addresses.retain(|a| !terminating.contains(&a.ip));
    }
    e
}

#[cfg(test)]
#[path = "index_tests.rs"]
pub(crate) mod tests;
