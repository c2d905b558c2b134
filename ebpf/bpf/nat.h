/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * The tc programs' packet view and service NAT: parsing a packet into a
 * flow, the conntrack table and its lifetimes, and rewriting one end of a
 * flow with both checksums fixed. Shared by from_pod (the client side of
 * every service flow) and from_overlay (replies that come back from a
 * backend on another node).
 */
#pragma once

#include <stddef.h>
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, JOTASU_CT_ENTRIES);
	__type(key, struct ct_key);
	__type(value, struct ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conntrack SEC(".maps");

#define IP_OFF ETH_HLEN
#define IP_CSUM_OFF (IP_OFF + offsetof(struct iphdr, check))
#define IP_SADDR_OFF (IP_OFF + offsetof(struct iphdr, saddr))
#define IP_DADDR_OFF (IP_OFF + offsetof(struct iphdr, daddr))
#define IP_OFFMASK 0x1fff

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
#define TCP_FLAG_ACK 0x10

struct flow {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u32 l4_off;
	__u8 proto;
	__u8 tcp_flags;
	__u32 now_s;
};

static __always_inline bool is_syn(const struct flow *f)
{
	return f->proto == IPPROTO_TCP &&
	       (f->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
}

/* Whether a conntrack entry still describes this packet's flow. */
static __always_inline bool ct_usable(const struct ct_value *ct, const struct flow *f)
{
	__u32 idle = f->now_s - ct->last_seen_s;
	__u32 limit = ct->flags & CT_FLAG_CLOSING ? CT_CLOSING_LIFETIME_S
			: f->proto == IPPROTO_TCP ? CT_TCP_LIFETIME_S
						  : CT_UDP_LIFETIME_S;

	if (idle > limit)
		return false;
	/* A SYN on a closed or old flow: the client reused the tuple. */
	if (is_syn(f) && ct->dir == CT_DIR_FORWARD &&
	    ((ct->flags & CT_FLAG_CLOSING) || f->now_s - ct->created_s > CT_SYN_RETRANSMIT_S))
		return false;
	return true;
}

/* Refreshes an entry in use: last-seen (at most once a second) and closing. */
static __always_inline void ct_touch(struct ct_value *ct, const struct flow *f)
{
	if (ct->last_seen_s != f->now_s)
		ct->last_seen_s = f->now_s;
	if ((f->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) && !(ct->flags & CT_FLAG_CLOSING))
		ct->flags |= CT_FLAG_CLOSING;
}

/*
 * A new flow that is not a service flow may reuse the tuple of an old service
 * flow's reply: drop that entry, or the new flow's replies would be rewritten
 * to look like they came from the VIP.
 */
static __always_inline void ct_forget_reply(const struct flow *f)
{
	struct ct_key rev = {
		.saddr = f->daddr,
		.daddr = f->saddr,
		.sport = f->dport,
		.dport = f->sport,
		.proto = f->proto,
	};

	/* Look first: a lookup takes no lock, and the entry is rarely there. */
	if (bpf_map_lookup_elem(&conntrack, &rev))
		bpf_map_delete_elem(&conntrack, &rev);
}

static __always_inline __u16 csum_fold(__s64 csum)
{
	__u32 sum = (__u32)csum;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Rewrites one end (source or destination) of the flow, fixing L3 and L4 checksums. */
static __always_inline int rewrite(struct __sk_buff *skb, const struct flow *f, bool dst,
				   __be32 new_addr, __be16 new_port)
{
	__be32 old_addr = dst ? f->daddr : f->saddr;
	__be16 old_port = dst ? f->dport : f->sport;
	__u32 addr_off = dst ? IP_DADDR_OFF : IP_SADDR_OFF;
	__u32 port_off = f->l4_off + (dst ? offsetof(struct tcphdr, dest)
					  : offsetof(struct tcphdr, source));
	__u32 csum_off;
	__u64 l4_flags = 0;

	if (f->proto == IPPROTO_TCP) {
		csum_off = f->l4_off + offsetof(struct tcphdr, check);
	} else {
		csum_off = f->l4_off + offsetof(struct udphdr, check);
		/* A zero UDP checksum means "none": leave it so. */
		l4_flags = BPF_F_MARK_MANGLED_0;
	}

	if (old_addr != new_addr) {
		if (bpf_l4_csum_replace(skb, csum_off, old_addr, new_addr,
					l4_flags | BPF_F_PSEUDO_HDR | sizeof(new_addr)))
			return -1;
		if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_addr, new_addr, sizeof(new_addr)))
			return -1;
		if (bpf_skb_store_bytes(skb, addr_off, &new_addr, sizeof(new_addr), 0))
			return -1;
	}
	if (old_port != new_port) {
		if (bpf_l4_csum_replace(skb, csum_off, old_port, new_port,
					l4_flags | sizeof(new_port)))
			return -1;
		if (bpf_skb_store_bytes(skb, port_off, &new_port, sizeof(new_port), 0))
			return -1;
	}
	return 0;
}


enum parsed {
	PARSED_OTHER = 0, /* not IPv4: leave alone */
	PARSED_L3,        /* IPv4, but not TCP/UDP or a non-first fragment: addresses only */
	PARSED_FLOW,      /* IPv4 TCP/UDP: the whole flow */
	PARSED_MALFORMED, /* IPv4 whose IP header, or TCP/UDP header, cannot be read */
};

/* Reads the packet's IPv4 addresses, and its ports and TCP flags if it has them. */
static __always_inline enum parsed parse_flow(struct __sk_buff *skb, struct flow *f)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct {
		__be16 sport;
		__be16 dport;
	} ports;

	if ((void *)(eth + 1) > data_end)
		return PARSED_MALFORMED;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return PARSED_OTHER;
	if ((void *)(ip + 1) > data_end) {
		/* The header may lie beyond the linear data: pull it in, once. */
		if (bpf_skb_pull_data(skb, sizeof(*eth) + sizeof(*ip)))
			return PARSED_MALFORMED;
		data = (void *)(long)skb->data;
		data_end = (void *)(long)skb->data_end;
		ip = data + sizeof(*eth);
		if ((void *)(ip + 1) > data_end)
			return PARSED_MALFORMED;
	}
	if (ip->version != 4 || ip->ihl < 5)
		return PARSED_MALFORMED;
	f->saddr = ip->saddr;
	f->daddr = ip->daddr;
	f->proto = ip->protocol;
	f->l4_off = IP_OFF + ip->ihl * 4;
	if ((f->proto != IPPROTO_TCP && f->proto != IPPROTO_UDP) ||
	    (ip->frag_off & bpf_htons(IP_OFFMASK)))
		return PARSED_L3;
	/* A first fragment or a whole datagram too short for its ports (or TCP flags). */
	if (bpf_skb_load_bytes(skb, f->l4_off, &ports, sizeof(ports)))
		return PARSED_MALFORMED;
	f->sport = ports.sport;
	f->dport = ports.dport;
	if (f->proto == IPPROTO_TCP &&
	    bpf_skb_load_bytes(skb, f->l4_off + 13, &f->tcp_flags, sizeof(f->tcp_flags)))
		return PARSED_MALFORMED;
	f->now_s = (__u32)(bpf_ktime_get_ns() / 1000000000ULL);
	return PARSED_FLOW;
}

/* The conntrack entry of this packet's flow, if one still describes it. */
static __always_inline struct ct_value *ct_lookup(const struct flow *f)
{
	struct ct_key key = {
		.saddr = f->saddr,
		.daddr = f->daddr,
		.sport = f->sport,
		.dport = f->dport,
		.proto = f->proto,
	};
	struct ct_value *ct = bpf_map_lookup_elem(&conntrack, &key);

	return ct && ct_usable(ct, f) ? ct : NULL;
}
