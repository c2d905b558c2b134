//! A container's cgroup limits from its requests and limits, as the kubelet
//! computes them (CPU shares from the request, CFS quota from the limit,
//! memory limit), and the pod's QoS class and OOM score adjustment.

use jotasu_api::quantity::Quantity;
use jotasu_api::{Container, Pod};

/// Smallest CPU shares value (the kubelet's `MinShares`).
pub const MIN_SHARES: u64 = 2;
/// Largest CPU shares value (`MaxShares`).
pub const MAX_SHARES: u64 = 262_144;
/// CPU shares per core.
pub const SHARES_PER_CPU: i64 = 1024;
/// The CFS period, in microseconds (100 ms).
pub const QUOTA_PERIOD: u64 = 100_000;
/// Smallest CFS quota, in microseconds (1 ms).
pub const MIN_QUOTA: i64 = 1000;

/// The cgroup limits of one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainerLimits {
    /// `cpu.shares` (cgroup v1 scale; runc converts to `cpu.weight` on v2).
    pub cpu_shares: u64,
    /// CFS quota in microseconds per [`Self::cpu_period`]; `None`: unlimited.
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds (always [`QUOTA_PERIOD`]).
    pub cpu_period: u64,
    /// Memory limit in bytes; `None`: unlimited.
    pub memory_limit: Option<i64>,
}

/// The kubelet's `MilliCPUToShares`: 1024 per core, at least 2, at most 262144.
pub fn milli_cpu_to_shares(milli_cpu: i64) -> u64 {
    if milli_cpu <= 0 {
        return MIN_SHARES;
    }
    let shares = milli_cpu.saturating_mul(SHARES_PER_CPU) / 1000;
    u64::try_from(shares).map_or(MIN_SHARES, |s| s.clamp(MIN_SHARES, MAX_SHARES))
}

/// The kubelet's `MilliCPUToQuota`: `None` for no limit, else the share of
/// `period`, at least 1 ms.
pub fn milli_cpu_to_quota(milli_cpu: i64, period: u64) -> Option<i64> {
    if milli_cpu <= 0 {
        return None;
    }
    let period = i64::try_from(period).unwrap_or(i64::MAX);
    Some((milli_cpu.saturating_mul(period) / 1000).max(MIN_QUOTA))
}

fn request<'a>(c: &'a Container, name: &str) -> Option<&'a Quantity> {
    c.resources.as_ref()?.requests.get(name)
}

fn limit<'a>(c: &'a Container, name: &str) -> Option<&'a Quantity> {
    c.resources.as_ref()?.limits.get(name)
}

/// The container's limits: shares from `requests.cpu` (from `limits.cpu`
/// when no request is given, as the API server defaults it), quota from
/// `limits.cpu`, memory from `limits.memory`. Zero limits mean none.
pub fn container_limits(c: &Container) -> ContainerLimits {
    let cpu_request = request(c, "cpu").or_else(|| limit(c, "cpu"));
    let cpu_shares = milli_cpu_to_shares(cpu_request.map_or(0, Quantity::millis));
    let cpu_quota = limit(c, "cpu").and_then(|q| milli_cpu_to_quota(q.millis(), QUOTA_PERIOD));
    let memory_limit = limit(c, "memory").map(Quantity::units).filter(|b| *b > 0);
    ContainerLimits {
        cpu_shares,
        cpu_quota,
        cpu_period: QUOTA_PERIOD,
        memory_limit,
    }
}

pub use jotasu_api::kinds::qos::{QosClass, qos_class};

/// The container's `oom_score_adj`, as the kubelet sets it: -997 for
/// Guaranteed pods, 1000 for BestEffort, and for Burstable ones 1000 less
/// the container's share of the node's memory (`memory_capacity` bytes)
/// in thousandths, kept within 3..=999.
pub fn oom_score_adj(pod: &Pod, container: &Container, memory_capacity: u64) -> i32 {
    match qos_class(pod) {
        QosClass::Guaranteed => -997,
        QosClass::BestEffort => 1000,
        QosClass::Burstable => {
            let req = request(container, "memory")
                .or_else(|| limit(container, "memory"))
                .map_or(0, Quantity::units);
            let cap = i128::from(memory_capacity.max(1));
            let adj = 1000 - (1000 * i128::from(req.max(0))) / cap;
            i32::try_from(adj.clamp(3, 999)).unwrap_or(999)
        }
    }
}

/// The lowest `oom_score_adj` the OCI runtime can give a container: any,
/// with CAP_SYS_RESOURCE; without it (an agent in a container that lacks
/// it) no lower than the agent's own, which the kernel refuses to go below
/// ("write to /proc/self/oom_score_adj: Permission denied" at start).
/// Guaranteed pods then share the agent's protection from the OOM killer
/// instead of failing to start. Read once; logged once.
pub fn oom_score_adj_floor() -> i32 {
    static FLOOR: std::sync::OnceLock<i32> = std::sync::OnceLock::new();
    *FLOOR.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let effective = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(u64::MAX);
        const CAP_SYS_RESOURCE: u32 = 24;
        if effective >> CAP_SYS_RESOURCE & 1 == 1 {
            return i32::MIN;
        }
        let own = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        tracing::warn!(
            floor = own,
            "no CAP_SYS_RESOURCE: containers get an oom_score_adj no lower than the agent's own"
        );
        own
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use jotasu_api::kinds::pod::ResourceRequirements;

    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).expect("quantity")
    }

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let map = |v: &[(&str, &str)]| -> BTreeMap<String, Quantity> {
            v.iter().map(|(k, s)| ((*k).to_owned(), q(s))).collect()
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: map(requests),
                limits: map(limits),
            }),
            ..Container::default()
        }
    }

    #[test]
    fn shares_follow_milli_cpu_to_shares() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(2), 2);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(250), 256);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(1_000_000), MAX_SHARES);
    }

    #[test]
    fn quota_follows_milli_cpu_to_quota() {
        assert_eq!(milli_cpu_to_quota(0, QUOTA_PERIOD), None);
        assert_eq!(milli_cpu_to_quota(5, QUOTA_PERIOD), Some(1000));
        assert_eq!(milli_cpu_to_quota(500, QUOTA_PERIOD), Some(50_000));
        assert_eq!(milli_cpu_to_quota(2000, QUOTA_PERIOD), Some(200_000));
    }

    #[test]
    fn limits_from_requests_and_limits() {
        let l = container_limits(&container(
            &[("cpu", "250m"), ("memory", "64Mi")],
            &[("cpu", "500m"), ("memory", "128Mi")],
        ));
        assert_eq!(
            l,
            ContainerLimits {
                cpu_shares: 256,
                cpu_quota: Some(50_000),
                cpu_period: 100_000,
                memory_limit: Some(128 * 1024 * 1024),
            }
        );
    }

    #[test]
    fn cpu_request_defaults_to_limit_and_nothing_means_minimum() {
        let l = container_limits(&container(&[], &[("cpu", "1")]));
        assert_eq!((l.cpu_shares, l.cpu_quota), (1024, Some(100_000)));
        let l = container_limits(&Container::default());
        assert_eq!(l.cpu_shares, 2);
        assert_eq!(l.cpu_quota, None);
        assert_eq!(l.memory_limit, None);
        assert_eq!(l.cpu_period, 100_000);
        let l = container_limits(&container(&[], &[("memory", "1G")]));
        assert_eq!(l.memory_limit, Some(1_000_000_000));
    }

    fn pod(containers: Vec<Container>) -> Pod {
        let mut p = Pod::default();
        p.spec.containers = containers;
        p
    }

    #[test]
    fn qos_classes() {
        assert_eq!(
            qos_class(&pod(vec![Container::default()])),
            QosClass::BestEffort
        );
        let g = container(&[], &[("cpu", "1"), ("memory", "1Gi")]);
        assert_eq!(qos_class(&pod(vec![g.clone()])), QosClass::Guaranteed);
        let b = container(&[("cpu", "100m")], &[]);
        assert_eq!(qos_class(&pod(vec![b.clone()])), QosClass::Burstable);
        assert_eq!(
            qos_class(&pod(vec![g.clone(), Container::default()])),
            QosClass::Burstable
        );
        let unequal = container(
            &[("cpu", "500m"), ("memory", "1Gi")],
            &[("cpu", "1"), ("memory", "1Gi")],
        );
        assert_eq!(qos_class(&pod(vec![unequal])), QosClass::Burstable);
        assert_eq!(QosClass::BestEffort.as_str(), "BestEffort");
    }

    #[test]
    fn oom_score_adjustments() {
        let g = container(&[], &[("cpu", "1"), ("memory", "1Gi")]);
        assert_eq!(oom_score_adj(&pod(vec![g.clone()]), &g, 1 << 34), -997);
        let be = Container::default();
        assert_eq!(oom_score_adj(&pod(vec![be.clone()]), &be, 1 << 34), 1000);
        let b = container(&[("memory", "4Gi")], &[]);
        assert_eq!(oom_score_adj(&pod(vec![b.clone()]), &b, 16 << 30), 750);
        let none = container(&[("cpu", "1")], &[]);
        assert_eq!(
            oom_score_adj(&pod(vec![none.clone()]), &none, 16 << 30),
            999
        );
        let huge = container(&[("memory", "32Gi")], &[]);
        assert_eq!(oom_score_adj(&pod(vec![huge.clone()]), &huge, 16 << 30), 3);
    }
}
