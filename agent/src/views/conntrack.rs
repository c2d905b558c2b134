//! Choosing conntrack entries for `jotactl datapath conntrack`: filters by
//! address, port, protocol and Service (its frontends), and a limit, applied
//! on the node so a table of 262,144 entries never crosses the wire whole.
//! Pure.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use jotasu_ebpf::{ConntrackEntry, Frontend, Protocol};

/// Entries sent when the caller names no limit.
pub const DEFAULT_LIMIT: usize = 1000;
/// Entries sent at most, whatever the caller asks.
pub const MAX_LIMIT: usize = 10_000;

/// What an entry must match (every field set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// An address at either end or in a rewrite.
    pub address: Option<Ipv4Addr>,
    /// A port at either end or in a rewrite.
    pub port: Option<u16>,
    /// The protocol.
    pub protocol: Option<Protocol>,
    /// One of these frontends (a Service's).
    pub frontends: Option<BTreeSet<Frontend>>,
}

/// The frontend an entry involves: a forward entry's destination, a reply
/// entry's rewritten source.
pub fn frontend_of(e: &ConntrackEntry) -> Option<Frontend> {
    let at = if e.forward { e.dst } else { e.nat };
    Some(Frontend {
        vip: *at.ip(),
        port: at.port(),
        protocol: Protocol::from_number(e.proto)?,
    })
}

fn ends(e: &ConntrackEntry) -> impl Iterator<Item = SocketAddrV4> {
    [Some(e.src), Some(e.dst), Some(e.nat), e.peer]
        .into_iter()
        .flatten()
}

impl Filter {
    /// Whether `e` matches.
    pub fn matches(&self, e: &ConntrackEntry) -> bool {
        self.address.is_none_or(|a| ends(e).any(|s| *s.ip() == a))
            && self.port.is_none_or(|p| ends(e).any(|s| s.port() == p))
            && self.protocol.is_none_or(|p| p.number() == e.proto)
            && self
                .frontends
                .as_ref()
                .is_none_or(|fs| frontend_of(e).is_some_and(|f| fs.contains(&f)))
    }
}

/// The limit to apply for a requested one (0: the default; capped).
pub fn limit(requested: u32) -> usize {
    match requested as usize {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    }
}

/// The matching entries, ordered (by source, destination, protocol) and
/// cut at `limit`, with how many matched in all.
pub fn select(
    mut entries: Vec<ConntrackEntry>,
    filter: &Filter,
    limit: usize,
) -> (Vec<ConntrackEntry>, usize) {
    entries.retain(|e| filter.matches(e));
    let matched = entries.len();
    entries.sort_by_key(|e| (e.src, e.dst, e.proto, !e.forward));
    entries.truncate(limit);
    (entries, matched)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddrV4 {
        s.parse().unwrap()
    }

    /// A TCP flow 10.244.1.5:40000 → 10.96.0.20:80 balanced to 10.244.2.7:8080.
    fn flow(client_port: u16) -> [ConntrackEntry; 2] {
        let client = SocketAddrV4::new("10.244.1.5".parse().unwrap(), client_port);
        [
            ConntrackEntry {
                src: client,
                dst: sa("10.96.0.20:80"),
                proto: 6,
                forward: true,
                nat: sa("10.244.2.7:8080"),
                closing: false,
                external: false,
                peer: None,
            },
            ConntrackEntry {
                src: sa("10.244.2.7:8080"),
                dst: client,
                proto: 6,
                forward: false,
                nat: sa("10.96.0.20:80"),
                closing: false,
                external: false,
                peer: None,
            },
        ]
    }

    #[test]
    fn both_directions_belong_to_the_frontend() {
        let web = Frontend::tcp("10.96.0.20".parse().unwrap(), 80);
        for e in flow(40000) {
            assert_eq!(frontend_of(&e), Some(web));
        }
        let f = Filter {
            frontends: Some([web].into()),
            ..Filter::default()
        };
        assert!(flow(40000).iter().all(|e| f.matches(e)));
        let other = Filter {
            frontends: Some([Frontend::tcp("10.96.0.21".parse().unwrap(), 80)].into()),
            ..Filter::default()
        };
        assert!(!flow(40000).iter().any(|e| other.matches(e)));
    }

    #[test]
    fn address_port_and_protocol_match_any_end() {
        let [fwd, _] = flow(40000);
        let by = |address: Option<&str>, port: Option<u16>, protocol: Option<Protocol>| Filter {
            address: address.map(|a| a.parse().unwrap()),
            port,
            protocol,
            frontends: None,
        };
        assert!(
            by(Some("10.244.2.7"), None, None).matches(&fwd),
            "the backend, as a rewrite"
        );
        assert!(by(None, Some(40000), None).matches(&fwd));
        assert!(by(Some("10.244.1.5"), Some(8080), Some(Protocol::Tcp)).matches(&fwd));
        assert!(!by(Some("10.244.3.3"), None, None).matches(&fwd));
        assert!(!by(None, Some(53), None).matches(&fwd));
        assert!(!by(None, None, Some(Protocol::Udp)).matches(&fwd));
    }

    #[test]
    fn limits_cut_after_counting_and_are_capped() {
        let all: Vec<ConntrackEntry> = (0..10).flat_map(|i| flow(40000 + i)).collect();
        let (some, matched) = select(all.clone(), &Filter::default(), 3);
        assert_eq!((some.len(), matched), (3, 20));
        let (one_flow, matched) = select(
            all,
            &Filter {
                port: Some(40004),
                ..Filter::default()
            },
            100,
        );
        assert_eq!(matched, 2);
        assert!(one_flow[0].forward && !one_flow[1].forward, "forward first");
        assert_eq!(limit(0), DEFAULT_LIMIT);
        assert_eq!(limit(5), 5);
        assert_eq!(limit(u32::MAX), MAX_LIMIT);
    }
}
