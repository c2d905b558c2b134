/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Answers written by the tc program itself, sent back out of the veth the
 * question came in on: refusals (tc.bpf.c) and DNS answers (dns.h).
 */
#pragma once

#include "nat.h"

#define IP_DF 0x4000

/* Turns a received frame around: swapped MACs, a fresh IPv4 header VIP -> client. */
static __always_inline int reply_headers(struct __sk_buff *skb, const struct flow *f,
					 struct ethhdr *eth, struct iphdr *ip, __u8 proto,
					 __u16 l3_len)
{
	struct ethhdr in;

	if (bpf_skb_load_bytes(skb, 0, &in, sizeof(in)))
		return -1;
	__builtin_memcpy(eth->h_dest, in.h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, in.h_dest, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = bpf_htons(l3_len);
	ip->frag_off = bpf_htons(IP_DF);
	ip->ttl = 64;
	ip->protocol = proto;
	ip->saddr = f->daddr;
	ip->daddr = f->saddr;
	ip->check = csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)ip, sizeof(*ip), 0));
	return 0;
}

