//! The upstream resolvers the node's resolver forwards to, as
//! `--dns-upstream ADDR[:PORT]` names them (repeatable; without it, the
//! nameservers of the node's resolv.conf): IP addresses only (a host name
//! would need a resolver to find the resolver), port 53 unless given, and
//! never an address that leads back to this resolver.

use std::net::{IpAddr, SocketAddr};

/// The DNS port, when an upstream gives none.
pub const DNS_PORT: u16 = 53;

/// Why an upstream is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Not an address with an optional port.
    #[error(
        "{given:?} is not an IP address with an optional port: give e.g. 192.0.2.53, \
         192.0.2.53:5353 or [2001:db8::53]:53 (host names are not resolved)"
    )]
    Syntax {
        /// What was given.
        given: String,
    },
    /// Port 0.
    #[error("{given:?}: port 0 cannot be queried; leave the port out for 53")]
    PortZero {
        /// What was given.
        given: String,
    },
    /// An address no query can be sent to (unspecified, multicast, broadcast).
    #[error("{given:?}: {why} address cannot be a resolver; give the upstream's own address")]
    NotUnicast {
        /// What was given.
        given: String,
        /// What kind of address it is.
        why: &'static str,
    },
    /// The address reaches this very resolver: queries would loop.
    #[error(
        "--dns-upstream {addr} is {what}, which answers with this node's own resolver: \
         forwarded queries would loop; give a resolver outside the cluster"
    )]
    Loop {
        /// The upstream.
        addr: SocketAddr,
        /// What it is (the cluster DNS address, the node's resolver).
        what: &'static str,
    },
}

/// Parses one `--dns-upstream` value: `IPv4[:PORT]`, `IPv6` or `[IPv6]:PORT`.
pub fn parse(given: &str) -> Result<SocketAddr, UpstreamError> {
    let text = given.trim();
    let addr = text
        .parse::<SocketAddr>()
        .or_else(|_| {
            let bare = text
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .unwrap_or(text);
            bare.parse::<IpAddr>()
                .map(|ip| SocketAddr::new(ip, DNS_PORT))
        })
        .map_err(|_| UpstreamError::Syntax {
            given: given.to_owned(),
        })?;
    if addr.port() == 0 {
        return Err(UpstreamError::PortZero {
            given: given.to_owned(),
        });
    }
    let not_unicast = |why| UpstreamError::NotUnicast {
        given: given.to_owned(),
        why,
    };
    match addr.ip() {
        ip if ip.is_unspecified() => Err(not_unicast("an unspecified")),
        ip if ip.is_multicast() => Err(not_unicast("a multicast")),
        IpAddr::V4(v4) if v4.is_broadcast() => Err(not_unicast("the broadcast")),
        _ => Ok(addr),
    }
}

/// Refuses upstreams that are this resolver under another name: the
/// cluster DNS address (`cluster_dns`, port 53) or the resolver's own
/// listening address (`listen`).
pub fn check_no_loop(
    upstreams: &[SocketAddr],
    cluster_dns: Option<IpAddr>,
    listen: Option<SocketAddr>,
) -> Result<(), UpstreamError> {
    for addr in upstreams {
        if cluster_dns.is_some_and(|ip| *addr == SocketAddr::new(ip, DNS_PORT)) {
            return Err(UpstreamError::Loop {
                addr: *addr,
                what: "the cluster DNS address",
            });
        }
        if listen == Some(*addr) {
            return Err(UpstreamError::Loop {
                addr: *addr,
                what: "the node's resolver itself (--node-ip, --dns-port)",
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        parse(s).expect(s).to_string()
    }

    #[test]
    fn addresses_take_port_53_unless_given() {
        assert_eq!(ok("192.0.2.53"), "192.0.2.53:53");
        assert_eq!(ok(" 192.0.2.53:5353 "), "192.0.2.53:5353");
        assert_eq!(ok("2001:db8::53"), "[2001:db8::53]:53");
        assert_eq!(ok("[2001:db8::53]"), "[2001:db8::53]:53");
        assert_eq!(ok("[2001:db8::53]:5353"), "[2001:db8::53]:5353");
        assert_eq!(ok("127.0.0.53"), "127.0.0.53:53");
    }

    #[test]
    fn bad_values_say_what_to_give() {
        for bad in [
            "",
            "dns.example.com",
            "dns.example.com:53",
            "192.0.2.300",
            "192.0.2.53:",
            "192.0.2.53:65536",
            "192.0.2.53:dns",
            "udp://192.0.2.53",
            "2001:db8::53::1",
            "[2001:db8::53",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(matches!(e, UpstreamError::Syntax { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("e.g. 192.0.2.53"), "{e}");
        }
        let e = parse("192.0.2.53:0").expect_err("port 0");
        assert!(e.to_string().contains("leave the port out for 53"), "{e}");
        for (bad, why) in [
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("224.0.0.251", "multicast"),
            ("255.255.255.255", "broadcast"),
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn this_resolver_is_no_upstream() {
        let dns: IpAddr = "10.96.0.10".parse().unwrap();
        let listen: SocketAddr = "192.168.77.10:53".parse().unwrap();
        let fine = [
            parse("192.168.77.53").unwrap(),
            parse("10.96.0.10:5353").unwrap(),
        ];
        assert_eq!(check_no_loop(&fine, Some(dns), Some(listen)), Ok(()));
        let e = check_no_loop(&[parse("10.96.0.10").unwrap()], Some(dns), Some(listen))
            .expect_err("the cluster DNS address");
        assert!(e.to_string().contains("would loop"), "{e}");
        let e = check_no_loop(&[listen], Some(dns), Some(listen)).expect_err("itself");
        assert!(e.to_string().contains("the node's resolver itself"), "{e}");
        assert_eq!(check_no_loop(&[listen], None, None), Ok(()));
    }
}
