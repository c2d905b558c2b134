//! Why the data plane drops packets: [`DropReason`] names each value of
//! `enum drop_reason` (`bpf/jotasu_maps.h`), and [`Drops`] reads the per-CPU
//! `drop_stats` map the programs count them in (`bpf/drop.h`).
//!
//! Every `TC_ACT_SHOT` of the tc programs counts one packet under a reason;
//! so does every refusal they answer (a TCP RST or an ICMP port unreachable
//! for a service without backends) and every connect or send the socket
//! programs refuse (`ECONNREFUSED`, `EHOSTUNREACH`). The names are stable:
//! they are the `reason` label of `jotasu_agent_datapath_drops_total`.
use std::{collections::BTreeMap, fmt, path::Path, str::FromStr};

use aya::maps::{Map, MapData, PerCpuArray};

use crate::{error::DatapathError, maps::map_err};

const STATS_PIN: &str = "drop_stats";

/// `JOTASU_DROP_SLOTS`: entries of `drop_stats`, more than there are
/// reasons, so that a new reason keeps the pinned map's layout.
pub const DROP_SLOTS: u32 = 64;

/// One value of `enum drop_reason`, in the C order (the discriminant is the
/// map index). New reasons are appended, never renumbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum DropReason {
    /// `DROP_MALFORMED`.
    Malformed = 0,
    /// `DROP_UNSUPPORTED_L3`.
    UnsupportedL3 = 1,
    /// `DROP_SPOOFED_SOURCE`.
    SpoofedSource = 2,
    /// `DROP_NO_BACKEND`.
    NoBackend = 3,
    /// `DROP_NO_BACKEND_SLOT`.
    NoBackendSlot = 4,
    /// `DROP_REWRITE_FAILED`.
    RewriteFailed = 5,
    /// `DROP_ENCAP_FAILED`.
    EncapFailed = 6,
    /// `DROP_UNKNOWN_OVERLAY_PEER`.
    UnknownOverlayPeer = 7,
    /// `DROP_POLICY` (reserved: nothing counts it yet).
    Policy = 8,
    /// `DROP_SNAT_EXHAUSTED`.
    SnatExhausted = 9,
    /// `DROP_NO_ROUTE`.
    NoRoute = 10,
    /// `DROP_NOT_CONFIGURED`.
    NotConfigured = 11,
}

impl DropReason {
    /// Every reason, in index order (`DROP_MAX` of them).
    pub const ALL: [Self; 12] = [
        Self::Malformed,
        Self::UnsupportedL3,
        Self::SpoofedSource,
        Self::NoBackend,
        Self::NoBackendSlot,
        Self::RewriteFailed,
        Self::EncapFailed,
        Self::UnknownOverlayPeer,
        Self::Policy,
        Self::SnatExhausted,
        Self::NoRoute,
        Self::NotConfigured,
    ];

    /// The index in `drop_stats` (the C enum's value).
    pub fn index(self) -> u32 {
        self as u32
    }

    /// The reason at `index`, if there is one.
    pub fn from_index(index: u32) -> Option<Self> {
        Self::ALL.get(usize::try_from(index).ok()?).copied()
    }

    /// The stable snake_case name: the C name without `DROP_`, lowercased.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnsupportedL3 => "unsupported_l3",
            Self::SpoofedSource => "spoofed_source",
            Self::NoBackend => "no_backend",
            Self::NoBackendSlot => "no_backend_slot",
            Self::RewriteFailed => "rewrite_failed",
            Self::EncapFailed => "encap_failed",
            Self::UnknownOverlayPeer => "unknown_overlay_peer",
            Self::Policy => "policy",
            Self::SnatExhausted => "snat_exhausted",
            Self::NoRoute => "no_route",
            Self::NotConfigured => "not_configured",
        }
    }

    /// What was dropped, in a sentence.
    pub fn description(self) -> &'static str {
        match self {
            Self::Malformed => {
                "an IPv4 packet whose IP header, or TCP/UDP header, cannot be read (truncated, \
                 header length below 5 words, a first fragment too short for its ports)"
            }
            Self::UnsupportedL3 => {
                "a pod sent a frame that is neither IPv4 nor ARP (IPv6 included: jotasu is IPv4-only)"
            }
            Self::SpoofedSource => {
                "a pod sent IPv4 from an address that is not its own (not the endpoint of the veth \
                 it came in on)"
            }
            Self::NoBackend => {
                "a new flow to a service without ready backends, refused (TCP RST, ICMP port \
                 unreachable, ECONNREFUSED) or, for a stray segment, dropped"
            }
            Self::NoBackendSlot => {
                "a backend slot below the service's count was missing (a half-written service)"
            }
            Self::RewriteFailed => {
                "a kernel helper writing the packet failed: NAT, checksums, MACs, a refusal or a \
                 DNS answer"
            }
            Self::EncapFailed => "the tunnel key for the overlay could not be set",
            Self::UnknownOverlayPeer => {
                "a VXLAN packet from an underlay address that is not a known node's (or without \
                 tunnel metadata)"
            }
            Self::Policy => "reserved for network policy; nothing counts it yet",
            Self::SnatExhausted => {
                "a new external flow under externalTrafficPolicy: Cluster found no free SNAT port \
                 on the node toward its backend (8 random tries)"
            }
            Self::NoRoute => {
                "a reply to a client outside the cluster found no route out of the node's \
                 underlay (or IPv4 forwarding is off on it)"
            }
            Self::NotConfigured => {
                "an external flow arrived before the agent recorded the node's address and \
                 underlay interface"
            }
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no drop reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a drop reason")]
pub struct UnknownDropReason {
    /// The name given.
    pub name: String,
}

impl FromStr for DropReason {
    type Err = UnknownDropReason;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownDropReason { name: s.to_owned() })
    }
}

/// Drops by reason, summed over CPUs: every reason, zeros included.
pub type DropCounters = BTreeMap<DropReason, u64>;

/// Sums per-CPU counts of `drop_stats` slots into [`DropCounters`]; slots
/// beyond the known reasons (a newer program's) are left out.
pub fn sum_slots(slots: impl IntoIterator<Item = (u32, u64)>) -> DropCounters {
    let mut out: DropCounters = DropReason::ALL.into_iter().map(|r| (r, 0)).collect();
    for (index, n) in slots {
        if let Some(r) = DropReason::from_index(index) {
            let total = out.entry(r).or_default();
            *total = total.saturating_add(n);
        }
    }
    out
}

/// The drop counters of a node's data plane, opened from its pins.
pub struct Drops {
    stats: PerCpuArray<MapData, u64>,
}

impl fmt::Debug for Drops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Drops").finish_non_exhaustive()
    }
}

impl Drops {
    /// Opens node `node`'s drop counters under the bpffs mount `bpffs` (the
    /// data plane must have been set up).
    pub fn open_in(bpffs: &Path, node: &str) -> Result<Self, DatapathError> {
        Self::from_pins(&crate::datapath::node_dir(bpffs, node)?)
    }

    /// Opens the pin under the node directory `dir`.
    pub(crate) fn from_pins(dir: &Path) -> Result<Self, DatapathError> {
        let data =
            MapData::from_pin(dir.join(STATS_PIN)).map_err(map_err("open pin of", STATS_PIN))?;
        let stats = PerCpuArray::try_from(Map::PerCpuArray(data))
            .map_err(map_err("type-check", STATS_PIN))?;
        Ok(Self { stats })
    }

    /// Drops by reason, summed over CPUs.
    pub fn counters(&self) -> Result<DropCounters, DatapathError> {
        let slots = DropReason::ALL
            .into_iter()
            .map(|r| {
                let per_cpu = self
                    .stats
                    .get(&r.index(), 0)
                    .map_err(map_err("read", STATS_PIN))?;
                Ok((
                    r.index(),
                    per_cpu.iter().fold(0u64, |a, n| a.saturating_add(*n)),
                ))
            })
            .collect::<Result<Vec<_>, DatapathError>>()?;
        Ok(sum_slots(slots))
    }

    /// One reason's count, summed over CPUs.
    pub fn count(&self, reason: DropReason) -> Result<u64, DatapathError> {
        Ok(self.counters()?.get(&reason).copied().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_the_declaration_and_round_trip() {
        for (i, r) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(r.index() as usize, i, "{r}");
            assert_eq!(DropReason::from_index(r.index()), Some(r));
        }
        assert_eq!(DropReason::from_index(DropReason::ALL.len() as u32), None);
        assert!(DropReason::ALL.len() <= DROP_SLOTS as usize);
    }

    #[test]
    fn names_are_stable_snake_case_and_parse_back() {
        let names: Vec<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "malformed",
                "unsupported_l3",
                "spoofed_source",
                "no_backend",
                "no_backend_slot",
                "rewrite_failed",
                "encap_failed",
                "unknown_overlay_peer",
                "policy",
                "snat_exhausted",
                "no_route",
                "not_configured",
            ]
        );
        for r in DropReason::ALL {
            assert!(
                r.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
            assert_eq!(r.as_str().parse::<DropReason>(), Ok(r));
            assert_eq!(r.to_string(), r.as_str());
            assert!(!r.description().is_empty());
        }
        assert_eq!(
            "spoofed".parse::<DropReason>(),
            Err(UnknownDropReason {
                name: "spoofed".into()
            })
        );
    }

    #[test]
    fn slots_sum_by_reason_with_every_reason_present() {
        let got = sum_slots([(2, 3), (2, 4), (7, 1), (40, 9), (u32::MAX, 1)]);
        assert_eq!(got.len(), DropReason::ALL.len());
        assert_eq!(got[&DropReason::SpoofedSource], 7);
        assert_eq!(got[&DropReason::UnknownOverlayPeer], 1);
        assert_eq!(got[&DropReason::Malformed], 0);
        assert_eq!(got.values().sum::<u64>(), 8, "unknown slots are left out");
        let saturated = sum_slots([(0, u64::MAX), (0, 1)]);
        assert_eq!(saturated[&DropReason::Malformed], u64::MAX);
    }
}
