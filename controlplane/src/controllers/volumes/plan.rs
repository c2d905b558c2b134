//! The PV controller's decisions, without I/O: from the claims, volumes,
//! classes and nodes, what to bind, what to provision where, which
//! statuses to write and which released volumes to delete. Kubernetes'
//! persistentvolume-controller in one pure function ([`plan`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use jotasu_api::kinds::affinity::{
    NodeSelector, NodeSelectorOperator, NodeSelectorRequirement, NodeSelectorTerm,
};
use jotasu_api::kinds::storage::{
    BIND_COMPLETED, BINDING_CONDITION, BOUND_BY_CONTROLLER, FILESYSTEM, LOCAL_PROVISIONER,
    LocalVolumeSource, PROVISIONED_BY, PersistentVolumeClaimCondition, PersistentVolumeClaimStatus,
    PersistentVolumeStatus, SELECTED_NODE, STORAGE, STORAGE_PROVISIONER, StorageClass,
    VolumeNodeAffinity,
};
use jotasu_api::meta::ObjectReference;
use jotasu_api::{Node, PersistentVolume, PersistentVolumeClaim, Quantity, Time};

use super::matching::{
    HOSTNAME_LABEL, best_volume, free_storage, locally_provisioned, reserved_for, volume_dir,
};

/// What the controller sees.
#[derive(Debug, Clone, Copy)]
pub struct World<'a> {
    /// Every claim.
    pub claims: &'a [Arc<PersistentVolumeClaim>],
    /// Every volume.
    pub volumes: &'a [Arc<PersistentVolume>],
    /// Every class.
    pub classes: &'a [Arc<StorageClass>],
    /// Every node.
    pub nodes: &'a [Arc<Node>],
    /// Claims (namespace, name) some pod still names: their volumes are
    /// not deleted yet, whatever happened to the claim.
    pub in_use: &'a BTreeSet<(String, String)>,
    /// The node of a scheduled pod naming each claim: where a
    /// WaitForFirstConsumer claim goes if the scheduler's
    /// `selected-node` annotation never got written.
    pub placed: &'a BTreeMap<(String, String), String>,
}

/// One write the controller decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Bind a claim and a volume: both written in one apply (the volume
    /// created when `created`, by the local provisioner).
    Bind {
        /// The volume with its `claimRef`.
        volume: Box<PersistentVolume>,
        /// The claim with its `volumeName`.
        claim: Box<PersistentVolumeClaim>,
        /// Whether the volume is new.
        created: bool,
    },
    /// A claim's new status.
    ClaimStatus(Box<PersistentVolumeClaim>),
    /// A volume's new status.
    VolumeStatus(Box<PersistentVolume>),
    /// A released volume the local provisioner made, to delete (reclaim
    /// policy Delete; its node's agent then removes the directory).
    Delete(Box<PersistentVolume>),
    /// A claim deleted while a pod used it, now unused: delete it for good.
    DeleteClaim(Box<PersistentVolumeClaim>),
}

/// Why a claim waits: (reason, message), Kubernetes' event's words.
type Waiting = (&'static str, String);

fn is_deleting_claim(c: &PersistentVolumeClaim) -> bool {
    c.metadata.deletion_timestamp.is_some()
}

/// Everything to write now.
pub fn plan(world: World<'_>, now: &Time) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut free = free_storage(
        world.nodes.iter().map(|n| &**n),
        world.volumes.iter().map(|v| &**v),
    );
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut claims: Vec<&PersistentVolumeClaim> = world.claims.iter().map(|c| &**c).collect();
    claims.sort_by(|a, b| {
        (
            &a.metadata.creation_timestamp,
            &a.metadata.namespace,
            a.metadata.name(),
        )
            .cmp(&(
                &b.metadata.creation_timestamp,
                &b.metadata.namespace,
                b.metadata.name(),
            ))
    });
    for claim in claims {
        if is_deleting_claim(claim) {
            // Kept (pvc-protection) while a pod used it; now it may go.
            let key = (
                claim.metadata.namespace.clone().unwrap_or_default(),
                claim.metadata.name().to_owned(),
            );
            if !world.in_use.contains(&key) {
                actions.push(Action::DeleteClaim(Box::new(claim.clone())));
            }
            continue;
        }
        match claim_step(claim, world, &mut free, &mut taken) {
            Step::Bound(pv) => {
                if let Some(c) = claim_status(claim, "Bound", Some(pv), None) {
                    actions.push(Action::ClaimStatus(Box::new(c)));
                }
            }
            Step::Lost => {
                let why = (
                    "ClaimLost",
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
                        .to_owned(),
                );
                if let Some(c) = claim_status(claim, "Lost", None, Some(why)) {
                    actions.push(Action::ClaimStatus(Box::new(c)));
                }
            }
            Step::Wait(why) => {
                if let Some(c) = claim_status(claim, "Pending", None, Some(why)) {
                    actions.push(Action::ClaimStatus(Box::new(c)));
                }
            }
            Step::Write(a) => actions.push(a),
        }
    }
    for pv in world.volumes {
        if taken.contains(pv.metadata.name()) {
            continue;
        }
        if let Some(a) = volume_step(pv, world.claims, world.in_use, now) {
            actions.push(a);
        }
    }
    actions
}

enum Step<'a> {
    Bound(&'a PersistentVolume),
    Lost,
    Wait(Waiting),
    Write(Action),
}

fn claim_step<'a>(
    claim: &PersistentVolumeClaim,
    world: World<'a>,
    free: &mut BTreeMap<String, u64>,
    taken: &mut BTreeSet<String>,
) -> Step<'a> {
    let volume = |name: &str| {
        world
            .volumes
            .iter()
            .map(|v| &**v)
            .find(|v| v.metadata.name() == name)
    };
    if let Some(name) = claim.spec.volume_name.as_deref().filter(|n| !n.is_empty()) {
        return match volume(name) {
            // Bound both ways, and the claim marked so (the scheduler reads it).
            Some(pv)
                if reserved_for(pv, claim)
                    && pv.spec.claim_ref.as_ref().is_some_and(|r| r.uid.is_some())
                    && claim.metadata.annotations.contains_key(BIND_COMPLETED) =>
            {
                Step::Bound(pv)
            }
            Some(pv) if super::matching::satisfies(pv, claim) && !taken.contains(name) => {
                taken.insert(name.to_owned());
                Step::Write(bind(pv, claim, false))
            }
            Some(pv) => Step::Wait((
                "FailedBinding",
                format!(
                    "Cannot bind to requested volume \"{name}\": {}",
                    super::matching::mismatch(pv, claim)
                        .unwrap_or("it is being bound to another claim")
                ),
            )),
            None if claim.phase() == "Bound" || claim.phase() == "Lost" => Step::Lost,
            None => Step::Wait(("FailedBinding", format!("volume \"{name}\" not found"))),
        };
    }
    let class_name = claim.class();
    let class = world
        .classes
        .iter()
        .map(|c| &**c)
        .find(|c| !class_name.is_empty() && c.metadata.name() == class_name);
    let waits = class.is_some_and(StorageClass::waits_for_first_consumer);
    let key = (
        claim.metadata.namespace.clone().unwrap_or_default(),
        claim.metadata.name().to_owned(),
    );
    let selected = claim
        .metadata
        .annotations
        .get(SELECTED_NODE)
        .or_else(|| world.placed.get(&key))
        .map(String::as_str);
    let selected_node = selected.and_then(|s| {
        world
            .nodes
            .iter()
            .map(|n| &**n)
            .find(|n| n.metadata.name() == s)
    });
    if !waits || selected_node.is_some() {
        let free_volumes = world
            .volumes
            .iter()
            .map(|v| &**v)
            .filter(|v| !taken.contains(v.metadata.name()));
        if let Some(pv) = best_volume(free_volumes, claim, selected_node) {
            taken.insert(pv.metadata.name().to_owned());
            return Step::Write(bind(pv, claim, false));
        }
    }
    if class_name.is_empty() {
        return Step::Wait((
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set".into(),
        ));
    }
    let Some(class) = class else {
        return Step::Wait((
            "ProvisioningFailed",
            format!("storageclass.storage.k8s.io \"{class_name}\" not found"),
        ));
    };
    if !class.provisioned_locally() {
        return Step::Wait((
            "ExternalProvisioning",
            format!(
                "Waiting for a volume to be created either by the external provisioner '{}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered. (jotasu runs only the {LOCAL_PROVISIONER} provisioner; create a matching PersistentVolume, or use a class it provisions.)",
                class.provisioner
            ),
        ));
    }
    if waits && selected.is_none() {
        return Step::Wait((
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding".into(),
        ));
    }
    let size = claim.requested_bytes();
    let node = match selected {
        Some(name) => match selected_node {
            None => {
                return Step::Wait((
                    "ProvisioningFailed",
                    format!("the selected node \"{name}\" does not exist"),
                ));
            }
            Some(n) => {
                let room = free.get(name).copied().unwrap_or(0);
                if volume_dir(n).is_none() {
                    return Step::Wait((
                        "ProvisioningFailed",
                        format!(
                            "node \"{name}\" does not offer local volumes (its agent set no {} annotation)",
                            super::matching::VOLUME_DIR_ANNOTATION
                        ),
                    ));
                }
                if room < size {
                    return Step::Wait((
                        "ProvisioningFailed",
                        format!(
                            "node \"{name}\" has {} left for local volumes; the claim asks {}",
                            bytes_text(room),
                            bytes_text(size)
                        ),
                    ));
                }
                n
            }
        },
        None => match roomiest_node(world.nodes, free, size, class) {
            Some(n) => n,
            None => {
                return Step::Wait((
                    "ProvisioningFailed",
                    format!(
                        "no node has room for a {} local volume (each node offers its allocatable ephemeral-storage to {LOCAL_PROVISIONER})",
                        bytes_text(size)
                    ),
                ));
            }
        },
    };
    let Some(dir) = volume_dir(node) else {
        return Step::Wait(("ProvisioningFailed", "no node offers local volumes".into()));
    };
    if let Some(room) = free.get_mut(node.metadata.name()) {
        *room = room.saturating_sub(size);
    }
    let pv = provisioned_volume(claim, class, node.metadata.name(), dir);
    taken.insert(pv.metadata.name().to_owned());
    Step::Write(bind(&pv, claim, true))
}

/// The node with the most room for `size` that the class's
/// `allowedTopologies` allow (ties: by name).
fn roomiest_node<'a>(
    nodes: &'a [Arc<Node>],
    free: &BTreeMap<String, u64>,
    size: u64,
    class: &StorageClass,
) -> Option<&'a Node> {
    nodes
        .iter()
        .map(|n| &**n)
        .filter(|n| volume_dir(n).is_some())
        .filter(|n| {
            class.allowed_topologies.is_empty()
                || class
                    .allowed_topologies
                    .iter()
                    .any(|t| t.matches(&n.metadata.labels))
        })
        .filter_map(|n| {
            let room = free.get(n.metadata.name()).copied().unwrap_or(0);
            (room >= size).then_some((room, n))
        })
        .max_by(|(ra, a), (rb, b)| {
            ra.cmp(rb)
                .then_with(|| b.metadata.name().cmp(a.metadata.name()))
        })
        .map(|(_, n)| n)
}

/// `5Gi`-style text of a size.
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// The volume the local provisioner makes for `claim` on `node`:
/// `pvc-<claim uid>`, a directory under the node's volume directory,
/// pinned to the node, the class's reclaim policy.
pub fn provisioned_volume(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    node: &str,
    dir: &str,
) -> PersistentVolume {
    let uid = claim.metadata.uid.clone().unwrap_or_default();
    let name = format!("pvc-{uid}");
    let mut pv = PersistentVolume::default();
    pv.metadata.name = Some(name.clone());
    pv.metadata
        .annotations
        .insert(PROVISIONED_BY.to_owned(), LOCAL_PROVISIONER.to_owned());
    let size = claim
        .spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.get(STORAGE))
        .cloned()
        .unwrap_or_else(|| Quantity::from_units(0));
    pv.spec.capacity.insert(STORAGE.to_owned(), size);
    pv.spec.access_modes.clone_from(&claim.spec.access_modes);
    pv.spec.storage_class_name = Some(class.metadata.name().to_owned());
    pv.spec.persistent_volume_reclaim_policy = Some(
        class
            .reclaim_policy
            .clone()
            .unwrap_or_else(|| "Delete".into()),
    );
    pv.spec.volume_mode = Some(FILESYSTEM.to_owned());
    pv.spec.local = Some(LocalVolumeSource {
        path: format!("{}/{name}", dir.trim_end_matches('/')),
        fs_type: None,
    });
    pv.spec.node_affinity = Some(VolumeNodeAffinity {
        required: Some(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: vec![NodeSelectorRequirement {
                    key: HOSTNAME_LABEL.to_owned(),
                    operator: NodeSelectorOperator::In,
                    values: vec![node.to_owned()],
                }],
                match_fields: Vec::new(),
            }],
        }),
    });
    pv
}

/// `volume` and `claim` pointing at each other.
fn bind(volume: &PersistentVolume, claim: &PersistentVolumeClaim, created: bool) -> Action {
    let mut pv = volume.clone();
    pv.spec.claim_ref = Some(ObjectReference {
        kind: Some("PersistentVolumeClaim".into()),
        api_version: Some("v1".into()),
        namespace: claim.metadata.namespace.clone(),
        name: Some(claim.metadata.name().to_owned()),
        uid: claim.metadata.uid.clone(),
        ..ObjectReference::default()
    });
    let mut c = claim.clone();
    c.spec.volume_name = Some(volume.metadata.name().to_owned());
    let notes = &mut c.metadata.annotations;
    notes.insert(BIND_COMPLETED.to_owned(), "yes".to_owned());
    notes.insert(BOUND_BY_CONTROLLER.to_owned(), "yes".to_owned());
    if created {
        notes.insert(STORAGE_PROVISIONER.to_owned(), LOCAL_PROVISIONER.to_owned());
    }
    Action::Bind {
        volume: Box::new(pv),
        claim: Box::new(c),
        created,
    }
}

/// The claim with `phase` (the bound volume's size and modes; why it
/// waits), or None when its status says so already.
fn claim_status(
    claim: &PersistentVolumeClaim,
    phase: &str,
    volume: Option<&PersistentVolume>,
    waiting: Option<Waiting>,
) -> Option<PersistentVolumeClaim> {
    let old = claim.status.clone().unwrap_or_default();
    let mut status = PersistentVolumeClaimStatus {
        phase: Some(phase.to_owned()),
        ..PersistentVolumeClaimStatus::default()
    };
    if let Some(pv) = volume {
        status.capacity.clone_from(&pv.spec.capacity);
        status.access_modes.clone_from(&pv.spec.access_modes);
    }
    if let Some((reason, message)) = waiting {
        let same = old.conditions.iter().find(|c| c.type_ == BINDING_CONDITION);
        let since = same
            .filter(|c| c.reason.as_deref() == Some(reason) && c.status == "False")
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(Time::now);
        status.conditions.push(PersistentVolumeClaimCondition {
            type_: BINDING_CONDITION.to_owned(),
            status: "False".to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message),
            last_probe_time: None,
            last_transition_time: Some(since),
        });
    }
    if status == old {
        return None;
    }
    let mut c = claim.clone();
    c.status = Some(status);
    Some(c)
}

fn volume_step(
    pv: &PersistentVolume,
    claims: &[Arc<PersistentVolumeClaim>],
    in_use: &BTreeSet<(String, String)>,
    now: &Time,
) -> Option<Action> {
    let Some(r) = &pv.spec.claim_ref else {
        return volume_status(pv, "Available", None, now);
    };
    let claim = claims.iter().find(|c| {
        Some(c.metadata.name()) == r.name.as_deref()
            && c.metadata.namespace.as_deref() == r.namespace.as_deref()
    });
    let same = claim.filter(|c| r.uid.is_none() || c.metadata.uid == r.uid);
    match same {
        Some(c) if c.spec.volume_name.as_deref() == Some(pv.metadata.name()) => {
            volume_status(pv, "Bound", None, now)
        }
        // Reserved for a claim that has not taken it yet.
        Some(_) => volume_status(pv, "Available", None, now),
        None if r.uid.is_none() => volume_status(pv, "Available", None, now),
        None => {
            let policy = pv
                .spec
                .persistent_volume_reclaim_policy
                .as_deref()
                .unwrap_or("Retain");
            match policy {
                "Delete" if locally_provisioned(pv) => {
                    let key = (
                        r.namespace.clone().unwrap_or_default(),
                        r.name.clone().unwrap_or_default(),
                    );
                    if in_use.contains(&key) {
                        // A pod still mounts it: keep the data until it is gone.
                        return volume_status(pv, "Released", None, now);
                    }
                    Some(Action::Delete(Box::new(pv.clone())))
                        .filter(|_| pv.metadata.deletion_timestamp.is_none())
                }
                "Delete" => volume_status(
                    pv,
                    "Failed",
                    Some((
                        "VolumeFailedDelete",
                        format!(
                            "error getting deleter volume plugin for volume \"{}\": no deletable volume plugin matched",
                            pv.metadata.name()
                        ),
                    )),
                    now,
                ),
                _ => volume_status(pv, "Released", None, now),
            }
        }
    }
}

fn volume_status(
    pv: &PersistentVolume,
    phase: &str,
    failed: Option<(&str, String)>,
    now: &Time,
) -> Option<Action> {
    let old = pv.status.clone().unwrap_or_default();
    let (reason, message) = match failed {
        Some((r, m)) => (Some(r.to_owned()), Some(m)),
        None => (None, None),
    };
    if old.phase.as_deref() == Some(phase) && old.reason == reason && old.message == message {
        return None;
    }
    let mut v = pv.clone();
    let since = if old.phase.as_deref() == Some(phase) {
        old.last_phase_transition_time.clone()
    } else {
        Some(now.clone())
    };
    v.status = Some(PersistentVolumeStatus {
        phase: Some(phase.to_owned()),
        message,
        reason,
        last_phase_transition_time: since,
    });
    Some(Action::VolumeStatus(Box::new(v)))
}
