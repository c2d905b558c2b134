//! Kubernetes' VolumeBinding and VolumeZone filters for jotasu's volumes:
//! a pod whose claims are bound goes only to nodes every bound volume's
//! `nodeAffinity` allows (`node(s) had volume node affinity conflict`); a
//! pod with an unbound claim of a `WaitForFirstConsumer` class goes where
//! the usual rules say, if the node has room for the local volumes to be
//! provisioned (`node(s) did not have enough free storage`), and the node
//! chosen is recorded on the claim (`volume.kubernetes.io/selected-node`)
//! for the PV controller; a pod whose claim is missing, being deleted or
//! unbound in an `Immediate` class waits, saying so. Plain functions over
//! a [`VolumeView`] the runner keeps current.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jotasu_api::kinds::storage::{BIND_COMPLETED, SELECTED_NODE};
use jotasu_api::{Node, PersistentVolume, PersistentVolumeClaim, Pod, StorageClass};

use crate::controllers::volumes::matching::{free_storage, usable_from, volume_dir};

/// Reason: a bound volume's node affinity rules the node out.
pub const AFFINITY_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// Reason: the node has no room for the local volumes to provision.
pub const NOT_ENOUGH_STORAGE: &str = "node(s) did not have enough free storage";
/// Reason: a claim of an `Immediate` class is not bound yet.
pub const UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";

/// Why a node cannot hold a pod's volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeUnfit {
    /// A bound volume cannot be used from the node.
    Affinity,
    /// Not enough room for the volumes to provision there.
    Storage,
}

impl VolumeUnfit {
    /// Kubernetes' words for the reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Affinity => AFFINITY_CONFLICT,
            Self::Storage => NOT_ENOUGH_STORAGE,
        }
    }
}

/// What a pod's claims ask of a node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeNeeds {
    /// The volumes its claims are bound to (their node affinity must allow the node).
    pub bound: Vec<Arc<PersistentVolume>>,
    /// Bytes of local volumes to provision on the chosen node.
    pub to_provision: u64,
    /// Room for local volumes per node (nodes that offer them).
    pub room: BTreeMap<String, u64>,
    /// Claims (namespace, name) waiting for the chosen node.
    pub to_select: Vec<(String, String)>,
}

/// The claims, volumes and classes, as the scheduler's informers show
/// them, and the local storage the scheduler has promised and not yet
/// seen on a claim.
#[derive(Debug, Default)]
pub struct VolumeView {
    /// Claims by (namespace, name).
    pub claims: HashMap<(String, String), Arc<PersistentVolumeClaim>>,
    /// Volumes by name.
    pub volumes: HashMap<String, Arc<PersistentVolume>>,
    /// Classes by name.
    pub classes: HashMap<String, Arc<StorageClass>>,
    /// Claims given a node whose annotation does not show yet: (node, bytes).
    pub assumed: HashMap<(String, String), (String, u64)>,
}

impl VolumeView {
    /// A claim was created or changed.
    pub fn claim_applied(&mut self, c: Arc<PersistentVolumeClaim>) {
        let key = claim_key(&c);
        if c.metadata.annotations.contains_key(SELECTED_NODE) || c.spec.volume_name.is_some() {
            self.assumed.remove(&key);
        }
        self.claims.insert(key, c);
    }

    /// A claim was deleted.
    pub fn claim_deleted(&mut self, c: &PersistentVolumeClaim) {
        let key = claim_key(c);
        self.assumed.remove(&key);
        self.claims.remove(&key);
    }

    /// Records that `claims` go to `node` (until their annotation shows).
    pub fn assume(&mut self, claims: &[(String, String)], node: &str) {
        for key in claims {
            let bytes = self.claims.get(key).map_or(0, |c| c.requested_bytes());
            self.assumed.insert(key.clone(), (node.to_owned(), bytes));
        }
    }

    /// Room for local volumes on each of `nodes`: their offer, less the
    /// provisioned volumes, the claims waiting to be provisioned there and
    /// what this scheduler assumed.
    pub fn room<'a>(&self, nodes: impl IntoIterator<Item = &'a Node>) -> BTreeMap<String, u64> {
        let nodes: Vec<&Node> = nodes
            .into_iter()
            .filter(|n| volume_dir(n).is_some())
            .collect();
        let mut room = free_storage(nodes, self.volumes.values().map(|v| &**v));
        let waiting = self.claims.values().filter_map(|c| {
            let node = c.metadata.annotations.get(SELECTED_NODE)?;
            c.spec
                .volume_name
                .is_none()
                .then(|| (node.as_str(), c.requested_bytes()))
        });
        let assumed = self.assumed.values().map(|(n, b)| (n.as_str(), *b));
        for (node, bytes) in waiting.chain(assumed) {
            if let Some(r) = room.get_mut(node) {
                *r = r.saturating_sub(bytes);
            }
        }
        room
    }
}

fn claim_key(c: &PersistentVolumeClaim) -> (String, String) {
    (
        c.metadata.namespace.clone().unwrap_or_default(),
        c.metadata.name().to_owned(),
    )
}

/// The claims a pod's volumes name.
pub fn claim_names(pod: &Pod) -> impl Iterator<Item = &str> {
    pod.spec
        .volumes
        .iter()
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
}

/// What `pod`'s claims ask of nodes (None: it names none), or why it
/// cannot be placed anywhere yet (Kubernetes' words).
pub fn volume_needs<'a>(
    pod: &Pod,
    view: &VolumeView,
    nodes: impl IntoIterator<Item = &'a Node>,
) -> Result<Option<VolumeNeeds>, String> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let mut needs = VolumeNeeds::default();
    let mut any = false;
    for name in claim_names(pod) {
        any = true;
        let key = (namespace.clone(), name.to_owned());
        let Some(claim) = view.claims.get(&key) else {
            return Err(format!("persistentvolumeclaim \"{name}\" not found"));
        };
        if claim.metadata.deletion_timestamp.is_some() {
            return Err(format!("persistentvolumeclaim \"{name}\" is being deleted"));
        }
        // Bound once the PV controller finished (Kubernetes' isPVCFullyBound):
        // a volumeName the user wrote alone is a request, not a binding.
        let bound = claim.metadata.annotations.contains_key(BIND_COMPLETED);
        if let Some(volume) = claim
            .spec
            .volume_name
            .as_deref()
            .filter(|v| bound && !v.is_empty())
        {
            match view.volumes.get(volume) {
                Some(pv) => needs.bound.push(Arc::clone(pv)),
                None => {
                    return Err(format!(
                        "persistentvolume \"{volume}\" of persistentvolumeclaim \"{name}\" not found"
                    ));
                }
            }
            continue;
        }
        let class = view.classes.get(claim.class());
        let waits = class.is_some_and(|c| c.waits_for_first_consumer());
        if !waits {
            return Err(UNBOUND_IMMEDIATE.to_owned());
        }
        if claim.metadata.annotations.contains_key(SELECTED_NODE) {
            // Being provisioned on its node: the pod follows it there.
            return Err(format!(
                "persistentvolumeclaim \"{name}\" is being provisioned on its selected node; waiting for it to be bound"
            ));
        }
        if class.is_some_and(|c| c.provisioned_locally()) {
            needs.to_provision = needs.to_provision.saturating_add(claim.requested_bytes());
        }
        needs.to_select.push(key);
    }
    if !any {
        return Ok(None);
    }
    if needs.to_provision > 0 {
        needs.room = view.room(nodes);
    }
    Ok(Some(needs))
}

/// Whether `node` can hold the pod's volumes, or why not.
pub fn check(node: &Node, needs: &VolumeNeeds) -> Result<(), VolumeUnfit> {
    if !needs.bound.iter().all(|pv| usable_from(pv, node)) {
        return Err(VolumeUnfit::Affinity);
    }
    if needs.to_provision > 0
        && needs.room.get(node.metadata.name()).copied().unwrap_or(0) < needs.to_provision
    {
        return Err(VolumeUnfit::Storage);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::volumes::matching::{
        HOSTNAME_LABEL, NODE_STORAGE, VOLUME_DIR_ANNOTATION,
    };
    use serde_json::json;

    fn node(name: &str, storage: &str) -> Node {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {HOSTNAME_LABEL: name},
                "annotations": {VOLUME_DIR_ANNOTATION: "/v"}},
            "status": {"allocatable": {NODE_STORAGE: storage}}}))
        .unwrap()
    }

    fn pod(claims: &[&str]) -> Pod {
        let volumes: Vec<_> = claims
            .iter()
            .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "x"}], "volumes": volumes}}))
        .unwrap()
    }

    fn view() -> VolumeView {
        let mut v = VolumeView::default();
        for (name, class, volume) in [
            ("bound", "standard", Some("pv-n1")),
            ("fresh", "standard", None),
            ("now", "now", None),
        ] {
            let mut c: PersistentVolumeClaim = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                    "resources": {"requests": {"storage": "2Gi"}}}}))
            .unwrap();
            if let Some(volume) = volume {
                c.spec.volume_name = Some(volume.to_owned());
                c.metadata
                    .annotations
                    .insert(BIND_COMPLETED.to_owned(), "yes".to_owned());
            }
            v.claim_applied(Arc::new(c));
        }
        let pv: PersistentVolume = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-n1"},
            "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"],
                "local": {"path": "/v/pv-n1"},
                "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": HOSTNAME_LABEL, "operator": "In", "values": ["n1"]}]}]}}}}))
        .unwrap();
        v.volumes.insert("pv-n1".into(), Arc::new(pv));
        for (name, mode) in [("standard", "WaitForFirstConsumer"), ("now", "Immediate")] {
            let sc: StorageClass = serde_json::from_value(json!({
                "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                "metadata": {"name": name}, "provisioner": jotasu_api::kinds::storage::LOCAL_PROVISIONER,
                "volumeBindingMode": mode}))
            .unwrap();
            v.classes.insert(name.into(), Arc::new(sc));
        }
        v
    }

    #[test]
    fn a_bound_local_volume_pins_the_pod_to_its_node() {
        let v = view();
        let nodes = [node("n1", "10Gi"), node("n2", "10Gi")];
        let needs = volume_needs(&pod(&["bound"]), &v, &nodes).unwrap().unwrap();
        assert_eq!(check(&nodes[0], &needs), Ok(()));
        assert_eq!(check(&nodes[1], &needs), Err(VolumeUnfit::Affinity));
        assert_eq!(
            VolumeUnfit::Affinity.reason(),
            "node(s) had volume node affinity conflict"
        );
    }

    #[test]
    fn an_unbound_wait_for_first_consumer_claim_needs_room_and_is_recorded() {
        let mut v = view();
        let nodes = [node("n1", "3Gi"), node("n2", "1Gi")];
        let needs = volume_needs(&pod(&["fresh"]), &v, &nodes).unwrap().unwrap();
        assert_eq!(
            needs.to_select,
            [("default".to_owned(), "fresh".to_owned())]
        );
        assert_eq!(check(&nodes[0], &needs), Ok(()));
        assert_eq!(check(&nodes[1], &needs), Err(VolumeUnfit::Storage));
        // Once assumed on n1, n1 has 1Gi left: another 2Gi claim no longer fits.
        v.assume(&needs.to_select, "n1");
        let again = volume_needs(&pod(&["fresh"]), &v, &nodes).unwrap().unwrap();
        assert_eq!(check(&nodes[0], &again), Err(VolumeUnfit::Storage));
    }

    #[test]
    fn missing_and_immediate_claims_wait_with_kubernetes_words() {
        let v = view();
        let nodes = [node("n1", "3Gi")];
        assert_eq!(
            volume_needs(&pod(&["nope"]), &v, &nodes),
            Err("persistentvolumeclaim \"nope\" not found".to_owned())
        );
        assert_eq!(
            volume_needs(&pod(&["now"]), &v, &nodes),
            Err(UNBOUND_IMMEDIATE.to_owned())
        );
        assert_eq!(volume_needs(&pod(&[]), &v, &nodes), Ok(None));
    }
}
