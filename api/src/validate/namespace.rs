//! Namespace and ServiceAccount rules, and a pod's service account fields.

use crate::error::FieldError;
use crate::kinds::namespace::{FINALIZER_KUBERNETES, Namespace};
use crate::kinds::pod::PodSpec;
use crate::kinds::service_account::ServiceAccount;
use crate::path::FieldPath;
use crate::validate::{name, names};

/// Finalizers are qualified names; one without a `/` must be Kubernetes' own.
pub(super) fn namespace(ns: &Namespace, errs: &mut Vec<FieldError>) {
    let path = FieldPath::new("spec").field("finalizers");
    for (i, f) in ns.spec.finalizers.iter().enumerate() {
        let p = path.index(i);
        name(names::qualified_name, f, &p, errs);
        if !f.contains('/') && f != FINALIZER_KUBERNETES {
            errs.push(FieldError::invalid(
                &p,
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
}

/// Referenced secrets and image pull secrets need names.
pub(super) fn service_account(sa: &ServiceAccount, errs: &mut Vec<FieldError>) {
    for (i, s) in sa.secrets.iter().enumerate() {
        let p = FieldPath::new("secrets").index(i).field("name");
        match s.name.as_deref() {
            Some(n) if !n.is_empty() => name(names::dns1123_subdomain, n, &p, errs),
            _ => errs.push(FieldError::required(&p, "")),
        }
    }
    for (i, s) in sa.image_pull_secrets.iter().enumerate() {
        let p = FieldPath::new("imagePullSecrets").index(i).field("name");
        if s.name.is_empty() {
            errs.push(FieldError::required(&p, ""));
        } else {
            name(names::dns1123_subdomain, &s.name, &p, errs);
        }
    }
}

/// A pod's `serviceAccountName` (and its alias) is a DNS-1123 subdomain.
pub(super) fn pod_service_account(spec: &PodSpec, path: &FieldPath, errs: &mut Vec<FieldError>) {
    for (field, value) in [
        ("serviceAccountName", &spec.service_account_name),
        ("serviceAccount", &spec.service_account),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            name(names::dns1123_subdomain, v, &path.field(field), errs);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::object::Object;

    fn errors(v: serde_json::Value) -> String {
        let mut o: Object = serde_json::from_value(v).unwrap();
        o.apply_defaults();
        match o.validate() {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn namespace_names_are_dns_labels() {
        let ns = |name: &str| {
            errors(
                serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            )
        };
        assert_eq!(ns("team-a"), "");
        for bad in ["a.b", "Team", "-a", &"x".repeat(64)] {
            assert!(
                ns(bad).contains("metadata.name: Invalid value"),
                "{bad}: {}",
                ns(bad)
            );
        }
        let e = errors(serde_json::json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "a"}, "spec": {"finalizers": ["mine"]}}));
        assert!(e.contains("spec.finalizers[0]"), "{e}");
        assert!(e.contains("neither a standard finalizer name"), "{e}");
    }

    #[test]
    fn service_account_references() {
        let e = errors(
            serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "build"}, "imagePullSecrets": [{}], "secrets": [{"name": "Bad_"}]}),
        );
        assert!(
            e.contains("imagePullSecrets[0].name: Required value"),
            "{e}"
        );
        assert!(e.contains("secrets[0].name: Invalid value"), "{e}");
        let e = errors(
            serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"serviceAccountName": "Not_Valid", "containers": [{"name": "c", "image": "i"}]}}),
        );
        assert!(e.contains("spec.serviceAccountName: Invalid value"), "{e}");
    }
}
