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

/// One container's requests (a limit where the request is missing, as
/// Kubernetes defaults it): for fitting (missing: 0) and for scoring
/// (missing: the scheduler's defaults), as [cpu, memory].
fn container_needs(c: &jotasu_api::Container) -> ([i64; 2], [i64; 2]) {
    let (requests, limits) = match &c.resources {
        Some(r) => (Some(&r.requests), Some(&r.limits)),
        None => (None, None),
    };
    let get = |name: &str| {
        requests
            .and_then(|m| amount(m, name))
            .or_else(|| limits.and_then(|m| amount(m, name)))
    };
    let (cpu, memory) = (get("cpu"), get("memory"));
    (
        [cpu.unwrap_or(0), memory.unwrap_or(0)],
        [
            cpu.unwrap_or(DEFAULT_CPU_MILLIS),
            memory.unwrap_or(DEFAULT_MEMORY_BYTES),
        ],
    )
}

fn add(a: [i64; 2], b: [i64; 2]) -> [i64; 2] {
    [a[0].saturating_add(b[0]), a[1].saturating_add(b[1])]
}

fn max(a: [i64; 2], b: [i64; 2]) -> [i64; 2] {
    [a[0].max(b[0]), a[1].max(b[1])]
}

/// What `pod` takes, plus one pod slot, as Kubernetes' `PodRequests`
/// counts it: the app containers' requests summed with the sidecars',
/// or, when larger, what an init container needs beside the sidecars
/// started before it.
pub fn pod_usage(pod: &Pod) -> Usage {
    let mut apps = ([0, 0], [0, 0]);
    for c in &pod.spec.containers {
        let (fit, score) = container_needs(c);
        apps = (add(apps.0, fit), add(apps.1, score));
    }
    let mut sidecars = ([0, 0], [0, 0]);
    let mut init_peak = ([0, 0], [0, 0]);
    for c in &pod.spec.init_containers {
        let (fit, score) = container_needs(c);
        if c.is_sidecar() {
            sidecars = (add(sidecars.0, fit), add(sidecars.1, score));
            init_peak = (max(init_peak.0, sidecars.0), max(init_peak.1, sidecars.1));
        } else {
            init_peak = (
                max(init_peak.0, add(sidecars.0, fit)),
                max(init_peak.1, add(sidecars.1, score)),
            );
        }
    }
    let fit = max(add(apps.0, sidecars.0), init_peak.0);
    let score = max(add(apps.1, sidecars.1), init_peak.1);
    Usage {
        requests: Resources {
            pods: 1,
            cpu_millis: fit[0],
            memory_bytes: fit[1],
        },
        scoring: Resources {
            pods: 1,
            cpu_millis: score[0],
            memory_bytes: score[1],
        },
    }
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
    fn init_containers_and_sidecars_as_pod_requests_counts_them() {
        let mut pod = Pod::default();
        pod.spec.containers = vec![container(&[("cpu", "100m"), ("memory", "10Mi")], &[])];
        let mut sidecar = container(&[("cpu", "50m"), ("memory", "5Mi")], &[]);
        sidecar.restart_policy = Some("Always".into());
        pod.spec.init_containers = vec![
            // Runs alone: the largest CPU.
            container(&[("cpu", "1"), ("memory", "1Mi")], &[]),
            sidecar,
            // Runs beside the sidecar: 20Mi + 5Mi of memory.
            container(&[("cpu", "10m"), ("memory", "20Mi")], &[]),
        ];
        let u = pod_usage(&pod);
        assert_eq!(
            u.requests,
            Resources {
                cpu_millis: 1000,
                memory_bytes: 25 << 20,
                pods: 1
            }
        );
        // Without init containers' peaks: the apps and the sidecar.
        pod.spec.init_containers.remove(0);
        pod.spec.init_containers.pop();
        assert_eq!(pod_usage(&pod).requests.cpu_millis, 150);
        assert_eq!(pod_usage(&pod).requests.memory_bytes, 15 << 20);
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
