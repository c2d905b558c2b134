/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Traffic from outside the cluster: node ports, external IPs and host
 * ports, balanced by from_underlay on the node's underlay interface.
 *
 * An external flow's two conntrack entries carry CT_FLAG_EXTERNAL. Under
 * externalTrafficPolicy: Cluster (SVC_FLAG_SNAT) the client's source is
 * rewritten to the node's address and a free port (the client's own when
 * it can be; snat_port), so the backend,
 * wherever it runs, answers this node (through the overlay: from_pod
 * encapsulates a pod's packet for a known node's address, deliver.h); the
 * entries' peer fields undo it.
 * Under Local (and for host ports) the client's address is kept and the
 * backends are this node's pods only. Either way the reply leaves through
 * the underlay with a FIB lookup (to_underlay): the node's stack would drop
 * a packet from a pod's veth that carries the node's own address as source.
 */
#pragma once

#include "nat.h"
#include "deliver.h"
#include "drop.h"

#define AF_INET 2
#define SNAT_TRIES 8

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct host_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} host_config SEC(".maps");

/*
 * Whether the reply tuple `rev` (backend -> node:port) is free for the new
 * flow `f`: no live flow holds it, or the one that does is this client's
 * own earlier flow from the same address and port (the client reusing its
 * tuple has ended that flow, as a SYN on a closed forward entry says).
 */
static __always_inline bool snat_free(struct ct_key *rev, const struct flow *f)
{
	struct ct_value *v = bpf_map_lookup_elem(&conntrack, rev);

	return !v || !ct_usable(v, f) || (v->peer_addr == f->saddr && v->peer_port == f->sport);
}

/*
 * A free SNAT port on `node` for a flow to backend `b`: the client's own
 * source port when no live flow holds it toward that backend (as netfilter's
 * masquerading prefers: clients' ports are already unique per client, and a
 * port stays the client's while it is in TIME_WAIT), else one of SNAT_TRIES
 * random ports of the SNAT range. Non-zero: none was free.
 */
static __always_inline int snat_port(const struct flow *f, __be32 node,
				     const struct backend_value *b, __be16 *port)
{
	struct ct_key rev = {
		.saddr = b->addr,
		.daddr = node,
		.sport = b->port,
		.dport = f->sport,
		.proto = f->proto,
	};
	__u32 start;
	int i;

	if (bpf_ntohs(f->sport) >= 1024 && snat_free(&rev, f)) {
		*port = f->sport;
		return 0;
	}
	start = bpf_get_prandom_u32() % SNAT_PORT_COUNT;
	for (i = 0; i < SNAT_TRIES; i++) {
		rev.dport = bpf_htons((__u16)(SNAT_PORT_MIN + (start + i) % SNAT_PORT_COUNT));
		if (snat_free(&rev, f)) {
			*port = rev.dport;
			return 0;
		}
	}
	return -1;
}

/*
 * Sends a packet whose destination is outside the cluster out of the
 * interface the node's routes choose (looked up as the node's own output,
 * from its underlay interface, which must forward IPv4), with the next
 * hop's MACs (resolved by the kernel's neighbour table when not yet known).
 */
static __always_inline int to_underlay(struct __sk_buff *skb, const struct flow *f)
{
	struct bpf_fib_lookup fib = {};
	struct bpf_redir_neigh nh = {};
	struct host_config *host;
	__u32 zero = 0;
	long rc;

	host = bpf_map_lookup_elem(&host_config, &zero);
	if (!host || !host->ifindex)
		return drop_skb(skb, DROP_NOT_CONFIGURED);
	fib.family = AF_INET;
	fib.ipv4_src = f->saddr;
	fib.ipv4_dst = f->daddr;
	fib.ifindex = host->ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), BPF_FIB_LOOKUP_OUTPUT);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), fib.dmac, ETH_ALEN, 0) ||
		    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_source), fib.smac, ETH_ALEN, 0))
			return drop_skb(skb, DROP_REWRITE_FAILED);
		return bpf_redirect(fib.ifindex, 0);
	}
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		nh.nh_family = AF_INET;
		nh.ipv4_nh = fib.ipv4_dst; /* the gateway, when the route has one */
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}
	return drop_skb(skb, DROP_NO_ROUTE); /* no route back to the client, or forwarding off */
}

/* Where a rewritten external reply goes: a pod of this node or of another
 * (a client inside the cluster that used a node port), else the underlay. */
static __always_inline int deliver_external(struct __sk_buff *skb, const struct flow *f)
{
	int ret = deliver_local(skb, f->daddr);

	if (ret >= 0)
		return ret;
	ret = encapsulate(skb, f->daddr);
	return ret >= 0 ? ret : to_underlay(skb, f);
}
