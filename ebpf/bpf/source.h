/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Who may send what into the data plane.
 *
 * A pod (from_pod): ARP, and IPv4 from its own address only. Its address is
 * the endpoint map's key and the endpoint's ifindex is its host-side veth,
 * so "own address" means endpoints[saddr].ifindex == the veth the packet
 * came in on. The CNI writes the endpoint before it attaches from_pod, and
 * the pod's processes start only after ADD returns, so a pod never sends
 * IPv4 before its entry exists. Everything else is dropped with a reason:
 * IPv4 from another address (spoofed_source) and any other EtherType
 * (unsupported_l3): jotasu is IPv4-only, and IPv6 let through would reach
 * the node's own stack, which the data plane never sees or balances.
 *
 * A node (from_overlay): VXLAN only from the underlay address of a node a
 * tunnel leads to (overlay_peers, kept beside the tunnel map by the agent);
 * anything else, or a packet without tunnel metadata, is unknown_overlay_peer.
 */
#pragma once

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "deliver.h"

/* Whether an IPv4 packet from `saddr` came in on that pod's own veth. */
static __always_inline bool from_own_address(const struct __sk_buff *skb, __be32 saddr)
{
	struct endpoint_value *ep = bpf_map_lookup_elem(&endpoints, &saddr);

	return ep && ep->ifindex == skb->ifindex;
}

/* from_pod's verdict for a frame that is not IPv4: ARP passes, the rest drops. */
static __always_inline int pod_other_l3(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_ARP))
		return TC_ACT_OK;
	return drop_skb(skb, DROP_UNSUPPORTED_L3);
}

/* Whether a decapsulated packet came from a known node's underlay address. */
static __always_inline bool from_known_node(struct __sk_buff *skb)
{
	struct bpf_tunnel_key tk = {};
	__be32 remote;

	if (bpf_skb_get_tunnel_key(skb, &tk, sizeof(tk), 0))
		return false; /* no tunnel metadata (or an IPv6 underlay) */
	remote = bpf_htonl(tk.remote_ipv4); /* the helper gives host order */
	return bpf_map_lookup_elem(&overlay_peers, &remote) != NULL;
}
