//! Typed handles on the pinned maps: the only code that reads or writes them.
use aya::{
    Ebpf,
    maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap, PerCpuValues},
};

use crate::{abi, error::DatapathError, plan::Op, service};

/// Every map the Datapath reads or writes.
pub(crate) struct Maps {
    services: HashMap<MapData, abi::SvcKey, abi::SvcValue>,
    backends: HashMap<MapData, abi::BackendKey, abi::BackendValue>,
    rr_counters: Array<MapData, u64>,
    svc_stats: PerCpuArray<MapData, abi::SvcStats>,
    global_stats: PerCpuArray<MapData, u64>,
    conntrack: HashMap<MapData, abi::CtKey, abi::CtValue>,
    affinity_timeouts: Array<MapData, u32>,
    backend_stats: PerCpuHashMap<MapData, abi::BackendKey, u64>,
    nr_cpus: usize,
}

impl std::fmt::Debug for Maps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maps")
            .field("nr_cpus", &self.nr_cpus)
            .finish_non_exhaustive()
    }
}

fn take<T>(ebpf: &mut Ebpf, map: &'static str) -> Result<T, DatapathError>
where
    T: TryFrom<aya::maps::Map>,
{
    ebpf.take_map(map)
        .and_then(|m| T::try_from(m).ok())
        .ok_or(DatapathError::MissingMap { map })
}

pub(crate) fn map_err(
    op: &'static str,
    map: &'static str,
) -> impl FnOnce(aya::maps::MapError) -> DatapathError {
    move |e| DatapathError::Map {
        op,
        map,
        source: Box::new(e),
    }
}

impl Maps {
    /// Takes the maps out of the loaded `from_pod` object (which defines them all).
    pub(crate) fn take(ebpf: &mut Ebpf) -> Result<Self, DatapathError> {
        let nr_cpus = aya::util::nr_cpus().map_err(|(what, source)| DatapathError::Io {
            action: "reading the CPU count from",
            path: what.into(),
            source,
        })?;
        Ok(Self {
            services: take(ebpf, "services")?,
            backends: take(ebpf, "backends")?,
            rr_counters: take(ebpf, "rr_counters")?,
            svc_stats: take(ebpf, "svc_stats")?,
            global_stats: take(ebpf, "global_stats")?,
            conntrack: take(ebpf, "conntrack")?,
            affinity_timeouts: take(ebpf, "affinity_timeouts")?,
            backend_stats: take(ebpf, "backend_stats")?,
            nr_cpus,
        })
    }

    pub(crate) fn services(&self) -> Result<Vec<(abi::SvcKey, abi::SvcValue)>, DatapathError> {
        self.services
            .iter()
            .collect::<Result<_, _>>()
            .map_err(map_err("iterate", "services"))
    }

    pub(crate) fn backends(
        &self,
    ) -> Result<Vec<(abi::BackendKey, abi::BackendValue)>, DatapathError> {
        self.backends
            .iter()
            .collect::<Result<_, _>>()
            .map_err(map_err("iterate", "backends"))
    }

    /// Performs one planned write.
    pub(crate) fn write(&mut self, op: &Op) -> Result<(), DatapathError> {
        match *op {
            Op::ResetCounters { id } => {
                self.rr_counters
                    .set(id, 0, 0)
                    .map_err(map_err("reset", "rr_counters"))?;
                let zeros = PerCpuValues::try_from(vec![abi::SvcStats::default(); self.nr_cpus])
                    .map_err(|e| DatapathError::Io {
                        action: "building per-CPU zeros for",
                        path: "svc_stats".into(),
                        source: e,
                    })?;
                self.svc_stats
                    .set(id, zeros, 0)
                    .map_err(map_err("reset", "svc_stats"))
            }
            Op::PutSlot { id, slot, backend } => {
                let key = abi::BackendKey { svc_id: id, slot };
                self.backends
                    .insert(key, service::backend_value(&backend), 0)
                    .map_err(map_err("insert", "backends"))?;
                // The slot has another backend now (or a new service): its
                // count starts again. After the write, so no flow of the new
                // backend is credited to the old one.
                self.forget_backend_flows(key)
            }
            Op::PutAffinity { id, timeout_s } => self
                .affinity_timeouts
                .set(id, timeout_s, 0)
                .map_err(map_err("write", "affinity_timeouts")),
            Op::PutService {
                frontend,
                id,
                count,
                reach,
            } => self
                .services
                .insert(
                    frontend.key(),
                    abi::SvcValue {
                        id,
                        count,
                        flags: reach.flags(),
                    },
                    0,
                )
                .map_err(map_err("insert", "services")),
            Op::DeleteService { frontend } => ignore_missing(self.services.remove(&frontend.key()))
                .map_err(map_err("remove", "services")),
            Op::DeleteSlot { id, slot } => {
                let key = abi::BackendKey { svc_id: id, slot };
                ignore_missing(self.backends.remove(&key))
                    .map_err(map_err("remove", "backends"))?;
                self.forget_backend_flows(key)
            }
        }
    }

    fn forget_backend_flows(&mut self, key: abi::BackendKey) -> Result<(), DatapathError> {
        ignore_missing(self.backend_stats.remove(&key)).map_err(map_err("remove", "backend_stats"))
    }

    /// New flows of backend slot `slot` of service `id`, summed over CPUs
    /// (0 before its first).
    pub(crate) fn backend_flows(&self, id: u32, slot: u32) -> Result<u64, DatapathError> {
        match self
            .backend_stats
            .get(&abi::BackendKey { svc_id: id, slot }, 0)
        {
            Ok(per_cpu) => Ok(per_cpu.iter().fold(0u64, |a, n| a.saturating_add(*n))),
            Err(e) if is_missing(&e) => Ok(0),
            Err(e) => Err(map_err("read", "backend_stats")(e)),
        }
    }

    /// The service's counters summed over CPUs.
    pub(crate) fn svc_stats(&self, id: u32) -> Result<abi::SvcStats, DatapathError> {
        let per_cpu = self
            .svc_stats
            .get(&id, 0)
            .map_err(map_err("read", "svc_stats"))?;
        Ok(per_cpu
            .iter()
            .fold(abi::SvcStats::default(), |a, s| abi::SvcStats {
                tc_new_flows: a.tc_new_flows + s.tc_new_flows,
                sock_new_flows: a.sock_new_flows + s.sock_new_flows,
                rejected: a.rejected + s.rejected,
            }))
    }

    /// The node-wide counters summed over CPUs, named as in [`abi::GLOBAL_COUNTERS`].
    pub(crate) fn global_stats(&self) -> Result<Vec<(&'static str, u64)>, DatapathError> {
        abi::GLOBAL_COUNTERS
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let v = self
                    .global_stats
                    .get(&(i as u32), 0)
                    .map_err(map_err("read", "global_stats"))?;
                Ok((*name, v.iter().sum()))
            })
            .collect()
    }

    /// The ClientIP affinity timeout of service `id` (0 when unreadable).
    pub(crate) fn affinity_timeout(&self, id: u32) -> u32 {
        self.affinity_timeouts.get(&id, 0).unwrap_or(0)
    }

    pub(crate) fn conntrack(&self) -> Result<Vec<(abi::CtKey, abi::CtValue)>, DatapathError> {
        self.conntrack
            .iter()
            .collect::<Result<_, _>>()
            .map_err(map_err("iterate", "conntrack"))
    }
}

pub(crate) fn is_missing(e: &aya::maps::MapError) -> bool {
    matches!(e, aya::maps::MapError::KeyNotFound)
        || matches!(e, aya::maps::MapError::SyscallError(s) if s.io_error.raw_os_error() == Some(libc::ENOENT))
}

/// Deleting what is already gone is success: removal is idempotent.
fn ignore_missing(r: Result<(), aya::maps::MapError>) -> Result<(), aya::maps::MapError> {
    match r {
        Err(e) if is_missing(&e) => Ok(()),
        other => other,
    }
}
