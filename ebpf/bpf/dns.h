/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * The DNS fast path of from_pod: a UDP query to one of the node's DNS
 * frontends (dns_frontends) for a name in dns_names, of type A and class
 * IN, is answered here and sent straight back into the pod; anything else
 * goes on to the node's resolver untouched.
 *
 * The answer is byte for byte what the resolver (agent/src/dns/answer.rs)
 * sends for the same query, so the fast path only takes the queries whose
 * answer it can write exactly: a plain query (QR, opcode, AA, TC, Z and
 * RCODE all zero) with one question, no answer or authority records, and
 * either nothing after the question or one EDNS(0) OPT record (options
 * the resolver reads only as opaque bytes). The reply: the question echoed
 * as asked (case kept), QR AA RA set, RD and CD copied, one A record owned
 * by a pointer to the question's name, TTL 5 s, and for an EDNS query an
 * OPT record advertising 1232 bytes.
 */
#pragma once

#include "reply.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, JOTASU_MAX_DNS_NAMES);
	__type(key, struct dns_name);
	__type(value, struct dns_answer);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dns_names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, JOTASU_MAX_DNS_FRONTENDS);
	__type(key, struct dns_frontend);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dns_frontends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DNS_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} dns_stats SEC(".maps");

/* Where a question's name is assembled into a key (too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dns_name);
} dns_scratch SEC(".maps");

#define DNS_HDR_LEN 12
#define DNS_NAME_MAX 255
#define DNS_MAX_LABELS 128
#define DNS_MAX_QUERY 512
#define DNS_MAX_OPTIONS 8
#define DNS_TYPE_A 1
#define DNS_TYPE_OPT 41
#define DNS_CLASS_IN 1
#define DNS_TTL 5
#define DNS_EDNS_PAYLOAD 1232
#define DNS_NAME_AT_QUESTION 0xc00c /* a compression pointer to offset 12 */

/* EDNS options the resolver decodes (NSID, DAU, client subnet): left to it. */
#define EDNS_NSID 3
#define EDNS_DAU 5
#define EDNS_SUBNET 8

#define DNS_QR 0x80
#define DNS_AA 0x04
#define DNS_RD 0x01
#define DNS_RA 0x80
#define DNS_CD 0x10

struct dns_hdr {
	__be16 id;
	__u8 flags1; /* QR, opcode, AA, TC, RD */
	__u8 flags2; /* RA, Z, AD, CD, RCODE */
	__be16 qdcount;
	__be16 ancount;
	__be16 nscount;
	__be16 arcount;
};

struct dns_rr_a {
	__be16 name;
	__be16 type;
	__be16 class;
	__be32 ttl;
	__be16 rdlen;
	__be32 addr;
} __attribute__((packed));

struct dns_opt {
	__u8 root;
	__be16 type;
	__be16 payload;
	__u8 ext_rcode;
	__u8 version;
	__be16 flags;
	__be16 rdlen;
} __attribute__((packed));

static __always_inline void count_dns(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&dns_stats, &which);

	if (v)
		*v += 1;
}

static __always_inline bool is_dns_frontend(const struct flow *f)
{
	struct dns_frontend key = { .addr = f->daddr, .port = f->dport };

	return f->proto == IPPROTO_UDP && bpf_map_lookup_elem(&dns_frontends, &key);
}

/*
 * Whether the `len` bytes at `off` are exactly one EDNS version 0 OPT
 * record with well-formed options the resolver treats as opaque.
 */
static __always_inline bool dns_plain_opt(struct __sk_buff *skb, __u32 off, __u32 len)
{
	struct dns_opt opt;
	struct {
		__be16 code;
		__be16 len;
	} o;
	__u32 at, end = off + len;
	__u16 code;
	int i;

	if (len < sizeof(opt) || bpf_skb_load_bytes(skb, off, &opt, sizeof(opt)))
		return false;
	if (opt.root || opt.type != bpf_htons(DNS_TYPE_OPT) || opt.ext_rcode || opt.version ||
	    bpf_ntohs(opt.rdlen) != len - sizeof(opt))
		return false;
	at = off + sizeof(opt);
	for (i = 0; i < DNS_MAX_OPTIONS && at < end; i++) {
		if (bpf_skb_load_bytes(skb, at, &o, sizeof(o)))
			return false;
		code = bpf_ntohs(o.code);
		if (code == EDNS_NSID || code == EDNS_DAU || code == EDNS_SUBNET)
			return false;
		at += sizeof(o) + bpf_ntohs(o.len);
	}
	return at == end;
}

/* The mask of a key word starting at byte `start` that keeps the bytes
 * before `len` (the name's) and clears the rest. */
static __always_inline __u64 name_bytes(__u32 len, __u32 start)
{
	__u32 shift;

	if (start >= len)
		return 0;
	if (len - start >= 8)
		return ~0ULL;
	shift = ((len - start) & 7) * 8;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	return (1ULL << shift) - 1;
#else
	return ~0ULL << (64 - shift);
#endif
}

/*
 * Reads the question's name at `off` (at most `room` bytes) into `key`:
 * lowercased, zero-padded. Returns its length on the wire, or 0 when it is
 * not a plain name (compression, a label over 63 bytes, over 255 bytes).
 */
static __always_inline __u32 dns_read_name(struct __sk_buff *skb, __u32 off, __u32 room,
					   struct dns_name *key)
{
	__u64 *words = (__u64 *)key->wire;
	__u32 n = room, pos = 0, len, i;
	__u8 label;

	if (n > DNS_NAME_MAX)
		n = DNS_NAME_MAX;
	if (n == 0 || bpf_skb_load_bytes(skb, off, key->wire, n))
		return 0;
	for (i = 0; i < DNS_MAX_LABELS; i++) {
		if (pos >= n)
			return 0;
		label = key->wire[pos & (JOTASU_DNS_NAME_LEN - 1)];
		if (label == 0)
			break;
		if (label > 63)
			return 0;
		pos += label + 1;
	}
	if (pos >= n || key->wire[pos & (JOTASU_DNS_NAME_LEN - 1)] != 0)
		return 0;
	len = pos + 1;
	/*
	 * Lowercase eight bytes at a time (length bytes are at most 63, below
	 * 'A': only letters change): for the low seven bits h of each byte,
	 * h + 0x3f carries into the top bit from 'A' up and h + 0x25 from past
	 * 'Z'; bytes with the top bit set are not letters. Words past the name
	 * are zeroed, then the bytes past it in its last word.
	 */
	for (i = 0; i < JOTASU_DNS_NAME_LEN / 8; i++) {
		__u64 x = words[i], h = x & 0x7f7f7f7f7f7f7f7fULL;
		__u64 upper = (h + 0x3f3f3f3f3f3f3f3fULL) & ~(h + 0x2525252525252525ULL) & ~x &
			      0x8080808080808080ULL;

		words[i] = (x | (upper >> 2)) & name_bytes(len, i * 8);
	}
	return len;
}

/*
 * Answers the query in `skb` (UDP to a DNS frontend) if it can; returns
 * the tc verdict, or -1 to let the query go on to the resolver.
 */
static __always_inline int dns_answer(struct __sk_buff *skb, const struct flow *f)
{
	__u32 zero = 0, dns_off = f->l4_off + sizeof(struct udphdr);
	__u32 msg_len, name_len, q_end, reply_len;
	struct ethhdr eth = {};
	struct iphdr ip = {};
	struct udphdr udp;
	struct dns_hdr h;
	struct dns_name *key;
	struct dns_answer *a;
	struct dns_rr_a rr = {};
	struct dns_opt opt = {};
	struct {
		__be16 qtype;
		__be16 qclass;
	} q;
	__be16 tot_len;
	bool edns;

	if (f->l4_off != IP_OFF + sizeof(struct iphdr))
		return -1;
	if (bpf_skb_load_bytes(skb, IP_OFF + offsetof(struct iphdr, tot_len), &tot_len,
			       sizeof(tot_len)) ||
	    bpf_skb_load_bytes(skb, f->l4_off, &udp, sizeof(udp)) ||
	    bpf_skb_load_bytes(skb, dns_off, &h, sizeof(h)))
		return -1;
	/* One whole datagram (no fragment), of a query's size. */
	if (bpf_ntohs(tot_len) != sizeof(struct iphdr) + bpf_ntohs(udp.len))
		return -1;
	msg_len = bpf_ntohs(udp.len);
	if (msg_len < sizeof(udp) + DNS_HDR_LEN + 1 + sizeof(q) ||
	    msg_len > sizeof(udp) + DNS_MAX_QUERY)
		return -1;
	msg_len -= sizeof(udp);
	if ((h.flags1 & ~DNS_RD) || (h.flags2 & 0x4f) || h.qdcount != bpf_htons(1) ||
	    h.ancount || h.nscount || bpf_ntohs(h.arcount) > 1)
		return -1;
	key = bpf_map_lookup_elem(&dns_scratch, &zero);
	if (!key)
		return -1;
	name_len = dns_read_name(skb, dns_off + DNS_HDR_LEN, msg_len - DNS_HDR_LEN - sizeof(q),
				 key);
	if (!name_len ||
	    bpf_skb_load_bytes(skb, dns_off + DNS_HDR_LEN + name_len, &q, sizeof(q)))
		return -1;
	if (q.qtype != bpf_htons(DNS_TYPE_A) || q.qclass != bpf_htons(DNS_CLASS_IN))
		return -1;
	q_end = DNS_HDR_LEN + name_len + sizeof(q);
	edns = h.arcount != 0;
	if (edns ? !dns_plain_opt(skb, dns_off + q_end, msg_len - q_end) : q_end != msg_len)
		return -1;
	a = bpf_map_lookup_elem(&dns_names, key);
	if (!a)
		return -1;

	rr.name = bpf_htons(DNS_NAME_AT_QUESTION);
	rr.type = bpf_htons(DNS_TYPE_A);
	rr.class = bpf_htons(DNS_CLASS_IN);
	rr.ttl = bpf_htonl(DNS_TTL);
	rr.rdlen = bpf_htons(sizeof(rr.addr));
	rr.addr = a->addr;
	opt.type = bpf_htons(DNS_TYPE_OPT);
	opt.payload = bpf_htons(DNS_EDNS_PAYLOAD);
	h.flags1 = DNS_QR | DNS_AA | (h.flags1 & DNS_RD);
	h.flags2 = DNS_RA | (h.flags2 & DNS_CD);
	h.ancount = bpf_htons(1);
	reply_len = q_end + sizeof(rr) + (edns ? sizeof(opt) : 0);
	udp.len = bpf_htons(sizeof(udp) + reply_len);
	udp.check = 0; /* none: IPv4 allows it, and the veth does not corrupt */
	udp.source = f->dport;
	udp.dest = f->sport;
	if (reply_headers(skb, f, &eth, &ip, IPPROTO_UDP, sizeof(ip) + sizeof(udp) + reply_len))
		return -1;

	if (bpf_skb_change_tail(skb, dns_off + reply_len, 0) ||
	    bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0) ||
	    bpf_skb_store_bytes(skb, IP_OFF, &ip, sizeof(ip), 0) ||
	    bpf_skb_store_bytes(skb, f->l4_off, &udp, sizeof(udp), 0) ||
	    bpf_skb_store_bytes(skb, dns_off, &h, sizeof(h), 0) ||
	    bpf_skb_store_bytes(skb, dns_off + q_end, &rr, sizeof(rr), 0) ||
	    (edns && bpf_skb_store_bytes(skb, dns_off + q_end + sizeof(rr), &opt, sizeof(opt), 0)))
		return drop_skb(skb, DROP_REWRITE_FAILED); /* half-written: nothing sane can go on */
	count_dns(DNS_ANSWERED);
	return bpf_redirect(skb->ifindex, 0);
}
