//! The datapath benchmark's cases — which node, which client, which
//! address and which backend port each one uses — and the service sets both
//! nodes are programmed with.
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use jotasu_ebpf::{Frontend, Service};

use crate::lab::backend_ip;

/// Backends per service (and backend pods per node).
pub(crate) const BACKENDS: usize = 10;
/// The jotasu node's services: 10.96.0.1, 10.96.0.2, ...
const JOTASU_VIPS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 0);
/// The plain node's services: 10.97.0.1, 10.97.0.2, ...
const IPTABLES_VIPS: Ipv4Addr = Ipv4Addr::new(10, 97, 0, 0);
/// Every service's port.
pub(crate) const SERVICE_PORT: u16 = 80;
/// The backend port of the services no case connects to.
pub(crate) const IDLE_PORT: u16 = 8080;
/// Case `c` uses backend port `CASE_PORTS + c`.
const CASE_PORTS: u16 = 9000;

/// One measured way of reaching backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Case {
    /// The client connects to the backends' pod IPs on the jotasu node.
    DirectJotasu,
    /// The client (outside the node cgroup) connects to a VIP: tc DNAT.
    Tc,
    /// The client in the node cgroup connects to a VIP: connect4 translation.
    Socket,
    /// The client connects to the backends' pod IPs on the plain node.
    DirectPlain,
    /// The client connects to a VIP on the plain node: iptables DNAT.
    Iptables,
    /// As [`Case::Iptables`], to the last service of `KUBE-SERVICES`: the
    /// whole chain is walked, as by every new flow that is no service's.
    IptablesLast,
}

/// Cases in the order each turn measures them.
pub(crate) const CASES: [Case; 6] = [
    Case::DirectJotasu,
    Case::Tc,
    Case::Socket,
    Case::DirectPlain,
    Case::Iptables,
    Case::IptablesLast,
];

/// The fewest services a run can have: every VIP case its own service.
pub(crate) const MIN_SERVICES: usize = 4;

impl Case {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::DirectJotasu => "direct pod IPs, jotasu node",
            Self::Tc => "jotasu tc path",
            Self::Socket => "jotasu socket path",
            Self::DirectPlain => "direct pod IPs, plain node",
            Self::Iptables => "iptables, kube-proxy shape",
            Self::IptablesLast => "iptables, last service",
        }
    }

    pub(crate) fn name(self, n: usize) -> String {
        format!("{}, N={n}", self.label())
    }

    pub(crate) fn on_jotasu_node(self) -> bool {
        matches!(self, Self::DirectJotasu | Self::Tc | Self::Socket)
    }

    /// The backend port this case connects to (through a VIP or directly).
    pub(crate) fn port(self) -> u16 {
        CASE_PORTS + self as u16
    }

    /// The index of the service this case connects to among `n`: the
    /// middle, or the last for [`Case::IptablesLast`].
    pub(crate) fn service_index(self, n: usize) -> Option<usize> {
        match self {
            Self::Tc | Self::Iptables => Some(n / 2),
            Self::Socket => Some(n / 2 + 1),
            Self::IptablesLast => Some(n - 1),
            Self::DirectJotasu | Self::DirectPlain => None,
        }
    }

    pub(crate) fn vip(self, i: usize) -> Ipv4Addr {
        let base = if self.on_jotasu_node() {
            JOTASU_VIPS
        } else {
            IPTABLES_VIPS
        };
        Ipv4Addr::from(u32::from(base) + 1 + i as u32)
    }

    /// Where the client connects: the case's VIP, or the 10 backends in turn.
    pub(crate) fn targets(self, n: usize) -> Vec<SocketAddr> {
        match self.service_index(n) {
            Some(i) => vec![SocketAddr::from((self.vip(i), SERVICE_PORT))],
            None => (0..BACKENDS)
                .map(|b| SocketAddr::from((backend_ip(b), self.port())))
                .collect(),
        }
    }
}

/// The `n` services of the world whose VIP cases are `cases`: service `i`
/// is VIP `base + 1 + i`:80 → the 10 backends on [`IDLE_PORT`], or on its
/// case's port for a measured service.
pub(crate) fn service_set(n: usize, cases: &[Case]) -> Vec<Service> {
    (0..n)
        .map(|i| {
            let port = cases
                .iter()
                .find(|c| c.service_index(n) == Some(i))
                .map(|c| c.port());
            let backends =
                (0..BACKENDS).map(|b| SocketAddrV4::new(backend_ip(b), port.unwrap_or(IDLE_PORT)));
            Service::new(Frontend::tcp(cases[0].vip(i), SERVICE_PORT), backends)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_have_their_own_ports_and_target_the_middle() {
        let ports: std::collections::HashSet<u16> = CASES.iter().map(|c| c.port()).collect();
        assert_eq!(ports.len(), CASES.len());
        assert!(!ports.contains(&IDLE_PORT));
        assert_eq!(
            Case::Tc.targets(10000),
            [SocketAddr::from(([10, 96, 19, 137], 80))]
        );
        assert_eq!(
            Case::Socket.targets(10),
            [SocketAddr::from(([10, 96, 0, 7], 80))]
        );
        assert_eq!(
            Case::Iptables.targets(10),
            [SocketAddr::from(([10, 97, 0, 6], 80))]
        );
        assert_eq!(
            Case::IptablesLast.targets(10000),
            [SocketAddr::from(([10, 97, 39, 16], 80))]
        );
        let direct = Case::DirectPlain.targets(10);
        assert_eq!(direct.len(), BACKENDS);
        assert_eq!(
            direct[9],
            SocketAddr::from(([10, 244, 0, 20], Case::DirectPlain.port()))
        );
    }

    #[test]
    fn vip_cases_of_a_node_never_share_a_service() {
        for n in [MIN_SERVICES, 10, 10_000] {
            for on_jotasu in [true, false] {
                let mut idx: Vec<usize> = CASES
                    .iter()
                    .filter(|c| c.on_jotasu_node() == on_jotasu)
                    .filter_map(|c| c.service_index(n))
                    .collect();
                assert!(idx.iter().all(|&i| i < n), "n={n}: {idx:?}");
                let len = idx.len();
                idx.sort_unstable();
                idx.dedup();
                assert_eq!(idx.len(), len, "n={n}: {idx:?}");
            }
        }
    }

    #[test]
    fn measured_services_point_at_their_case_port() {
        let set = service_set(10, &[Case::Tc, Case::Socket]);
        assert_eq!(set.len(), 10);
        assert_eq!(set[5].frontend.vip, Ipv4Addr::new(10, 96, 0, 6));
        assert_eq!(set[5].backends[0].port(), Case::Tc.port());
        assert_eq!(set[6].backends[9].port(), Case::Socket.port());
        assert_eq!(set[0].backends[0].port(), IDLE_PORT);
        assert_eq!(
            service_set(4, &[Case::Iptables])[2].frontend.vip,
            Ipv4Addr::new(10, 97, 0, 3)
        );
    }
}
