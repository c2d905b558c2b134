//! What is programmed, and the ordered map writes that turn it into what is
//! wanted. Pure: the [`Programmed`] model is built from the maps' contents and
//! updated op by op as the writes succeed, so it always equals the maps.
//!
//! Ordering rules (a reader of the maps never sees a half-written service):
//! - upsert: backend slots first, the service entry (with its count) last,
//!   then slots beyond the new count are deleted;
//! - remove: the service entry first, then its slots;
//! - a new service id gets its round-robin counter and stats zeroed before
//!   the service entry exists, so its first flow goes to backend 0.
use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    net::SocketAddrV4,
};

use crate::{
    abi,
    error::ServiceError,
    service::{self, Frontend, Reach, Service},
};

/// One map write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Zero the round-robin counter and the stats of a service id.
    ResetCounters {
        /// The id.
        id: u32,
    },
    /// Write backend slot `slot` of service `id`.
    PutSlot {
        /// The service id.
        id: u32,
        /// The slot.
        slot: u32,
        /// The backend.
        backend: SocketAddrV4,
    },
    /// Write the ClientIP affinity timeout of service `id` (before its entry).
    PutAffinity {
        /// The service id.
        id: u32,
        /// Seconds.
        timeout_s: u32,
    },
    /// Write the service entry (publishes `count` slots).
    PutService {
        /// The frontend.
        frontend: Frontend,
        /// Its id.
        id: u32,
        /// How many slots are valid.
        count: u16,
        /// Who reaches it (its flags).
        reach: Reach,
    },
    /// Delete the service entry.
    DeleteService {
        /// The frontend.
        frontend: Frontend,
    },
    /// Delete backend slot `slot` of service `id`.
    DeleteSlot {
        /// The service id.
        id: u32,
        /// The slot.
        slot: u32,
    },
}

/// One programmed service: its id and backends in slot order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Index into the counter and stats maps.
    pub id: u32,
    /// Backends, slot 0 first.
    pub backends: Vec<SocketAddrV4>,
    /// Who reaches it.
    pub reach: Reach,
}

/// What a reconcile changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReconcileSummary {
    /// Services that were not programmed before.
    pub added: usize,
    /// Services whose backends changed.
    pub updated: usize,
    /// Services removed.
    pub removed: usize,
    /// Services already as desired.
    pub unchanged: usize,
}

/// The services and backend slots exactly as the maps hold them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Programmed {
    services: BTreeMap<Frontend, (u32, u16, Reach)>,
    slots: BTreeMap<(u32, u32), SocketAddrV4>,
}

impl Programmed {
    /// Rebuilds the model from the maps' entries. Returns it with the writes
    /// that remove garbage a crash can leave (slots of no service, slots at or
    /// beyond their service's count, services with a protocol never written).
    /// `affinity_timeout` reads the timeout of a service id with affinity.
    pub fn from_maps(
        services: impl IntoIterator<Item = (abi::SvcKey, abi::SvcValue)>,
        backends: impl IntoIterator<Item = (abi::BackendKey, abi::BackendValue)>,
        affinity_timeout: impl Fn(u32) -> u32,
    ) -> (Self, Vec<Op>) {
        let mut by_id: HashMap<u32, (Frontend, u16, Reach)> = HashMap::new();
        let mut repair = Vec::new();
        for (k, v) in services {
            match Frontend::from_key(&k) {
                Some(f) => {
                    let timeout = if v.flags & abi::SVC_FLAG_AFFINITY != 0 {
                        affinity_timeout(v.id)
                    } else {
                        0
                    };
                    by_id.insert(v.id, (f, v.count, Reach::from_flags(v.flags, timeout)));
                }
                None => tracing::warn!(?k, "ignoring a service entry with an unknown protocol"),
            }
        }
        let mut slots: HashMap<u32, BTreeMap<u32, SocketAddrV4>> = HashMap::new();
        for (k, v) in backends {
            match by_id.get(&k.svc_id) {
                Some((_, count, _)) if k.slot < u32::from(*count) => {
                    slots
                        .entry(k.svc_id)
                        .or_default()
                        .insert(k.slot, service::backend_from_value(&v));
                }
                _ => repair.push(Op::DeleteSlot {
                    id: k.svc_id,
                    slot: k.slot,
                }),
            }
        }
        let mut me = Self::default();
        for (id, (frontend, count, reach)) in by_id {
            let have = slots.remove(&id).unwrap_or_default();
            if have.len() != usize::from(count) {
                // A slot below count is missing: unreachable by our write order,
                // but never leave a service pointing at nothing.
                repair.push(Op::DeleteService { frontend });
                repair.extend(have.keys().map(|&slot| Op::DeleteSlot { id, slot }));
                continue;
            }
            me.services.insert(frontend, (id, count, reach));
            me.slots
                .extend(have.into_iter().map(|(slot, b)| ((id, slot), b)));
        }
        (me, repair)
    }

    /// The programmed services, ordered by frontend.
    pub fn services(&self) -> impl Iterator<Item = (Frontend, Entry)> + '_ {
        self.services
            .keys()
            .filter_map(|f| Some((*f, self.get(f)?)))
    }

    /// The entry of one frontend.
    pub fn get(&self, frontend: &Frontend) -> Option<Entry> {
        let &(id, count, reach) = self.services.get(frontend)?;
        let backends = (0..u32::from(count)).filter_map(|s| self.slots.get(&(id, s)).copied());
        Some(Entry {
            id,
            backends: backends.collect(),
            reach,
        })
    }

    /// Backend slots in use over all services.
    pub fn slots_used(&self) -> u32 {
        self.slots.len() as u32
    }

    /// The writes that make `svc` programmed (empty if it already is).
    pub fn plan_upsert(&self, svc: &Service) -> Result<Vec<Op>, ServiceError> {
        svc.validate()?;
        let old_len = self.get(&svc.frontend).map_or(0, |e| e.backends.len());
        let total = u64::from(self.slots_used()) + svc.backends.len() as u64 - old_len as u64;
        if total > u64::from(abi::MAX_BACKEND_SLOTS) {
            return Err(ServiceError::MapFull {
                map: "backends",
                capacity: abi::MAX_BACKEND_SLOTS,
            });
        }
        let id = match self.get(&svc.frontend) {
            Some(e) => e.id,
            None => self.free_ids().next().ok_or(ServiceError::MapFull {
                map: "services",
                capacity: abi::MAX_SERVICES - 1,
            })?,
        };
        Ok(self.upsert_ops(svc, id))
    }

    /// The writes that remove a programmed service.
    pub fn plan_remove(&self, frontend: &Frontend) -> Result<Vec<Op>, ServiceError> {
        let e = self.get(frontend).ok_or(ServiceError::UnknownService {
            frontend: *frontend,
        })?;
        Ok(Self::remove_ops(*frontend, &e))
    }

    /// The writes that make the programmed set exactly `desired`: removals
    /// first, then changed services that shrink, then those that grow or are
    /// new, so the slot count never passes the final one. Validates all of
    /// `desired` before planning anything.
    pub fn plan_reconcile(
        &self,
        desired: &[Service],
    ) -> Result<(Vec<Op>, ReconcileSummary), ServiceError> {
        let mut wanted: BTreeMap<Frontend, &Service> = BTreeMap::new();
        let mut total: u64 = 0;
        for svc in desired {
            svc.validate()?;
            if wanted.insert(svc.frontend, svc).is_some() {
                return Err(ServiceError::DuplicateService {
                    frontend: svc.frontend,
                });
            }
            total += svc.backends.len() as u64;
        }
        if total > u64::from(abi::MAX_BACKEND_SLOTS) {
            return Err(ServiceError::MapFull {
                map: "backends",
                capacity: abi::MAX_BACKEND_SLOTS,
            });
        }
        if wanted.len() >= abi::MAX_SERVICES as usize {
            return Err(ServiceError::MapFull {
                map: "services",
                capacity: abi::MAX_SERVICES - 1,
            });
        }

        let mut summary = ReconcileSummary::default();
        let mut ops = Vec::new();
        for (f, e) in self.services() {
            if !wanted.contains_key(&f) {
                ops.extend(Self::remove_ops(f, &e));
                summary.removed += 1;
            }
        }
        let mut growing = Vec::new();
        // Ids freed by removals are not reused in the same pass: a flow racing
        // the removal must not count against a new service's counter.
        let mut free = self.free_ids();
        for (f, svc) in &wanted {
            match self.get(f) {
                Some(e) if e.backends == svc.backends && e.reach == svc.reach => {
                    summary.unchanged += 1;
                }
                Some(e) => {
                    summary.updated += 1;
                    let ops_for = self.upsert_ops(svc, e.id);
                    if svc.backends.len() <= e.backends.len() {
                        ops.extend(ops_for);
                    } else {
                        growing.push(ops_for);
                    }
                }
                None => {
                    summary.added += 1;
                    let id = free.next().ok_or(ServiceError::MapFull {
                        map: "services",
                        capacity: abi::MAX_SERVICES - 1,
                    })?;
                    growing.push(self.upsert_ops(svc, id));
                }
            }
        }
        ops.extend(growing.into_iter().flatten());
        Ok((ops, summary))
    }

    /// Records a write that succeeded.
    pub fn apply(&mut self, op: &Op) {
        match *op {
            Op::ResetCounters { .. } | Op::PutAffinity { .. } => {}
            Op::PutSlot { id, slot, backend } => {
                self.slots.insert((id, slot), backend);
            }
            Op::PutService {
                frontend,
                id,
                count,
                reach,
            } => {
                self.services.insert(frontend, (id, count, reach));
            }
            Op::DeleteService { frontend } => {
                self.services.remove(&frontend);
            }
            Op::DeleteSlot { id, slot } => {
                self.slots.remove(&(id, slot));
            }
        }
    }

    fn upsert_ops(&self, svc: &Service, id: u32) -> Vec<Op> {
        let before = self.get(&svc.frontend);
        let old_reach = before.as_ref().map(|e| e.reach);
        let old = before.map_or_else(Vec::new, |e| e.backends);
        let mut ops = Vec::new();
        if old_reach.is_none() {
            ops.push(Op::ResetCounters { id });
        }
        let timeout = svc.reach.affinity_timeout_s;
        if timeout > 0 && old_reach.is_none_or(|r| r.affinity_timeout_s != timeout) {
            ops.push(Op::PutAffinity {
                id,
                timeout_s: timeout,
            });
        }
        for (slot, b) in svc.backends.iter().enumerate() {
            if old.get(slot) != Some(b) {
                ops.push(Op::PutSlot {
                    id,
                    slot: slot as u32,
                    backend: *b,
                });
            }
        }
        if old.len() != svc.backends.len() || old_reach != Some(svc.reach) {
            ops.push(Op::PutService {
                frontend: svc.frontend,
                id,
                count: svc.backends.len() as u16,
                reach: svc.reach,
            });
        }
        for slot in svc.backends.len()..old.len() {
            ops.push(Op::DeleteSlot {
                id,
                slot: slot as u32,
            });
        }
        ops
    }

    fn remove_ops(frontend: Frontend, e: &Entry) -> Vec<Op> {
        let mut ops = vec![Op::DeleteService { frontend }];
        ops.extend((0..e.backends.len() as u32).map(|slot| Op::DeleteSlot { id: e.id, slot }));
        ops
    }

    /// Ids not in use, lowest first. Id 0 is never used, so a zeroed entry is
    /// recognisably "no service".
    fn free_ids(&self) -> impl Iterator<Item = u32> + use<> {
        let used: BTreeSet<u32> = self
            .services
            .values()
            .map(|&(id, _, _)| id)
            .chain(self.slots.keys().map(|&(id, _)| id))
            .collect();
        (1..abi::MAX_SERVICES).filter(move |id| !used.contains(id))
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    /// The maps as a reader (the eBPF program) sees them, written op by op.
    /// After every op it checks that each published service has all its slots.
    #[derive(Default)]
    struct FakeMaps {
        services: BTreeMap<abi::SvcKey, abi::SvcValue>,
        slots: BTreeMap<abi::BackendKey, abi::BackendValue>,
        counters: HashMap<u32, u64>,
        timeouts: HashMap<u32, u32>,
    }

    impl FakeMaps {
        fn write(&mut self, op: &Op) {
            match *op {
                Op::ResetCounters { id } => {
                    self.counters.insert(id, 0);
                }
                Op::PutSlot { id, slot, backend } => {
                    self.slots.insert(
                        abi::BackendKey { svc_id: id, slot },
                        service::backend_value(&backend),
                    );
                }
                Op::PutAffinity { id, timeout_s } => {
                    self.timeouts.insert(id, timeout_s);
                }
                Op::PutService {
                    frontend,
                    id,
                    count,
                    reach,
                } => {
                    self.services.insert(
                        frontend.key(),
                        abi::SvcValue {
                            id,
                            count,
                            flags: reach.flags(),
                        },
                    );
                }
                Op::DeleteService { frontend } => {
                    self.services.remove(&frontend.key());
                }
                Op::DeleteSlot { id, slot } => {
                    self.slots.remove(&abi::BackendKey { svc_id: id, slot });
                }
            }
            for v in self.services.values() {
                for slot in 0..u32::from(v.count) {
                    assert!(
                        self.slots
                            .contains_key(&abi::BackendKey { svc_id: v.id, slot }),
                        "after {op:?}: service id {} publishes slot {slot} that is missing",
                        v.id
                    );
                }
            }
        }

        fn run(&mut self, model: &mut Programmed, ops: &[Op]) {
            for op in ops {
                self.write(op);
                model.apply(op);
            }
            // The model always equals what a fresh reader rebuilds from the maps.
            let (rebuilt, repair) = Programmed::from_maps(
                self.services.iter().map(|(k, v)| (*k, *v)),
                self.slots.iter().map(|(k, v)| (*k, *v)),
                |id| self.timeouts.get(&id).copied().unwrap_or(0),
            );
            assert_eq!(&rebuilt, model);
            assert!(repair.is_empty(), "orphans left: {repair:?}");
        }
    }

    fn fe(n: u8) -> Frontend {
        Frontend::tcp(Ipv4Addr::new(10, 96, 0, n), 80)
    }

    fn be(n: u8) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 244, 0, n), 8080)
    }

    fn svc(n: u8, backends: &[u8]) -> Service {
        Service::new(fe(n), backends.iter().map(|&b| be(b)))
    }

    #[test]
    fn new_service_writes_slots_then_entry() {
        let m = Programmed::default();
        let ops = m.plan_upsert(&svc(1, &[1, 2])).unwrap();
        assert_eq!(
            ops,
            vec![
                Op::ResetCounters { id: 1 },
                Op::PutSlot {
                    id: 1,
                    slot: 0,
                    backend: be(1)
                },
                Op::PutSlot {
                    id: 1,
                    slot: 1,
                    backend: be(2)
                },
                Op::PutService {
                    frontend: fe(1),
                    id: 1,
                    count: 2,
                    reach: Reach::default(),
                },
            ]
        );
    }

    #[test]
    fn a_changed_reach_republishes_the_entry_after_its_affinity_timeout() {
        let mut maps = FakeMaps::default();
        let mut m = Programmed::default();
        let ops = m.plan_upsert(&svc(1, &[1, 2])).unwrap();
        maps.run(&mut m, &ops);
        let sticky = Reach {
            external: true,
            snat: true,
            affinity_timeout_s: 30,
        };
        let (ops, summary) = m
            .plan_reconcile(&[svc(1, &[1, 2]).with_reach(sticky)])
            .unwrap();
        assert_eq!(summary.updated, 1);
        assert_eq!(
            ops,
            [
                Op::PutAffinity {
                    id: 1,
                    timeout_s: 30
                },
                Op::PutService {
                    frontend: fe(1),
                    id: 1,
                    count: 2,
                    reach: sticky,
                },
            ]
        );
        maps.run(&mut m, &ops);
        assert_eq!(m.get(&fe(1)).unwrap().reach, sticky);
        let (ops, summary) = m
            .plan_reconcile(&[svc(1, &[1, 2]).with_reach(sticky)])
            .unwrap();
        assert!(ops.is_empty(), "{ops:?}");
        assert_eq!(summary.unchanged, 1);
        // Affinity off: the flag goes, the stale timeout is never read.
        let plain = Reach {
            affinity_timeout_s: 0,
            ..sticky
        };
        let (ops, _) = m
            .plan_reconcile(&[svc(1, &[1, 2]).with_reach(plain)])
            .unwrap();
        maps.run(&mut m, &ops);
        assert_eq!(m.get(&fe(1)).unwrap().reach, plain);
        let bad = svc(2, &[1]).with_reach(Reach {
            snat: true,
            ..Reach::default()
        });
        assert!(
            m.plan_upsert(&bad).is_err(),
            "SNAT needs an external frontend"
        );
    }

    #[test]
    fn shrink_and_grow_never_expose_missing_slots() {
        let mut maps = FakeMaps::default();
        let mut m = Programmed::default();
        for backends in [
            &[1, 2, 3][..],
            &[1, 3],
            &[],
            &[4, 5, 6, 7],
            &[7],
            &[1, 2, 3],
        ] {
            let ops = m.plan_upsert(&svc(1, backends)).unwrap();
            maps.run(&mut m, &ops);
            assert_eq!(m.get(&fe(1)).unwrap().backends, svc(1, backends).backends);
        }
        assert_eq!(m.slots_used(), 3);
        // Unchanged: nothing to write.
        assert!(m.plan_upsert(&svc(1, &[1, 2, 3])).unwrap().is_empty());
        let ops = m.plan_remove(&fe(1)).unwrap();
        assert_eq!(ops[0], Op::DeleteService { frontend: fe(1) });
        maps.run(&mut m, &ops);
        assert!(maps.slots.is_empty() && maps.services.is_empty());
    }

    #[test]
    fn reconcile_applies_only_the_difference() {
        let mut maps = FakeMaps::default();
        let mut m = Programmed::default();
        let (ops, s) = m.plan_reconcile(&[svc(1, &[1, 2]), svc(2, &[3])]).unwrap();
        assert_eq!(
            s,
            ReconcileSummary {
                added: 2,
                ..Default::default()
            }
        );
        maps.run(&mut m, &ops);

        let (ops, s) = m
            .plan_reconcile(&[svc(1, &[1, 2]), svc(2, &[3, 4]), svc(3, &[5])])
            .unwrap();
        assert_eq!(
            s,
            ReconcileSummary {
                added: 1,
                updated: 1,
                unchanged: 1,
                removed: 0
            }
        );
        // Service 1 is untouched; service 2 gains one slot; service 3 is new.
        assert!(
            !ops.iter()
                .any(|op| matches!(op, Op::PutService { frontend, .. } if *frontend == fe(1)))
        );
        assert_eq!(
            ops.iter()
                .filter(|op| matches!(op, Op::PutSlot { .. }))
                .count(),
            2
        );
        maps.run(&mut m, &ops);

        let (ops, s) = m.plan_reconcile(&[svc(3, &[5])]).unwrap();
        assert_eq!(
            s,
            ReconcileSummary {
                removed: 2,
                unchanged: 1,
                ..Default::default()
            }
        );
        maps.run(&mut m, &ops);
        assert_eq!(m.services().count(), 1);
        assert_eq!(maps.slots.len(), 1);
    }

    #[test]
    fn ids_are_reused_only_after_removal() {
        let mut maps = FakeMaps::default();
        let mut m = Programmed::default();
        for n in [1, 2] {
            let ops = m.plan_upsert(&svc(n, &[1])).unwrap();
            maps.run(&mut m, &ops);
        }
        assert_eq!(m.get(&fe(2)).unwrap().id, 2);
        let ops = m.plan_remove(&fe(1)).unwrap();
        maps.run(&mut m, &ops);
        let ops = m.plan_upsert(&svc(3, &[1])).unwrap();
        assert_eq!(
            ops[0],
            Op::ResetCounters { id: 1 },
            "a reused id starts its rotation afresh"
        );
    }

    #[test]
    fn invalid_or_oversized_input_plans_nothing() {
        let m = Programmed::default();
        assert!(matches!(
            m.plan_remove(&fe(9)),
            Err(ServiceError::UnknownService { .. })
        ));
        assert!(matches!(
            m.plan_reconcile(&[svc(1, &[1]), svc(1, &[2])]),
            Err(ServiceError::DuplicateService { .. })
        ));
        assert!(matches!(
            m.plan_reconcile(&[svc(1, &[1]), svc(2, &[3, 3])]),
            Err(ServiceError::DuplicateBackend { .. })
        ));
        // 300 services of 1,000 backends exceed the slot map.
        let huge: Vec<Service> = (0..300u32)
            .map(|i| {
                Service::new(
                    Frontend::tcp(Ipv4Addr::from(0x0a60_0000 + i), 80),
                    (0..1000u16).map(|p| SocketAddrV4::new(Ipv4Addr::new(10, 244, 0, 1), p + 1)),
                )
            })
            .collect();
        assert_eq!(
            m.plan_reconcile(&huge).unwrap_err(),
            ServiceError::MapFull {
                map: "backends",
                capacity: abi::MAX_BACKEND_SLOTS
            }
        );
    }

    #[test]
    fn crash_leftovers_are_repaired() {
        let key = fe(1).key();
        let services = [(
            key,
            abi::SvcValue {
                id: 4,
                count: 2,
                flags: 0,
            },
        )];
        let slot = |svc_id, slot, n| {
            (
                abi::BackendKey { svc_id, slot },
                service::backend_value(&be(n)),
            )
        };
        // Slots 0,1 valid; slot 2 left from an interrupted shrink; id 9 orphaned.
        let backends = [slot(4, 0, 1), slot(4, 1, 2), slot(4, 2, 3), slot(9, 0, 1)];
        let (m, repair) = Programmed::from_maps(services, backends, |_| 0);
        assert_eq!(m.get(&fe(1)).unwrap().backends, vec![be(1), be(2)]);
        assert_eq!(
            repair,
            vec![
                Op::DeleteSlot { id: 4, slot: 2 },
                Op::DeleteSlot { id: 9, slot: 0 }
            ]
        );
    }
}
