// SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0)
/*
 * from_pod: tc ingress on the host side of each pod's veth, i.e. every packet
 * a pod sends. It load-balances service VIPs in the kernel:
 *
 *   conntrack hit  -> translate as the flow was translated before
 *                     (forward: DNAT to its backend; reply: SNAT back to the VIP)
 *   service hit    -> next backend round-robin, two conntrack entries, DNAT
 *   no backend     -> refuse at once: TCP RST, or ICMP port unreachable for UDP
 *   then           -> a local pod destination is delivered with bpf_redirect_peer,
 *                     anything else goes to the node's stack.
 *
 * Non-IPv4 and non-TCP/UDP traffic passes untouched.
 */
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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, JOTASU_MAX_ENDPOINTS);
	__type(key, __be32);
	__type(value, struct endpoint_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoints SEC(".maps");

#define IP_OFF ETH_HLEN
#define IP_CSUM_OFF (IP_OFF + offsetof(struct iphdr, check))
#define IP_SADDR_OFF (IP_OFF + offsetof(struct iphdr, saddr))
#define IP_DADDR_OFF (IP_OFF + offsetof(struct iphdr, daddr))
/* linux/icmp.h drags in libc headers; the part needed here: */
#define ICMP_DEST_UNREACH 3
#define ICMP_PORT_UNREACH 3
struct icmp_unreach {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 unused;
};
#define IP_DF 0x4000
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
		return TC_ACT_SHOT;
	if (!in.syn || in.ack || in.rst)
		return TC_ACT_SHOT; /* only connection attempts get an answer */
	count_service(id, STAT_REJECTED);
	data_len = bpf_ntohs(tot_len) - (f->l4_off - IP_OFF) - in.doff * 4;
	if (data_len > 0xffff)
		data_len = 0; /* inconsistent lengths: acknowledge the SYN alone */
	if (reply_headers(skb, f, &eth, &ip, IPPROTO_TCP, sizeof(ip) + sizeof(tcp)))
		return TC_ACT_SHOT;

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
		return TC_ACT_SHOT;
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
		return TC_ACT_SHOT; /* IP options: not worth quoting; drop */
	if (bpf_skb_load_bytes(skb, IP_OFF, &msg.ip, sizeof(msg.ip)) ||
	    bpf_skb_load_bytes(skb, f->l4_off, &msg.udp, sizeof(msg.udp)))
		return TC_ACT_SHOT;
	if (reply_headers(skb, f, &eth, &ip, IPPROTO_ICMP, sizeof(ip) + sizeof(msg)))
		return TC_ACT_SHOT;
	msg.icmp.type = ICMP_DEST_UNREACH;
	msg.icmp.code = ICMP_PORT_UNREACH;
	msg.icmp.checksum = csum_fold(bpf_csum_diff(NULL, 0, (__be32 *)&msg, sizeof(msg), 0));

	if (bpf_skb_change_tail(skb, icmp_off + sizeof(msg), 0) ||
	    bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0) ||
	    bpf_skb_store_bytes(skb, IP_OFF, &ip, sizeof(ip), 0) ||
	    bpf_skb_store_bytes(skb, icmp_off, &msg, sizeof(msg), 0))
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

/* Delivers to a pod of this node straight into its namespace, else to the node's stack. */
static __always_inline int deliver(struct __sk_buff *skb, __be32 daddr)
{
	struct endpoint_value *ep = bpf_map_lookup_elem(&endpoints, &daddr);

	if (!ep)
		return TC_ACT_OK;
	if (bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), ep->pod_mac, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_source), ep->host_mac, ETH_ALEN, 0))
		return TC_ACT_SHOT;
	count_global(GC_LOCAL_REDIRECT);
	return bpf_redirect_peer(ep->ifindex, 0);
}

/* A new flow to a service: pick its backend, record both directions, DNAT. */
static __always_inline int new_service_flow(struct __sk_buff *skb, struct flow *f,
					    const struct svc_value *svc)
{
	__u32 id = svc->id;
	__u16 count = *(volatile __u16 *)&svc->count;
	struct backend_value *b;
	struct ct_key fwd = {}, rev = {};
	struct ct_value fwd_v = {}, rev_v = {};

	if (count == 0)
		return f->proto == IPPROTO_TCP ? reject_tcp(skb, f, id) : reject_udp(skb, f, id);
	b = select_backend(id, count);
	if (!b) {
		count_global(GC_NO_BACKEND_SLOT);
		return TC_ACT_SHOT;
	}

	fwd.saddr = f->saddr;
	fwd.daddr = f->daddr;
	fwd.sport = f->sport;
	fwd.dport = f->dport;
	fwd.proto = f->proto;
	fwd_v.nat_addr = b->addr;
	fwd_v.nat_port = b->port;
	fwd_v.dir = CT_DIR_FORWARD;
	fwd_v.svc_id = id;
	fwd_v.created_s = f->now_s;
	fwd_v.last_seen_s = f->now_s;

	rev.saddr = b->addr;
	rev.daddr = f->saddr;
	rev.sport = b->port;
	rev.dport = f->sport;
	rev.proto = f->proto;
	rev_v.nat_addr = f->daddr;
	rev_v.nat_port = f->dport;
	rev_v.dir = CT_DIR_REPLY;
	rev_v.svc_id = id;
	rev_v.created_s = f->now_s;
	rev_v.last_seen_s = f->now_s;

	/* The reply entry first: the backend may answer as soon as the packet leaves. */
	if (bpf_map_update_elem(&conntrack, &rev, &rev_v, BPF_ANY) ||
	    bpf_map_update_elem(&conntrack, &fwd, &fwd_v, BPF_ANY))
		count_global(GC_CT_FULL);
	count_service(id, STAT_TC_NEW);

	if (rewrite(skb, f, true, fwd_v.nat_addr, fwd_v.nat_port))
		return TC_ACT_SHOT;
	f->daddr = fwd_v.nat_addr;
	return deliver(skb, f->daddr);
}

SEC("classifier")
int from_pod(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct ct_key key = {};
	struct ct_value *ct;
	struct svc_value *svc;
	struct flow f = {};
	struct {
		__be16 sport;
		__be16 dport;
	} ports;

	if ((void *)(ip + 1) > data_end)
		return TC_ACT_OK;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl < 5)
		return TC_ACT_OK;

	f.saddr = ip->saddr;
	f.daddr = ip->daddr;
	f.proto = ip->protocol;
	f.l4_off = IP_OFF + ip->ihl * 4;
	if ((f.proto != IPPROTO_TCP && f.proto != IPPROTO_UDP) ||
	    (ip->frag_off & bpf_htons(IP_OFFMASK)))
		return deliver(skb, f.daddr);
	if (bpf_skb_load_bytes(skb, f.l4_off, &ports, sizeof(ports)))
		return TC_ACT_OK;
	f.sport = ports.sport;
	f.dport = ports.dport;
	if (f.proto == IPPROTO_TCP &&
	    bpf_skb_load_bytes(skb, f.l4_off + 13, &f.tcp_flags, sizeof(f.tcp_flags)))
		return TC_ACT_OK;
	f.now_s = (__u32)(bpf_ktime_get_ns() / 1000000000ULL);
	count_global(GC_PACKETS);

	key.saddr = f.saddr;
	key.daddr = f.daddr;
	key.sport = f.sport;
	key.dport = f.dport;
	key.proto = f.proto;
	ct = bpf_map_lookup_elem(&conntrack, &key);
	if (ct && ct_usable(ct, &f)) {
		bool forward = ct->dir == CT_DIR_FORWARD;
		__be32 addr = ct->nat_addr;
		__be16 port = ct->nat_port;

		count_global(GC_CT_HITS);
		ct_touch(ct, &f);
		if (rewrite(skb, &f, forward, addr, port))
			return TC_ACT_SHOT;
		if (forward)
			f.daddr = addr;
		return deliver(skb, f.daddr);
	}

	svc = lookup_service(f.daddr, f.dport, f.proto);
	if (svc)
		return new_service_flow(skb, &f, svc);
	if (is_syn(&f))
		ct_forget_reply(&f);
	return deliver(skb, f.daddr);
}

char _license[] SEC("license") = "Dual BSD/GPL";
