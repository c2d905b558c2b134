//! Kubernetes defaults, applied once by [`Object::apply_defaults`] before
//! validation and storage.
//!
//! Convention: every field a user may omit that has a Kubernetes default is an
//! `Option` (serde leaves it `None`, so parsed manifests round-trip exactly as
//! written); `apply_defaults` fills it in, so stored objects carry every
//! default explicitly, as they do in Kubernetes. Defaulting is idempotent.

use crate::int_or_string::IntOrString;
use crate::kinds::config::{ConfigMap, SECRET_TYPE_OPAQUE, Secret};
use crate::kinds::hpa::{
    HorizontalPodAutoscaler, MetricSourceType, MetricSpec, MetricTarget, MetricTargetType,
    ResourceMetricSource,
};
use crate::kinds::namespace::{FINALIZER_KUBERNETES, NAME_LABEL, Namespace};
use crate::kinds::node::Node;
use crate::kinds::pod::{
    Container, DnsPolicy, Pod, PodSpec, Probe, Protocol, PullPolicy, RestartPolicy, Scheme,
    TolerationOperator,
};
use crate::kinds::service::{Endpoints, Service, ServiceType, SessionAffinity};
use crate::kinds::service_account::DEFAULT_SERVICE_ACCOUNT;
use crate::kinds::statefulset::{
    ClaimRetentionPolicy, PodManagementPolicy, RollingUpdateStatefulSet, StatefulSet,
    StatefulSetUpdateStrategy, StatefulSetUpdateStrategyType,
};
use crate::kinds::workloads::{
    DaemonSet, DaemonSetUpdateStrategy, DaemonSetUpdateStrategyType, Deployment,
    DeploymentStrategy, DeploymentStrategyType, ReplicaSet, RollingUpdate,
};
use crate::meta::{DEFAULT_NAMESPACE, ObjectMeta};
use crate::object::Object;

/// Default `terminationGracePeriodSeconds`.
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
/// Default probe `periodSeconds`.
pub const DEFAULT_PROBE_PERIOD_SECONDS: i32 = 10;
/// Default probe `timeoutSeconds`.
pub const DEFAULT_PROBE_TIMEOUT_SECONDS: i32 = 1;
/// Default probe `successThreshold`.
pub const DEFAULT_PROBE_SUCCESS_THRESHOLD: i32 = 1;
/// Default probe `failureThreshold`.
pub const DEFAULT_PROBE_FAILURE_THRESHOLD: i32 = 3;
/// Default file mode of ConfigMap volumes (0644).
pub const DEFAULT_VOLUME_MODE: i32 = 0o644;
/// Secret volume files' default mode: owner-read only (Kubernetes uses
/// 0644; jotasu keeps secrets readable by their owner alone unless the
/// manifest asks for more with `defaultMode`).
pub const DEFAULT_SECRET_MODE: i32 = 0o400;
/// Default Deployment `revisionHistoryLimit`.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
/// Default Deployment `progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
/// Default Deployment `maxSurge` and `maxUnavailable`.
pub const DEFAULT_DEPLOYMENT_MAX_SURGE_UNAVAILABLE: &str = "25%";
/// Default HPA target when no metrics are given: CPU utilization percent.
pub const DEFAULT_HPA_CPU_UTILIZATION: i32 = 80;

impl Object {
    /// Fills in every Kubernetes default (see the module docs). Namespaced
    /// objects without a namespace get `default`; cluster-scoped ones lose any
    /// namespace given. Secret `stringData` is merged into `data`. A Pod
    /// runs as the `default` ServiceAccount unless it names one; a
    /// Namespace carries the `kubernetes` finalizer and its name label.
    pub fn apply_defaults(&mut self) {
        let namespaced = self.kind().namespaced();
        default_meta(self.metadata_mut(), namespaced);
        match self {
            Object::Pod(o) => default_pod(o),
            Object::Deployment(o) => default_deployment(o),
            Object::ReplicaSet(o) => default_replica_set(o),
            Object::DaemonSet(o) => default_daemon_set(o),
            Object::StatefulSet(o) => default_stateful_set(o),
            Object::ControllerRevision(_) | Object::PodDisruptionBudget(_) => {}
            Object::Job(o) => crate::kinds::batch::default_job(o),
            Object::CronJob(o) => crate::kinds::batch::default_cron_job(o),
            Object::Service(o) => default_service(o),
            Object::Endpoints(o) => default_endpoints(o),
            Object::EndpointSlice(o) => default_endpoint_slice(o),
            Object::ConfigMap(o) => default_config_map(o),
            Object::Secret(o) => default_secret(o),
            Object::HorizontalPodAutoscaler(o) => default_hpa(o),
            Object::Node(o) => default_node(o),
            Object::PriorityClass(_) | Object::LimitRange(_) | Object::ResourceQuota(_) => {}
            Object::PersistentVolume(o) => crate::kinds::storage::default_pv(o),
            Object::PersistentVolumeClaim(o) => crate::kinds::storage::default_pvc(o),
            Object::StorageClass(o) => crate::kinds::storage::default_storage_class(o),
            Object::Namespace(o) => default_namespace(o),
            Object::ServiceAccount(_)
            | Object::Role(_)
            | Object::ClusterRole(_)
            | Object::RoleBinding(_)
            | Object::ClusterRoleBinding(_)
            | Object::Lease(_) => {}
        }
    }
}

fn default_meta(meta: &mut ObjectMeta, namespaced: bool) {
    if namespaced {
        if meta.namespace.as_deref().is_none_or(str::is_empty) {
            meta.namespace = Some(DEFAULT_NAMESPACE.to_owned());
        }
    } else {
        meta.namespace = None;
    }
}

fn default_pod(pod: &mut Pod) {
    default_pod_spec(&mut pod.spec);
    // As Kubernetes' ServiceAccount admission: a pod (not a template) runs
    // as `default` unless it names another account.
    let sa = &mut pod.spec.service_account_name;
    if sa.as_deref().is_none_or(str::is_empty) {
        *sa = Some(DEFAULT_SERVICE_ACCOUNT.to_owned());
    }
    pod.spec.service_account.clone_from(sa);
}

/// `serviceAccount` is a deprecated alias of `serviceAccountName`: the
/// name wins when both are given, and the alias mirrors it (as
/// Kubernetes' conversion does).
fn default_service_account_alias(spec: &mut PodSpec) {
    if spec
        .service_account_name
        .as_deref()
        .is_none_or(str::is_empty)
    {
        spec.service_account_name = spec.service_account.take().filter(|s| !s.is_empty());
    }
    spec.service_account.clone_from(&spec.service_account_name);
}

fn default_namespace(ns: &mut Namespace) {
    if let Some(name) = ns.metadata.name.as_deref().filter(|n| !n.is_empty()) {
        ns.metadata
            .labels
            .insert(NAME_LABEL.to_owned(), name.to_owned());
    }
    if !ns.spec.finalizers.iter().any(|f| f == FINALIZER_KUBERNETES) {
        ns.spec.finalizers.push(FINALIZER_KUBERNETES.to_owned());
    }
}

/// Defaults of a pod spec (also applied to workload templates).
pub fn default_pod_spec(spec: &mut PodSpec) {
    spec.restart_policy.get_or_insert(RestartPolicy::Always);
    spec.dns_policy.get_or_insert(DnsPolicy::ClusterFirst);
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
    default_service_account_alias(spec);
    for c in spec.init_containers.iter_mut().chain(&mut spec.containers) {
        default_container(c);
    }
    for t in &mut spec.tolerations {
        t.operator.get_or_insert(TolerationOperator::Equal);
    }
    for v in &mut spec.volumes {
        if let Some(cm) = &mut v.config_map {
            cm.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        }
        if let Some(s) = &mut v.secret {
            s.default_mode.get_or_insert(DEFAULT_SECRET_MODE);
        }
        if let Some(d) = &mut v.downward_api {
            d.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
            for f in d.items.iter_mut().filter_map(|i| i.field_ref.as_mut()) {
                f.api_version.get_or_insert_with(|| "v1".to_owned());
            }
        }
        if let Some(p) = &mut v.projected {
            p.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
            let files = p.sources.iter_mut().filter_map(|s| s.downward_api.as_mut());
            for f in files.flat_map(|d| d.items.iter_mut().filter_map(|i| i.field_ref.as_mut())) {
                f.api_version.get_or_insert_with(|| "v1".to_owned());
            }
        }
        if let Some(h) = &mut v.host_path {
            h.type_.get_or_insert_with(String::new);
        }
    }
}

fn default_container(c: &mut Container) {
    c.image_pull_policy
        .get_or_insert_with(|| default_pull_policy(&c.image));
    for p in &mut c.ports {
        p.protocol.get_or_insert(Protocol::Tcp);
    }
    if let Some(l) = &mut c.lifecycle {
        let handlers = [&mut l.post_start, &mut l.pre_stop];
        for h in handlers
            .into_iter()
            .flatten()
            .filter_map(|h| h.http_get.as_mut())
        {
            h.path.get_or_insert_with(|| "/".to_owned());
            h.scheme.get_or_insert(Scheme::Http);
        }
    }
    let field_refs = c.env.iter_mut().filter_map(|e| e.value_from.as_mut());
    for f in field_refs.filter_map(|v| v.field_ref.as_mut()) {
        f.api_version.get_or_insert_with(|| "v1".to_owned());
    }
    if let Some(r) = &mut c.resources {
        // Requests default to limits, so a pod with only limits is scheduled by them.
        for (name, limit) in &r.limits {
            r.requests
                .entry(name.clone())
                .or_insert_with(|| limit.clone());
        }
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
}

/// `Always` for `:latest` or untagged images (digests excepted), else `IfNotPresent`.
pub fn default_pull_policy(image: &str) -> PullPolicy {
    if image.contains('@') {
        return PullPolicy::IfNotPresent;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) if tag != "latest" => PullPolicy::IfNotPresent,
        _ => PullPolicy::Always,
    }
}

fn default_probe(p: &mut Probe) {
    p.initial_delay_seconds.get_or_insert(0);
    p.period_seconds.get_or_insert(DEFAULT_PROBE_PERIOD_SECONDS);
    p.timeout_seconds
        .get_or_insert(DEFAULT_PROBE_TIMEOUT_SECONDS);
    p.success_threshold
        .get_or_insert(DEFAULT_PROBE_SUCCESS_THRESHOLD);
    p.failure_threshold
        .get_or_insert(DEFAULT_PROBE_FAILURE_THRESHOLD);
    if let Some(h) = &mut p.http_get {
        h.path.get_or_insert_with(|| "/".to_owned());
        h.scheme.get_or_insert(Scheme::Http);
    }
}

fn default_deployment(d: &mut Deployment) {
    let s = &mut d.spec;
    s.replicas.get_or_insert(1);
    s.revision_history_limit
        .get_or_insert(DEFAULT_REVISION_HISTORY_LIMIT);
    s.min_ready_seconds.get_or_insert(0);
    s.progress_deadline_seconds
        .get_or_insert(DEFAULT_PROGRESS_DEADLINE_SECONDS);
    let strategy = s.strategy.get_or_insert_with(DeploymentStrategy::default);
    let kind = *strategy
        .type_
        .get_or_insert(DeploymentStrategyType::RollingUpdate);
    if kind == DeploymentStrategyType::RollingUpdate {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdate::default);
        ru.max_surge
            .get_or_insert_with(|| IntOrString::from(DEFAULT_DEPLOYMENT_MAX_SURGE_UNAVAILABLE));
        ru.max_unavailable
            .get_or_insert_with(|| IntOrString::from(DEFAULT_DEPLOYMENT_MAX_SURGE_UNAVAILABLE));
    }
    default_pod_spec(&mut d.spec.template.spec);
}

fn default_replica_set(r: &mut ReplicaSet) {
    r.spec.replicas.get_or_insert(1);
    r.spec.min_ready_seconds.get_or_insert(0);
    default_pod_spec(&mut r.spec.template.spec);
}

fn default_daemon_set(d: &mut DaemonSet) {
    let s = &mut d.spec;
    s.revision_history_limit
        .get_or_insert(DEFAULT_REVISION_HISTORY_LIMIT);
    s.min_ready_seconds.get_or_insert(0);
    let strategy = s
        .update_strategy
        .get_or_insert_with(DaemonSetUpdateStrategy::default);
    let kind = *strategy
        .type_
        .get_or_insert(DaemonSetUpdateStrategyType::RollingUpdate);
    if kind == DaemonSetUpdateStrategyType::RollingUpdate {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdate::default);
        ru.max_unavailable.get_or_insert(IntOrString::Int(1));
        ru.max_surge.get_or_insert(IntOrString::Int(0));
    }
    default_pod_spec(&mut d.spec.template.spec);
}

/// Kubernetes' StatefulSet defaults: 1 replica, OrderedReady,
/// RollingUpdate with partition 0 and maxUnavailable left unset (one at a
/// time), history 10, claims retained.
fn default_stateful_set(d: &mut StatefulSet) {
    let s = &mut d.spec;
    s.replicas.get_or_insert(1);
    s.revision_history_limit
        .get_or_insert(DEFAULT_REVISION_HISTORY_LIMIT);
    s.min_ready_seconds.get_or_insert(0);
    s.pod_management_policy
        .get_or_insert(PodManagementPolicy::OrderedReady);
    let strategy = s
        .update_strategy
        .get_or_insert_with(StatefulSetUpdateStrategy::default);
    let kind = *strategy
        .type_
        .get_or_insert(StatefulSetUpdateStrategyType::RollingUpdate);
    if kind == StatefulSetUpdateStrategyType::RollingUpdate {
        strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateStatefulSet::default)
            .partition
            .get_or_insert(0);
    }
    let retention = s
        .persistent_volume_claim_retention_policy
        .get_or_insert_with(ClaimRetentionPolicy::default);
    retention
        .when_deleted
        .get_or_insert_with(|| "Retain".into());
    retention.when_scaled.get_or_insert_with(|| "Retain".into());
    for claim in &mut s.volume_claim_templates {
        crate::kinds::storage::default_pvc(claim);
    }
    default_pod_spec(&mut d.spec.template.spec);
}

fn default_service(s: &mut Service) {
    let spec = &mut s.spec;
    spec.type_.get_or_insert(ServiceType::ClusterIP);
    mirror_list(&mut spec.cluster_ip, &mut spec.cluster_ips);
    spec.session_affinity.get_or_insert(SessionAffinity::None);
    if spec.session_affinity == Some(SessionAffinity::ClientIP) {
        let config = spec
            .session_affinity_config
            .get_or_insert_with(Default::default);
        config
            .client_ip
            .get_or_insert_with(Default::default)
            .timeout_seconds
            .get_or_insert(crate::kinds::service::DEFAULT_AFFINITY_TIMEOUT_S as i32);
    }
    if spec.has_node_ports() {
        spec.external_traffic_policy
            .get_or_insert(crate::kinds::service::TrafficPolicy::Cluster);
    }
    for p in &mut spec.ports {
        p.protocol.get_or_insert(Protocol::Tcp);
        p.target_port.get_or_insert(IntOrString::Int(p.port));
    }
}

fn default_endpoints(e: &mut Endpoints) {
    for p in e.subsets.iter_mut().flat_map(|s| s.ports.iter_mut()) {
        p.protocol.get_or_insert(Protocol::Tcp);
    }
}

fn default_endpoint_slice(e: &mut crate::kinds::discovery::EndpointSlice) {
    for p in &mut e.ports {
        p.protocol.get_or_insert(Protocol::Tcp);
    }
}

fn default_config_map(_: &mut ConfigMap) {}

fn default_secret(s: &mut Secret) {
    s.type_.get_or_insert_with(|| SECRET_TYPE_OPAQUE.to_owned());
    for (k, v) in std::mem::take(&mut s.string_data) {
        s.data.insert(k, v.as_str().into());
    }
}

fn default_hpa(h: &mut HorizontalPodAutoscaler) {
    h.spec.min_replicas.get_or_insert(1);
    if h.spec.metrics.is_empty() {
        h.spec.metrics.push(MetricSpec {
            type_: MetricSourceType::Resource,
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: MetricTargetType::Utilization,
                    average_utilization: Some(DEFAULT_HPA_CPU_UTILIZATION),
                    ..MetricTarget::default()
                },
            }),
        });
    }
}

fn default_node(n: &mut Node) {
    mirror_list(&mut n.spec.pod_cidr, &mut n.spec.pod_cidrs);
}

/// Keeps Kubernetes' single value and list forms of one address
/// (`clusterIP`/`clusterIPs`, `podCIDR`/`podCIDRs`) the same: the list's
/// first entry fills an unset value, and a set value becomes the list's
/// first entry (validation refuses a second one: jotasu is single-stack).
pub fn mirror_list(value: &mut Option<String>, list: &mut Vec<String>) {
    match (value.as_deref().filter(|v| !v.is_empty()), list.first()) {
        (None, Some(first)) => *value = Some(first.clone()),
        (Some(v), None) => list.push(v.to_owned()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted(v: serde_json::Value) -> Object {
        let mut o: Object = serde_json::from_value(v).unwrap();
        o.apply_defaults();
        o
    }

    #[test]
    fn pods_run_as_the_default_service_account_unless_they_name_one() {
        let pod = |spec: serde_json::Value| match defaulted(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec
        })) {
            Object::Pod(p) => (p.spec.service_account_name, p.spec.service_account),
            _ => unreachable!(),
        };
        let c = serde_json::json!([{"name": "c", "image": "busybox"}]);
        let d = Some("default".to_owned());
        assert_eq!(pod(serde_json::json!({"containers": c})), (d.clone(), d));
        let b = Some("build".to_owned());
        assert_eq!(
            pod(serde_json::json!({"containers": c, "serviceAccount": "build"})),
            (b.clone(), b.clone())
        );
        assert_eq!(
            pod(
                serde_json::json!({"containers": c, "serviceAccountName": "build", "serviceAccount": "old"})
            ),
            (b.clone(), b)
        );
        // A template gets no account of its own: its pods get `default`.
        let Object::Deployment(dep) = defaulted(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": c}}}
        })) else {
            unreachable!()
        };
        assert_eq!(dep.spec.template.spec.service_account_name, None);
    }

    #[test]
    fn namespaces_get_the_kubernetes_finalizer_and_their_name_label() {
        let ns = |v| match defaulted(v) {
            Object::Namespace(n) => n,
            _ => unreachable!(),
        };
        let a = ns(
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}),
        );
        assert_eq!(a.spec.finalizers, [FINALIZER_KUBERNETES]);
        assert_eq!(a.metadata.labels[NAME_LABEL], "a");
        let b = ns(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "b", "namespace": "x"}, "spec": {"finalizers": ["example.com/f"]}}));
        assert_eq!(b.spec.finalizers, ["example.com/f", FINALIZER_KUBERNETES]);
        assert_eq!(b.metadata.namespace, None);
        let mut again = Object::Namespace(b.clone());
        again.apply_defaults();
        assert_eq!(again, Object::Namespace(b), "idempotent");
    }

    #[test]
    fn pull_policy_by_tag() {
        assert_eq!(default_pull_policy("nginx"), PullPolicy::Always);
        assert_eq!(default_pull_policy("nginx:latest"), PullPolicy::Always);
        assert_eq!(default_pull_policy("nginx:1.25"), PullPolicy::IfNotPresent);
        assert_eq!(
            default_pull_policy("localhost:5000/app"),
            PullPolicy::Always
        );
        assert_eq!(
            default_pull_policy("localhost:5000/app:v2"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            default_pull_policy("busybox@sha256:abc"),
            PullPolicy::IfNotPresent
        );
    }
}
