//! [`DnsFastPath`]: the maps of the DNS fast path in `from_pod` (`bpf/dns.h`).
//! A UDP query to one of the node's DNS frontends, of type A and class IN,
//! for a name in the name map, is answered by the tc program itself; every
//! other query goes on to the node's resolver.
//!
//! The agent keeps the name map equal to the names its resolver answers
//! with exactly one A record ([`plan_names`] computes the writes, free of
//! kernel access: new and changed names first, then removals), and lists
//! the frontends: the cluster DNS address (port 53) and the resolver's own
//! address, where the socket programs send pods' queries.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::{Ipv4Addr, SocketAddrV4},
    path::Path,
};

use aya::maps::{HashMap, Map, MapData, PerCpuArray};

use crate::{
    abi,
    error::DatapathError,
    maps::{is_missing, map_err},
};

const NAMES_PIN: &str = "dns_names";
const FRONTENDS_PIN: &str = "dns_frontends";
const STATS_PIN: &str = "dns_stats";

/// Names the fast path answers: a lowercase name without the trailing dot →
/// its one A record.
pub type DnsNames = BTreeMap<String, Ipv4Addr>;

/// One write to the name map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameOp {
    /// Insert or overwrite a name's address.
    Put(String, Ipv4Addr),
    /// Remove a name.
    Delete(String),
}

/// What a name reconcile wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NamesSummary {
    /// Names that were not programmed.
    pub added: usize,
    /// Names whose address changed.
    pub changed: usize,
    /// Names no longer wanted.
    pub removed: usize,
    /// Wanted names the wire form cannot carry (left to the resolver).
    pub skipped: usize,
}

/// The fast path's counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsCounters {
    /// Queries answered in the kernel.
    pub answered: u64,
    /// Queries to a DNS frontend left to the resolver.
    pub passed: u64,
}

/// The key of `name` (any case, trailing dot or not): its labels in wire
/// form, lowercased, zero-padded; `None` if DNS cannot carry it (an empty
/// or over-63-byte label, over 255 bytes in all).
pub fn wire_name(name: &str) -> Option<abi::DnsName> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut wire = [0u8; abi::DNS_NAME_LEN];
    let mut at = 0;
    if !name.is_empty() {
        for label in name.split('.') {
            let len = u8::try_from(label.len())
                .ok()
                .filter(|l| (1..=63).contains(l))?;
            // The label, its length byte and the root label must fit in 255.
            if at + 1 + label.len() + 1 > 255 {
                return None;
            }
            wire[at] = len;
            for (i, b) in label.bytes().enumerate() {
                wire[at + 1 + i] = b.to_ascii_lowercase();
            }
            at += 1 + label.len();
        }
    }
    Some(abi::DnsName { wire })
}

/// The name a key stands for (the inverse of [`wire_name`]).
pub fn name_of(key: &abi::DnsName) -> Option<String> {
    let mut labels = Vec::new();
    let mut at = 0;
    loop {
        let len = usize::from(*key.wire.get(at)?);
        if len == 0 {
            return Some(labels.join("."));
        }
        let label = key.wire.get(at + 1..at + 1 + len)?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        at += 1 + len;
    }
}

/// The writes that turn `current` into `desired`: puts first, then deletes.
/// Names [`wire_name`] cannot carry are counted as skipped, not written.
pub fn plan_names(current: &DnsNames, desired: &DnsNames) -> (Vec<NameOp>, NamesSummary) {
    let mut ops = Vec::new();
    let mut summary = NamesSummary::default();
    // Names come normalized from the resolver's index; any other spelling
    // is normalized here (without copying the whole set for the common case).
    let needs_normalizing =
        |name: &str| name.ends_with('.') || name.bytes().any(|b| b.is_ascii_uppercase());
    let renamed: DnsNames = desired
        .iter()
        .filter(|(name, _)| needs_normalizing(name))
        .map(|(name, addr)| (name.trim_end_matches('.').to_ascii_lowercase(), *addr))
        .collect();
    let wanted = |name: &str| {
        renamed.contains_key(name) || (!needs_normalizing(name) && desired.contains_key(name))
    };
    let plain = desired.iter().filter(|(name, _)| !needs_normalizing(name));
    for (name, addr) in plain.chain(renamed.iter()) {
        if wire_name(name).is_none() {
            summary.skipped += 1;
            continue;
        }
        match current.get(name) {
            Some(have) if have == addr => {}
            Some(_) => {
                summary.changed += 1;
                ops.push(NameOp::Put(name.clone(), *addr));
            }
            None => {
                summary.added += 1;
                ops.push(NameOp::Put(name.clone(), *addr));
            }
        }
    }
    for name in current.keys() {
        if !wanted(name) {
            summary.removed += 1;
            ops.push(NameOp::Delete(name.clone()));
        }
    }
    (ops, summary)
}

fn frontend_key(addr: SocketAddrV4) -> abi::DnsFrontend {
    abi::DnsFrontend {
        addr: u32::from(*addr.ip()).to_be(),
        port: addr.port().to_be(),
        pad: 0,
    }
}

/// The DNS fast path's maps, opened from a node's pins.
pub struct DnsFastPath {
    names: HashMap<MapData, abi::DnsName, abi::DnsAnswer>,
    frontends: HashMap<MapData, abi::DnsFrontend, u32>,
    stats: PerCpuArray<MapData, u64>,
    programmed: DnsNames,
}

impl std::fmt::Debug for DnsFastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsFastPath")
            .field("names", &self.programmed.len())
            .finish_non_exhaustive()
    }
}

impl DnsFastPath {
    /// Opens node `node`'s fast path under the bpffs mount `bpffs` (the data
    /// plane must have been set up).
    pub fn open_in(bpffs: &Path, node: &str) -> Result<Self, DatapathError> {
        Self::from_pins(&crate::datapath::node_dir(bpffs, node)?)
    }

    /// Opens the pins under the node directory `dir`, reading the names
    /// programmed so far.
    pub(crate) fn from_pins(dir: &Path) -> Result<Self, DatapathError> {
        let open = |name: &'static str| {
            MapData::from_pin(dir.join(name)).map_err(map_err("open pin of", name))
        };
        let names = HashMap::try_from(Map::HashMap(open(NAMES_PIN)?))
            .map_err(map_err("type-check", NAMES_PIN))?;
        let frontends = HashMap::try_from(Map::HashMap(open(FRONTENDS_PIN)?))
            .map_err(map_err("type-check", FRONTENDS_PIN))?;
        let stats = PerCpuArray::try_from(Map::PerCpuArray(open(STATS_PIN)?))
            .map_err(map_err("type-check", STATS_PIN))?;
        let mut me = Self {
            names,
            frontends,
            stats,
            programmed: DnsNames::new(),
        };
        me.programmed = me.read_names()?;
        Ok(me)
    }

    fn read_names(&self) -> Result<DnsNames, DatapathError> {
        let mut out = DnsNames::new();
        for entry in self.names.iter() {
            let (k, v) = entry.map_err(map_err("iterate", NAMES_PIN))?;
            if let Some(name) = name_of(&k) {
                out.insert(name, Ipv4Addr::from(u32::from_be(v.addr)));
            }
        }
        Ok(out)
    }

    /// The names programmed.
    pub fn names(&self) -> &DnsNames {
        &self.programmed
    }

    /// Makes the frontends exactly `frontends` (an empty list turns the
    /// fast path off). At most [`abi::MAX_DNS_FRONTENDS`].
    pub fn set_frontends(&mut self, frontends: &[SocketAddrV4]) -> Result<(), DatapathError> {
        if frontends.len() > abi::MAX_DNS_FRONTENDS {
            return Err(DatapathError::TooManyDnsFrontends {
                count: frontends.len(),
                max: abi::MAX_DNS_FRONTENDS,
            });
        }
        let wanted: BTreeSet<abi::DnsFrontend> =
            frontends.iter().copied().map(frontend_key).collect();
        for key in &wanted {
            self.frontends
                .insert(key, 1, 0)
                .map_err(map_err("insert", FRONTENDS_PIN))?;
        }
        let stale: Vec<abi::DnsFrontend> = self
            .frontends
            .keys()
            .collect::<Result<Vec<_>, _>>()
            .map_err(map_err("iterate", FRONTENDS_PIN))?
            .into_iter()
            .filter(|k| !wanted.contains(k))
            .collect();
        for key in stale {
            match self.frontends.remove(&key) {
                Err(e) if !is_missing(&e) => return Err(map_err("remove", FRONTENDS_PIN)(e)),
                _ => {}
            }
        }
        Ok(())
    }

    /// The frontends programmed.
    pub fn frontends(&self) -> Result<Vec<SocketAddrV4>, DatapathError> {
        let mut out: Vec<SocketAddrV4> = self
            .frontends
            .keys()
            .map(|k| {
                k.map(|k| {
                    SocketAddrV4::new(Ipv4Addr::from(u32::from_be(k.addr)), u16::from_be(k.port))
                })
            })
            .collect::<Result<_, _>>()
            .map_err(map_err("iterate", FRONTENDS_PIN))?;
        out.sort();
        Ok(out)
    }

    /// Makes the name map exactly `desired`, writing only the difference.
    /// The model follows each write, so a failure midway leaves it true.
    pub fn reconcile(&mut self, desired: &DnsNames) -> Result<NamesSummary, DatapathError> {
        let (ops, summary) = plan_names(&self.programmed, desired);
        for op in ops {
            match op {
                NameOp::Put(name, addr) => {
                    let Some(key) = wire_name(&name) else {
                        continue;
                    };
                    let value = abi::DnsAnswer {
                        addr: u32::from(addr).to_be(),
                    };
                    self.names
                        .insert(key, value, 0)
                        .map_err(map_err("insert", NAMES_PIN))?;
                    self.programmed.insert(name, addr);
                }
                NameOp::Delete(name) => {
                    if let Some(key) = wire_name(&name) {
                        match self.names.remove(&key) {
                            Err(e) if !is_missing(&e) => {
                                return Err(map_err("remove", NAMES_PIN)(e));
                            }
                            _ => {}
                        }
                    }
                    self.programmed.remove(&name);
                }
            }
        }
        Ok(summary)
    }

    /// The counters, summed over CPUs.
    pub fn counters(&self) -> Result<DnsCounters, DatapathError> {
        let sum = |i: u32| -> Result<u64, DatapathError> {
            Ok(self
                .stats
                .get(&i, 0)
                .map_err(map_err("read", STATS_PIN))?
                .iter()
                .sum())
        };
        Ok(DnsCounters {
            answered: sum(0)?,
            passed: sum(1)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_the_wire_form_lowercased_and_come_back() {
        let key = wire_name("Web.Default.svc.cluster.local.").unwrap();
        let mut want = Vec::new();
        for l in ["web", "default", "svc", "cluster", "local"] {
            want.push(l.len() as u8);
            want.extend_from_slice(l.as_bytes());
        }
        want.push(0);
        assert_eq!(&key.wire[..want.len()], want.as_slice());
        assert!(key.wire[want.len()..].iter().all(|b| *b == 0));
        assert_eq!(
            name_of(&key).as_deref(),
            Some("web.default.svc.cluster.local")
        );
        assert_eq!(wire_name("").unwrap().wire[0], 0, "the root");
    }

    #[test]
    fn names_dns_cannot_carry_are_refused() {
        assert!(wire_name("a..b").is_none(), "empty label");
        assert!(wire_name(&format!("{}.local", "x".repeat(64))).is_none());
        assert!(wire_name(&format!("{}.x", "x".repeat(63))).is_some());
        // 4 labels of 63 (256 bytes with lengths) + root: too long.
        let long = vec!["y".repeat(63); 4].join(".");
        assert!(wire_name(&long).is_none());
        // 3 × 63 + one of 61: 192 + 62 + 1 = 255 bytes exactly.
        let longest = format!("{}.{}", vec!["y".repeat(63); 3].join("."), "z".repeat(61));
        assert!(wire_name(&longest).is_some());
    }

    #[test]
    fn plans_put_new_and_changed_names_before_removing_stale_ones() {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let current: DnsNames = [
            ("old.ns.svc.cluster.local".to_owned(), a("10.96.0.1")),
            ("moved.ns.svc.cluster.local".to_owned(), a("10.96.0.2")),
            ("same.ns.svc.cluster.local".to_owned(), a("10.96.0.3")),
        ]
        .into();
        let desired: DnsNames = [
            ("moved.ns.svc.cluster.local".to_owned(), a("10.96.0.20")),
            ("same.ns.svc.cluster.local".to_owned(), a("10.96.0.3")),
            ("new.ns.svc.cluster.local.".to_owned(), a("10.96.0.4")),
            (format!("{}.ns", "x".repeat(64)), a("10.96.0.5")),
        ]
        .into();
        let (ops, summary) = plan_names(&current, &desired);
        assert_eq!(
            ops,
            vec![
                NameOp::Put("moved.ns.svc.cluster.local".into(), a("10.96.0.20")),
                NameOp::Put("new.ns.svc.cluster.local".into(), a("10.96.0.4")),
                NameOp::Delete("old.ns.svc.cluster.local".into()),
            ]
        );
        assert_eq!(
            summary,
            NamesSummary {
                added: 1,
                changed: 1,
                removed: 1,
                skipped: 1
            }
        );
        let (ops, _) = plan_names(&desired_applied(&current, &ops), &desired);
        assert!(ops.is_empty(), "a second pass writes nothing: {ops:?}");
    }

    fn desired_applied(current: &DnsNames, ops: &[NameOp]) -> DnsNames {
        let mut out = current.clone();
        for op in ops {
            match op {
                NameOp::Put(n, a) => {
                    out.insert(n.clone(), *a);
                }
                NameOp::Delete(n) => {
                    out.remove(n);
                }
            }
        }
        out
    }
}
