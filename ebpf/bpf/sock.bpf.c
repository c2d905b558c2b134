// SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0)
/*
 * Socket-level service translation for processes in the node's cgroup subtree:
 * connect4 and sendmsg4 rewrite a service VIP to a backend chosen round-robin
 * (the same counters as the tc path), recvmsg4 and getpeername4 show the VIP
 * again. A connected flow then pays no per-packet NAT at all.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>

#include "lb.h"

#define ECONNREFUSED 111
#define EHOSTUNREACH 113

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, JOTASU_SOCK_ENTRIES);
	__type(key, struct sock_key);
	__type(value, struct sock_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sock_rev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, JOTASU_SOCK_ENTRIES);
	__type(key, struct sock_key);
	__type(value, struct sock_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sock_sticky SEC(".maps");

/* Reports a socket-level new flow to `b` (or a refusal for `reason`). */
static __always_inline void report_sock(struct bpf_sock_addr *ctx, bool sticky, __u8 kind,
					__u8 reason, __u32 id, const struct sock_value *b)
{
	struct flow_event e = {};

	e.kind = kind;
	e.hook = sticky ? FLOW_HOOK_SOCK_SENDMSG : FLOW_HOOK_SOCK_CONNECT;
	e.reason = reason;
	e.proto = (__u8)ctx->protocol;
	e.svc_id = id;
	e.daddr = ctx->user_ip4;
	e.dport = (__be16)ctx->user_port;
	if (b) {
		e.backend_addr = b->addr;
		e.backend_port = b->port;
	}
	e.cgroup_id = bpf_get_current_cgroup_id();
	emit_event(&e);
}

/* Translates a VIP destination; `sticky` keeps an unconnected socket on its backend. */
static __always_inline int to_backend(struct bpf_sock_addr *ctx, bool sticky)
{
	__u8 proto = ctx->protocol;
	__be32 vip = ctx->user_ip4;
	__be16 port = (__be16)ctx->user_port;
	struct sock_key key = {};
	struct sock_value be = {}, *known = NULL, rev_v = {};
	struct backend_value b;
	struct svc_value *svc;
	__u64 cookie;
	__u32 id;
	__u16 count, flags;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	svc = lookup_service(vip, port, proto);
	if (!svc)
		return 1;
	id = svc->id;
	count = *(volatile __u16 *)&svc->count;
	flags = svc->flags;
	cookie = bpf_get_socket_cookie(ctx);

	key.cookie = cookie;
	key.addr = vip;
	key.port = port;
	key.proto = proto;
	if (sticky)
		known = bpf_map_lookup_elem(&sock_sticky, &key);
	if (known) {
		be = *known;
	} else {
		if (count == 0) {
			count_service(id, STAT_REJECTED);
			count_drop(DROP_NO_BACKEND);
			report_sock(ctx, sticky, FLOW_EV_DROP, DROP_NO_BACKEND, id, NULL);
			bpf_set_retval(-ECONNREFUSED);
			return 0;
		}
		/* The node's processes share one affinity client: the node. */
		if (pick_backend(id, count, flags, 0,
				 (__u32)(bpf_ktime_get_ns() / 1000000000ULL), &b)) {
			count_drop(DROP_NO_BACKEND_SLOT);
			report_sock(ctx, sticky, FLOW_EV_DROP, DROP_NO_BACKEND_SLOT, id, NULL);
			bpf_set_retval(-EHOSTUNREACH);
			return 0;
		}
		be.addr = b.addr;
		be.port = b.port;
		count_service(id, STAT_SOCK_NEW);
		report_sock(ctx, sticky, FLOW_EV_NEW, 0, id, &be);
		if (sticky)
			bpf_map_update_elem(&sock_sticky, &key, &be, BPF_ANY);
	}

	key.addr = be.addr;
	key.port = be.port;
	rev_v.addr = vip;
	rev_v.port = port;
	bpf_map_update_elem(&sock_rev, &key, &rev_v, BPF_ANY);

	ctx->user_ip4 = be.addr;
	ctx->user_port = (__u32)be.port;
	return 1;
}

/* Shows the VIP where the socket would otherwise see the backend. */
static __always_inline int to_service(struct bpf_sock_addr *ctx)
{
	struct sock_key key = {};
	struct sock_value *v;

	key.cookie = bpf_get_socket_cookie(ctx);
	key.addr = ctx->user_ip4;
	key.port = (__be16)ctx->user_port;
	key.proto = ctx->protocol;
	v = bpf_map_lookup_elem(&sock_rev, &key);
	if (v) {
		ctx->user_ip4 = v->addr;
		ctx->user_port = (__u32)v->port;
	}
	return 1;
}

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	return to_backend(ctx, false);
}

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return to_backend(ctx, true);
}

SEC("cgroup/recvmsg4")
int sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	return to_service(ctx);
}

SEC("cgroup/getpeername4")
int sock_getpeername4(struct bpf_sock_addr *ctx)
{
	return to_service(ctx);
}

char _license[] SEC("license") = "Dual BSD/GPL";
