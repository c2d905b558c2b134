/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Flow events: the tc and socket programs report new service flows and drops
 * to the agent through the flow_events ring buffer (jotactl flows, the
 * Hubble-like view). flow_config turns each kind on, samples it and caps the
 * records per CPU and second; flow_event_stats counts what was written, lost
 * (ring buffer full), rate-limited and sampled out. Off (the default of the
 * zeroed config), a program pays one array lookup per candidate event.
 */
#pragma once

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "jotasu_maps.h"
#include "drop.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, JOTASU_FLOW_EVENTS_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flow_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flow_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flow_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flow_event_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flow_event_stats SEC(".maps");

/*
 * Writes `e` to the ring buffer if its kind is on, it is the sampled one in
 * N of its kind on this CPU, and this CPU's budget for the second is not
 * spent. Out of line: events are the cold path, and this signature puts
 * struct flow_event in the object's BTF for the layout test.
 */
static __noinline int emit_event(struct flow_event *e)
{
	__u32 zero = 0, want, rate, now_s;
	struct flow_config *cfg = bpf_map_lookup_elem(&flow_config, &zero);
	struct flow_event_stats *st;
	__u64 seen;

	if (!cfg || !e)
		return 0;
	want = e->kind == FLOW_EV_NEW ? FLOW_EVENTS_NEW : FLOW_EVENTS_DROP;
	if (!(cfg->flags & want))
		return 0;
	st = bpf_map_lookup_elem(&flow_event_stats, &zero);
	if (!st)
		return 0;
	if (want == FLOW_EVENTS_NEW) {
		rate = cfg->new_flow_sample;
		seen = st->new_seen++;
	} else {
		rate = cfg->drop_sample;
		seen = st->drop_seen++;
	}
	if (rate > 1 && seen % rate) {
		st->sampled_out++;
		return 0;
	}
	e->ts_ns = bpf_ktime_get_ns();
	if (cfg->max_per_cpu_s) {
		now_s = (__u32)(e->ts_ns / 1000000000ULL);
		if (st->window_s != now_s) {
			st->window_s = now_s;
			st->window_count = 0;
		}
		if (st->window_count >= cfg->max_per_cpu_s) {
			st->rate_limited++;
			return 0;
		}
		st->window_count++;
	}
	if (bpf_ringbuf_output(&flow_events, e, sizeof(*e), 0))
		st->lost++;
	else
		st->emitted++;
	return 0;
}

/* Reports a drop of the packet in `skb` (its IPv4 addresses and ports as
 * they are now; zeros for what is not IPv4 or cannot be read). */
static __noinline int emit_drop_skb(struct __sk_buff *skb, __u32 reason)
{
	struct flow_event e = {};
	struct iphdr ip;
	struct {
		__be16 sport;
		__be16 dport;
	} ports;

	e.kind = FLOW_EV_DROP;
	e.hook = FLOW_HOOK_TC;
	e.reason = (__u8)reason;
	e.ifindex = skb->ifindex;
	e.svc_id = FLOW_NO_SERVICE;
	if (skb->protocol == bpf_htons(ETH_P_IP) &&
	    !bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip))) {
		e.saddr = ip.saddr;
		e.daddr = ip.daddr;
		e.proto = ip.protocol;
		if ((ip.protocol == IPPROTO_TCP || ip.protocol == IPPROTO_UDP) &&
		    !(ip.frag_off & bpf_htons(0x1fff)) &&
		    !bpf_skb_load_bytes(skb, ETH_HLEN + ip.ihl * 4, &ports, sizeof(ports))) {
			e.sport = ports.sport;
			e.dport = ports.dport;
		}
	}
	return emit_event(&e);
}

/* Counts a drop for `reason`, reports it, and returns the tc verdict that drops. */
static __always_inline int drop_skb(struct __sk_buff *skb, enum drop_reason reason)
{
	count_drop(reason);
	emit_drop_skb(skb, reason);
	return TC_ACT_SHOT;
}
