//! How kubectl names objects in its output: `deployment.apps/web` (apply,
//! scale, `-o name`) and `deployment.apps "web" deleted`. (Server messages
//! use the plural, `deployments.apps "web" not found`: the server writes those.)

use jotasu_api::{Kind, ObjectRef};

/// The lower-case kind and its API group: `deployment.apps`, `service`
/// (core kinds have no group).
pub fn kind_group(kind: Kind) -> String {
    let kind_lower = kind.as_str().to_ascii_lowercase();
    match kind.group() {
        "" => kind_lower,
        group => format!("{kind_lower}.{group}"),
    }
}

/// `deployment.apps/web`.
pub fn slash_name(kind: Kind, name: &str) -> String {
    format!("{}/{name}", kind_group(kind))
}

/// `deployment.apps/web` of a reference.
pub fn ref_slash_name(r: &ObjectRef) -> String {
    slash_name(r.kind, &r.name)
}

/// `deployment.apps "web" deleted`.
pub fn deleted(r: &ObjectRef) -> String {
    format!("{} \"{}\" deleted", kind_group(r.kind), r.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: Kind, name: &str) -> ObjectRef {
        ObjectRef {
            kind,
            namespace: Some("default".into()),
            name: name.into(),
        }
    }

    #[test]
    fn kubectl_names() {
        assert_eq!(slash_name(Kind::Deployment, "web"), "deployment.apps/web");
        assert_eq!(slash_name(Kind::DaemonSet, "d"), "daemonset.apps/d");
        assert_eq!(slash_name(Kind::Service, "web"), "service/web");
        assert_eq!(slash_name(Kind::ConfigMap, "x"), "configmap/x");
        assert_eq!(slash_name(Kind::Endpoints, "x"), "endpoints/x");
        assert_eq!(slash_name(Kind::Node, "n1"), "node/n1");
        assert_eq!(
            slash_name(Kind::HorizontalPodAutoscaler, "h"),
            "horizontalpodautoscaler.autoscaling/h"
        );
        assert_eq!(
            deleted(&r(Kind::Deployment, "web")),
            "deployment.apps \"web\" deleted"
        );
        assert_eq!(deleted(&r(Kind::Secret, "s")), "secret \"s\" deleted");
        assert_eq!(ref_slash_name(&r(Kind::Pod, "p")), "pod/p");
    }
}
