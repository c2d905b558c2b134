//! Validation: every rule an object breaks, each with its field path. Run on
//! defaulted objects (see [`crate::defaults`]).

mod affinity;
mod autoscaling;
mod batch;
mod config;
mod disruption;
mod dns;
pub mod downward;
mod meta;
pub mod names;
mod namespace;
mod node;
mod pod;
mod pod_volumes;
mod rbac;
mod security;
mod service;
pub use service::NODE_PORT_RANGE;
mod statefulset;
pub mod storage;
mod workloads;

use crate::error::{FieldError, ValidationErrors};
use crate::object::Object;
use crate::path::FieldPath;

pub use meta::NameRule;

/// Every rule `object` breaks (empty when it is valid).
pub fn validate(object: &Object) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let root = FieldPath::root();
    let rule = match object.kind() {
        crate::object::Kind::Service => NameRule::Dns1035Label,
        crate::object::Kind::Namespace => NameRule::Dns1123Label,
        crate::object::Kind::Role
        | crate::object::Kind::ClusterRole
        | crate::object::Kind::RoleBinding
        | crate::object::Kind::ClusterRoleBinding => NameRule::PathSegment,
        _ => NameRule::Dns1123Subdomain,
    };
    meta::object_meta(
        object.metadata(),
        object.kind().namespaced(),
        rule,
        &root.field("metadata"),
        &mut errs,
    );
    match object {
        Object::Pod(o) => pod::pod_spec(&o.spec, &root.field("spec"), &mut errs),
        Object::Deployment(o) => workloads::deployment(o, &mut errs),
        Object::ReplicaSet(o) => workloads::replica_set(o, &mut errs),
        Object::DaemonSet(o) => workloads::daemon_set(o, &mut errs),
        Object::StatefulSet(o) => statefulset::stateful_set(o, &mut errs),
        Object::PodDisruptionBudget(o) => disruption::pod_disruption_budget(o, &mut errs),
        Object::ControllerRevision(o) => statefulset::controller_revision(o, &mut errs),
        Object::Job(o) => batch::job(o, &mut errs),
        Object::CronJob(o) => batch::cron_job(o, &mut errs),
        Object::Service(o) => service::service(o, &mut errs),
        Object::Endpoints(o) => service::endpoints(o, &mut errs),
        Object::EndpointSlice(o) => service::endpoint_slice(o, &mut errs),
        Object::ConfigMap(o) => config::config_map(o, &mut errs),
        Object::Secret(o) => config::secret(o, &mut errs),
        Object::HorizontalPodAutoscaler(o) => autoscaling::hpa(o, &mut errs),
        Object::Node(o) => node::node(o, &mut errs),
        Object::PriorityClass(o) => node::priority_class(o, &mut errs),
        Object::LimitRange(o) => config::limit_range(o, &mut errs),
        Object::ResourceQuota(o) => config::resource_quota(o, &mut errs),
        Object::PersistentVolume(o) => storage::persistent_volume(o, &mut errs),
        Object::PersistentVolumeClaim(o) => storage::persistent_volume_claim(o, &mut errs),
        Object::StorageClass(o) => storage::storage_class(o, &mut errs),
        Object::Namespace(o) => namespace::namespace(o, &mut errs),
        Object::ServiceAccount(o) => namespace::service_account(o, &mut errs),
        Object::Role(o) => rbac::role(o, &mut errs),
        Object::ClusterRole(o) => rbac::cluster_role(o, &mut errs),
        Object::RoleBinding(o) => rbac::role_binding(o, &mut errs),
        Object::ClusterRoleBinding(o) => rbac::cluster_role_binding(o, &mut errs),
        Object::Lease(o) => node::lease(o, &mut errs),
    }
    errs
}

impl Object {
    /// Checks every rule (run after [`Object::apply_defaults`]).
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let errs = validate(self);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(errs))
        }
    }
}

/// Checks `port` is 1–65535.
fn port_number(port: i32, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if !(1..=65535).contains(&port) {
        errs.push(FieldError::invalid(
            path,
            port,
            "must be between 1 and 65535, inclusive",
        ));
    }
}

/// Checks `v ≥ 0`.
fn non_negative(v: Option<impl Into<i64> + Copy>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if let Some(v) = v
        && v.into() < 0
    {
        errs.push(FieldError::invalid(
            path,
            v.into(),
            "must be greater than or equal to 0",
        ));
    }
}

/// Checks a name against a rule, pushing `Invalid value` on failure.
fn name(
    rule: fn(&str) -> Result<(), String>,
    value: &str,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    if let Err(e) = rule(value) {
        errs.push(FieldError::invalid(path, value, e));
    }
}
