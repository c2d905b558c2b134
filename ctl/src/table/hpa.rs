//! HorizontalPodAutoscalers: `NAME REFERENCE TARGETS MINPODS MAXPODS
//! REPLICAS AGE`, TARGETS as `cpu: 30%/50%` (`<unknown>` before the first
//! measurement).

use jotasu_api::HorizontalPodAutoscaler;
use jotasu_api::kinds::hpa::{MetricSpec, MetricStatus, MetricTarget, MetricTargetType};

use super::join_or_none;

pub(super) const COLUMNS: &[&str] = &[
    "REFERENCE",
    "TARGETS",
    "MINPODS",
    "MAXPODS",
    "REPLICAS",
    "AGE",
];

/// `Deployment/web`.
pub fn reference(h: &HorizontalPodAutoscaler) -> String {
    let r = &h.spec.scale_target_ref;
    format!("{}/{}", r.kind, r.name)
}

/// The target of one metric: `50%`, `500m`.
pub fn target_text(t: &MetricTarget) -> String {
    match t.type_ {
        MetricTargetType::Utilization => t
            .average_utilization
            .map_or_else(|| "<unset>".to_owned(), |u| format!("{u}%")),
        MetricTargetType::AverageValue => t
            .average_value
            .as_ref()
            .map_or_else(|| "<unset>".to_owned(), ToString::to_string),
        MetricTargetType::Value => t
            .value
            .as_ref()
            .map_or_else(|| "<unset>".to_owned(), ToString::to_string),
    }
}

/// The current value of the metric `spec` targets, in the target's terms.
fn current_text(spec: &MetricSpec, current: &[MetricStatus]) -> String {
    let Some(resource) = &spec.resource else {
        return "<unknown>".to_owned();
    };
    let value = current
        .iter()
        .filter_map(|m| m.resource.as_ref())
        .find(|r| r.name == resource.name)
        .and_then(|r| match resource.target.type_ {
            MetricTargetType::Utilization => r.current.average_utilization.map(|u| format!("{u}%")),
            MetricTargetType::AverageValue => {
                r.current.average_value.as_ref().map(ToString::to_string)
            }
            MetricTargetType::Value => r.current.value.as_ref().map(ToString::to_string),
        });
    value.unwrap_or_else(|| "<unknown>".to_owned())
}

/// `cpu: 30%/50%, memory: <unknown>/200Mi`, or `<none>`.
pub fn targets(h: &HorizontalPodAutoscaler) -> String {
    let current = h
        .status
        .as_ref()
        .map(|s| s.current_metrics.as_slice())
        .unwrap_or_default();
    join_or_none(
        h.spec.metrics.iter().map(|m| {
            let name = m.resource.as_ref().map_or("", |r| r.name.as_str());
            let target = m
                .resource
                .as_ref()
                .map_or_else(|| "<unset>".to_owned(), |r| target_text(&r.target));
            format!("{name}: {}/{target}", current_text(m, current))
        }),
        ", ",
    )
}

pub(super) fn row(h: &HorizontalPodAutoscaler, age: String) -> Vec<String> {
    vec![
        reference(h),
        targets(h),
        h.spec
            .min_replicas
            .map_or_else(|| "<unset>".to_owned(), |m| m.to_string()),
        h.spec.max_replicas.to_string(),
        h.status
            .as_ref()
            .map_or(0, |s| s.current_replicas)
            .to_string(),
        age,
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{CREATED, NOW, object};
    use super::super::{TableOptions, render};
    use jotasu_api::Kind;
    use serde_json::json;

    #[test]
    fn hpa_columns() {
        let h = |status: serde_json::Value| {
            object(json!({
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "php", "creationTimestamp": CREATED},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "php"},
                         "minReplicas": 1, "maxReplicas": 10,
                         "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 50}}}]},
                "status": status
            }))
        };
        let opts = TableOptions {
            now: NOW,
            ..TableOptions::default()
        };
        assert_eq!(
            render(Kind::HorizontalPodAutoscaler, &[h(json!(null))], &opts),
            "NAME   REFERENCE        TARGETS              MINPODS   MAXPODS   REPLICAS   AGE\n\
             php    Deployment/php   cpu: <unknown>/50%   1         10        0          5s\n"
        );
        let measured = h(
            json!({"currentReplicas": 3, "desiredReplicas": 3, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 30}}}]}),
        );
        let opts = TableOptions {
            no_headers: true,
            ..opts
        };
        assert_eq!(
            render(Kind::HorizontalPodAutoscaler, &[measured], &opts),
            "php   Deployment/php   cpu: 30%/50%   1     10    3     5s\n"
        );
    }
}
