//! Other served versions of a kind, converted to the one jotasu stores
//! (as the API server converts every version to its storage version):
//! `autoscaling/v1` HorizontalPodAutoscaler → `autoscaling/v2`.

use serde::Deserialize;
use serde_json::{Value, json};

/// Other versions each kind is served at, beside its stored one.
pub const ALSO_SERVED: &[(&str, &str)] = &[("autoscaling/v1", "HorizontalPodAutoscaler")];

/// Why a document of another served version cannot be converted: the
/// serde error (an unknown field or a wrong type) at its path.
pub type ConvertError = serde_path_to_error::Error<serde_json::Error>;

/// `autoscaling/v1`: one CPU target in percent.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HpaV1 {
    #[serde(rename = "apiVersion")]
    _api_version: String,
    #[serde(rename = "kind")]
    _kind: String,
    /// Checked after conversion, as every kind's.
    #[serde(default)]
    metadata: Value,
    #[serde(default)]
    spec: HpaV1Spec,
    /// Written by the system; dropped (jotasu keeps the v2 status).
    #[serde(default, rename = "status")]
    _status: Option<Value>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HpaV1Spec {
    #[serde(default)]
    scale_target_ref: Value,
    #[serde(default)]
    min_replicas: Option<i32>,
    #[serde(default)]
    max_replicas: Option<i32>,
    #[serde(default, rename = "targetCPUUtilizationPercentage")]
    target_cpu_utilization_percentage: Option<i32>,
}

/// Converts `value` in place when it is of another served version; other
/// documents are left as they are.
pub fn to_stored(value: &mut Value) -> Result<(), ConvertError> {
    let api_version = value.get("apiVersion").and_then(Value::as_str);
    let kind = value.get("kind").and_then(Value::as_str);
    if (api_version, kind) != (Some("autoscaling/v1"), Some("HorizontalPodAutoscaler")) {
        return Ok(());
    }
    let v1: HpaV1 = serde_path_to_error::deserialize(&*value)?;
    // Kubernetes' conversion: the CPU percentage becomes a Resource
    // metric; without it v2 defaults to 80 % CPU, as v1 does.
    let metrics: Vec<Value> = v1
        .spec
        .target_cpu_utilization_percentage
        .map(|p| {
            json!({"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": p}}})
        })
        .into_iter()
        .collect();
    let mut spec = json!({"scaleTargetRef": v1.spec.scale_target_ref, "metrics": metrics});
    if let Some(min) = v1.spec.min_replicas {
        spec["minReplicas"] = json!(min);
    }
    if let Some(max) = v1.spec.max_replicas {
        spec["maxReplicas"] = json!(max);
    }
    *value = json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": v1.metadata,
        "spec": spec,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_v1_autoscaler_becomes_v2_with_its_cpu_target() {
        let mut v = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "php-apache"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "php-apache"},
                     "minReplicas": 1, "maxReplicas": 10, "targetCPUUtilizationPercentage": 50},
            "status": {"currentReplicas": 1, "desiredReplicas": 1}});
        to_stored(&mut v).unwrap();
        assert_eq!(v["apiVersion"], "autoscaling/v2");
        assert_eq!(v["spec"]["maxReplicas"], 10);
        assert_eq!(
            v["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            50
        );
        assert!(v.get("status").is_none());
    }

    #[test]
    fn unknown_v1_fields_are_named() {
        let mut v = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "x"}, "spec": {"maxReplicas": 2, "metrics": []}});
        let e = to_stored(&mut v).unwrap_err();
        assert_eq!(e.path().to_string(), "spec.metrics");
        assert!(
            e.inner().to_string().starts_with("unknown field `metrics`"),
            "{e}"
        );
        let mut other = json!({"apiVersion": "v1", "kind": "Pod"});
        to_stored(&mut other).unwrap();
        assert_eq!(other["kind"], "Pod");
    }
}
