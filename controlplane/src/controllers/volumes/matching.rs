//! Pure rules shared by the PV controller and the scheduler: which volume
//! a claim may bind (class, access modes, size, selector, volume mode,
//! pre-binding), which nodes a volume can be used from, and how much room
//! each node has left for local volumes.

use std::collections::{BTreeMap, BTreeSet};

use jotasu_api::kinds::storage::{LOCAL_PROVISIONER, PROVISIONED_BY, quantity_bytes};
use jotasu_api::{Node, PersistentVolume, PersistentVolumeClaim};

/// The node resource a node's room for local volumes is read from: the
/// agent reports the size of its volumes directory's filesystem (or its
/// `--local-volume-capacity`) as allocatable `ephemeral-storage`.
pub const NODE_STORAGE: &str = "ephemeral-storage";
/// The node annotation (written by its agent) naming the directory under
/// which the local provisioner makes volumes on that node.
pub const VOLUME_DIR_ANNOTATION: &str = "jotasu.io/local-volume-dir";
/// The node label naming the node, which local volumes' node affinity uses.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// Whether `pv` can be used from `node` (no node affinity: any node).
pub fn usable_from(pv: &PersistentVolume, node: &Node) -> bool {
    let terms = pv.required_terms();
    terms.is_empty()
        || terms
            .iter()
            .any(|t| t.matches(&node.metadata.labels, node.metadata.name()))
}

/// The one node a volume's affinity names by hostname (`kubernetes.io/hostname
/// In [n]`), as the local provisioner writes it.
pub fn pinned_node(pv: &PersistentVolume) -> Option<&str> {
    let [term] = pv.required_terms() else {
        return None;
    };
    term.match_expressions
        .iter()
        .find(|r| r.key == HOSTNAME_LABEL && r.values.len() == 1)
        .map(|r| r.values[0].as_str())
}

/// Whether the local provisioner made `pv` (its directory is the agent's
/// to create and remove).
pub fn locally_provisioned(pv: &PersistentVolume) -> bool {
    pv.metadata
        .annotations
        .get(PROVISIONED_BY)
        .is_some_and(|p| p == LOCAL_PROVISIONER)
}

/// Whether `pv` is bound or reserved to `claim` (by namespace and name,
/// and uid when the reference has one).
pub fn reserved_for(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    pv.spec.claim_ref.as_ref().is_some_and(|r| {
        r.name.as_deref() == Some(claim.metadata.name())
            && r.namespace.as_deref() == claim.metadata.namespace.as_deref()
            && r.uid
                .as_deref()
                .is_none_or(|u| Some(u) == claim.metadata.uid.as_deref())
    })
}

/// Whether `pv` satisfies `claim`: free (or reserved for it), same class,
/// every requested access mode, at least the requested size, the same
/// volume mode, labels matching the claim's selector, and the name the
/// claim asks for.
pub fn satisfies(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let free = match &pv.spec.claim_ref {
        None => true,
        Some(_) => reserved_for(pv, claim),
    };
    let wanted = claim.spec.volume_name.as_deref().filter(|v| !v.is_empty());
    free && pv.metadata.deletion_timestamp.is_none()
        && !matches!(pv.phase(), "Released" | "Failed")
        && wanted.is_none_or(|w| w == pv.metadata.name())
        && pv.class() == claim.class()
        && claim
            .spec
            .access_modes
            .iter()
            .all(|m| pv.spec.access_modes.contains(m))
        && pv.capacity_bytes() >= claim.requested_bytes()
        && pv.spec.volume_mode == claim.spec.volume_mode
        && claim
            .spec
            .selector
            .as_ref()
            .is_none_or(|s| s.matches(&pv.metadata.labels))
}

/// Why the volume a claim names cannot be bound to it (Kubernetes'
/// `Cannot bind to requested volume` reasons), or None when it can.
pub fn mismatch(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> Option<&'static str> {
    if pv.spec.claim_ref.is_some() && !reserved_for(pv, claim) {
        return Some("volume is already bound to a different claim");
    }
    if pv.class() != claim.class() {
        return Some("storageClassName does not match");
    }
    if !claim
        .spec
        .access_modes
        .iter()
        .all(|m| pv.spec.access_modes.contains(m))
    {
        return Some("incompatible accessMode");
    }
    if pv.capacity_bytes() < claim.requested_bytes() {
        return Some("requested PV is too small");
    }
    if pv.spec.volume_mode != claim.spec.volume_mode {
        return Some("incompatible volumeMode");
    }
    if !claim
        .spec
        .selector
        .as_ref()
        .is_none_or(|s| s.matches(&pv.metadata.labels))
    {
        return Some("the volume's labels do not match the claim's selector");
    }
    if matches!(pv.phase(), "Released" | "Failed") || pv.metadata.deletion_timestamp.is_some() {
        return Some("the volume is released or being deleted");
    }
    None
}

/// The smallest volume of `volumes` that satisfies `claim` (a volume
/// reserved for it first) and, when given, can be used from `node`.
pub fn best_volume<'a>(
    volumes: impl IntoIterator<Item = &'a PersistentVolume>,
    claim: &PersistentVolumeClaim,
    node: Option<&Node>,
) -> Option<&'a PersistentVolume> {
    volumes
        .into_iter()
        .filter(|pv| satisfies(pv, claim))
        .filter(|pv| node.is_none_or(|n| usable_from(pv, n)))
        .min_by_key(|pv| {
            (
                !reserved_for(pv, claim),
                pv.capacity_bytes(),
                pv.metadata.name().to_owned(),
            )
        })
}

/// Room for local volumes, per node: allocatable [`NODE_STORAGE`] less the
/// capacities of the locally provisioned volumes pinned there.
pub fn free_storage<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    volumes: impl IntoIterator<Item = &'a PersistentVolume>,
) -> BTreeMap<String, u64> {
    let mut free: BTreeMap<String, u64> = nodes
        .into_iter()
        .map(|n| (n.metadata.name().to_owned(), node_storage(n)))
        .collect();
    for pv in volumes.into_iter().filter(|pv| locally_provisioned(pv)) {
        if let Some(room) = pinned_node(pv).and_then(|n| free.get_mut(n)) {
            *room = room.saturating_sub(pv.capacity_bytes());
        }
    }
    free
}

/// A node's room for local volumes in all (0 when it reports none).
pub fn node_storage(node: &Node) -> u64 {
    node.status
        .as_ref()
        .and_then(|s| s.allocatable.get(NODE_STORAGE))
        .map_or(0, quantity_bytes)
}

/// The directory local volumes go under on `node` (its agent says).
pub fn volume_dir(node: &Node) -> Option<&str> {
    node.metadata
        .annotations
        .get(VOLUME_DIR_ANNOTATION)
        .map(String::as_str)
        .filter(|d| d.starts_with('/'))
}

/// The claims `pods` use, by (namespace, name): named by a pod that may
/// still run ([`crate::apiserver::storage::uses_claim`]).
pub fn claims_in_use<'a>(
    pods: impl IntoIterator<Item = &'a jotasu_api::Pod>,
) -> BTreeSet<(String, String)> {
    pods.into_iter()
        .flat_map(|p| {
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            p.spec
                .volumes
                .iter()
                .filter_map(|v| v.persistent_volume_claim.as_ref())
                .filter(move |c| crate::apiserver::storage::uses_claim(p, &c.claim_name))
                .map(move |c| (ns.clone(), c.claim_name.clone()))
        })
        .collect()
}

/// The node of a scheduled pod naming each claim (the first pod seen).
pub fn claims_placed<'a>(
    pods: impl IntoIterator<Item = &'a jotasu_api::Pod>,
) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for p in pods {
        let Some(node) = p.spec.node_name.as_deref().filter(|n| !n.is_empty()) else {
            continue;
        };
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        for c in p
            .spec
            .volumes
            .iter()
            .filter_map(|v| v.persistent_volume_claim.as_ref())
        {
            out.entry((ns.clone(), c.claim_name.clone()))
                .or_insert_with(|| node.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn pv(name: &str, size: &str, class: &str, node: Option<&str>) -> PersistentVolume {
        let mut v = json!({"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "labels": {"tier": "fast"}},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                "storageClassName": class, "volumeMode": "Filesystem",
                "hostPath": {"path": format!("/srv/{name}")}}});
        if let Some(n) = node {
            v["spec"]["nodeAffinity"] = json!({"required": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": HOSTNAME_LABEL, "operator": "In", "values": [n]}]}]}});
        }
        serde_json::from_value(v).unwrap()
    }

    pub(crate) fn claim(name: &str, size: &str, class: &str) -> PersistentVolumeClaim {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                "volumeMode": "Filesystem", "resources": {"requests": {"storage": size}}}}))
        .unwrap()
    }

    pub(crate) fn node(name: &str, storage: &str) -> Node {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {HOSTNAME_LABEL: name}},
            "status": {"allocatable": {NODE_STORAGE: storage}}}))
        .unwrap()
    }

    #[test]
    fn the_smallest_fitting_volume_of_the_class_wins() {
        let vols = [
            pv("big", "10Gi", "", None),
            pv("small", "1Gi", "", None),
            pv("tiny", "100Mi", "", None),
            pv("other-class", "1Gi", "gold", None),
        ];
        let c = claim("c", "500Mi", "");
        assert_eq!(
            best_volume(&vols, &c, None).unwrap().metadata.name(),
            "small"
        );
        let c = claim("c", "20Gi", "");
        assert!(
            best_volume(&vols, &c, None).is_none(),
            "nothing is big enough"
        );
        let mut rwx = claim("c", "1Gi", "");
        rwx.spec.access_modes = vec!["ReadWriteMany".into()];
        assert!(
            best_volume(&vols, &rwx, None).is_none(),
            "no volume offers RWX"
        );
        let mut picky = claim("c", "1Gi", "");
        picky.spec.selector = Some(jotasu_api::LabelSelector::parse("tier=slow").unwrap());
        assert!(
            best_volume(&vols, &picky, None).is_none(),
            "the selector rules out all"
        );
    }

    #[test]
    fn taken_volumes_and_other_nodes_are_skipped() {
        let mut taken = pv("taken", "1Gi", "", None);
        taken.spec.claim_ref = Some(jotasu_api::meta::ObjectReference {
            namespace: Some("default".into()),
            name: Some("someone-else".into()),
            ..Default::default()
        });
        let on_n2 = pv("on-n2", "2Gi", "", Some("n2"));
        let c = claim("c", "1Gi", "");
        let vols = [taken, on_n2];
        assert!(best_volume(&vols, &c, Some(&node("n1", "1Gi"))).is_none());
        assert_eq!(
            best_volume(&vols, &c, Some(&node("n2", "1Gi")))
                .unwrap()
                .metadata
                .name(),
            "on-n2"
        );
        // A volume reserved for this claim goes first, even if bigger.
        let mut mine = pv("mine", "5Gi", "", None);
        mine.spec.claim_ref = Some(jotasu_api::meta::ObjectReference {
            namespace: Some("default".into()),
            name: Some("c".into()),
            ..Default::default()
        });
        let vols = [pv("small", "1Gi", "", None), mine];
        assert_eq!(
            best_volume(&vols, &c, None).unwrap().metadata.name(),
            "mine"
        );
    }

    #[test]
    fn free_storage_counts_only_provisioned_volumes_on_each_node() {
        let mut made = pv("pvc-1", "3Gi", "standard", Some("n1"));
        made.metadata
            .annotations
            .insert(PROVISIONED_BY.into(), LOCAL_PROVISIONER.into());
        let by_hand = pv("static", "4Gi", "", Some("n1"));
        let nodes = [node("n1", "10Gi"), node("n2", "1Gi")];
        let free = free_storage(&nodes, &[made, by_hand]);
        assert_eq!(free["n1"], 7 << 30);
        assert_eq!(free["n2"], 1 << 30);
    }
}
