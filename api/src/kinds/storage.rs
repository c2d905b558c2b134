//! Storage that outlives pods: PersistentVolume (`v1`, cluster-scoped), a
//! piece of storage on a node; PersistentVolumeClaim (`v1`, namespaced), a
//! pod's request for one; StorageClass (`storage.k8s.io/v1`,
//! cluster-scoped), how volumes of a class are provisioned. jotasu's volumes
//! are directories of a node (`local` or `hostPath`); its built-in
//! provisioner [`LOCAL_PROVISIONER`] makes one per claim.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::kinds::affinity::NodeSelector;
use crate::kinds::volumes::HostPathVolumeSource;
use crate::meta::{ObjectMeta, ObjectReference, Time};
use crate::quantity::Quantity;
use crate::resource::{ApiVersionTag, KindTag, resource};
use crate::selector::LabelSelector;

/// The provisioner of jotasu's local volumes (a directory per volume on a node).
pub const LOCAL_PROVISIONER: &str = "jotasu.io/local";

/// The local-directory provisioners of other single-machine clusters
/// (minikube, kind and k3s, MicroK8s, Docker Desktop): jotasu's local
/// provisioner serves their classes too (their parameters are ignored),
/// so manifests written for a local cluster run unchanged.
pub const LOCAL_PROVISIONER_ALIASES: [&str; 4] = [
    "k8s.io/minikube-hostpath",
    "rancher.io/local-path",
    "microk8s.io/hostpath",
    "docker.io/hostpath",
];
/// The StorageClass created at start: the default class, provisioned by
/// [`LOCAL_PROVISIONER`] when the first pod using a claim is scheduled.
pub const DEFAULT_CLASS: &str = "standard";
/// The annotation that makes a StorageClass the default one.
pub const IS_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
/// Written on a claim by the scheduler: the node its first pod goes to
/// (WaitForFirstConsumer provisioning happens there).
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Written on a claim whose class has a provisioner: which one provisions it.
pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// Written on a PersistentVolume the provisioner made: who made it.
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// Written on a claim once the PV controller finished binding it.
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Written on a claim bound by the PV controller (not pre-bound by the user).
pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// The only volume mode jotasu supports (and Kubernetes' default).
pub const FILESYSTEM: &str = "Filesystem";
/// The condition the PV controller writes on a claim it cannot bind yet
/// (status False; reason and message are Kubernetes' event's, e.g.
/// `WaitForFirstConsumer`: `waiting for first consumer to be created
/// before binding`). jotasu has no Events; `jotactl describe pvc` shows
/// this condition where kubectl shows events.
pub const BINDING_CONDITION: &str = "Bound";
/// The storage resource of capacities and requests.
pub const STORAGE: &str = "storage";
/// Access modes Kubernetes knows.
pub const ACCESS_MODES: &[&str] = &[
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];

/// A piece of storage of the cluster (a directory of a node).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersistentVolume {
    /// Always `v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<PersistentVolume>,
    /// Always `PersistentVolume`.
    #[serde(default)]
    pub kind: KindTag<PersistentVolume>,
    /// Its name.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What it is and where.
    #[serde(default)]
    pub spec: PersistentVolumeSpec,
    /// Available, Bound, Released or Failed (written by the PV controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PersistentVolumeStatus>,
}
resource!(
    PersistentVolume,
    "v1",
    "PersistentVolume",
    namespaced = false
);

/// A PersistentVolume's spec (one source: `local` or `hostPath`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersistentVolumeSpec {
    /// How it may be mounted ([`ACCESS_MODES`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_modes: Vec<String>,
    /// Its size (`storage`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<String, Quantity>,
    /// The claim it is bound to (or reserved for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_ref: Option<ObjectReference>,
    /// A directory of a node, without node affinity (for one-node clusters and tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathVolumeSource>,
    /// A directory of the node(s) its `nodeAffinity` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalVolumeSource>,
    /// The nodes it can be used from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_affinity: Option<VolumeNodeAffinity>,
    /// `Retain` (default for volumes made by hand), `Delete` (default for
    /// provisioned ones) or `Recycle` (deprecated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_reclaim_policy: Option<String>,
    /// Its class (`""`: claims without a class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// `Filesystem` (default; `Block` is not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mode: Option<String>,
}

/// A directory on a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalVolumeSource {
    /// Its absolute path on the node.
    #[serde(default)]
    pub path: String,
    /// For block devices only (not supported; must be empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
}

/// The nodes a volume can be used from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeNodeAffinity {
    /// A node must match this selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<NodeSelector>,
}

/// A PersistentVolume's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersistentVolumeStatus {
    /// `Pending`, `Available`, `Bound`, `Released` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why it is in this phase, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Why it is in this phase, one CamelCase word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the phase last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_phase_transition_time: Option<Time>,
}

/// A request for storage, bound to one PersistentVolume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersistentVolumeClaim {
    /// Always `v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<PersistentVolumeClaim>,
    /// Always `PersistentVolumeClaim`.
    #[serde(default)]
    pub kind: KindTag<PersistentVolumeClaim>,
    /// Name and namespace.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What is requested.
    #[serde(default)]
    pub spec: PersistentVolumeClaimSpec,
    /// Pending, Bound or Lost (written by the PV controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PersistentVolumeClaimStatus>,
}
resource!(
    PersistentVolumeClaim,
    "v1",
    "PersistentVolumeClaim",
    namespaced = true
);

/// What a claim requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersistentVolumeClaimSpec {
    /// How the volume must be mountable ([`ACCESS_MODES`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_modes: Vec<String>,
    /// The size requested (`requests.storage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<VolumeResourceRequirements>,
    /// Only volumes with these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// The class (unset: the default class; `""`: volumes without a class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// `Filesystem` (default; `Block` is not supported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_mode: Option<String>,
    /// The volume it is bound to (or asks for by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_name: Option<String>,
}

/// A claim's size: `requests.storage` (the least) and `limits.storage`
/// (the most), the same shape as a container's resources.
pub type VolumeResourceRequirements = crate::kinds::pod::ResourceRequirements;

/// A claim's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersistentVolumeClaimStatus {
    /// `Pending`, `Bound` or `Lost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The bound volume's access modes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_modes: Vec<String>,
    /// The bound volume's size.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<String, Quantity>,
    /// jotasu writes none (resizing is not done); kept for Kubernetes' shape.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PersistentVolumeClaimCondition>,
}

/// One condition of a claim.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PersistentVolumeClaimCondition {
    /// The condition's type.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// One CamelCase word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When it was last probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_time: Option<Time>,
    /// When its status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// How volumes of a class are made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageClass {
    /// Always `storage.k8s.io/v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<StorageClass>,
    /// Always `StorageClass`.
    #[serde(default)]
    pub kind: KindTag<StorageClass>,
    /// Its name.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Who makes its volumes (jotasu's own: [`LOCAL_PROVISIONER`]; a class
    /// naming another is stored, and its claims stay Pending).
    #[serde(default)]
    pub provisioner: String,
    /// For the provisioner (jotasu's local provisioner takes none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, String>,
    /// The reclaim policy of its volumes: `Delete` (default) or `Retain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaim_policy: Option<String>,
    /// `Immediate` (default) or `WaitForFirstConsumer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_binding_mode: Option<String>,
    /// Whether claims may grow (stored; jotasu does not resize volumes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_volume_expansion: Option<bool>,
    /// The nodes its volumes may be provisioned on (any term matches).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_topologies: Vec<TopologySelectorTerm>,
}
resource!(
    StorageClass,
    "storage.k8s.io/v1",
    "StorageClass",
    namespaced = false
);

/// Requirements on node labels, ANDed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopologySelectorTerm {
    /// The requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_label_expressions: Vec<TopologySelectorLabelRequirement>,
}

/// A node label that must have one of the values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TopologySelectorLabelRequirement {
    /// The label key.
    pub key: String,
    /// Its allowed values.
    #[serde(default)]
    pub values: Vec<String>,
}

impl TopologySelectorTerm {
    /// Whether a node with `labels` matches every requirement.
    pub fn matches(&self, labels: &crate::meta::Labels) -> bool {
        self.match_label_expressions
            .iter()
            .all(|r| labels.get(&r.key).is_some_and(|v| r.values.contains(v)))
    }
}

impl StorageClass {
    /// Whether jotasu's local provisioner makes this class's volumes
    /// ([`LOCAL_PROVISIONER`] or one of [`LOCAL_PROVISIONER_ALIASES`]).
    pub fn provisioned_locally(&self) -> bool {
        self.provisioner == LOCAL_PROVISIONER
            || LOCAL_PROVISIONER_ALIASES.contains(&self.provisioner.as_str())
    }

    /// Whether the class is the default one (its annotation is `"true"`).
    pub fn is_default(&self) -> bool {
        self.metadata
            .annotations
            .get(IS_DEFAULT_CLASS)
            .is_some_and(|v| v == "true")
    }

    /// Whether volumes wait for the first pod's node (`WaitForFirstConsumer`).
    pub fn waits_for_first_consumer(&self) -> bool {
        self.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer")
    }
}

impl PersistentVolumeClaim {
    /// The requested size in bytes (0 when unset or not a size).
    pub fn requested_bytes(&self) -> u64 {
        self.spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.get(STORAGE))
            .map_or(0, quantity_bytes)
    }

    /// The claim's class name; `None` and `""` are both "no class" here
    /// (admission gives unset claims the default class first).
    pub fn class(&self) -> &str {
        self.spec.storage_class_name.as_deref().unwrap_or("")
    }

    /// The phase written by the controller (`Pending` when none yet).
    pub fn phase(&self) -> &str {
        self.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Pending")
    }
}

impl PersistentVolume {
    /// The capacity in bytes (0 when unset).
    pub fn capacity_bytes(&self) -> u64 {
        self.spec.capacity.get(STORAGE).map_or(0, quantity_bytes)
    }

    /// The node selector terms of its required node affinity (none: any node).
    pub fn required_terms(&self) -> &[crate::kinds::affinity::NodeSelectorTerm] {
        self.spec
            .node_affinity
            .as_ref()
            .and_then(|a| a.required.as_ref())
            .map(|r| r.node_selector_terms.as_slice())
            .unwrap_or_default()
    }

    /// The directory it is (`local.path` or `hostPath.path`).
    pub fn path(&self) -> Option<&str> {
        match (&self.spec.local, &self.spec.host_path) {
            (Some(l), _) => Some(l.path.as_str()),
            (None, Some(h)) => Some(h.path.as_str()),
            (None, None) => None,
        }
    }

    /// The phase written by the controller (`Pending` when none yet).
    pub fn phase(&self) -> &str {
        self.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Pending")
    }

    /// The class name (`""` when none).
    pub fn class(&self) -> &str {
        self.spec.storage_class_name.as_deref().unwrap_or("")
    }
}

/// A storage quantity in bytes (fractions rounded up; negative as 0).
pub fn quantity_bytes(q: &Quantity) -> u64 {
    u64::try_from(q.units().max(0)).unwrap_or(0)
}

/// The deprecated annotation older manifests name a class with; Kubernetes
/// still reads it when `storageClassName` is unset, and so does jotasu.
pub const BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";

/// Kubernetes' defaults of a PersistentVolume: `volumeMode: Filesystem`,
/// reclaim policy `Retain` (the provisioner writes `Delete` or its
/// class's policy on the volumes it makes); the class from the beta
/// annotation when `storageClassName` is unset.
pub fn default_pv(pv: &mut PersistentVolume) {
    if pv.spec.storage_class_name.is_none() {
        pv.spec.storage_class_name = pv.metadata.annotations.get(BETA_STORAGE_CLASS).cloned();
    }
    pv.spec
        .volume_mode
        .get_or_insert_with(|| FILESYSTEM.to_owned());
    pv.spec
        .persistent_volume_reclaim_policy
        .get_or_insert_with(|| "Retain".to_owned());
}

/// Kubernetes' defaults of a claim: `volumeMode: Filesystem`; the class
/// from the beta annotation when `storageClassName` is unset (then no
/// default class is given, as Kubernetes' admission reads it too).
pub fn default_pvc(pvc: &mut PersistentVolumeClaim) {
    if pvc.spec.storage_class_name.is_none() {
        pvc.spec.storage_class_name = pvc.metadata.annotations.get(BETA_STORAGE_CLASS).cloned();
    }
    pvc.spec
        .volume_mode
        .get_or_insert_with(|| FILESYSTEM.to_owned());
}

/// Kubernetes' defaults of a StorageClass: `reclaimPolicy: Delete`,
/// `volumeBindingMode: Immediate`.
pub fn default_storage_class(sc: &mut StorageClass) {
    sc.reclaim_policy.get_or_insert_with(|| "Delete".to_owned());
    sc.volume_binding_mode
        .get_or_insert_with(|| "Immediate".to_owned());
}
