/* SPDX-License-Identifier: (GPL-2.0 OR Apache-2.0) */
/*
 * Maps and the service lookup / round-robin selection shared by the tc
 * program (from_pod.bpf.c) and the socket programs (sock.bpf.c). Every map is
 * pinned by name, so both objects, and every later load, share one instance
 * under the node's bpffs directory.
 */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "jotasu_maps.h"
#include "drop.h"
#include "events.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, JOTASU_MAX_SERVICES);
	__type(key, struct svc_key);
	__type(value, struct svc_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, JOTASU_MAX_BACKEND_SLOTS);
	__type(key, struct backend_key);
	__type(value, struct backend_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} backends SEC(".maps");

/* One round-robin counter per service id, advanced atomically per new flow. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, JOTASU_MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rr_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, JOTASU_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct svc_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} svc_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GC_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} global_stats SEC(".maps");

/*
 * New flows per backend slot (service id, slot), counted where the backend
 * is picked (tc and socket paths, affinity included). The agent deletes a
 * slot's counter when it writes another backend into the slot or deletes
 * the slot, so a count is "new flows since this backend took this slot".
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, JOTASU_MAX_BACKEND_SLOTS);
	__type(key, struct backend_key);
	__type(value, __u64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} backend_stats SEC(".maps");

/* ClientIP affinity timeouts in seconds, per service id. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, JOTASU_MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} affinity_timeouts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, JOTASU_AFFINITY_ENTRIES);
	__type(key, struct affinity_key);
	__type(value, struct affinity_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} affinity SEC(".maps");

static __always_inline void count_global(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&global_stats, &which);

	if (v)
		*v += 1; /* per-CPU: no atomic needed */
}

#define STAT_TC_NEW 0
#define STAT_SOCK_NEW 1
#define STAT_REJECTED 2

static __always_inline void count_service(__u32 id, int which)
{
	struct svc_stats *s = bpf_map_lookup_elem(&svc_stats, &id);

	if (!s)
		return;
	if (which == STAT_TC_NEW)
		s->tc_new_flows++;
	else if (which == STAT_SOCK_NEW)
		s->sock_new_flows++;
	else
		s->rejected++;
}

static __always_inline void count_backend(__u32 id, __u32 slot)
{
	struct backend_key key = { .svc_id = id, .slot = slot };
	__u64 *n = bpf_map_lookup_elem(&backend_stats, &key);
	__u64 one = 1;

	if (n)
		*n += 1; /* per-CPU: no atomic needed */
	else
		bpf_map_update_elem(&backend_stats, &key, &one, BPF_NOEXIST);
}

static __always_inline struct svc_value *lookup_service(__be32 vip, __be16 port, __u8 proto)
{
	struct svc_key key = { .vip = vip, .port = port, .proto = proto };

	return bpf_map_lookup_elem(&services, &key);
}

/*
 * Picks the next backend of service `id` with `count` (> 0) backends,
 * round-robin: an atomic per-service counter, so consecutive new flows get
 * consecutive slots whichever CPU or hook (tc or socket) sees them. Returns
 * NULL if a slot is missing (never expected: slots are written before count).
 */
static __always_inline struct backend_value *select_backend(__u32 id, __u16 count, __u32 *slot)
{
	struct backend_key key = { .svc_id = id };
	__u64 *counter;
	__u64 n;

	counter = bpf_map_lookup_elem(&rr_counters, &id);
	if (!counter)
		return NULL;
	n = __sync_fetch_and_add(counter, 1);
	key.slot = (__u32)(n % count);
	*slot = key.slot;
	return bpf_map_lookup_elem(&backends, &key);
}

/*
 * The backend of a new flow of service `svc` from `client` (0 for the
 * node's own sockets), copied to `out`: with ClientIP affinity, the backend
 * the client had, while it is still the backend of the same slot and the
 * client's last new flow is within the timeout; else the next round-robin
 * one (remembered for the client). Non-zero: a slot is missing.
 */
static __always_inline int pick_backend(__u32 id, __u16 count, __u16 flags, __be32 client,
					__u32 now_s, struct backend_value *out)
{
	struct affinity_key ak = { .svc_id = id, .client = client };
	struct affinity_value *known, fresh = {};
	struct backend_value *b;
	__u32 *timeout = NULL;
	__u32 slot = 0;

	if (flags & SVC_FLAG_AFFINITY) {
		timeout = bpf_map_lookup_elem(&affinity_timeouts, &id);
		known = bpf_map_lookup_elem(&affinity, &ak);
		if (known && timeout && now_s - known->last_seen_s <= *timeout &&
		    known->slot < count) {
			struct backend_key bk = { .svc_id = id, .slot = known->slot };

			b = bpf_map_lookup_elem(&backends, &bk);
			if (b && b->addr == known->addr && b->port == known->port) {
				known->last_seen_s = now_s;
				*out = *b;
				count_backend(id, bk.slot);
				return 0;
			}
		}
	}
	b = select_backend(id, count, &slot);
	if (!b)
		return -1;
	*out = *b;
	count_backend(id, slot);
	if (flags & SVC_FLAG_AFFINITY) {
		fresh.addr = b->addr;
		fresh.port = b->port;
		fresh.slot = (__u16)slot;
		fresh.last_seen_s = now_s;
		bpf_map_update_elem(&affinity, &ak, &fresh, BPF_ANY);
	}
	return 0;
}
