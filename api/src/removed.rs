//! API versions Kubernetes served once and has removed, from its
//! deprecated API migration guide: a manifest that still uses one is
//! refused in kubectl's words ("no matches for kind … in version …"), with
//! the release that removed it and the version to use instead.

/// One removed version of some kinds.
struct Removed {
    api_version: &'static str,
    kinds: &'static [&'static str],
    release: &'static str,
    instead: &'static str,
}

const WORKLOADS: &[&str] = &["Deployment", "DaemonSet", "ReplicaSet", "StatefulSet"];
const RBAC: &[&str] = &["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"];

const REMOVED: &[Removed] = &[
    Removed {
        api_version: "extensions/v1beta1",
        kinds: WORKLOADS,
        release: "1.16",
        instead: "apps/v1",
    },
    Removed {
        api_version: "apps/v1beta1",
        kinds: WORKLOADS,
        release: "1.16",
        instead: "apps/v1",
    },
    Removed {
        api_version: "apps/v1beta2",
        kinds: WORKLOADS,
        release: "1.16",
        instead: "apps/v1",
    },
    Removed {
        api_version: "extensions/v1beta1",
        kinds: &["NetworkPolicy"],
        release: "1.16",
        instead: "networking.k8s.io/v1",
    },
    Removed {
        api_version: "extensions/v1beta1",
        kinds: &["Ingress"],
        release: "1.22",
        instead: "networking.k8s.io/v1",
    },
    Removed {
        api_version: "networking.k8s.io/v1beta1",
        kinds: &["Ingress", "IngressClass"],
        release: "1.22",
        instead: "networking.k8s.io/v1",
    },
    Removed {
        api_version: "rbac.authorization.k8s.io/v1beta1",
        kinds: RBAC,
        release: "1.22",
        instead: "rbac.authorization.k8s.io/v1",
    },
    Removed {
        api_version: "rbac.authorization.k8s.io/v1alpha1",
        kinds: RBAC,
        release: "1.22",
        instead: "rbac.authorization.k8s.io/v1",
    },
    Removed {
        api_version: "apiextensions.k8s.io/v1beta1",
        kinds: &["CustomResourceDefinition"],
        release: "1.22",
        instead: "apiextensions.k8s.io/v1",
    },
    Removed {
        api_version: "certificates.k8s.io/v1beta1",
        kinds: &["CertificateSigningRequest"],
        release: "1.22",
        instead: "certificates.k8s.io/v1",
    },
    Removed {
        api_version: "coordination.k8s.io/v1beta1",
        kinds: &["Lease"],
        release: "1.22",
        instead: "coordination.k8s.io/v1",
    },
    Removed {
        api_version: "batch/v1beta1",
        kinds: &["CronJob"],
        release: "1.25",
        instead: "batch/v1",
    },
    Removed {
        api_version: "discovery.k8s.io/v1beta1",
        kinds: &["EndpointSlice"],
        release: "1.25",
        instead: "discovery.k8s.io/v1",
    },
    Removed {
        api_version: "events.k8s.io/v1beta1",
        kinds: &["Event"],
        release: "1.25",
        instead: "events.k8s.io/v1",
    },
    Removed {
        api_version: "autoscaling/v2beta1",
        kinds: &["HorizontalPodAutoscaler"],
        release: "1.25",
        instead: "autoscaling/v2",
    },
    Removed {
        api_version: "policy/v1beta1",
        kinds: &["PodDisruptionBudget"],
        release: "1.25",
        instead: "policy/v1",
    },
    Removed {
        api_version: "node.k8s.io/v1beta1",
        kinds: &["RuntimeClass"],
        release: "1.25",
        instead: "node.k8s.io/v1",
    },
    Removed {
        api_version: "autoscaling/v2beta2",
        kinds: &["HorizontalPodAutoscaler"],
        release: "1.26",
        instead: "autoscaling/v2",
    },
    Removed {
        api_version: "storage.k8s.io/v1beta1",
        kinds: &["CSIStorageCapacity"],
        release: "1.27",
        instead: "storage.k8s.io/v1",
    },
];

/// The release that removed `kind` at `api_version`, and the apiVersion
/// that serves it now; `None` if Kubernetes never removed that pair.
pub fn removed(api_version: &str, kind: &str) -> Option<(&'static str, &'static str)> {
    REMOVED
        .iter()
        .find(|r| r.api_version == api_version && r.kinds.contains(&kind))
        .map(|r| (r.release, r.instead))
}

#[cfg(test)]
mod tests {
    use super::removed;

    #[test]
    fn removed_versions_name_their_release_and_replacement() {
        assert_eq!(
            removed("apps/v1beta2", "Deployment"),
            Some(("1.16", "apps/v1"))
        );
        assert_eq!(
            removed("batch/v1beta1", "CronJob"),
            Some(("1.25", "batch/v1"))
        );
        assert_eq!(
            removed("autoscaling/v2beta2", "HorizontalPodAutoscaler"),
            Some(("1.26", "autoscaling/v2"))
        );
        assert_eq!(removed("apps/v1", "Deployment"), None, "served");
        assert_eq!(removed("batch/v1beta1", "Job"), None, "never served there");
        assert_eq!(
            removed("autoscaling/v1", "HorizontalPodAutoscaler"),
            None,
            "still served"
        );
    }
}
