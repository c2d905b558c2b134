/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Every drop has a reason: each TC_ACT_SHOT of the tc programs, each refusal
 * they answer, and each connect or send the socket programs refuse counts one
 * packet (or call) under an enum drop_reason (jotasu_maps.h) in drop_stats,
 * which the agent exports as jotasu_agent_datapath_drops_total{reason}.
 */
#pragma once

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "jotasu_maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, JOTASU_DROP_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} drop_stats SEC(".maps");

/*
 * Counts one drop. Out of line: the drop path is cold, and this signature
 * is what puts enum drop_reason in the object's BTF, where a test checks
 * the Rust names against it.
 */
static __noinline int count_drop(enum drop_reason reason)
{
	__u32 key = reason;
	__u64 *n = bpf_map_lookup_elem(&drop_stats, &key);

	if (n)
		*n += 1; /* per-CPU: no atomic needed */
	return 0;
}

/* Counts a drop for `reason` and returns the tc verdict that drops. */
static __always_inline int drop(enum drop_reason reason)
{
	count_drop(reason);
	return TC_ACT_SHOT;
}
