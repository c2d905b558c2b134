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
            .filter(|r| r.containers.iter().any(|(_, c)| c.running))
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
