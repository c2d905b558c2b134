//! A Service's EndpointSlices as a pure function of its desired endpoints
//! (the groups [`super::subsets`] computes, terminating pods included with
//! `ready: false`, `serving` as the pod's readiness, `terminating: true`,
//! as Kubernetes' EndpointSlice controller states them) and the slices it has, the
//! way Kubernetes' EndpointSlice controller reconciles: endpoints stay in
//! the slice they are in (updated in place when they change), gone ones
//! are removed, new ones fill slices with room before a new slice (at most
//! [`MAX_ENDPOINTS_PER_SLICE`]) is made. One endpoint's change rewrites one
//! slice; a slice left empty is deleted; slices of a port set the Service
//! no longer has are deleted.

use std::collections::BTreeMap;

use jotasu_api::kinds::discovery::{
    Endpoint, EndpointConditions, EndpointSlicePort, MANAGED_BY, MANAGED_BY_LABEL,
    MAX_ENDPOINTS_PER_SLICE, SERVICE_NAME_LABEL,
};
use jotasu_api::kinds::service::EndpointPort;
use jotasu_api::{EndpointSlice, ObjectMeta, Service};

use super::subsets::{Group, PodEndpoint};

use crate::runtime::controller_reference;

/// What to write for one Service.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// New slices (named by `generateName`).
    pub create: Vec<EndpointSlice>,
    /// Changed slices (with their resourceVersion, so a concurrent write conflicts).
    pub update: Vec<EndpointSlice>,
    /// Slices to delete, by name.
    pub delete: Vec<String>,
}

impl Changes {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Whether `slice` is `manager`'s slice of the Service named `service`
/// ([`MANAGED_BY`]: made from pods; `MIRRORED_BY`: from hand-made Endpoints).
pub fn owned_by(slice: &EndpointSlice, service: &str, manager: &str) -> bool {
    let labels = &slice.metadata.labels;
    labels.get(SERVICE_NAME_LABEL).map(String::as_str) == Some(service)
        && labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(manager)
}

fn endpoint(e: &PodEndpoint) -> Endpoint {
    let a = &e.address;
    Endpoint {
        addresses: vec![a.ip.clone()],
        conditions: EndpointConditions {
            ready: Some(e.ready),
            serving: Some(e.serving),
            terminating: Some(e.terminating),
        },
        hostname: a.hostname.clone(),
        target_ref: a.target_ref.clone(),
        node_name: a.node_name.clone(),
        ..Endpoint::default()
    }
}

fn ports(ports: &[EndpointPort]) -> Vec<EndpointSlicePort> {
    let mut ports: Vec<EndpointSlicePort> = ports
        .iter()
        .map(|p| EndpointSlicePort {
            name: p.name.clone().or_else(|| Some(String::new())),
            protocol: Some(p.protocol.unwrap_or_default()),
            port: Some(p.port),
            app_protocol: p.app_protocol.clone(),
        })
        .collect();
    ports.sort();
    ports
}

fn sorted(mut ports: Vec<EndpointSlicePort>) -> Vec<EndpointSlicePort> {
    ports.sort();
    ports
}

/// The changes that bring `existing` (`manager`'s slices of this Service)
/// to `desired` (its endpoint groups). The controller that follows pods keeps an
/// empty slice for a Service without endpoints; the mirror does not.
pub fn reconcile(
    service: &Service,
    desired: &[Group],
    existing: &[&EndpointSlice],
    manager: &str,
) -> Changes {
    // Desired endpoints per port set, by address.
    let mut want: BTreeMap<Vec<EndpointSlicePort>, BTreeMap<String, Endpoint>> = BTreeMap::new();
    for group in desired {
        let set = want.entry(ports(&group.ports)).or_default();
        for e in &group.endpoints {
            set.insert(e.address.ip.clone(), endpoint(e));
        }
    }
    let mut changes = Changes::default();
    let mut kept: BTreeMap<Vec<EndpointSlicePort>, Vec<(EndpointSlice, bool)>> = BTreeMap::new();
    for &slice in existing {
        let key = sorted(slice.ports.clone());
        let Some(set) = want.get_mut(&key) else {
            changes.delete.push(slice.metadata.name().to_owned());
            continue;
        };
        let mut next = slice.clone();
        next.endpoints = slice
            .endpoints
            .iter()
            .filter_map(|e| set.remove(e.addresses.first()?))
            .collect();
        let changed = next.endpoints != slice.endpoints;
        kept.entry(key).or_default().push((next, changed));
    }
    for (key, mut rest) in want {
        let slices = kept.entry(key.clone()).or_default();
        // Fill the slices being written anyway first, then the others.
        slices.sort_by_key(|(_, changed)| !*changed);
        for (slice, changed) in slices.iter_mut() {
            while slice.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
                let Some((_, e)) = rest.pop_first() else {
                    break;
                };
                slice.endpoints.push(e);
                *changed = true;
            }
        }
        let rest: Vec<Endpoint> = rest.into_values().collect();
        for chunk in rest.chunks(MAX_ENDPOINTS_PER_SLICE) {
            changes
                .create
                .push(new_slice(service, &key, chunk.to_vec(), manager));
        }
    }
    let has_desired = desired.iter().any(|g| !g.endpoints.is_empty());
    for (_, slices) in kept {
        for (slice, changed) in slices {
            if slice.endpoints.is_empty() {
                changes.delete.push(slice.metadata.name().to_owned());
            } else if changed {
                changes.update.push(slice);
            }
        }
    }
    // A Service without endpoints keeps one empty slice, as Kubernetes'
    // controller does (consumers see the Service is known, with none).
    if !has_desired && changes.create.is_empty() && manager == MANAGED_BY {
        let remaining = existing.len() - changes.delete.len();
        if remaining == 0 {
            if let Some(name) = changes.delete.pop()
                && let Some(slice) = existing.iter().find(|s| s.metadata.name() == name)
            {
                let mut empty = (*slice).clone();
                empty.endpoints.clear();
                empty.ports = Vec::new();
                if empty != **slice {
                    changes.update.push(empty);
                }
            } else if existing.is_empty() {
                changes
                    .create
                    .push(new_slice(service, &[], Vec::new(), manager));
            }
        }
    }
    changes.delete.sort();
    changes.delete.dedup();
    changes
}

fn new_slice(
    service: &Service,
    ports: &[EndpointSlicePort],
    endpoints: Vec<Endpoint>,
    manager: &str,
) -> EndpointSlice {
    let name = service.metadata.name();
    let mut labels = service.metadata.labels.clone();
    labels.insert(SERVICE_NAME_LABEL.into(), name.to_owned());
    labels.insert(MANAGED_BY_LABEL.into(), manager.into());
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: service.metadata.namespace.clone(),
            labels,
            owner_references: vec![controller_reference(service)],
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints,
        ports: ports.to_vec(),
        ..EndpointSlice::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::kinds::service::{EndpointAddress, EndpointSubset};

    fn service() -> Service {
        let mut s = Service::default();
        s.metadata.name = Some("web".into());
        s.metadata.namespace = Some("default".into());
        s.metadata.uid = Some("u1".into());
        s
    }

    fn subset(
        ready: impl IntoIterator<Item = u32>,
        not_ready: impl IntoIterator<Item = u32>,
    ) -> EndpointSubset {
        let addr = |i: u32| EndpointAddress {
            ip: format!("10.244.{}.{}", i / 250, i % 250 + 1),
            ..EndpointAddress::default()
        };
        EndpointSubset {
            addresses: ready.into_iter().map(addr).collect(),
            not_ready_addresses: not_ready.into_iter().map(addr).collect(),
            ports: vec![EndpointPort {
                name: Some("http".into()),
                port: 8080,
                ..EndpointPort::default()
            }],
        }
    }

    /// Applies `changes` to `slices` as the API server would (names for new ones).
    fn apply(slices: &mut Vec<EndpointSlice>, changes: Changes) {
        slices.retain(|s| !changes.delete.contains(&s.metadata.name().to_owned()));
        for u in changes.update {
            let at = slices
                .iter()
                .position(|s| s.metadata.name == u.metadata.name)
                .unwrap();
            slices[at] = u;
        }
        for (i, mut c) in changes.create.into_iter().enumerate() {
            c.metadata.name = Some(format!("web-{}{i}", slices.len()));
            slices.push(c);
        }
    }

    fn run(slices: &mut Vec<EndpointSlice>, desired: &[EndpointSubset]) -> (usize, usize, usize) {
        let groups: Vec<Group> = desired.iter().map(Group::of_subset).collect();
        run_groups(slices, &groups)
    }

    fn run_groups(slices: &mut Vec<EndpointSlice>, desired: &[Group]) -> (usize, usize, usize) {
        let refs: Vec<&EndpointSlice> = slices.iter().collect();
        let c = reconcile(&service(), desired, &refs, MANAGED_BY);
        let counts = (c.create.len(), c.update.len(), c.delete.len());
        apply(slices, c);
        counts
    }

    #[test]
    fn a_thousand_endpoints_take_ten_slices_and_one_change_rewrites_one() {
        let mut slices = Vec::new();
        assert_eq!(run(&mut slices, &[subset(0..1000, [])]), (10, 0, 0));
        assert!(slices.iter().all(|s| s.endpoints.len() == 100));
        assert!(slices.iter().all(|s| owned_by(s, "web", MANAGED_BY)));
        assert_eq!(slices[0].metadata.owner_references[0].uid, "u1");
        // Unchanged: nothing to write.
        assert_eq!(run(&mut slices, &[subset(0..1000, [])]), (0, 0, 0));
        // Endpoint 500 turns not ready: one slice rewritten.
        let but_500 = || (0..1000).filter(|i| *i != 500);
        assert_eq!(run(&mut slices, &[subset(but_500(), [500])]), (0, 1, 0));
        // 500 gone: its slice rewritten; a new endpoint fills that gap.
        assert_eq!(run(&mut slices, &[subset(but_500(), [])]), (0, 1, 0));
        assert_eq!(
            run(&mut slices, &[subset(but_500().chain([1000]), [])]),
            (0, 1, 0)
        );
        assert_eq!(slices.len(), 10);
        // Most gone: emptied slices are deleted, the rest rewritten in place.
        let (created, _, deleted) = run(&mut slices, &[subset(0..450, [])]);
        assert_eq!((created, deleted), (0, 10 - slices.len()));
        let total: usize = slices.iter().map(|s| s.endpoints.len()).sum();
        assert_eq!(total, 450);
        assert!(
            slices.len() >= 5,
            "{} slices for 450 endpoints",
            slices.len()
        );
    }

    #[test]
    fn a_terminating_endpoint_stays_in_its_slice_with_its_conditions() {
        let endpoint = |i: u8, ready: bool, serving: bool, terminating: bool| PodEndpoint {
            address: EndpointAddress {
                ip: format!("10.244.0.{i}"),
                ..EndpointAddress::default()
            },
            ready,
            serving,
            terminating,
        };
        let group = |endpoints: Vec<PodEndpoint>| Group {
            ports: vec![EndpointPort {
                name: Some("http".into()),
                port: 8080,
                ..EndpointPort::default()
            }],
            endpoints,
        };
        let mut slices = Vec::new();
        let both = |b_terminating: bool| {
            group(vec![
                endpoint(1, true, true, false),
                endpoint(2, !b_terminating, true, b_terminating),
            ])
        };
        assert_eq!(run_groups(&mut slices, &[both(false)]), (1, 0, 0));
        // The pod of .2 is being deleted: rewritten in place, still listed.
        assert_eq!(run_groups(&mut slices, &[both(true)]), (0, 1, 0));
        let conditions: Vec<EndpointConditions> = slices[0]
            .endpoints
            .iter()
            .map(|e| e.conditions.clone())
            .collect();
        assert_eq!(
            conditions[1],
            EndpointConditions {
                ready: Some(false),
                serving: Some(true),
                terminating: Some(true),
            }
        );
        assert_eq!(conditions[0].terminating, Some(false));
        // Gone: out of the slice.
        let gone = group(vec![endpoint(1, true, true, false)]);
        assert_eq!(run_groups(&mut slices, &[gone]), (0, 1, 0));
        assert_eq!(slices[0].endpoints.len(), 1);
    }

    #[test]
    fn gone_port_sets_and_services_without_endpoints() {
        let mut slices = Vec::new();
        run(&mut slices, &[subset(0..3, [])]);
        let mut other = subset(0..3, []);
        other.ports[0].port = 9090;
        // The port changed: the old slice goes, a new one comes.
        assert_eq!(run(&mut slices, &[other]), (1, 0, 1));
        // No endpoints: one empty slice stays.
        assert_eq!(run(&mut slices, &[]), (0, 1, 0));
        assert_eq!(slices.len(), 1);
        assert!(slices[0].endpoints.is_empty());
        assert_eq!(run(&mut slices, &[]), (0, 0, 0));
        // A new Service without endpoints gets its empty slice.
        let mut fresh = Vec::new();
        assert_eq!(run(&mut fresh, &[]), (1, 0, 0));
    }
}
