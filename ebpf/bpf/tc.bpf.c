// SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0)
/*
 * The tc programs of a node.
 *
 * from_pod: tc ingress on the host side of each pod's veth, i.e. every packet
 * a pod sends. It admits ARP and IPv4 from the pod's own address only
 * (source.h), then load-balances service VIPs in the kernel:
 *
 *   conntrack hit  -> translate as the flow was translated before
 *                     (forward: DNAT to its backend; reply: SNAT back to the VIP)
 *   service hit    -> next backend round-robin, two conntrack entries, DNAT
 *   no backend     -> refuse at once: TCP RST, or ICMP port unreachable for UDP
 *   DNS query      -> (before all this) a query to the node's DNS address for a
 *                     cluster name it knows is answered at once (dns.h)
 *   then           -> deliver (deliver.h): a local pod with bpf_redirect_peer,
 *                     a remote node's pod through the VXLAN overlay, anything
 *                     else to the node's stack.
 *
 * from_overlay: tc ingress on the node's VXLAN device, i.e. every packet
 * another node's pods sent to this node's pods. A reply from a backend on
 * the other node to a service flow this node balanced gets its reverse NAT
 * here (the client's node holds the flow's conntrack); then the packet goes
 * straight into the local pod. Only known nodes may send (source.h). A reply
 * to an external client this node SNATed (see from_underlay) comes back the
 * same way and leaves by the underlay.
 *
 * from_underlay: tc ingress on the node's underlay interface: clients from
 * outside the cluster (node ports, external IPs, host ports; external.h).
 *
 * Every packet dropped, and every refusal, counts under a reason (drop.h).
 */
#include "nat.h"
#include "deliver.h"
#include "external.h"
#include "reply.h"
#include "dns.h"
#include "source.h"

/* linux/icmp.h drags in libc headers; the part needed here: */
#define ICMP_DEST_UNREACH 3
#define ICMP_PORT_UNREACH 3
struct icmp_unreach {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 unused;
};
/* Reports a flow event for flow `f` of service `id` (FLOW_NO_SERVICE:
 * none): a new flow balanced to `b`, or a refusal/drop for `reason`. */
static __always_inline void report_flow(struct __sk_buff *skb, const struct flow *f, __u8 kind,
					__u8 hook, __u8 reason, __u32 id,
					const struct backend_value *b)
{
	struct flow_event e = {};

	e.kind = kind;
	e.hook = hook;
	e.reason = reason;
	e.proto = f->proto;
	e.ifindex = skb->ifindex;
	e.svc_id = id;
	e.saddr = f->saddr;
	e.daddr = f->daddr;
	e.sport = f->sport;
	e.dport = f->dport;
	if (b) {
		e.backend_addr = b->addr;
		e.backend_port = b->port;
	}
	emit_event(&e);
}

/*
 * Answers a TCP SYN to a service without backends with RST|ACK from the VIP,
 * acknowledging the SYN and any data it carried (TCP Fast Open).
 */
static __always_inline int reject_tcp(struct __sk_buff *skb, const struct flow *f, __u32 id)
{
	struct ethhdr eth = {};
	struct iphdr ip = {};
	struct tcphdr in, tcp = {};
	struct {
		__be32 saddr;
		__be32 daddr;
		__u8 zero;
		__u8 proto;
		__be16 len;
	} pseudo = {};
	__be16 tot_len;
	__u32 data_len;
	__s64 sum;

	if (bpf_skb_load_bytes(skb, f->l4_off, &in, sizeof(in)) ||
	    bpf_skb_load_bytes(skb, IP_OFF + offsetof(struct iphdr, tot_len), &tot_len,
			       sizeof(tot_len)))
		return drop_skb(skb, DROP_MALFORMED);
	if (!in.syn || in.ack || in.rst)
		return drop_skb(skb, DROP_NO_BACKEND); /* only connection attempts get an answer */
	count_service(id, STAT_REJECTED);
	data_len = bpf_ntohs(tot_len) - (f->l4_off - IP_OFF) - in.doff * 4;
	if (data_len > 0xffff)
		data_len = 0; /* inconsistent lengths: acknowledge the SYN alone */
	if (reply_headers(skb, f, &eth, &ip, IPPROTO_TCP, sizeof(ip) + sizeof(tcp)))
		return drop_skb(skb, DROP_REWRITE_FAILED);

	tcp.source = f->dport;
	tcp.dest = f->sport;
	tcp.ack_seq = bpf_htonl(bpf_ntohl(in.seq) + 1 + data_len + in.fin);
	tcp.doff = sizeof(tcp) / 4;
	tcp.rst = 1;
	tcp.ack = 1;
	pseudo.saddr = ip.saddr;
	pseudo.daddr = ip.daddr;
	pseudo.proto = IPPROTO_TCP;
	pseudo.len = bpf_htons(sizeof(tcp));
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&pseudo, sizeof(pseudo), 0);
	sum = bpf_csum_diff(NULL, 0, (__be32 *)&tcp, sizeof(tcp), (__u32)sum);
	tcp.check = csum_fold(sum);

	if (bpf_skb_change_tail(skb, sizeof(eth) + sizeof(ip) + sizeof(tcp), 0) ||
	    bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0) ||
	    bpf_skb_store_bytes(skb, IP_OFF, &ip, sizeof(ip), 0) ||
	    bpf_skb_store_bytes(skb, IP_OFF + sizeof(ip), &tcp, sizeof(tcp), 0))
		return drop_skb(skb, DROP_REWRITE_FAILED);
	count_drop(DROP_NO_BACKEND); /* refused: the SYN goes no further */
	report_flow(skb, f, FLOW_EV_DROP, FLOW_HOOK_TC, DROP_NO_BACKEND, id, NULL);
	/* Back out of the veth it came from: into the client pod. */
	return bpf_redirect(skb->ifindex, 0);
}

/* Answers a UDP datagram to a service without backends with ICMP port unreachable. */
static __always_inline int reject_udp(struct __sk_buff *skb, const struct flow *f, __u32 id)
{
	struct ethhdr eth = {};
	struct iphdr ip = {};
	struct {
		struct icmp_unreach icmp;
		struct iphdr ip;    /* the offending datagram's header ... */
		struct udphdr udp;  /* ... and its first 8 bytes */
	} msg = {};
	__u32 icmp_off = IP_OFF + sizeof(ip);

	count_service(id, STAT_REJECTED);
	if (f->l4_off != IP_OFF + sizeof(struct iphdr))
		return drop_skb(skb, DROP_NO_BACKEND); /* IP options: not worth quoting; drop */
	if (bpf_skb_load_bytes(skb, IP_OFF, &msg.ip, sizeof(msg.ip)) ||
	    bpf_skb_load_bytes(skb, f->l4_off, &msg.udp, sizeof(msg.udp)))
		return drop_skb(skb, DROP_MALFORMED);
	if (reply_headers(skb, f, &eth, &ip, IPPROTO_ICMP, sizeof(ip) + sizeof(msg)))
		return drop_skb(skb, DROP_REWRITE_FAILED);
	msg.icmp.type = ICMP_DEST_UNREACH;
	msg.icmp.code = ICMP_PORT_UNREACH;
	msg.icmp.checksum = csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&msg, sizeof(msg), 0));

	if (bpf_skb_change_tail(skb, icmp_off + sizeof(msg), 0) ||
	    bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0) ||
	    bpf_skb_store_bytes(skb, IP_OFF, &ip, sizeof(ip), 0) ||
	    bpf_skb_store_bytes(skb, icmp_off, &msg, sizeof(msg), 0))
		return drop_skb(skb, DROP_REWRITE_FAILED);
	count_drop(DROP_NO_BACKEND); /* refused: the datagram goes no further */
	report_flow(skb, f, FLOW_EV_DROP, FLOW_HOOK_TC, DROP_NO_BACKEND, id, NULL);
	return bpf_redirect(skb->ifindex, 0);
}

/* A conntrack hit: counts and refreshes the entry, rewrites the packet (its
 * destination for a forward entry, its source for a reply; and the other end
 * too for an external flow SNATed to the node). Non-zero: drop. */
static __always_inline int ct_apply(struct __sk_buff *skb, struct flow *f, struct ct_value *ct)
{
	bool forward = ct->dir == CT_DIR_FORWARD;
	__be32 addr = ct->nat_addr;
	__be16 port = ct->nat_port;
	__be32 peer = ct->peer_addr;
	__be16 peer_port = ct->peer_port;

	count_global(GC_CT_HITS);
	ct_touch(ct, f);
	if (rewrite(skb, f, forward, addr, port))
		return -1;
	if (peer && rewrite(skb, f, !forward, peer, peer_port))
		return -1;
	if (forward) {
		f->daddr = addr;
		f->dport = port;
		if (peer) {
			f->saddr = peer;
			f->sport = peer_port;
		}
	} else {
		f->saddr = addr;
		f->sport = port;
		if (peer) {
			f->daddr = peer;
			f->dport = peer_port;
		}
	}
	return 0;
}

/* One conntrack entry of a new flow of service svc_id: packets from
 * saddr:sport to daddr:dport are rewritten (per dir) to nat_addr:nat_port. */
static __always_inline void ct_fill(struct ct_key *k, struct ct_value *v, __be32 saddr,
				    __be16 sport, __be32 daddr, __be16 dport, __be32 nat_addr,
				    __be16 nat_port, __u8 dir, const struct flow *f, __u32 svc_id)
{
	k->saddr = saddr;
	k->daddr = daddr;
	k->sport = sport;
	k->dport = dport;
	k->proto = f->proto;
	v->nat_addr = nat_addr;
	v->nat_port = nat_port;
	v->dir = dir;
	v->svc_id = svc_id;
	v->created_s = f->now_s;
	v->last_seen_s = f->now_s;
}

/* A new flow to a service: pick its backend, record both directions, DNAT. */
static __always_inline int new_service_flow(struct __sk_buff *skb, struct flow *f,
					    const struct svc_value *svc)
{
	__u32 id = svc->id;
	__u16 count = *(volatile __u16 *)&svc->count;
	struct backend_value b;
	struct ct_key fwd = {}, rev = {};
	struct ct_value fwd_v = {}, rev_v = {};

	if (count == 0)
		return f->proto == IPPROTO_TCP ? reject_tcp(skb, f, id) : reject_udp(skb, f, id);
	if (pick_backend(id, count, svc->flags, f->saddr, f->now_s, &b)) {
		count_global(GC_NO_BACKEND_SLOT);
		return drop_skb(skb, DROP_NO_BACKEND_SLOT);
	}

	ct_fill(&fwd, &fwd_v, f->saddr, f->sport, f->daddr, f->dport, b.addr, b.port,
		CT_DIR_FORWARD, f, id);
	ct_fill(&rev, &rev_v, b.addr, b.port, f->saddr, f->sport, f->daddr, f->dport,
		CT_DIR_REPLY, f, id);

	/* The reply entry first: the backend may answer as soon as the packet leaves. */
	if (bpf_map_update_elem(&conntrack, &rev, &rev_v, BPF_ANY) ||
	    bpf_map_update_elem(&conntrack, &fwd, &fwd_v, BPF_ANY))
		count_global(GC_CT_FULL);
	count_service(id, STAT_TC_NEW);
	report_flow(skb, f, FLOW_EV_NEW, FLOW_HOOK_FROM_POD, 0, id, &b);

	if (rewrite(skb, f, true, fwd_v.nat_addr, fwd_v.nat_port))
		return drop_skb(skb, DROP_REWRITE_FAILED);
	f->daddr = fwd_v.nat_addr;
	return deliver(skb, f->daddr);
}

SEC("classifier")
int from_pod(struct __sk_buff *skb)
{
	struct ct_value *ct;
	struct svc_value *svc;
	struct flow f = {};
	enum parsed parsed = parse_flow(skb, &f);

	if (parsed == PARSED_OTHER)
		return pod_other_l3(skb);
	if (parsed == PARSED_MALFORMED)
		return drop_skb(skb, DROP_MALFORMED);
	if (!from_own_address(skb, f.saddr))
		return drop_skb(skb, DROP_SPOOFED_SOURCE);
	if (parsed == PARSED_L3)
		return deliver(skb, f.daddr);
	count_global(GC_PACKETS);

	if (is_dns_frontend(&f)) {
		int answered = dns_answer(skb, &f);

		if (answered >= 0)
			return answered;
		count_dns(DNS_PASSED);
	}

	ct = ct_lookup(&f);
	if (ct) {
		/* A local backend's reply to a client outside the cluster. */
		bool external = ct->dir == CT_DIR_REPLY && (ct->flags & CT_FLAG_EXTERNAL);

		if (ct_apply(skb, &f, ct))
			return drop_skb(skb, DROP_REWRITE_FAILED);
		return external ? deliver_external(skb, &f) : deliver(skb, f.daddr);
	}

	svc = lookup_service(f.daddr, f.dport, f.proto);
	if (svc)
		return new_service_flow(skb, &f, svc);
	if (is_syn(&f))
		ct_forget_reply(&f);
	return deliver(skb, f.daddr);
}

/*
 * to_pod: tc egress on the host side of each pod's veth, i.e. what the
 * node's own stack sends a pod. A reply from a backend that is the node
 * itself (its resolver, a host-network endpoint) to a flow from_pod
 * balanced gets its reverse NAT here: from the VIP, as the client asked.
 * Pods' own traffic and the overlay's reach pods with bpf_redirect_peer and
 * never pass here.
 */
SEC("classifier")
int to_pod(struct __sk_buff *skb)
{
	struct ct_value *ct;
	struct flow f = {};

	if (parse_flow(skb, &f) != PARSED_FLOW)
		return TC_ACT_OK;
	ct = ct_lookup(&f);
	if (ct && ct->dir == CT_DIR_REPLY && ct_apply(skb, &f, ct))
		return drop_skb(skb, DROP_REWRITE_FAILED);
	return TC_ACT_OK;
}

SEC("classifier")
int from_overlay(struct __sk_buff *skb)
{
	struct ct_value *ct;
	struct flow f = {};
	enum parsed parsed;
	int ret;

	if (!from_known_node(skb))
		return drop_skb(skb, DROP_UNKNOWN_OVERLAY_PEER);
	parsed = parse_flow(skb, &f);
	if (parsed == PARSED_OTHER)
		return TC_ACT_OK;
	if (parsed == PARSED_MALFORMED)
		return drop_skb(skb, DROP_MALFORMED);
	count_global(GC_FROM_OVERLAY);
	if (parsed == PARSED_FLOW) {
		ct = ct_lookup(&f);
		/* Only replies: a forward entry means a flow from a pod of this node. */
		if (ct && ct->dir == CT_DIR_REPLY) {
			/* A remote backend's reply to an external client SNATed here. */
			bool external = ct->flags & CT_FLAG_EXTERNAL;

			if (ct_apply(skb, &f, ct))
				return drop_skb(skb, DROP_REWRITE_FAILED);
			if (external)
				return deliver_external(skb, &f);
		}
	}
	ret = deliver_local(skb, f.daddr);
	if (ret < 0)
		return TC_ACT_OK; /* not a pod of this node: the stack decides */
	count_global(GC_OVERLAY_DELIVER);
	return ret;
}

/* A new flow from outside the cluster to an external frontend: pick its
 * backend, SNAT to the node under externalTrafficPolicy: Cluster, record
 * both directions, deliver to the backend's pod. */
static __always_inline int new_external_flow(struct __sk_buff *skb, struct flow *f,
					     const struct svc_value *svc)
{
	__u32 id = svc->id;
	__u16 count = *(volatile __u16 *)&svc->count;
	__u16 flags = svc->flags;
	bool snat = flags & SVC_FLAG_SNAT;
	__be32 src = f->saddr;
	__be16 sport = f->sport;
	struct backend_value b;
	struct ct_key fwd = {}, rev = {};
	struct ct_value fwd_v = {}, rev_v = {};
	struct host_config *host;
	__u32 zero = 0;

	if (count == 0)
		return f->proto == IPPROTO_TCP ? reject_tcp(skb, f, id) : reject_udp(skb, f, id);
	if (pick_backend(id, count, flags, f->saddr, f->now_s, &b)) {
		count_global(GC_NO_BACKEND_SLOT);
		return drop_skb(skb, DROP_NO_BACKEND_SLOT);
	}
	if (snat) {
		host = bpf_map_lookup_elem(&host_config, &zero);
		if (!host || !host->addr)
			return drop_skb(skb, DROP_NOT_CONFIGURED);
		src = host->addr;
		if (snat_port(f, src, &b, &sport))
			return drop_skb(skb, DROP_SNAT_EXHAUSTED);
	}

	ct_fill(&fwd, &fwd_v, f->saddr, f->sport, f->daddr, f->dport, b.addr, b.port,
		CT_DIR_FORWARD, f, id);
	ct_fill(&rev, &rev_v, b.addr, b.port, src, sport, f->daddr, f->dport, CT_DIR_REPLY, f,
		id);
	fwd_v.flags = CT_FLAG_EXTERNAL;
	rev_v.flags = CT_FLAG_EXTERNAL;
	if (snat) {
		fwd_v.peer_addr = src;
		fwd_v.peer_port = sport;
		rev_v.peer_addr = f->saddr;
		rev_v.peer_port = f->sport;
	}
	if (bpf_map_update_elem(&conntrack, &rev, &rev_v, BPF_ANY) ||
	    bpf_map_update_elem(&conntrack, &fwd, &fwd_v, BPF_ANY))
		count_global(GC_CT_FULL);
	count_service(id, STAT_TC_NEW);
	report_flow(skb, f, FLOW_EV_NEW, FLOW_HOOK_FROM_UNDERLAY, 0, id, &b);

	if (rewrite(skb, f, true, b.addr, b.port) ||
	    (snat && rewrite(skb, f, false, src, sport)))
		return drop_skb(skb, DROP_REWRITE_FAILED);
	return deliver(skb, b.addr);
}

/*
 * from_underlay: tc ingress on the node's underlay interface, i.e. every
 * packet that reaches the node from its network. Packets to an external
 * frontend (a node port on the node's address, an external IP, a host port)
 * are balanced; more packets of external flows already tracked are
 * translated; everything else (the overlay's VXLAN, the node's own
 * connections) passes to the stack untouched. (A remote backend's replies
 * to this node's SNAT address arrive through the overlay: from_overlay.)
 */
SEC("classifier")
int from_underlay(struct __sk_buff *skb)
{
	struct ct_value *ct;
	struct svc_value *svc;
	struct flow f = {};

	if (parse_flow(skb, &f) != PARSED_FLOW)
		return TC_ACT_OK;
	ct = ct_lookup(&f);
	if (ct && (ct->flags & CT_FLAG_EXTERNAL)) {
		bool forward = ct->dir == CT_DIR_FORWARD;

		if (ct_apply(skb, &f, ct))
			return drop_skb(skb, DROP_REWRITE_FAILED);
		return forward ? deliver(skb, f.daddr) : deliver_external(skb, &f);
	}
	svc = lookup_service(f.daddr, f.dport, f.proto);
	if (svc && (svc->flags & SVC_FLAG_EXTERNAL))
		return new_external_flow(skb, &f, svc);
	/* A direct connection (routed to a pod) may reuse the tuple of an old
	 * external flow that kept the client's address: its replies must not
	 * be rewritten to look like they came from the node port. */
	if (is_syn(&f))
		ct_forget_reply(&f);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "Dual BSD/GPL";
