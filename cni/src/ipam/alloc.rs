//! The choice of the next address: pure, no I/O, so every corner (wrap,
//! full range, a stale `last`) is unit-tested. The store calls it under its
//! lock with the addresses it found on disk.
use std::{collections::BTreeSet, net::Ipv4Addr};

use super::Range;

/// The first address of `range` not in `used`, searching round-robin from
/// just after `last` and wrapping to the range's start; `None` when every
/// address is used. A `last` outside the range (the range was changed)
/// starts the search at the range's start.
///
/// Round-robin rather than lowest-free delays the reuse of an address just
/// released, so a stale peer (a conntrack entry, an ARP cache) is less
/// likely to reach the next pod given it.
///
/// Costs O(used in range), not O(range): it walks `used` in order.
pub fn next_free(
    range: &Range,
    used: &BTreeSet<Ipv4Addr>,
    last: Option<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let start = u64::from(range.start().to_bits());
    let end = u64::from(range.end().to_bits());
    let first = match last {
        Some(l) if range.contains(l) && l != range.end() => u64::from(l.to_bits()) + 1,
        _ => start,
    };
    first_gap(used, first, end).or_else(|| {
        (first > start)
            .then(|| first_gap(used, start, first - 1))
            .flatten()
    })
}

/// The lowest address in `lo..=hi` (as integers, `lo <= hi`) not in `used`.
fn first_gap(used: &BTreeSet<Ipv4Addr>, lo: u64, hi: u64) -> Option<Ipv4Addr> {
    let to_ip = |n: u64| u32::try_from(n).ok().map(Ipv4Addr::from_bits);
    let (lo_ip, hi_ip) = (to_ip(lo)?, to_ip(hi)?);
    let mut candidate = lo;
    for u in used.range(lo_ip..=hi_ip) {
        if u64::from(u.to_bits()) != candidate {
            break;
        }
        candidate += 1;
    }
    if candidate <= hi {
        to_ip(candidate)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn range(a: &str, b: &str) -> Range {
        Range::new(ip(a), ip(b)).unwrap()
    }

    fn set(ips: &[&str]) -> BTreeSet<Ipv4Addr> {
        ips.iter().map(|s| ip(s)).collect()
    }

    #[test]
    fn starts_at_the_range_start_without_a_last() {
        let r = range("10.0.0.2", "10.0.0.6");
        assert_eq!(next_free(&r, &set(&[]), None), Some(ip("10.0.0.2")));
        assert_eq!(
            next_free(&r, &set(&["10.0.0.2", "10.0.0.3"]), None),
            Some(ip("10.0.0.4"))
        );
    }

    #[test]
    fn goes_round_robin_after_last_and_skips_used_ones() {
        let r = range("10.0.0.2", "10.0.0.6");
        // .3 was released but is not reused before the rest of the range.
        assert_eq!(
            next_free(&r, &set(&["10.0.0.2"]), Some(ip("10.0.0.3"))),
            Some(ip("10.0.0.4"))
        );
        assert_eq!(
            next_free(&r, &set(&["10.0.0.4", "10.0.0.5"]), Some(ip("10.0.0.3"))),
            Some(ip("10.0.0.6"))
        );
    }

    #[test]
    fn wraps_to_the_start() {
        let r = range("10.0.0.2", "10.0.0.6");
        assert_eq!(
            next_free(&r, &set(&[]), Some(ip("10.0.0.6"))),
            Some(ip("10.0.0.2"))
        );
        let used = set(&["10.0.0.5", "10.0.0.6", "10.0.0.2"]);
        assert_eq!(
            next_free(&r, &used, Some(ip("10.0.0.4"))),
            Some(ip("10.0.0.3"))
        );
        // Only `last` itself is free: it comes back after a full turn.
        let used = set(&["10.0.0.2", "10.0.0.3", "10.0.0.5", "10.0.0.6"]);
        assert_eq!(
            next_free(&r, &used, Some(ip("10.0.0.4"))),
            Some(ip("10.0.0.4"))
        );
    }

    #[test]
    fn a_full_range_has_nothing_free() {
        let r = range("10.0.0.2", "10.0.0.4");
        let used = set(&["10.0.0.2", "10.0.0.3", "10.0.0.4"]);
        for last in [
            None,
            Some(ip("10.0.0.2")),
            Some(ip("10.0.0.4")),
            Some(ip("192.168.0.1")),
        ] {
            assert_eq!(next_free(&r, &used, last), None, "last {last:?}");
        }
        let one = range("10.0.0.9", "10.0.0.9");
        assert_eq!(
            next_free(&one, &set(&["10.0.0.9"]), Some(ip("10.0.0.9"))),
            None
        );
        assert_eq!(
            next_free(&one, &set(&[]), Some(ip("10.0.0.9"))),
            Some(ip("10.0.0.9"))
        );
    }

    #[test]
    fn a_last_outside_the_range_starts_at_the_start() {
        let r = range("10.0.0.10", "10.0.0.20");
        assert_eq!(
            next_free(&r, &set(&[]), Some(ip("10.0.0.5"))),
            Some(ip("10.0.0.10"))
        );
        assert_eq!(
            next_free(&r, &set(&["10.0.0.10"]), Some(ip("10.0.0.30"))),
            Some(ip("10.0.0.11"))
        );
    }

    #[test]
    fn used_addresses_outside_the_range_are_ignored() {
        let r = range("10.0.0.10", "10.0.0.11");
        let used = set(&["10.0.0.9", "10.0.0.10", "10.0.0.12"]);
        assert_eq!(next_free(&r, &used, None), Some(ip("10.0.0.11")));
    }

    #[test]
    fn works_at_the_edges_of_the_address_space() {
        let top = range("255.255.255.254", "255.255.255.255");
        assert_eq!(
            next_free(&top, &set(&["255.255.255.254"]), None),
            Some(ip("255.255.255.255"))
        );
        assert_eq!(
            next_free(&top, &set(&[]), Some(ip("255.255.255.255"))),
            Some(ip("255.255.255.254"))
        );
        let bottom = range("0.0.0.0", "0.0.0.1");
        assert_eq!(
            next_free(&bottom, &set(&["0.0.0.0"]), Some(ip("0.0.0.1"))),
            Some(ip("0.0.0.1"))
        );
    }

    #[test]
    fn is_fast_on_a_large_nearly_full_range() {
        let r = range("10.0.0.2", "10.0.255.254");
        let used: BTreeSet<Ipv4Addr> = (2..65_534u32)
            .map(|n| Ipv4Addr::from_bits(ip("10.0.0.0").to_bits() + n))
            .collect();
        assert_eq!(
            next_free(&r, &used, Some(ip("10.0.100.0"))),
            Some(ip("10.0.255.254"))
        );
    }
}
