//! Rust mirrors of the map keys and values in `bpf/jotasu_maps.h`.
//!
//! Layouts must match the C header byte for byte; `tests/btf_layout.rs`
//! compares every struct here with the compiled object's BTF. Addresses and
//! ports are kept in network byte order, exactly as the programs see them.

/// `JOTASU_MAX_SERVICES`: entries of the services, counters and stats maps.
pub const MAX_SERVICES: u32 = 65536;
/// `JOTASU_MAX_BACKEND_SLOTS`: entries of the backends map, over all services.
pub const MAX_BACKEND_SLOTS: u32 = 262_144;
/// `JOTASU_MAX_BACKENDS_PER_SERVICE`.
pub const MAX_BACKENDS_PER_SERVICE: usize = 1024;
/// `JOTASU_MAX_ENDPOINTS`.
pub const MAX_ENDPOINTS: u32 = 16384;

/// `CT_DIR_FORWARD`: client to VIP, destination rewritten to the backend.
pub const CT_DIR_FORWARD: u8 = 0;
/// `CT_DIR_REPLY`: backend to client, source rewritten to the VIP.
pub const CT_DIR_REPLY: u8 = 1;

/// `SVC_FLAG_EXTERNAL`: balanced by `from_underlay` for clients outside the cluster.
pub const SVC_FLAG_EXTERNAL: u16 = 1;
/// `SVC_FLAG_SNAT`: external clients are SNATed to the node's address.
pub const SVC_FLAG_SNAT: u16 = 2;
/// `SVC_FLAG_AFFINITY`: ClientIP session affinity (timeout in `affinity_timeouts`).
pub const SVC_FLAG_AFFINITY: u16 = 4;

/// `struct svc_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SvcKey {
    /// Virtual IP, network order.
    pub vip: u32,
    /// Port, network order.
    pub port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Zero.
    pub pad: u8,
}

/// `struct svc_value`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SvcValue {
    /// Index into `rr_counters` and `svc_stats`.
    pub id: u32,
    /// Backend slots 0..count are valid; 0 rejects new flows.
    pub count: u16,
    /// `SVC_FLAG_*` bits.
    pub flags: u16,
}

/// `struct affinity_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AffinityKey {
    /// The service id.
    pub svc_id: u32,
    /// The client's address, network order (0: the node's own sockets).
    pub client: u32,
}

/// `struct affinity_value`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AffinityValue {
    /// The backend's address, network order.
    pub addr: u32,
    /// The backend's port, network order.
    pub port: u16,
    /// The backend's slot when it was chosen.
    pub slot: u16,
    /// The client's last new flow, seconds of `bpf_ktime_get_ns`.
    pub last_seen_s: u32,
}

/// `struct host_config`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostConfig {
    /// The node's address external flows are SNATed to, network order.
    pub addr: u32,
    /// The underlay interface external replies leave by.
    pub ifindex: u32,
}

/// `struct backend_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendKey {
    /// The owning service's id.
    pub svc_id: u32,
    /// Slot, 0..count.
    pub slot: u32,
}

/// `struct backend_value`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendValue {
    /// Backend address, network order.
    pub addr: u32,
    /// Backend port, network order.
    pub port: u16,
    /// Zero.
    pub pad: u16,
}

/// `struct ct_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CtKey {
    /// Source address, network order.
    pub saddr: u32,
    /// Destination address, network order.
    pub daddr: u32,
    /// Source port, network order.
    pub sport: u16,
    /// Destination port, network order.
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Zero.
    pub pad: [u8; 3],
}

/// `struct ct_value`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtValue {
    /// Address written into the packet, network order.
    pub nat_addr: u32,
    /// Port written into the packet, network order.
    pub nat_port: u16,
    /// [`CT_DIR_FORWARD`] or [`CT_DIR_REPLY`].
    pub dir: u8,
    /// [`CT_FLAG_CLOSING`] once a FIN or RST went this way.
    pub flags: u8,
    /// The service the flow belongs to.
    pub svc_id: u32,
    /// Creation time, seconds of `bpf_ktime_get_ns` (CLOCK_MONOTONIC).
    pub created_s: u32,
    /// Last packet, same clock (refreshed at most once a second).
    pub last_seen_s: u32,
    /// External flows SNATed to the node: the other end's rewrite (0: none).
    pub peer_addr: u32,
    /// Port of the other end's rewrite, network order.
    pub peer_port: u16,
    /// Zero.
    pub pad: u16,
}

/// `CT_FLAG_CLOSING`.
pub const CT_FLAG_CLOSING: u8 = 1;
/// `CT_FLAG_EXTERNAL`: a flow from outside the cluster.
pub const CT_FLAG_EXTERNAL: u8 = 2;

/// `struct sock_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SockKey {
    /// Socket cookie.
    pub cookie: u64,
    /// Address, network order.
    pub addr: u32,
    /// Port, network order.
    pub port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Zero.
    pub pad: u8,
}

/// `struct sock_value`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockValue {
    /// Address, network order.
    pub addr: u32,
    /// Port, network order.
    pub port: u16,
    /// Zero.
    pub pad: u16,
}

/// `struct endpoint_value`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointValue {
    /// Host-side veth ifindex (in the node's namespace).
    pub ifindex: u32,
    /// MAC of the pod's interface.
    pub pod_mac: [u8; 6],
    /// MAC of the host-side veth.
    pub host_mac: [u8; 6],
}

/// `struct svc_stats`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SvcStats {
    /// New flows balanced by the tc program.
    pub tc_new_flows: u64,
    /// New flows balanced by the socket programs.
    pub sock_new_flows: u64,
    /// New flows refused because the service had no backend.
    pub rejected: u64,
}

/// `JOTASU_MAX_TUNNELS`: remote pod CIDRs the tunnel map holds.
pub const MAX_TUNNELS: u32 = 16384;

/// `struct tunnel_key` (an LPM trie key; aya's `lpm_trie::Key<u32>` has
/// this layout, and is what the map is used with).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelKey {
    /// Bits of `addr` that match.
    pub prefixlen: u32,
    /// The pod CIDR's network address, network order.
    pub addr: u32,
}

/// `struct tunnel_value`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelValue {
    /// The owning node's underlay address, network order.
    pub node_ip: u32,
}

/// `struct overlay_config`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OverlayConfig {
    /// The node's VXLAN device; 0: no overlay.
    pub ifindex: u32,
    /// The VXLAN network identifier.
    pub vni: u32,
}

/// `JOTASU_DNS_NAME_LEN`: the DNS fast path's key length.
pub const DNS_NAME_LEN: usize = 256;
/// `JOTASU_MAX_DNS_NAMES`.
pub const MAX_DNS_NAMES: usize = 65536;
/// `JOTASU_MAX_DNS_FRONTENDS`.
pub const MAX_DNS_FRONTENDS: usize = 16;

/// `struct dns_name`: a name in wire form, lowercased, zero-padded.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsName {
    /// Length-prefixed labels, the root label, zeros.
    pub wire: [u8; DNS_NAME_LEN],
}

/// `struct dns_answer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsAnswer {
    /// The A record's address, network order.
    pub addr: u32,
}

/// `struct dns_frontend`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsFrontend {
    /// Address, network order.
    pub addr: u32,
    /// UDP port, network order.
    pub port: u16,
    /// Zero.
    pub pad: u16,
}

/// `enum dns_counter`, in order.
pub const DNS_COUNTERS: [&str; 2] = ["answered", "passed"];

/// `enum global_counter`, in order.
pub const GLOBAL_COUNTERS: [&str; 8] = [
    "packets",
    "ct_hits",
    "local_redirect",
    "ct_full",
    "no_backend_slot",
    "encapsulated",
    "from_overlay",
    "overlay_delivered",
];

/// `JOTASU_FLOW_EVENTS_BYTES`: the flow event ring buffer's size.
pub const FLOW_EVENTS_BYTES: u32 = 256 * 1024;
/// `FLOW_EVENTS_NEW`: `flow_config.flags` bit for new-flow events.
pub const FLOW_EVENTS_NEW: u32 = 1;
/// `FLOW_EVENTS_DROP`: `flow_config.flags` bit for drop events.
pub const FLOW_EVENTS_DROP: u32 = 2;
/// `FLOW_EV_NEW`: a new service flow was balanced.
pub const FLOW_EV_NEW: u8 = 1;
/// `FLOW_EV_DROP`: a packet was dropped or a flow refused.
pub const FLOW_EV_DROP: u8 = 2;
/// `FLOW_NO_SERVICE`: the record names no service.
pub const FLOW_NO_SERVICE: u32 = u32::MAX;

/// `struct flow_config`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowConfig {
    /// `FLOW_EVENTS_*` bits; 0: off.
    pub flags: u32,
    /// 1 in N new flows (0 or 1: every one).
    pub new_flow_sample: u32,
    /// 1 in N drops (0 or 1: every one).
    pub drop_sample: u32,
    /// Records per CPU and second (0: no limit).
    pub max_per_cpu_s: u32,
}

/// `struct flow_event_stats` (one per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEventStats {
    /// Records written to the ring buffer.
    pub emitted: u64,
    /// Records lost: the ring buffer was full.
    pub lost: u64,
    /// Records over the per-CPU budget.
    pub rate_limited: u64,
    /// Candidates skipped by sampling.
    pub sampled_out: u64,
    /// New-flow candidates seen (the sampling counter).
    pub new_seen: u64,
    /// Drop candidates seen (the sampling counter).
    pub drop_seen: u64,
    /// The current rate-limit second.
    pub window_s: u32,
    /// Records in it.
    pub window_count: u32,
}

/// `struct flow_event`: one ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowEvent {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC).
    pub ts_ns: u64,
    /// `FLOW_EV_*`.
    pub kind: u8,
    /// `enum flow_hook`.
    pub hook: u8,
    /// IP protocol.
    pub proto: u8,
    /// `enum drop_reason` of a drop.
    pub reason: u8,
    /// The device of a tc program; 0 for socket programs.
    pub ifindex: u32,
    /// The service id, or [`FLOW_NO_SERVICE`].
    pub svc_id: u32,
    /// Source address, network order (0 from socket programs).
    pub saddr: u32,
    /// Destination as sent, network order.
    pub daddr: u32,
    /// Source port, network order.
    pub sport: u16,
    /// Destination port, network order.
    pub dport: u16,
    /// The backend chosen, network order.
    pub backend_addr: u32,
    /// Its port, network order.
    pub backend_port: u16,
    /// Zero.
    pub pad: u16,
    /// The calling process's cgroup (socket programs).
    pub cgroup_id: u64,
}

// SAFETY: every type above is #[repr(C)], made only of integers and byte
// arrays, with explicit padding fields, so any bit pattern is valid and there
// are no implicit padding bytes.
unsafe impl aya::Pod for SvcKey {}
unsafe impl aya::Pod for SvcValue {}
unsafe impl aya::Pod for BackendKey {}
unsafe impl aya::Pod for BackendValue {}
unsafe impl aya::Pod for CtKey {}
unsafe impl aya::Pod for CtValue {}
unsafe impl aya::Pod for AffinityKey {}
unsafe impl aya::Pod for AffinityValue {}
unsafe impl aya::Pod for HostConfig {}
unsafe impl aya::Pod for SockKey {}
unsafe impl aya::Pod for SockValue {}
unsafe impl aya::Pod for EndpointValue {}
unsafe impl aya::Pod for SvcStats {}
unsafe impl aya::Pod for TunnelKey {}
unsafe impl aya::Pod for TunnelValue {}
unsafe impl aya::Pod for OverlayConfig {}
unsafe impl aya::Pod for DnsName {}
unsafe impl aya::Pod for DnsAnswer {}
unsafe impl aya::Pod for DnsFrontend {}
unsafe impl aya::Pod for FlowConfig {}
unsafe impl aya::Pod for FlowEventStats {}
unsafe impl aya::Pod for FlowEvent {}
