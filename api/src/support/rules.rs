//! The rules: one line per Kubernetes field jotasu does not implement, by
//! the scope it appears in (object metadata, a pod spec, a container, a
//! Service…). When a field gets implemented, its rule goes (the
//! `k8s_check` test fails on a rule for a field the types decode).

use super::Decision::{Drop, Refuse, Warn};
use super::Rule;
use crate::object::Kind;

const fn rule(path: &'static str, decision: super::Decision, why: &'static str) -> Rule {
    Rule {
        path,
        decision,
        same: &[],
        why,
    }
}

/// A rule whose `same` values are accepted silently.
const fn unless(
    path: &'static str,
    same: &'static [&'static str],
    decision: super::Decision,
    why: &'static str,
) -> Rule {
    Rule {
        path,
        decision,
        same,
        why,
    }
}

/// Every object's metadata (and a pod template's).
pub const METADATA: &[Rule] = &[
    rule(
        "finalizers",
        Refuse,
        "deletion does not wait for finalizers yet; remove them",
    ),
    rule(
        "managedFields",
        Warn,
        "jotasu keeps no field managers (apply replaces the object)",
    ),
    rule("selfLink", Drop, "deprecated, never set"),
];

const NO_CLOUD_VOLUMES: &str =
    "jotasu has no such volume plugin; use emptyDir, configMap or secret volumes";

/// A pod spec (a Pod's `spec`, a workload's `spec.template.spec`).
pub const POD_SPEC: &[Rule] = &[
    rule(
        "activeDeadlineSeconds",
        Refuse,
        "pods are not stopped at a deadline yet",
    ),
    unless(
        "enableServiceLinks",
        &["true"],
        Refuse,
        "every pod gets the Service environment variables",
    ),
    rule(
        "ephemeralContainers",
        Refuse,
        "ephemeral (debug) containers are not supported; use `jotactl exec`",
    ),
    rule(
        "hostAliases",
        Refuse,
        "entries in /etc/hosts are not written yet",
    ),
    unless(
        "hostIPC",
        &["false"],
        Refuse,
        "every pod has its own IPC namespace",
    ),
    unless(
        "hostNetwork",
        &["false"],
        Refuse,
        "every pod has its own network namespace and address",
    ),
    unless(
        "hostPID",
        &["false"],
        Refuse,
        "every pod has its own PID namespace",
    ),
    unless(
        "hostUsers",
        &["true"],
        Refuse,
        "pods run in the host's user namespace",
    ),
    rule(
        "hostnameOverride",
        Refuse,
        "the pod's hostname is its name, or spec.hostname",
    ),
    unless("os", &[r#"{"name":"linux"}"#], Refuse, "pods run on Linux"),
    rule(
        "overhead",
        Warn,
        "pod overhead is not accounted (there are no RuntimeClasses)",
    ),
    rule(
        "readinessGates",
        Refuse,
        "a pod is ready when its containers are; nothing sets readiness gates",
    ),
    rule(
        "resourceClaims",
        Refuse,
        "dynamic resource allocation is not supported",
    ),
    rule(
        "resources",
        Refuse,
        "pod-level resources are not supported; set each container's resources",
    ),
    rule(
        "runtimeClassName",
        Refuse,
        "there are no RuntimeClasses; every pod uses the node's runtime",
    ),
    unless(
        "schedulerName",
        &[r#""default-scheduler""#],
        Refuse,
        "jotasu's one scheduler (default-scheduler) places every pod",
    ),
    rule(
        "schedulingGates",
        Refuse,
        "scheduling gates are not supported yet",
    ),
    unless(
        "setHostnameAsFQDN",
        &["false"],
        Refuse,
        "the hostname is the short name",
    ),
    unless(
        "shareProcessNamespace",
        &["false"],
        Refuse,
        "each container has its own PID namespace",
    ),
    rule("workloadRef", Refuse, "gang scheduling is not supported"),
    rule("volumes[].awsElasticBlockStore", Refuse, NO_CLOUD_VOLUMES),
    rule("volumes[].azureDisk", Refuse, NO_CLOUD_VOLUMES),
    rule("volumes[].azureFile", Refuse, NO_CLOUD_VOLUMES),
    rule("volumes[].cephfs", Refuse, NO_CLOUD_VOLUMES),
    rule("volumes[].cinder", Refuse, NO_CLOUD_VOLUMES),
    rule("volumes[].csi", Refuse, NO_CLOUD_VOLUMES),
    rule(
        "volumes[].ephemeral",
        Refuse,
        "generic ephemeral volumes are not supported yet; use a PersistentVolumeClaim",
    ),
    rule("volumes[].fc", Refuse, NO_CLOUD_VOLUMES),
    rule("volumes[].flexVolume", Refuse, NO_CLOUD_VOLUMES),
    rule("volumes[].flocker", Refuse, NO_CLOUD_VOLUMES),
    rule("volumes[].gcePersistentDisk", Refuse, NO_CLOUD_VOLUMES),
    rule(
        "volumes[].gitRepo",
        Refuse,
        "deprecated by Kubernetes; clone in an init container",
    ),
    rule("volumes[].glusterfs", Refuse, NO_CLOUD_VOLUMES),
    rule("volumes[].image", Refuse, "image volumes are not supported"),
    rule("volumes[].iscsi", Refuse, NO_CLOUD_VOLUMES),
    rule("volumes[].nfs", Refuse, NO_CLOUD_VOLUMES),
    rule("volumes[].photonPersistentDisk", Refuse, NO_CLOUD_VOLUMES),
    rule("volumes[].portworxVolume", Refuse, NO_CLOUD_VOLUMES),
    rule("volumes[].quobyte", Refuse, NO_CLOUD_VOLUMES),
    rule("volumes[].rbd", Refuse, NO_CLOUD_VOLUMES),
    rule("volumes[].scaleIO", Refuse, NO_CLOUD_VOLUMES),
    rule("volumes[].storageos", Refuse, NO_CLOUD_VOLUMES),
    rule("volumes[].vsphereVolume", Refuse, NO_CLOUD_VOLUMES),
];

const PROBE_GRACE: &str = "the pod's terminationGracePeriodSeconds applies";

/// A container (app or init) of a pod spec.
pub const CONTAINER: &[Rule] = &[
    rule(
        "env[].valueFrom.fileKeyRef",
        Refuse,
        "variables from files are not supported",
    ),
    rule(
        "livenessProbe.terminationGracePeriodSeconds",
        Warn,
        PROBE_GRACE,
    ),
    rule(
        "readinessProbe.terminationGracePeriodSeconds",
        Warn,
        PROBE_GRACE,
    ),
    rule(
        "startupProbe.terminationGracePeriodSeconds",
        Warn,
        PROBE_GRACE,
    ),
    rule(
        "ports[].hostIP",
        Warn,
        "host ports are served on the node's InternalIP",
    ),
    rule(
        "resizePolicy",
        Warn,
        "resources are not resized in place; a changed template replaces its pods",
    ),
    rule(
        "resources.claims",
        Refuse,
        "dynamic resource allocation is not supported",
    ),
    rule(
        "restartPolicyRules",
        Refuse,
        "per-container restart rules are not supported",
    ),
    unless(
        "stdin",
        &["false"],
        Warn,
        "containers get no stdin; use `jotactl exec`",
    ),
    unless(
        "stdinOnce",
        &["false"],
        Warn,
        "containers get no stdin; use `jotactl exec`",
    ),
    unless(
        "tty",
        &["false"],
        Warn,
        "containers get no terminal; use `jotactl exec`",
    ),
    unless(
        "terminationMessagePath",
        &[r#""/dev/termination-log""#],
        Warn,
        "termination messages are not collected",
    ),
    unless(
        "terminationMessagePolicy",
        &[r#""File""#],
        Warn,
        "termination messages are not collected",
    ),
    rule("volumeDevices", Refuse, "block volumes are not supported"),
    unless(
        "volumeMounts[].recursiveReadOnly",
        &[r#""Disabled""#],
        Refuse,
        "read-only mounts are not made recursively read-only",
    ),
    rule(
        "volumeMounts[].subPathExpr",
        Refuse,
        "subPathExpr is not expanded yet; use subPath",
    ),
    rule("workingDir", Refuse, "the working directory is the image's"),
];

const NODE_PORTS: &str =
    "no load balancer is provisioned; the Service is reachable at its ClusterIP and its node ports";

/// A Service's spec.
pub const SERVICE_SPEC: &[Rule] = &[
    rule("allocateLoadBalancerNodePorts", Warn, NODE_PORTS),
    rule("healthCheckNodePort", Warn, NODE_PORTS),
    unless(
        "internalTrafficPolicy",
        &[r#""Cluster""#],
        Refuse,
        "traffic is balanced over every endpoint of the cluster",
    ),
    unless(
        "ipFamilies",
        &[r#"["IPv4"]"#],
        Refuse,
        "Services are IPv4 only",
    ),
    unless(
        "ipFamilyPolicy",
        &[r#""SingleStack""#, r#""PreferDualStack""#],
        Refuse,
        "Services are IPv4 only (single-stack)",
    ),
    rule("loadBalancerClass", Warn, NODE_PORTS),
    rule("loadBalancerIP", Warn, NODE_PORTS),
    rule("loadBalancerSourceRanges", Warn, NODE_PORTS),
    rule(
        "publishNotReadyAddresses",
        Refuse,
        "Endpoints list ready pods only",
    ),
    rule(
        "trafficDistribution",
        Warn,
        "traffic is spread over every endpoint",
    ),
];

/// A Node's spec.
pub const NODE_SPEC: &[Rule] = &[
    rule("configSource", Drop, "removed from Kubernetes"),
    rule("externalID", Drop, "deprecated, unused"),
];

/// A HorizontalPodAutoscaler's spec.
pub const HPA_SPEC: &[Rule] = &[
    rule(
        "behavior.scaleDown.tolerance",
        Refuse,
        "the tolerance is 10 % for both directions",
    ),
    rule(
        "behavior.scaleUp.tolerance",
        Refuse,
        "the tolerance is 10 % for both directions",
    ),
    rule(
        "metrics[].containerResource",
        Refuse,
        "only Resource metrics (cpu, memory of the whole pod) are served",
    ),
    rule(
        "metrics[].external",
        Refuse,
        "only Resource metrics (cpu, memory) are served",
    ),
    rule(
        "metrics[].object",
        Refuse,
        "only Resource metrics (cpu, memory) are served",
    ),
    rule(
        "metrics[].pods",
        Refuse,
        "only Resource metrics (cpu, memory) are served",
    ),
];

/// A PersistentVolume's spec: network and cloud sources are refused by name.
pub const PV_SPEC: &[Rule] = &[
    rule(
        "awsElasticBlockStore",
        Refuse,
        "jotasu does not support awsElasticBlockStore volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "azureDisk",
        Refuse,
        "jotasu does not support azureDisk volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "azureFile",
        Refuse,
        "jotasu does not support azureFile volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "cephfs",
        Refuse,
        "jotasu does not support cephfs volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "cinder",
        Refuse,
        "jotasu does not support cinder volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "csi",
        Refuse,
        "jotasu does not support csi volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "fc",
        Refuse,
        "jotasu does not support fc volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "flexVolume",
        Refuse,
        "jotasu does not support flexVolume volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "flocker",
        Refuse,
        "jotasu does not support flocker volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "gcePersistentDisk",
        Refuse,
        "jotasu does not support gcePersistentDisk volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "glusterfs",
        Refuse,
        "jotasu does not support glusterfs volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "iscsi",
        Refuse,
        "jotasu does not support iscsi volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "nfs",
        Refuse,
        "jotasu does not support nfs volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "photonPersistentDisk",
        Refuse,
        "jotasu does not support photonPersistentDisk volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "portworxVolume",
        Refuse,
        "jotasu does not support portworxVolume volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "quobyte",
        Refuse,
        "jotasu does not support quobyte volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "rbd",
        Refuse,
        "jotasu does not support rbd volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "scaleIO",
        Refuse,
        "jotasu does not support scaleIO volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "storageos",
        Refuse,
        "jotasu does not support storageos volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "vsphereVolume",
        Refuse,
        "jotasu does not support vsphereVolume volumes; PersistentVolumes are local or hostPath directories of a node",
    ),
    rule(
        "mountOptions",
        Refuse,
        "local and hostPath volumes are bind-mounted directories; they take no mount options",
    ),
    rule(
        "volumeAttributesClassName",
        Refuse,
        "there are no VolumeAttributesClasses",
    ),
];

/// A PersistentVolumeClaim's spec.
pub const PVC_SPEC: &[Rule] = &[
    rule(
        "dataSource",
        Refuse,
        "volumes are not cloned or populated; a claim gets an empty directory",
    ),
    rule(
        "dataSourceRef",
        Refuse,
        "volumes are not cloned or populated; a claim gets an empty directory",
    ),
    rule(
        "volumeAttributesClassName",
        Refuse,
        "there are no VolumeAttributesClasses",
    ),
];

/// A StorageClass (its fields are at the top level).
const TEMPLATE_STATUS: &str = "a claim template's status is never read";

/// A StatefulSet claim template's status (resizing and attributes-class
/// fields jotasu's claims do not have).
pub const CLAIM_TEMPLATE_STATUS: &[Rule] = &[
    rule("allocatedResourceStatuses", Drop, TEMPLATE_STATUS),
    rule("allocatedResources", Drop, TEMPLATE_STATUS),
    rule("currentVolumeAttributesClassName", Drop, TEMPLATE_STATUS),
    rule("modifyVolumeStatus", Drop, TEMPLATE_STATUS),
];

pub const STORAGE_CLASS: &[Rule] = &[rule(
    "mountOptions",
    Refuse,
    "local volumes are bind-mounted directories; they take no mount options",
)];

/// A Job's spec (a Job's `spec`, a CronJob's `spec.jobTemplate.spec`).
pub const JOB_SPEC: &[Rule] = &[
    rule(
        "backoffLimitPerIndex",
        Refuse,
        "failures are counted for the whole job (backoffLimit), not per index",
    ),
    unless(
        "managedBy",
        &["\"kubernetes.io/job-controller\""],
        Refuse,
        "jotasu's job controller manages every Job",
    ),
    rule(
        "maxFailedIndexes",
        Refuse,
        "failures are counted for the whole job (backoffLimit), not per index",
    ),
    unless(
        "podReplacementPolicy",
        &["\"Failed\""],
        Warn,
        "a pod is replaced once it has failed or is gone (as `Failed`), not while it terminates",
    ),
    rule(
        "successPolicy",
        Refuse,
        "a job succeeds when `completions` pods (or indexes) have succeeded",
    ),
];

/// Each table and where it applies, for the docs.
pub const TABLES: &[(&str, &[Rule])] = &[
    ("Object metadata (every kind, and pod templates)", METADATA),
    (
        "Pod spec (`Pod.spec`, `spec.template.spec` of workloads)",
        POD_SPEC,
    ),
    ("Containers (`containers[]`, `initContainers[]`)", CONTAINER),
    ("Service spec", SERVICE_SPEC),
    ("Node spec", NODE_SPEC),
    (
        "Job spec (`Job.spec`, `CronJob.spec.jobTemplate.spec`)",
        JOB_SPEC,
    ),
    ("HorizontalPodAutoscaler spec", HPA_SPEC),
    ("PersistentVolume spec", PV_SPEC),
    ("PersistentVolumeClaim spec", PVC_SPEC),
    (
        "StatefulSet claim template status (`spec.volumeClaimTemplates[].status`)",
        CLAIM_TEMPLATE_STATUS,
    ),
    ("StorageClass", STORAGE_CLASS),
];

/// Where each kind's rules apply: (path prefix, rules).
pub fn scopes(kind: Kind) -> &'static [(&'static str, &'static [Rule])] {
    const POD: &[(&str, &[Rule])] = &[
        ("metadata", METADATA),
        ("spec", POD_SPEC),
        ("spec.containers[]", CONTAINER),
        ("spec.initContainers[]", CONTAINER),
    ];
    const WORKLOAD: &[(&str, &[Rule])] = &[
        ("metadata", METADATA),
        ("spec.template.metadata", METADATA),
        ("spec.template.spec", POD_SPEC),
        ("spec.template.spec.containers[]", CONTAINER),
        ("spec.template.spec.initContainers[]", CONTAINER),
    ];
    const STATEFUL_SET: &[(&str, &[Rule])] = &[
        ("metadata", METADATA),
        ("spec.template.metadata", METADATA),
        ("spec.template.spec", POD_SPEC),
        ("spec.template.spec.containers[]", CONTAINER),
        ("spec.template.spec.initContainers[]", CONTAINER),
        ("spec.volumeClaimTemplates[].metadata", METADATA),
        ("spec.volumeClaimTemplates[].spec", PVC_SPEC),
        ("spec.volumeClaimTemplates[].status", CLAIM_TEMPLATE_STATUS),
    ];
    const JOB: &[(&str, &[Rule])] = &[
        ("metadata", METADATA),
        ("spec", JOB_SPEC),
        ("spec.template.metadata", METADATA),
        ("spec.template.spec", POD_SPEC),
        ("spec.template.spec.containers[]", CONTAINER),
        ("spec.template.spec.initContainers[]", CONTAINER),
    ];
    const CRON_JOB: &[(&str, &[Rule])] = &[
        ("metadata", METADATA),
        ("spec.jobTemplate.metadata", METADATA),
        ("spec.jobTemplate.spec", JOB_SPEC),
        ("spec.jobTemplate.spec.template.metadata", METADATA),
        ("spec.jobTemplate.spec.template.spec", POD_SPEC),
        (
            "spec.jobTemplate.spec.template.spec.containers[]",
            CONTAINER,
        ),
        (
            "spec.jobTemplate.spec.template.spec.initContainers[]",
            CONTAINER,
        ),
    ];
    const SERVICE: &[(&str, &[Rule])] = &[("metadata", METADATA), ("spec", SERVICE_SPEC)];
    const NODE: &[(&str, &[Rule])] = &[("metadata", METADATA), ("spec", NODE_SPEC)];
    const HPA: &[(&str, &[Rule])] = &[("metadata", METADATA), ("spec", HPA_SPEC)];
    const PV: &[(&str, &[Rule])] = &[("metadata", METADATA), ("spec", PV_SPEC)];
    const PVC: &[(&str, &[Rule])] = &[("metadata", METADATA), ("spec", PVC_SPEC)];
    const SC: &[(&str, &[Rule])] = &[("metadata", METADATA), ("", STORAGE_CLASS)];
    const OTHER: &[(&str, &[Rule])] = &[("metadata", METADATA)];
    match kind {
        Kind::Pod => POD,
        Kind::Deployment | Kind::ReplicaSet | Kind::DaemonSet => WORKLOAD,
        Kind::StatefulSet => STATEFUL_SET,
        Kind::Job => JOB,
        Kind::CronJob => CRON_JOB,
        Kind::Service => SERVICE,
        Kind::Node => NODE,
        Kind::HorizontalPodAutoscaler => HPA,
        Kind::PersistentVolume => PV,
        Kind::PersistentVolumeClaim => PVC,
        Kind::StorageClass => SC,
        _ => OTHER,
    }
}
