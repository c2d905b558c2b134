//! jotasu's data plane.
//!
//! The C programs in `bpf/` answer service VIPs in the kernel — round-robin
//! backend selection, conntrack, DNAT and reverse NAT at tc on each pod's veth
//! ([`objects::TC`]) and translation at socket level for processes in
//! the node's cgroup ([`objects::SOCK`]); and they carry pods' packets to
//! other nodes through a VXLAN overlay ([`overlay`]); `from_pod` also answers
//! pods' DNS queries for cluster names itself ([`dns`]). Every packet they
//! drop counts under a reason ([`drops`]), and new flows and drops can be
//! streamed to the agent ([`flows`]). [`Datapath`] loads them, pins their
//! maps and links under `/sys/fs/bpf/jotasu/<node>/`, and programs services by
//! diff ([`plan`] holds that logic, free of kernel access).
pub mod abi;
mod attach;
mod datapath;
pub mod dns;
pub mod drops;
pub mod error;
pub mod flows;
pub mod layout;
mod maps;
pub mod objects;
pub mod overlay;
pub mod peers;
pub mod plan;
mod pods;
pub mod service;
mod tc;
pub mod underlay;

pub use attach::Attached;
pub use datapath::{ConntrackEntry, DEFAULT_BPFFS, Datapath, ServiceCounters, ServiceStatus};
pub use dns::{DnsCounters, DnsFastPath, DnsNames};
pub use drops::{DropCounters, DropReason, Drops};
pub use error::{DatapathError, ServiceError};
pub use flows::{
    FlowEvent, FlowEventConfig, FlowEventCounters, FlowEvents, FlowHook, FlowReader, FlowVerdict,
};
pub use layout::{LayoutMismatch, MapLayout};
pub use overlay::{Overlay, TunnelSummary, Tunnels};
pub use peers::Peers;
pub use plan::ReconcileSummary;
pub use pods::{Endpoint, PodDatapath};
pub use service::{Frontend, Protocol, Reach, Service};
pub use tc::PodHook;
pub use underlay::Underlay;
