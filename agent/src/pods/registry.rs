//! What the agent's other parts need to know of each pod worker's pods:
//! container ids and log files (logs, exec), running state and usage
//! (heartbeat), phases (metrics). Workers write it; readers take short locks.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use jotasu_api::client::PodUsage;

/// One container as its worker last left it.
#[derive(Debug, Clone, Default)]
pub struct ContainerRecord {
    /// containerd's id (empty before the first create).
    pub id: String,
    /// Whether its task runs.
    pub running: bool,
    /// Log files of its instances, oldest first (the last is the current one).
    pub logs: Vec<PathBuf>,
    /// CPU time of the current instance at the last sample, in ns.
    pub cpu_nanos: u64,
}

/// One pod.
#[derive(Debug, Clone, Default)]
pub struct PodRecord {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Phase, as last reported.
    pub phase: String,
    /// Containers in spec order.
    pub containers: Vec<(String, ContainerRecord)>,
    /// CPU millicores over the last usage interval.
    pub cpu_millis: i64,
    /// Memory working set in bytes.
    pub memory_bytes: i64,
    /// Whether `cpu_millis` is a measured rate: every running container had
    /// an earlier sample to take it from (a first sample has none).
    pub usage_measured: bool,
}

/// Every pod of the node, by uid.
#[derive(Debug, Default)]
pub struct Registry(Mutex<HashMap<String, PodRecord>>);

impl Registry {
    /// Locks it.
    pub fn lock(&self) -> MutexGuard<'_, HashMap<String, PodRecord>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The pod `namespace/name`: its uid and record.
    pub fn find(&self, namespace: &str, name: &str) -> Option<(String, PodRecord)> {
        self.lock()
            .iter()
            .find(|(_, r)| r.namespace == namespace && r.name == name)
            .map(|(u, r)| (u.clone(), r.clone()))
    }

    /// The usage the heartbeat reports.
    pub fn usage(&self) -> Vec<PodUsage> {
        self.lock()
            .values()
            // As metrics-server: a pod is left out until its rate is measured,
            // or the autoscaler would average in a 0 that was never seen.
            .filter(|r| r.usage_measured && r.containers.iter().any(|(_, c)| c.running))
            .map(|r| PodUsage {
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                cpu_millicores: r.cpu_millis,
                memory_bytes: r.memory_bytes,
            })
            .collect()
    }

    /// Pods per phase.
    pub fn phases(&self) -> BTreeMap<String, i64> {
        let mut out = BTreeMap::new();
        for r in self.lock().values() {
            *out.entry(r.phase.clone()).or_insert(0) += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_is_reported_only_once_its_rate_is_measured() {
        let r = Registry::default();
        let running = ContainerRecord {
            running: true,
            ..ContainerRecord::default()
        };
        r.lock().insert(
            "u1".into(),
            PodRecord {
                namespace: "default".into(),
                name: "fresh".into(),
                containers: vec![("c".into(), running.clone())],
                ..PodRecord::default()
            },
        );
        assert!(
            r.usage().is_empty(),
            "a first sample has no rate: not a 0 %"
        );
        if let Some(p) = r.lock().get_mut("u1") {
            p.usage_measured = true;
            p.cpu_millis = 250;
        }
        let usage = r.usage();
        assert_eq!(usage.len(), 1);
        assert_eq!(usage[0].cpu_millicores, 250);
    }
}
