//! Flow events: what the programs report through the `flow_events` ring
//! buffer (`bpf/events.h`) — each new service flow they balance and each
//! packet they drop or flow they refuse — and the knobs and counters beside
//! it (`flow_config`, `flow_event_stats`). [`FlowEvents`] sets the knobs and
//! reads the counters; [`FlowReader`] drains the ring buffer; [`decode`]
//! turns one record into a [`FlowEvent`] (pure, tested without a kernel).
use std::{
    fmt,
    net::{Ipv4Addr, SocketAddrV4},
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
    path::Path,
};

use aya::maps::{Array, Map, MapData, PerCpuArray, RingBuf};

use crate::{abi, drops::DropReason, error::DatapathError, maps::map_err};

const CONFIG_PIN: &str = "flow_config";
const STATS_PIN: &str = "flow_event_stats";
const EVENTS_PIN: &str = "flow_events";

/// Size of one ring-buffer record.
pub const RECORD_LEN: usize = std::mem::size_of::<abi::FlowEvent>();

/// What the programs report, and how much (the `flow_config` map).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEventConfig {
    /// Report new service flows.
    pub new_flows: bool,
    /// Report drops and refusals.
    pub drops: bool,
    /// Report 1 in N new flows (0 or 1: every one), counted per CPU.
    pub new_flow_sample: u32,
    /// Report 1 in N drops (0 or 1: every one), counted per CPU.
    pub drop_sample: u32,
    /// At most this many records per CPU and second (0: no limit).
    pub max_per_cpu_s: u32,
}

impl FlowEventConfig {
    /// Nothing reported: the programs pay one array lookup per candidate.
    pub const OFF: Self = Self {
        new_flows: false,
        drops: false,
        new_flow_sample: 1,
        drop_sample: 1,
        max_per_cpu_s: 0,
    };

    fn to_abi(self) -> abi::FlowConfig {
        let mut flags = 0;
        if self.new_flows {
            flags |= abi::FLOW_EVENTS_NEW;
        }
        if self.drops {
            flags |= abi::FLOW_EVENTS_DROP;
        }
        abi::FlowConfig {
            flags,
            new_flow_sample: self.new_flow_sample,
            drop_sample: self.drop_sample,
            max_per_cpu_s: self.max_per_cpu_s,
        }
    }

    fn from_abi(c: abi::FlowConfig) -> Self {
        Self {
            new_flows: c.flags & abi::FLOW_EVENTS_NEW != 0,
            drops: c.flags & abi::FLOW_EVENTS_DROP != 0,
            new_flow_sample: c.new_flow_sample,
            drop_sample: c.drop_sample,
            max_per_cpu_s: c.max_per_cpu_s,
        }
    }
}

impl Default for FlowEventConfig {
    /// Every new flow and drop, at most 2,000 records per CPU and second
    /// (the 256 KiB ring holds ~4,600; the agent drains it continuously).
    fn default() -> Self {
        Self {
            new_flows: true,
            drops: true,
            new_flow_sample: 1,
            drop_sample: 1,
            max_per_cpu_s: 2000,
        }
    }
}

/// The programs' event counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEventCounters {
    /// Records written to the ring buffer.
    pub emitted: u64,
    /// Records lost because the ring buffer was full.
    pub lost: u64,
    /// Records over the per-CPU budget.
    pub rate_limited: u64,
    /// Candidates skipped by sampling (not lost: sampling asked for it).
    pub sampled_out: u64,
}

/// Which program wrote a record (`enum flow_hook`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowHook {
    /// A tc program on a shared drop path: the device tells which.
    Tc,
    /// `from_pod`.
    FromPod,
    /// `from_underlay`.
    FromUnderlay,
    /// `sock_connect4`.
    SockConnect,
    /// `sock_sendmsg4`.
    SockSendmsg,
    /// A value this agent does not know (a newer program).
    Other(u8),
}

impl FlowHook {
    fn from_raw(v: u8) -> Self {
        match v {
            0 => Self::Tc,
            1 => Self::FromPod,
            2 => Self::FromUnderlay,
            3 => Self::SockConnect,
            4 => Self::SockSendmsg,
            other => Self::Other(other),
        }
    }

    /// The program's name (`tc` when the device must tell).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tc => "tc",
            Self::FromPod => "from_pod",
            Self::FromUnderlay => "from_underlay",
            Self::SockConnect => "sock_connect4",
            Self::SockSendmsg => "sock_sendmsg4",
            Self::Other(_) => "unknown",
        }
    }
}

impl fmt::Display for FlowHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened to the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowVerdict {
    /// A new service flow, balanced to `backend`.
    Forwarded {
        /// The backend chosen.
        backend: SocketAddrV4,
    },
    /// Dropped, or refused (a TCP RST, ICMP, `ECONNREFUSED`).
    Dropped {
        /// Why (`None`: a reason this agent does not know, with its number).
        reason: Result<DropReason, u8>,
    },
}

/// One decoded record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEvent {
    /// When, in CLOCK_MONOTONIC nanoseconds.
    pub monotonic_ns: u64,
    /// The program.
    pub hook: FlowHook,
    /// The device a tc program ran on (0: socket programs).
    pub ifindex: u32,
    /// IP protocol (0: not IPv4 or unreadable).
    pub proto: u8,
    /// The service's id in the data plane's maps.
    pub service_id: Option<u32>,
    /// The source (0.0.0.0:0 from socket programs: see `cgroup_id`).
    pub src: SocketAddrV4,
    /// The destination as sent: the frontend of a new flow.
    pub dst: SocketAddrV4,
    /// The calling process's cgroup id (socket programs).
    pub cgroup_id: Option<u64>,
    /// Forwarded or dropped.
    pub verdict: FlowVerdict,
}

/// A record that is not a flow event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Shorter than a record.
    #[error("flow event record of {len} bytes, want at least {RECORD_LEN}")]
    Short {
        /// Its length.
        len: usize,
    },
    /// An unknown kind.
    #[error("flow event record of unknown kind {kind}")]
    Kind {
        /// The kind.
        kind: u8,
    },
}

/// Decodes one ring-buffer record (longer records, from a newer program
/// that appended fields, decode by their known prefix).
pub fn decode(bytes: &[u8]) -> Result<FlowEvent, DecodeError> {
    if bytes.len() < RECORD_LEN {
        return Err(DecodeError::Short { len: bytes.len() });
    }
    // SAFETY: FlowEvent is a repr(C) Pod of integers (any bit pattern is
    // valid) and bytes holds at least its size; read_unaligned copes with
    // any alignment of the ring buffer's memory.
    let raw: abi::FlowEvent =
        unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<abi::FlowEvent>()) };
    let sa = |addr: u32, port: u16| {
        SocketAddrV4::new(Ipv4Addr::from(u32::from_be(addr)), u16::from_be(port))
    };
    let verdict = match raw.kind {
        abi::FLOW_EV_NEW => FlowVerdict::Forwarded {
            backend: sa(raw.backend_addr, raw.backend_port),
        },
        abi::FLOW_EV_DROP => FlowVerdict::Dropped {
            reason: DropReason::from_index(u32::from(raw.reason)).ok_or(raw.reason),
        },
        kind => return Err(DecodeError::Kind { kind }),
    };
    Ok(FlowEvent {
        monotonic_ns: raw.ts_ns,
        hook: FlowHook::from_raw(raw.hook),
        ifindex: raw.ifindex,
        proto: raw.proto,
        service_id: (raw.svc_id != abi::FLOW_NO_SERVICE).then_some(raw.svc_id),
        src: sa(raw.saddr, raw.sport),
        dst: sa(raw.daddr, raw.dport),
        cgroup_id: (raw.cgroup_id != 0).then_some(raw.cgroup_id),
        verdict,
    })
}

/// The flow events' knobs and counters of a node's data plane.
pub struct FlowEvents {
    config: Array<MapData, abi::FlowConfig>,
    stats: PerCpuArray<MapData, abi::FlowEventStats>,
}

impl fmt::Debug for FlowEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowEvents").finish_non_exhaustive()
    }
}

impl FlowEvents {
    /// Opens node `node`'s flow event maps under the bpffs mount `bpffs`.
    pub fn open_in(bpffs: &Path, node: &str) -> Result<Self, DatapathError> {
        Self::from_pins(&crate::datapath::node_dir(bpffs, node)?)
    }

    pub(crate) fn from_pins(dir: &Path) -> Result<Self, DatapathError> {
        let config =
            MapData::from_pin(dir.join(CONFIG_PIN)).map_err(map_err("open pin of", CONFIG_PIN))?;
        let config =
            Array::try_from(Map::Array(config)).map_err(map_err("type-check", CONFIG_PIN))?;
        let stats =
            MapData::from_pin(dir.join(STATS_PIN)).map_err(map_err("open pin of", STATS_PIN))?;
        let stats = PerCpuArray::try_from(Map::PerCpuArray(stats))
            .map_err(map_err("type-check", STATS_PIN))?;
        Ok(Self { config, stats })
    }

    /// Sets what the programs report (takes effect at their next event).
    pub fn set_config(&mut self, config: FlowEventConfig) -> Result<(), DatapathError> {
        self.config
            .set(0, config.to_abi(), 0)
            .map_err(map_err("write", CONFIG_PIN))
    }

    /// What the programs report now.
    pub fn config(&self) -> Result<FlowEventConfig, DatapathError> {
        self.config
            .get(&0, 0)
            .map(FlowEventConfig::from_abi)
            .map_err(map_err("read", CONFIG_PIN))
    }

    /// The programs' counters, summed over CPUs.
    pub fn counters(&self) -> Result<FlowEventCounters, DatapathError> {
        let per_cpu = self.stats.get(&0, 0).map_err(map_err("read", STATS_PIN))?;
        Ok(per_cpu
            .iter()
            .fold(FlowEventCounters::default(), |a, s| FlowEventCounters {
                emitted: a.emitted.saturating_add(s.emitted),
                lost: a.lost.saturating_add(s.lost),
                rate_limited: a.rate_limited.saturating_add(s.rate_limited),
                sampled_out: a.sampled_out.saturating_add(s.sampled_out),
            }))
    }
}

/// The consumer side of the `flow_events` ring buffer. Its fd becomes
/// readable when records wait (for tokio's `AsyncFd`). One reader per node:
/// two would split the records between them.
pub struct FlowReader {
    ring: RingBuf<MapData>,
}

impl fmt::Debug for FlowReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowReader").finish_non_exhaustive()
    }
}

impl FlowReader {
    /// Opens node `node`'s ring buffer under the bpffs mount `bpffs`.
    pub fn open_in(bpffs: &Path, node: &str) -> Result<Self, DatapathError> {
        Self::open_dir(&crate::datapath::node_dir(bpffs, node)?)
    }

    /// Opens the ring buffer pinned in a node's pin directory
    /// ([`crate::Datapath::pin_dir`]).
    pub fn open_dir(dir: &Path) -> Result<Self, DatapathError> {
        let data =
            MapData::from_pin(dir.join(EVENTS_PIN)).map_err(map_err("open pin of", EVENTS_PIN))?;
        let ring =
            RingBuf::try_from(Map::RingBuf(data)).map_err(map_err("type-check", EVENTS_PIN))?;
        Ok(Self { ring })
    }

    /// Takes up to `max` waiting records, decoded (never blocks).
    pub fn drain(&mut self, max: usize) -> Vec<Result<FlowEvent, DecodeError>> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.ring.next() {
                Some(item) => out.push(decode(&item)),
                None => break,
            }
        }
        out
    }
}

impl AsFd for FlowReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }
}

impl AsRawFd for FlowReader {
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(e: &abi::FlowEvent) -> Vec<u8> {
        // SAFETY: a repr(C) Pod without implicit padding.
        unsafe { std::slice::from_raw_parts((e as *const abi::FlowEvent).cast::<u8>(), RECORD_LEN) }
            .to_vec()
    }

    #[test]
    fn a_record_is_48_bytes() {
        assert_eq!(RECORD_LEN, 48);
    }

    #[test]
    fn new_flow_decodes_in_host_order() {
        let raw = abi::FlowEvent {
            ts_ns: 7,
            kind: abi::FLOW_EV_NEW,
            hook: 1,
            proto: 6,
            ifindex: 12,
            svc_id: 3,
            saddr: u32::from(Ipv4Addr::new(10, 244, 1, 5)).to_be(),
            daddr: u32::from(Ipv4Addr::new(10, 96, 0, 9)).to_be(),
            sport: 40000u16.to_be(),
            dport: 80u16.to_be(),
            backend_addr: u32::from(Ipv4Addr::new(10, 244, 2, 7)).to_be(),
            backend_port: 8080u16.to_be(),
            ..Default::default()
        };
        let e = decode(&bytes(&raw)).unwrap();
        assert_eq!(e.hook, FlowHook::FromPod);
        assert_eq!(e.service_id, Some(3));
        assert_eq!(e.src, "10.244.1.5:40000".parse().unwrap());
        assert_eq!(e.dst, "10.96.0.9:80".parse().unwrap());
        assert_eq!(e.cgroup_id, None);
        assert_eq!(
            e.verdict,
            FlowVerdict::Forwarded {
                backend: "10.244.2.7:8080".parse().unwrap()
            }
        );
    }

    #[test]
    fn drops_name_their_reason_and_unknown_values_survive() {
        let raw = abi::FlowEvent {
            kind: abi::FLOW_EV_DROP,
            reason: DropReason::SpoofedSource.index() as u8,
            svc_id: abi::FLOW_NO_SERVICE,
            hook: 9,
            cgroup_id: 77,
            ..Default::default()
        };
        let e = decode(&bytes(&raw)).unwrap();
        assert_eq!(
            e.verdict,
            FlowVerdict::Dropped {
                reason: Ok(DropReason::SpoofedSource)
            }
        );
        assert_eq!(e.service_id, None);
        assert_eq!(e.hook, FlowHook::Other(9));
        assert_eq!(e.cgroup_id, Some(77));
        let newer = abi::FlowEvent { reason: 60, ..raw };
        assert_eq!(
            decode(&bytes(&newer)).unwrap().verdict,
            FlowVerdict::Dropped { reason: Err(60) }
        );
    }

    #[test]
    fn short_or_unknown_records_are_refused() {
        let raw = abi::FlowEvent {
            kind: abi::FLOW_EV_NEW,
            ..Default::default()
        };
        let b = bytes(&raw);
        assert_eq!(decode(&b[..40]), Err(DecodeError::Short { len: 40 }));
        let mut longer = b.clone();
        longer.extend([0u8; 8]);
        assert!(decode(&longer).is_ok(), "appended fields are ignored");
        let odd = abi::FlowEvent { kind: 9, ..raw };
        assert_eq!(decode(&bytes(&odd)), Err(DecodeError::Kind { kind: 9 }));
    }

    #[test]
    fn config_round_trips_and_off_is_zero_flags() {
        let c = FlowEventConfig {
            new_flows: true,
            drops: false,
            new_flow_sample: 10,
            drop_sample: 1,
            max_per_cpu_s: 5,
        };
        assert_eq!(FlowEventConfig::from_abi(c.to_abi()), c);
        assert_eq!(FlowEventConfig::OFF.to_abi().flags, 0);
        let fresh = FlowEventConfig::from_abi(abi::FlowConfig::default());
        assert!(
            !fresh.new_flows && !fresh.drops,
            "a zeroed (fresh) map is off"
        );
    }
}
