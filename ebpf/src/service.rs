//! The service model the rest of jotasu programs the data plane with, and its
//! validation. Plain data: no kernel access here.
use std::{
    fmt,
    net::{Ipv4Addr, SocketAddrV4},
    str::FromStr,
};

use crate::{abi, error::ServiceError};

/// Transport protocol of a service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Self::Tcp => libc::IPPROTO_TCP as u8,
            Self::Udp => libc::IPPROTO_UDP as u8,
        }
    }

    /// The protocol with this IP protocol number, if it is one jotasu balances.
    pub const fn from_number(n: u8) -> Option<Self> {
        match n as i32 {
            libc::IPPROTO_TCP => Some(Self::Tcp),
            libc::IPPROTO_UDP => Some(Self::Udp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
        })
    }
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "TCP" => Ok(Self::Tcp),
            "UDP" => Ok(Self::Udp),
            _ => Err(format!("unknown protocol {s:?}: expected TCP or UDP")),
        }
    }
}

/// What clients connect to: a virtual IP, a port and a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    /// The service's virtual IP.
    pub vip: Ipv4Addr,
    /// The service port.
    pub port: u16,
    /// The transport protocol.
    pub protocol: Protocol,
}

impl Frontend {
    /// A TCP frontend.
    pub const fn tcp(vip: Ipv4Addr, port: u16) -> Self {
        Self {
            vip,
            port,
            protocol: Protocol::Tcp,
        }
    }

    /// A UDP frontend.
    pub const fn udp(vip: Ipv4Addr, port: u16) -> Self {
        Self {
            vip,
            port,
            protocol: Protocol::Udp,
        }
    }

    pub(crate) fn key(&self) -> abi::SvcKey {
        abi::SvcKey {
            vip: u32::from(self.vip).to_be(),
            port: self.port.to_be(),
            proto: self.protocol.number(),
            pad: 0,
        }
    }

    /// The frontend a map key describes; `None` for a protocol jotasu never writes.
    pub(crate) fn from_key(key: &abi::SvcKey) -> Option<Self> {
        Some(Self {
            vip: Ipv4Addr::from(u32::from_be(key.vip)),
            port: u16::from_be(key.port),
            protocol: Protocol::from_number(key.proto)?,
        })
    }
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.vip, self.port, self.protocol)
    }
}

/// Who reaches a frontend and how its new flows are balanced (the
/// `SVC_FLAG_*` bits of its map entry and its affinity timeout).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Reach {
    /// Reachable from outside the cluster on the node's underlay (a node
    /// port on the node's address, an external IP, a host port).
    pub external: bool,
    /// External clients' source is rewritten to the node's address
    /// (`externalTrafficPolicy: Cluster`); without it the client's address
    /// reaches the backend (`Local`, host ports).
    pub snat: bool,
    /// ClientIP session affinity: a client's new flows keep its backend
    /// while its previous new flow is at most this many seconds old (0: none).
    pub affinity_timeout_s: u32,
}

impl Reach {
    /// The `svc_value.flags` bits.
    pub(crate) fn flags(self) -> u16 {
        let mut f = 0;
        if self.external {
            f |= abi::SVC_FLAG_EXTERNAL;
        }
        if self.snat {
            f |= abi::SVC_FLAG_SNAT;
        }
        if self.affinity_timeout_s > 0 {
            f |= abi::SVC_FLAG_AFFINITY;
        }
        f
    }

    /// The reach a map entry's flags and affinity timeout describe.
    pub(crate) fn from_flags(flags: u16, affinity_timeout_s: u32) -> Self {
        Self {
            external: flags & abi::SVC_FLAG_EXTERNAL != 0,
            snat: flags & abi::SVC_FLAG_SNAT != 0,
            affinity_timeout_s: if flags & abi::SVC_FLAG_AFFINITY != 0 {
                affinity_timeout_s
            } else {
                0
            },
        }
    }
}

/// A service: a frontend and the backends its new flows rotate over, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// What clients connect to.
    pub frontend: Frontend,
    /// Where new flows go, round-robin in this order. Empty: flows are refused.
    pub backends: Vec<SocketAddrV4>,
    /// Who reaches it, and session affinity.
    pub reach: Reach,
}

impl Service {
    /// A service with these backends, reached from inside the cluster.
    pub fn new(frontend: Frontend, backends: impl IntoIterator<Item = SocketAddrV4>) -> Self {
        Self {
            frontend,
            backends: backends.into_iter().collect(),
            reach: Reach::default(),
        }
    }

    /// The same service with another reach.
    #[must_use]
    pub fn with_reach(mut self, reach: Reach) -> Self {
        self.reach = reach;
        self
    }

    /// Checks what the data plane cannot represent; the error names the service.
    pub fn validate(&self) -> Result<(), ServiceError> {
        let frontend = self.frontend;
        if frontend.port == 0 {
            return Err(ServiceError::ZeroPort { frontend });
        }
        if frontend.vip.is_unspecified() || frontend.vip.is_broadcast() {
            return Err(ServiceError::InvalidVip { frontend });
        }
        if self.reach.snat && !self.reach.external {
            return Err(ServiceError::SnatWithoutExternal { frontend });
        }
        if self.backends.len() > abi::MAX_BACKENDS_PER_SERVICE {
            return Err(ServiceError::TooManyBackends {
                frontend,
                count: self.backends.len(),
                max: abi::MAX_BACKENDS_PER_SERVICE,
            });
        }
        for (i, b) in self.backends.iter().enumerate() {
            if b.port() == 0 || b.ip().is_unspecified() {
                return Err(ServiceError::InvalidBackend {
                    frontend,
                    backend: *b,
                });
            }
            if self.backends[..i].contains(b) {
                return Err(ServiceError::DuplicateBackend {
                    frontend,
                    backend: *b,
                });
            }
        }
        Ok(())
    }
}

pub(crate) fn backend_value(b: &SocketAddrV4) -> abi::BackendValue {
    abi::BackendValue {
        addr: u32::from(*b.ip()).to_be(),
        port: b.port().to_be(),
        pad: 0,
    }
}

pub(crate) fn backend_from_value(v: &abi::BackendValue) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(u32::from_be(v.addr)), u16::from_be(v.port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> Frontend {
        Frontend::tcp(Ipv4Addr::new(10, 96, 0, 1), 80)
    }

    fn be(last: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 244, 0, last), port)
    }

    #[test]
    fn valid_service_passes() {
        assert_eq!(
            Service::new(web(), [be(1, 8080), be(2, 8080)]).validate(),
            Ok(())
        );
        assert_eq!(
            Service::new(web(), []).validate(),
            Ok(()),
            "no backends is valid: it rejects"
        );
    }

    #[test]
    fn bad_input_is_named() {
        let zero = Frontend::tcp(Ipv4Addr::new(10, 96, 0, 1), 0);
        assert_eq!(
            Service::new(zero, []).validate(),
            Err(ServiceError::ZeroPort { frontend: zero })
        );
        assert_eq!(
            Service::new(web(), [be(1, 0)]).validate(),
            Err(ServiceError::InvalidBackend {
                frontend: web(),
                backend: be(1, 0)
            })
        );
        assert_eq!(
            Service::new(web(), [be(1, 80), be(2, 80), be(1, 80)]).validate(),
            Err(ServiceError::DuplicateBackend {
                frontend: web(),
                backend: be(1, 80)
            })
        );
        let many = (0..=abi::MAX_BACKENDS_PER_SERVICE as u16).map(|p| be(1, p + 1));
        let err = Service::new(web(), many).validate().unwrap_err();
        assert!(err.to_string().contains("at most 1024"), "{err}");
    }

    #[test]
    fn key_round_trips_in_network_order() {
        let k = web().key();
        assert_eq!(k.vip.to_ne_bytes(), [10, 96, 0, 1]);
        assert_eq!(k.port.to_ne_bytes(), [0, 80]);
        assert_eq!(Frontend::from_key(&k), Some(web()));
        assert_eq!(web().to_string(), "10.96.0.1:80/TCP");
    }
}
