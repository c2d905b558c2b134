//! [`Range`]: the inclusive span of IPv4 addresses an allocator hands out.
use std::{fmt, net::Ipv4Addr};

/// An inclusive, never empty span `start..=end` of IPv4 addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Range {
    start: Ipv4Addr,
    end: Ipv4Addr,
}

impl Range {
    /// The span `start..=end`; `None` when `start > end`.
    pub fn new(start: Ipv4Addr, end: Ipv4Addr) -> Option<Self> {
        (start <= end).then_some(Self { start, end })
    }

    /// The first address.
    pub fn start(&self) -> Ipv4Addr {
        self.start
    }

    /// The last address (included).
    pub fn end(&self) -> Ipv4Addr {
        self.end
    }

    /// How many addresses the span holds (at least 1).
    pub fn len(&self) -> usize {
        // Lossless on the 32- and 64-bit targets jotasu runs on.
        (u64::from(self.end.to_bits()) - u64::from(self.start.to_bits()) + 1) as usize
    }

    /// Always false: a `Range` holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `ip` lies in the span.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.start <= ip && ip <= self.end
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn counts_and_contains_inclusively() {
        let r = Range::new(ip("10.0.0.2"), ip("10.0.0.254")).unwrap();
        assert_eq!(r.len(), 253);
        assert!(r.contains(ip("10.0.0.2")) && r.contains(ip("10.0.0.254")));
        assert!(!r.contains(ip("10.0.0.1")) && !r.contains(ip("10.0.0.255")));
        assert_eq!(r.to_string(), "10.0.0.2-10.0.0.254");
        let one = Range::new(ip("10.0.0.9"), ip("10.0.0.9")).unwrap();
        assert_eq!((one.len(), one.is_empty()), (1, false));
        assert_eq!(Range::new(ip("10.0.0.9"), ip("10.0.0.8")), None);
        let all = Range::new(ip("0.0.0.0"), ip("255.255.255.255")).unwrap();
        assert_eq!(all.len() as u64, 1 << 32);
    }
}
