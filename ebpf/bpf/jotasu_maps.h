/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * The one definition of every map key and value shared by jotasu's eBPF
 * programs and the Rust side (ebpf/src/maps/abi.rs mirrors these structs; a
 * test compares both against the compiled object's BTF).
 *
 * Byte order: addresses and ports are in network byte order everywhere, as
 * they appear on the wire and in struct bpf_sock_addr.
 */
#pragma once

#include <linux/types.h>

#define JOTASU_MAX_SERVICES 65536
#define JOTASU_MAX_BACKEND_SLOTS 262144
#define JOTASU_MAX_BACKENDS_PER_SERVICE 1024
#define JOTASU_CT_ENTRIES 262144
#define JOTASU_SOCK_ENTRIES 65536
#define JOTASU_MAX_ENDPOINTS 16384
#define JOTASU_MAX_TUNNELS 16384
#define JOTASU_AFFINITY_ENTRIES 65536

/* A service frontend: virtual IP, port and IP protocol (6 = TCP, 17 = UDP). */
struct svc_key {
	__be32 vip;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

/*
 * The service entry. Written last on upsert (after its backend slots) and
 * removed first, so a reader never sees a count larger than the slots behind it.
 * id indexes rr_counters, svc_stats and affinity_timeouts; count == 0 means
 * "reject new flows"; flags are SVC_FLAG_*.
 */
struct svc_value {
	__u32 id;
	__u16 count;
	__u16 flags;
};

/* Reachable from outside the cluster on the node's underlay (a node port, an
 * external IP, a host port): from_underlay balances it. */
#define SVC_FLAG_EXTERNAL 1
/* External clients' source is rewritten to the node's address
 * (externalTrafficPolicy: Cluster), so replies come back through this node. */
#define SVC_FLAG_SNAT 2
/* ClientIP session affinity; its timeout is affinity_timeouts[id]. */
#define SVC_FLAG_AFFINITY 4

/* Backend slot `slot` (0..count) of service `svc_id`. */
struct backend_key {
	__u32 svc_id;
	__u32 slot;
};

struct backend_value {
	__be32 addr;
	__be16 port;
	__u16 pad;
};

/* A packet's 5-tuple as seen on the wire, for the tc path's conntrack. */
struct ct_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

#define CT_DIR_FORWARD 0 /* client -> VIP: rewrite destination to nat_addr:nat_port */
#define CT_DIR_REPLY 1   /* backend -> client: rewrite source to nat_addr:nat_port */

#define CT_FLAG_CLOSING 1  /* a FIN or RST went this way */
#define CT_FLAG_EXTERNAL 2 /* a flow from outside the cluster: replies leave by the underlay */

/*
 * Lifetimes, in seconds of idleness (last_seen_s is refreshed at most once a
 * second per entry). An expired entry is ignored and overwritten. A SYN that
 * finds a forward entry older than CT_SYN_RETRANSMIT_S, or closing, starts a
 * new flow: the client reused the tuple.
 */
#define CT_TCP_LIFETIME_S 21600
#define CT_UDP_LIFETIME_S 60
#define CT_CLOSING_LIFETIME_S 10
#define CT_SYN_RETRANSMIT_S 30

struct ct_value {
	__be32 nat_addr;
	__be16 nat_port;
	__u8 dir;
	__u8 flags;
	__u32 svc_id;
	__u32 created_s;   /* bpf_ktime_get_ns() in seconds, at creation */
	__u32 last_seen_s; /* same clock, last packet */
	/*
	 * The other end's rewrite, for external flows SNATed to the node
	 * (peer_addr 0: none): forward, the new source (node:snat port);
	 * reply, the new destination (the client).
	 */
	__be32 peer_addr;
	__be16 peer_port;
	__u16 pad;
};

/* SNAT source ports of external flows whose client's own port is taken,
 * above Linux's default ephemeral range (32768-60999). */
#define SNAT_PORT_MIN 61000
#define SNAT_PORT_COUNT 4536

/* ClientIP session affinity: (service id, client) -> its backend (LRU).
 * Socket-level clients (the node's processes) are client 0. */
struct affinity_key {
	__u32 svc_id;
	__be32 client;
};

struct affinity_value {
	__be32 addr;
	__be16 port;
	__u16 slot;        /* the backend's slot when chosen; checked on use */
	__u32 last_seen_s; /* the client's last new flow */
};

/* The node itself (array, one entry), written by the agent: the address
 * external flows are SNATed to and the underlay interface (IPv4
 * forwarding on) their replies leave by. addr == 0: no external traffic yet. */
struct host_config {
	__be32 addr;
	__u32 ifindex;
};

/*
 * Socket-level translation state: keyed by the socket cookie and an address.
 * sock_rev:    (cookie, backend addr/port) -> VIP/port, for recvmsg4/getpeername4.
 * sock_sticky: (cookie, VIP/port)          -> backend, so one unconnected UDP
 *              socket keeps talking to the backend it was first given.
 */
struct sock_key {
	__u64 cookie;
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct sock_value {
	__be32 addr;
	__be16 port;
	__u16 pad;
};

/* A pod on this node: pod IP -> host-side veth ifindex and the two MACs. */
struct endpoint_value {
	__u32 ifindex;
	__u8 pod_mac[6];
	__u8 host_mac[6];
};

/*
 * The tunnel map (an LPM trie): a remote node's pod CIDR -> that node's
 * underlay address. prefixlen counts the bits of addr that match.
 */
struct tunnel_key {
	__u32 prefixlen;
	__be32 addr;
};

struct tunnel_value {
	__be32 node_ip;
};

/*
 * The overlay's settings (array, one entry), written by the agent once the
 * node's VXLAN device exists. ifindex == 0: no overlay, remote pods are left
 * to the node's stack.
 */
struct overlay_config {
	__u32 ifindex; /* the VXLAN device (external / collect_md mode) */
	__u32 vni;     /* the VXLAN network identifier every node uses */
};

/* Per-service counters (per-CPU array indexed by svc_value.id). */
struct svc_stats {
	__u64 tc_new_flows;   /* new flows balanced by the tc program */
	__u64 sock_new_flows; /* connects / first datagrams balanced by the socket programs */
	__u64 rejected;       /* new flows refused because the service had no backend */
};

/* Node-wide counters (per-CPU array indexed by enum global_counter). */
enum global_counter {
	GC_PACKETS = 0,    /* IPv4 TCP/UDP packets seen by from_pod */
	GC_CT_HITS,        /* packets translated through an existing conntrack entry */
	GC_LOCAL_REDIRECT, /* packets delivered to a local pod with bpf_redirect_peer */
	GC_CT_FULL,        /* conntrack insert failed (flow still translated, may lose stickiness) */
	GC_NO_BACKEND_SLOT, /* a slot below count was missing: dropped */
	GC_ENCAP,          /* packets to a remote node's pod sent into the overlay */
	GC_FROM_OVERLAY,   /* IPv4 packets received from the overlay */
	GC_OVERLAY_DELIVER, /* ... of which delivered to a local pod */
	GC_MAX,
};

/*
 * Why a packet was dropped or a connection refused: the index of the per-CPU
 * array drop_stats (drop.h). The values are an ABI shared with the agent,
 * which names them (ebpf/src/drops.rs, checked against this object's BTF):
 * append new reasons before DROP_MAX, never renumber. The map has
 * JOTASU_DROP_SLOTS entries, more than there are reasons, so appending one
 * keeps the pinned map's layout.
 */
enum drop_reason {
	DROP_MALFORMED = 0,        /* an IPv4 header, or a TCP/UDP header, that cannot be read */
	DROP_UNSUPPORTED_L3,       /* a pod sent neither IPv4 nor ARP (IPv6 included) */
	DROP_SPOOFED_SOURCE,       /* a pod sent IPv4 from an address that is not its own */
	DROP_NO_BACKEND,           /* to a service without backends: refused (RST, ICMP, ECONNREFUSED) */
	DROP_NO_BACKEND_SLOT,      /* a backend slot below the service's count was missing */
	DROP_REWRITE_FAILED,       /* a helper writing the packet failed (NAT, checksum, MACs, answers) */
	DROP_ENCAP_FAILED,         /* the tunnel key for the overlay could not be set */
	DROP_UNKNOWN_OVERLAY_PEER, /* VXLAN from an underlay address that is no known node's */
	DROP_POLICY,               /* reserved for network policy: nothing counts it yet */
	DROP_SNAT_EXHAUSTED,       /* an external flow found no free SNAT port on the node */
	DROP_NO_ROUTE,             /* an external reply has no route out (or forwarding is off) */
	DROP_NOT_CONFIGURED,       /* an external flow before the agent set the node's address */
	DROP_MAX,
};

#define JOTASU_DROP_SLOTS 64
_Static_assert(DROP_MAX <= JOTASU_DROP_SLOTS, "drop_stats has a slot per reason");

/*
 * The overlay's known peers (a hash map): the underlay address of every
 * node a tunnel leads to. from_overlay accepts VXLAN only from these.
 */
#define JOTASU_MAX_OVERLAY_PEERS JOTASU_MAX_TUNNELS

/*
 * The DNS fast path (dns.h): A queries for cluster names answered by
 * from_pod itself. The agent keeps dns_names equal to the names its resolver
 * answers with exactly one A record, and lists in dns_frontends the
 * addresses where its pods' queries arrive (the cluster DNS address, port 53,
 * and the node's resolver, where the socket programs send them).
 */
#define JOTASU_MAX_DNS_NAMES 65536
#define JOTASU_MAX_DNS_FRONTENDS 16
#define JOTASU_DNS_NAME_LEN 256

/* A question name in wire form (length-prefixed labels and the root label),
 * ASCII letters lowercased, zero-padded to the key's length. */
struct dns_name {
	__u8 wire[JOTASU_DNS_NAME_LEN];
} __attribute__((aligned(8)));

struct dns_answer {
	__be32 addr; /* the A record's address */
};

struct dns_frontend {
	__be32 addr;
	__be16 port;
	__u16 pad;
};

/* Fast-path counters (per-CPU array indexed by enum dns_counter). */
enum dns_counter {
	DNS_ANSWERED = 0, /* queries answered in the kernel */
	DNS_PASSED,       /* queries to a DNS frontend left to the resolver */
	DNS_MAX,
};

/*
 * Flow events (events.h): a ring buffer, flow_events, that the tc and socket
 * programs write and the agent reads (jotactl flows). One record per new
 * service flow (sampled 1 in new_flow_sample) and per drop or refusal
 * (sampled 1 in drop_sample); at most max_per_cpu_s records per CPU and
 * second. Nothing is written unless flow_config.flags says so: the cost of
 * the feature can be measured on and off.
 */
#define JOTASU_FLOW_EVENTS_BYTES (256 * 1024)

#define FLOW_EVENTS_NEW 1  /* flow_config.flags: emit new-flow events */
#define FLOW_EVENTS_DROP 2 /* flow_config.flags: emit drop events */

struct flow_config {
	__u32 flags;          /* FLOW_EVENTS_*; 0: off */
	__u32 new_flow_sample; /* 1 in N new flows (0 or 1: every one) */
	__u32 drop_sample;     /* 1 in N drops (0 or 1: every one) */
	__u32 max_per_cpu_s;   /* records per CPU and second (0: no limit) */
};

/* Per-CPU bookkeeping (per-CPU array, one entry): counters the agent reads,
 * and the sampling and rate-limit state. */
struct flow_event_stats {
	__u64 emitted;      /* records written to the ring buffer */
	__u64 lost;         /* the ring buffer was full (the agent reads too slowly) */
	__u64 rate_limited; /* over max_per_cpu_s */
	__u64 sampled_out;  /* skipped by the sampling rate */
	__u64 new_seen;     /* new-flow candidates (sampling counter) */
	__u64 drop_seen;    /* drop candidates (sampling counter) */
	__u32 window_s;     /* the current rate-limit second */
	__u32 window_count; /* records in it */
};

enum flow_event_kind {
	FLOW_EV_NEW = 1,  /* a new service flow was balanced */
	FLOW_EV_DROP = 2, /* a packet was dropped or a flow refused */
};

/* Which program wrote a record. FLOW_HOOK_TC: a tc program that does not
 * know which one it is (a shared drop path); the agent tells them apart by
 * the device (ifindex): a pod's veth, the VXLAN device or the underlay. */
enum flow_hook {
	FLOW_HOOK_TC = 0,
	FLOW_HOOK_FROM_POD = 1,
	FLOW_HOOK_FROM_UNDERLAY = 2,
	FLOW_HOOK_SOCK_CONNECT = 3,
	FLOW_HOOK_SOCK_SENDMSG = 4,
};

#define FLOW_NO_SERVICE 0xffffffff

/* One ring-buffer record (48 bytes). Addresses and ports in network order. */
struct flow_event {
	__u64 ts_ns;      /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u8 kind;        /* enum flow_event_kind */
	__u8 hook;        /* enum flow_hook */
	__u8 proto;       /* IP protocol (0: not IPv4, or unknown) */
	__u8 reason;      /* enum drop_reason, for FLOW_EV_DROP */
	__u32 ifindex;    /* tc: the device the program runs on; socket programs: 0 */
	__u32 svc_id;     /* the service (FLOW_NO_SERVICE: none) */
	__be32 saddr;     /* the client (socket programs: 0, see cgroup_id) */
	__be32 daddr;     /* the destination as sent: a frontend for new flows */
	__be16 sport;
	__be16 dport;
	__be32 backend_addr; /* new flows: the backend chosen */
	__be16 backend_port;
	__u16 pad;
	__u64 cgroup_id;  /* socket programs: the calling process's cgroup */
};
