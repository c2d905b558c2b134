/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Where a packet goes once its destination is final: a pod of this node
 * (straight into its namespace with bpf_redirect_peer), a pod of another
 * node (into the VXLAN overlay, addressed to that node by the tunnel map),
 * or the node's own stack.
 */
#pragma once

#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lb.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, JOTASU_MAX_ENDPOINTS);
	__type(key, __be32);
	__type(value, struct endpoint_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, JOTASU_MAX_TUNNELS);
	__type(key, struct tunnel_key);
	__type(value, struct tunnel_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tunnels SEC(".maps");

/* Underlay address (network order) -> 1, for every known node: the
 * overlay's peers (from_overlay accepts VXLAN only from them, source.h) and
 * the other nodes' own addresses a pod's packets reach through the overlay. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, JOTASU_MAX_OVERLAY_PEERS);
	__type(key, __be32);
	__type(value, __u32);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} overlay_peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct overlay_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} overlay SEC(".maps");

#define VXLAN_TTL 64

/*
 * Delivers to pod `daddr` of this node, straight into its namespace (MACs
 * rewritten as its veth would have them). Returns -1 if it is not one.
 */
static __always_inline int deliver_local(struct __sk_buff *skb, __be32 daddr)
{
	struct endpoint_value *ep = bpf_map_lookup_elem(&endpoints, &daddr);

	if (!ep)
		return -1;
	if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), ep->pod_mac, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_source), ep->host_mac, ETH_ALEN, 0))
		return drop_skb(skb, DROP_REWRITE_FAILED);
	/*
	 * A frame that arrived through the overlay still carries the sending
	 * node's MACs, so the stack marked it for another host; the pod would drop it.
	 */
	if (skb->pkt_type != PACKET_HOST && bpf_skb_change_type(skb, PACKET_HOST))
		return drop_skb(skb, DROP_REWRITE_FAILED);
	count_global(GC_LOCAL_REDIRECT);
	return bpf_redirect_peer(ep->ifindex, 0);
}

/*
 * Sends a packet for pod `daddr` of another node, or for another node's own
 * address, into the overlay: the tunnel key names that node's underlay
 * address, and the node's VXLAN device (external mode) encapsulates.
 * Returns -1 if no node owns `daddr`.
 */
static __always_inline int encapsulate(struct __sk_buff *skb, __be32 daddr)
{
	struct tunnel_key key = { .prefixlen = 32, .addr = daddr };
	struct bpf_tunnel_key tk = {};
	struct tunnel_value *node;
	struct overlay_config *cfg;
	__u32 zero = 0;

	__be32 remote;

	node = bpf_map_lookup_elem(&tunnels, &key);
	if (node)
		remote = node->node_ip;
	else if (bpf_map_lookup_elem(&overlay_peers, &daddr))
		remote = daddr; /* another node itself (a reply to its SNATed client) */
	else
		return -1;
	cfg = bpf_map_lookup_elem(&overlay, &zero);
	if (!cfg || !cfg->ifindex)
		return -1;
	tk.remote_ipv4 = bpf_ntohl(remote); /* host order, as the helper wants */
	tk.tunnel_id = cfg->vni;
	tk.tunnel_ttl = VXLAN_TTL;
	if (bpf_skb_set_tunnel_key(skb, &tk, sizeof(tk), BPF_F_ZERO_CSUM_TX))
		return drop_skb(skb, DROP_ENCAP_FAILED);
	count_global(GC_ENCAP);
	return bpf_redirect(cfg->ifindex, 0);
}

/* from_pod's last step: a local pod, a remote pod, or the node's stack. */
static __always_inline int deliver(struct __sk_buff *skb, __be32 daddr)
{
	int ret = deliver_local(skb, daddr);

	if (ret >= 0)
		return ret;
	ret = encapsulate(skb, daddr);
	return ret >= 0 ? ret : TC_ACT_OK;
}
