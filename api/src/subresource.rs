//! What the API server needs to treat every kind alike: the `status` part
//! (written only through status updates), the `replicas` a scale sets, the
//! resource names messages use (`deployments.apps`), and the fields the
//! server assigns that an apply leaves alone.

use crate::kinds::service::ServiceType;
use crate::object::{Kind, Object};

impl Kind {
    /// The API group: `apps`, `autoscaling`, or `""` for the core group.
    pub fn group(self) -> &'static str {
        self.api_version().rsplit_once('/').map_or("", |(g, _)| g)
    }

    /// The resource as Kubernetes names it in messages: `deployments.apps`,
    /// `pods` (core kinds have no group suffix).
    pub fn resource_name(self) -> String {
        match self.group() {
            "" => self.plural().to_owned(),
            g => format!("{}.{g}", self.plural()),
        }
    }

    /// Whether objects of this kind have a `status` written by controllers
    /// and agents (ConfigMap, Secret, ServiceAccount, Endpoints and the
    /// RBAC kinds have none).
    pub fn has_status(self) -> bool {
        !matches!(
            self,
            Kind::ConfigMap
                | Kind::Secret
                | Kind::ServiceAccount
                | Kind::Endpoints
                | Kind::EndpointSlice
                | Kind::PriorityClass
                | Kind::ControllerRevision
                | Kind::StorageClass
                | Kind::LimitRange
                | Kind::Role
                | Kind::ClusterRole
                | Kind::RoleBinding
                | Kind::ClusterRoleBinding
                | Kind::Lease
        )
    }
}

impl Object {
    /// Removes the status (an apply never writes one).
    pub fn clear_status(&mut self) {
        match self {
            Object::Pod(o) => o.status = None,
            Object::Deployment(o) => o.status = None,
            Object::ReplicaSet(o) => o.status = None,
            Object::DaemonSet(o) => o.status = None,
            Object::StatefulSet(o) => o.status = None,
            Object::PodDisruptionBudget(o) => o.status = None,
            Object::Job(o) => o.status = None,
            Object::CronJob(o) => o.status = None,
            Object::Service(o) => o.status = None,
            Object::HorizontalPodAutoscaler(o) => o.status = None,
            Object::Node(o) => o.status = None,
            Object::ResourceQuota(o) => o.status = None,
            Object::PersistentVolume(o) => o.status = None,
            Object::PersistentVolumeClaim(o) => o.status = None,
            Object::Namespace(o) => o.status = None,
            Object::Endpoints(_)
            | Object::EndpointSlice(_)
            | Object::PriorityClass(_)
            | Object::ControllerRevision(_)
            | Object::StorageClass(_)
            | Object::LimitRange(_)
            | Object::ConfigMap(_)
            | Object::Secret(_)
            | Object::ServiceAccount(_)
            | Object::Role(_)
            | Object::ClusterRole(_)
            | Object::RoleBinding(_)
            | Object::ClusterRoleBinding(_)
            | Object::Lease(_) => {}
        }
    }

    /// Replaces the status with `other`'s (same kind; no-op otherwise).
    pub fn set_status_from(&mut self, other: &Object) {
        match (self, other) {
            (Object::Pod(a), Object::Pod(b)) => a.status.clone_from(&b.status),
            (Object::Deployment(a), Object::Deployment(b)) => a.status.clone_from(&b.status),
            (Object::ReplicaSet(a), Object::ReplicaSet(b)) => a.status.clone_from(&b.status),
            (Object::DaemonSet(a), Object::DaemonSet(b)) => a.status.clone_from(&b.status),
            (Object::StatefulSet(a), Object::StatefulSet(b)) => a.status.clone_from(&b.status),
            (Object::PodDisruptionBudget(a), Object::PodDisruptionBudget(b)) => {
                a.status.clone_from(&b.status);
            }
            (Object::Job(a), Object::Job(b)) => a.status.clone_from(&b.status),
            (Object::CronJob(a), Object::CronJob(b)) => a.status.clone_from(&b.status),
            (Object::Service(a), Object::Service(b)) => a.status.clone_from(&b.status),
            (Object::HorizontalPodAutoscaler(a), Object::HorizontalPodAutoscaler(b)) => {
                a.status.clone_from(&b.status);
            }
            (Object::Node(a), Object::Node(b)) => a.status.clone_from(&b.status),
            (Object::ResourceQuota(a), Object::ResourceQuota(b)) => a.status.clone_from(&b.status),
            (Object::PersistentVolume(a), Object::PersistentVolume(b)) => {
                a.status.clone_from(&b.status);
            }
            (Object::PersistentVolumeClaim(a), Object::PersistentVolumeClaim(b)) => {
                a.status.clone_from(&b.status);
            }
            (Object::Namespace(a), Object::Namespace(b)) => a.status.clone_from(&b.status),
            _ => {}
        }
    }

    /// Fields the server (or a controller) assigns that a manifest usually
    /// leaves out: kept from `existing` when `self` leaves them empty, so
    /// re-applying the same manifest changes nothing. A Pod's `nodeName`
    /// (the scheduler's binding), a Service's allocated `clusterIP` (not
    /// when it becomes `ExternalName`), a Node's allocated `podCIDR`, a
    /// Namespace's finalizers (only the namespace controller changes them),
    /// what admission gave a Pod at creation (its priority and class, its
    /// containers' defaulted resources).
    pub fn keep_assigned_fields(&mut self, existing: &Object) {
        match (self, existing) {
            (Object::Namespace(a), Object::Namespace(b)) => a.spec.clone_from(&b.spec),
            (Object::Pod(a), Object::Pod(b)) => {
                let spec = &mut a.spec;
                if spec.node_name.as_deref().is_none_or(str::is_empty) {
                    spec.node_name.clone_from(&b.spec.node_name);
                }
                if spec.priority.is_none() {
                    spec.priority = b.spec.priority;
                    if spec
                        .priority_class_name
                        .as_deref()
                        .is_none_or(str::is_empty)
                    {
                        spec.priority_class_name
                            .clone_from(&b.spec.priority_class_name);
                    }
                }
                if spec.preemption_policy.is_none() {
                    spec.preemption_policy.clone_from(&b.spec.preemption_policy);
                }
                let containers = spec
                    .init_containers
                    .iter_mut()
                    .chain(spec.containers.iter_mut());
                for c in containers {
                    if c.resources.is_none() {
                        let before = b
                            .spec
                            .init_containers
                            .iter()
                            .chain(&b.spec.containers)
                            .find(|o| o.name == c.name);
                        c.resources = before.and_then(|o| o.resources.clone());
                    }
                }
            }
            (Object::Job(a), Object::Job(b)) => crate::kinds::batch::keep_generated_selector(a, b),
            (Object::Node(a), Object::Node(b))
                if a.spec.pod_cidr.as_deref().is_none_or(str::is_empty) =>
            {
                a.spec.pod_cidr.clone_from(&b.spec.pod_cidr);
                a.spec.pod_cidrs.clone_from(&b.spec.pod_cidrs);
            }
            (Object::Service(a), Object::Service(b)) => {
                // An ExternalName Service has no address: one it had as
                // another type is released, as Kubernetes does.
                if a.spec.cluster_ip.as_deref().is_none_or(str::is_empty)
                    && b.spec.cluster_ip.is_some()
                    && a.spec.type_() != ServiceType::ExternalName
                {
                    a.spec.cluster_ip.clone_from(&b.spec.cluster_ip);
                    a.spec.cluster_ips.clone_from(&b.spec.cluster_ips);
                }
                crate::kinds::service::keep_node_ports(&mut a.spec, &b.spec);
            }
            // The PV controller's binding and what admission gave a claim.
            (Object::PersistentVolume(a), Object::PersistentVolume(b))
                if a.spec.claim_ref.is_none() =>
            {
                a.spec.claim_ref.clone_from(&b.spec.claim_ref);
            }
            (Object::PersistentVolumeClaim(a), Object::PersistentVolumeClaim(b)) => {
                if a.spec.volume_name.as_deref().is_none_or(str::is_empty) {
                    a.spec.volume_name.clone_from(&b.spec.volume_name);
                }
                if a.spec.storage_class_name.is_none() {
                    a.spec
                        .storage_class_name
                        .clone_from(&b.spec.storage_class_name);
                }
            }
            _ => {}
        }
    }

    /// `spec.replicas`, for kinds that scale (Deployment, ReplicaSet,
    /// StatefulSet).
    pub fn replicas_mut(&mut self) -> Option<&mut Option<i32>> {
        match self {
            Object::Deployment(d) => Some(&mut d.spec.replicas),
            Object::ReplicaSet(r) => Some(&mut r.spec.replicas),
            Object::StatefulSet(s) => Some(&mut s.spec.replicas),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_status() {
        assert_eq!(Kind::Deployment.resource_name(), "deployments.apps");
        assert_eq!(Kind::Pod.resource_name(), "pods");
        assert_eq!(
            Kind::HorizontalPodAutoscaler.resource_name(),
            "horizontalpodautoscalers.autoscaling"
        );
        let mut pod: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        let bound: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}
        }))
        .unwrap();
        let copy = pod.clone();
        pod.clear_status();
        assert_ne!(pod, copy);
        pod.set_status_from(&copy);
        assert_eq!(pod, copy);
        pod.keep_assigned_fields(&bound);
        let Object::Pod(p) = &pod else { panic!() };
        assert_eq!(p.spec.node_name.as_deref(), Some("n1"));
    }

    #[test]
    fn a_cluster_ip_is_kept_unless_the_service_becomes_an_external_name() {
        let svc = |spec: serde_json::Value| -> Object {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"}, "spec": spec
            }))
            .unwrap()
        };
        let stored = svc(serde_json::json!({"clusterIP": "10.96.0.5", "ports": [{"port": 80}]}));
        let cluster_ip = |o: &Object| match o {
            Object::Service(s) => s.spec.cluster_ip.clone(),
            _ => panic!("a Service"),
        };
        let mut again = svc(serde_json::json!({"ports": [{"port": 80}]}));
        again.keep_assigned_fields(&stored);
        assert_eq!(cluster_ip(&again).as_deref(), Some("10.96.0.5"));
        let mut alias =
            svc(serde_json::json!({"type": "ExternalName", "externalName": "db.example.test"}));
        alias.keep_assigned_fields(&stored);
        assert_eq!(cluster_ip(&alias), None, "released");
    }
}
