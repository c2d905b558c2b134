//! Resource amounts as the scheduler counts them: what a pod requests
//! (summed over its containers, limits standing in for missing requests)
//! and what a node offers (allocatable, else capacity).

use std::collections::BTreeMap;
use std::ops::{Add, Sub};

use jotasu_api::{Node, Pod, Quantity};

/// CPU a container without a CPU request counts as when scoring (100m,
/// Kubernetes' `DefaultMilliCPURequest`).
pub const DEFAULT_CPU_MILLIS: i64 = 100;
/// Memory a container without a memory request counts as when scoring
/// (200 MiB, Kubernetes' `DefaultMemoryRequest`).
pub const DEFAULT_MEMORY_BYTES: i64 = 200 * 1024 * 1024;
/// Pods a node holds when neither allocatable nor capacity says.
pub const DEFAULT_MAX_PODS: i64 = 110;
/// An amount a node does not limit.
pub const UNLIMITED: i64 = i64::MAX;

/// CPU, memory and pod slots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub cpu_millis: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
    /// Pod slots.
    pub pods: i64,
}

impl Add for Resources {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            cpu_millis: self.cpu_millis.saturating_add(o.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(o.memory_bytes),
            pods: self.pods.saturating_add(o.pods),
        }
    }
}

impl Sub for Resources {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self {
            cpu_millis: self.cpu_millis.saturating_sub(o.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_sub(o.memory_bytes),
            pods: self.pods.saturating_sub(o.pods),
        }
    }
}

/// What a placed pod takes from its node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Its requests (one pod slot included): what filtering counts.
    pub requests: Resources,
    /// Its requests with defaults for the missing ones: what scoring counts,
    /// so pods without requests still spread.
    pub scoring: Resources,
}

impl Add for Usage {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            requests: self.requests + o.requests,
            scoring: self.scoring + o.scoring,
        }
    }
}

impl Sub for Usage {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self {
            requests: self.requests - o.requests,
            scoring: self.scoring - o.scoring,
        }
    }
}

fn amount(map: &BTreeMap<String, Quantity>, name: &str) -> Option<i64> {
    map.get(name).map(|q| {
        let v = if name == "cpu" { q.millis() } else { q.units() };
        v.max(0)
    })
}

/// What `pod` takes: per container, each request (a limit where the request
/// is missing, as Kubernetes defaults it), summed, plus one pod slot.
pub fn pod_usage(pod: &Pod) -> Usage {
    let mut usage = Usage {
        requests: Resources {
            pods: 1,
            ..Resources::default()
        },
        scoring: Resources {
            pods: 1,
            ..Resources::default()
        },
    };
    for c in &pod.spec.containers {
        let (requests, limits) = match &c.resources {
            Some(r) => (Some(&r.requests), Some(&r.limits)),
            None => (None, None),
        };
        let get = |name: &str| {
            requests
                .and_then(|m| amount(m, name))
                .or_else(|| limits.and_then(|m| amount(m, name)))
        };
        let cpu = get("cpu");
        let memory = get("memory");
        usage.requests.cpu_millis = usage.requests.cpu_millis.saturating_add(cpu.unwrap_or(0));
        usage.requests.memory_bytes = usage
            .requests
            .memory_bytes
            .saturating_add(memory.unwrap_or(0));
        usage.scoring.cpu_millis = usage
            .scoring
            .cpu_millis
            .saturating_add(cpu.unwrap_or(DEFAULT_CPU_MILLIS));
        usage.scoring.memory_bytes = usage
            .scoring
            .memory_bytes
            .saturating_add(memory.unwrap_or(DEFAULT_MEMORY_BYTES));
    }
    usage
}

/// What `node` offers pods: `status.allocatable`, else `status.capacity`;
/// a resource named in neither is unlimited, except pods (110).
pub fn node_allocatable(node: &Node) -> Resources {
    let get = |name: &str| {
        node.status
            .as_ref()
            .and_then(|s| amount(&s.allocatable, name).or_else(|| amount(&s.capacity, name)))
    };
    Resources {
        cpu_millis: get("cpu").unwrap_or(UNLIMITED),
        memory_bytes: get("memory").unwrap_or(UNLIMITED),
        pods: get("pods").unwrap_or(DEFAULT_MAX_PODS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::kinds::node::NodeStatus;
    use jotasu_api::kinds::pod::ResourceRequirements;
    use jotasu_api::{Container, Quantity};

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let map = |kv: &[(&str, &str)]| kv.iter().map(|(k, v)| ((*k).to_owned(), q(v))).collect();
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
    fn requests_sum_over_containers_with_limits_as_defaults() {
        let mut pod = Pod::default();
        pod.spec.containers = vec![
            container(&[("cpu", "250m"), ("memory", "64Mi")], &[("cpu", "1")]),
            // Limits only: they count as requests.
            container(&[], &[("cpu", "500m"), ("memory", "128Mi")]),
            // Nothing: zero for filtering, defaults for scoring.
            Container {
                name: "bare".into(),
                ..Container::default()
            },
        ];
        let u = pod_usage(&pod);
        assert_eq!(
            u.requests,
            Resources {
                cpu_millis: 750,
                memory_bytes: 192 << 20,
                pods: 1
            }
        );
        assert_eq!(
            u.scoring,
            Resources {
                cpu_millis: 850,
                memory_bytes: (192 << 20) + DEFAULT_MEMORY_BYTES,
                pods: 1
            }
        );
    }

    #[test]
    fn allocatable_falls_back_to_capacity_then_unlimited() {
        let mut node = Node::default();
        assert_eq!(
            node_allocatable(&node),
            Resources {
                cpu_millis: UNLIMITED,
                memory_bytes: UNLIMITED,
                pods: DEFAULT_MAX_PODS
            }
        );
        node.status = Some(NodeStatus {
            capacity: [("cpu".into(), q("4")), ("pods".into(), q("20"))].into(),
            allocatable: [("cpu".into(), q("3500m"))].into(),
            ..NodeStatus::default()
        });
        assert_eq!(
            node_allocatable(&node),
            Resources {
                cpu_millis: 3500,
                memory_bytes: UNLIMITED,
                pods: 20
            }
        );
    }
}
