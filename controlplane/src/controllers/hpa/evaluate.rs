//! One evaluation of an HPA, as Kubernetes' `reconcileAutoscaler` does it,
//! as a pure function: read the target's scale, propose replicas from
//! every metric (the largest wins), stabilize and rate-limit, decide
//! whether to scale, and build the status with its conditions
//! (AbleToScale, ScalingActive, ScalingLimited).

use jotasu_api::kinds::hpa::{
    HorizontalPodAutoscalerStatus, MetricSourceType, MetricSpec, MetricStatus, MetricTargetType,
    MetricValueStatus, ResourceMetricStatus,
};
use jotasu_api::{
    Condition, ConditionStatus, Deployment, HorizontalPodAutoscaler, Pod, Quantity, Time,
};

use super::behavior::{self, Bounds, History};
use super::replicas::{self, Sample, Target};
use crate::apiserver::Usage;
use crate::runtime::status::set_condition;

/// What an evaluation decides.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The target's replicas (its spec) as read.
    pub current: i32,
    /// Scale the target to this many replicas.
    pub scale_to: Option<i32>,
    /// The HPA's new status (assuming the scaling succeeds).
    pub status: HorizontalPodAutoscalerStatus,
}

fn set(
    status: &mut HorizontalPodAutoscalerStatus,
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    now: &Time,
) {
    let c = Condition {
        type_: type_.to_owned(),
        status: ConditionStatus::from(ok),
        reason: Some(reason.to_owned()),
        message: Some(message),
        ..Condition::default()
    };
    set_condition(&mut status.conditions, c, now);
}

/// A pod's usage of `resource` in thousandths of its unit.
fn usage_of(usage: Option<Usage>, resource: &str) -> Option<i64> {
    let u = usage?;
    match resource {
        "cpu" => Some(u.cpu_millicores),
        "memory" => Some(u.memory_bytes.saturating_mul(1000)),
        _ => None,
    }
}

/// One metric's proposal, its status and its description, or why not.
fn metric(
    spec: &MetricSpec,
    current: i32,
    pods: &[(&Pod, Option<Usage>)],
    now: i64,
) -> Result<(i32, MetricStatus, String), String> {
    let Some(source) = spec.resource.as_ref() else {
        return Err("invalid metric source: the resource metric is missing".into());
    };
    let name = source.name.as_str();
    if !matches!(name, "cpu" | "memory") {
        return Err(format!("unsupported resource {name:?} (cpu or memory)"));
    }
    let t = &source.target;
    let (target, what) = match t.type_ {
        MetricTargetType::Utilization => match t.average_utilization {
            Some(u) => (Target::Utilization(u), "utilization"),
            None => {
                return Err("invalid resource metric source: averageUtilization is not set".into());
            }
        },
        MetricTargetType::AverageValue => match &t.average_value {
            Some(v) => (Target::AverageValue(v.millis()), "usage"),
            None => return Err("invalid resource metric source: averageValue is not set".into()),
        },
        MetricTargetType::Value => {
            return Err("invalid resource metric source: a resource metric targets a utilization or an average value".into());
        }
    };
    let samples: Vec<Sample<'_>> = pods
        .iter()
        .map(|(pod, usage)| Sample {
            pod,
            usage: usage_of(*usage, name),
        })
        .collect();
    let p = replicas::replicas(current, name, target, &samples, now)
        .map_err(|e| format!("failed to get {name} {what}: {e}"))?;
    let average = Some(Quantity::from_millis(p.average));
    let (current_value, description) = match target {
        Target::Utilization(_) => (
            MetricValueStatus {
                average_utilization: p.utilization,
                average_value: average,
                value: None,
            },
            format!("{name} resource utilization (percentage of request)"),
        ),
        Target::AverageValue(_) => (
            MetricValueStatus {
                average_utilization: None,
                average_value: average,
                value: None,
            },
            format!("{name} resource"),
        ),
    };
    let status = MetricStatus {
        type_: MetricSourceType::Resource,
        resource: Some(ResourceMetricStatus {
            name: name.to_owned(),
            current: current_value,
        }),
    };
    Ok((p.replicas, status, description))
}

/// The replicas every metric together calls for (the largest proposal),
/// their statuses, and the metric that decided; `Err` when all fail, or
/// some fail and the rest would scale down.
fn propose(
    hpa: &HorizontalPodAutoscaler,
    current: i32,
    pods: &[(&Pod, Option<Usage>)],
    now: i64,
) -> (Result<(i32, String), String>, Vec<MetricStatus>) {
    let mut best: Option<(i32, String)> = None;
    let mut statuses = Vec::new();
    let mut failures = Vec::new();
    for spec in &hpa.spec.metrics {
        match metric(spec, current, pods, now) {
            Ok((n, status, name)) => {
                statuses.push(status);
                if best.as_ref().is_none_or(|(b, _)| n > *b) {
                    best = Some((n, name));
                }
            }
            Err(e) => failures.push(e),
        }
    }
    let result = match (best, failures.first()) {
        (Some((n, _)), Some(e)) if n < current => Err(e.clone()),
        (Some(b), _) => Ok(b),
        (None, Some(e)) => Err(e.clone()),
        (None, None) => Err("no metrics to compute the replica count from".into()),
    };
    (result, statuses)
}

/// Evaluates `hpa` against its `target` (or why it cannot be read), the
/// pods the target selects with their usage, and the remembered history.
pub fn evaluate(
    hpa: &HorizontalPodAutoscaler,
    target: Result<&Deployment, String>,
    pods: &[(&Pod, Option<Usage>)],
    history: &mut History,
    now: i64,
) -> Evaluation {
    let stamp = Time::from_unix_seconds(now);
    let mut status = hpa.status.clone().unwrap_or_default();
    status.observed_generation = hpa.metadata.generation;
    let deployment = match target {
        Ok(d) => d,
        Err(e) => {
            let message =
                format!("the HPA controller was unable to get the target's current scale: {e}");
            set(
                &mut status,
                "AbleToScale",
                false,
                "FailedGetScale",
                message,
                &stamp,
            );
            return Evaluation {
                current: status.current_replicas,
                scale_to: None,
                status,
            };
        }
    };
    set(
        &mut status,
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale".into(),
        &stamp,
    );
    let current = deployment.spec.replicas();
    history.init(current, now);
    let spec = &hpa.spec;
    let min = spec.min_replicas.unwrap_or(1);
    let mut statuses = status.current_metrics.clone();
    let desired = if current == 0 && min != 0 {
        let message = "scaling is disabled since the replica count of the target is zero".into();
        set(
            &mut status,
            "ScalingActive",
            false,
            "ScalingDisabled",
            message,
            &stamp,
        );
        None
    } else if current > spec.max_replicas {
        Some(spec.max_replicas)
    } else if current < min {
        Some(min)
    } else {
        let (proposal, metric_statuses) = propose(hpa, current, pods, now);
        statuses = metric_statuses;
        match proposal {
            Err(e) => {
                let message = format!("the HPA was unable to compute the replica count: {e}");
                set(
                    &mut status,
                    "ScalingActive",
                    false,
                    "FailedGetResourceMetric",
                    message,
                    &stamp,
                );
                status.current_replicas = current;
                status.current_metrics = statuses;
                return Evaluation {
                    current,
                    scale_to: None,
                    status,
                };
            }
            Ok((raw, name)) => {
                let message = format!(
                    "the HPA was able to successfully calculate a replica count from {name}"
                );
                set(
                    &mut status,
                    "ScalingActive",
                    true,
                    "ValidMetricFound",
                    message,
                    &stamp,
                );
                Some(normalize(hpa, &mut status, history, current, raw, min, now))
            }
        }
    };
    let scale_to = desired.filter(|d| *d != current);
    if let Some(n) = scale_to {
        let message = format!("the HPA controller was able to update the target scale to {n}");
        set(
            &mut status,
            "AbleToScale",
            true,
            "SucceededRescale",
            message,
            &stamp,
        );
        status.last_scale_time = Some(stamp);
    }
    status.current_replicas = current;
    status.desired_replicas = scale_to.unwrap_or(current);
    status.current_metrics = statuses;
    Evaluation {
        current,
        scale_to,
        status,
    }
}

/// Stabilization, then rate limits and bounds, with their conditions.
fn normalize(
    hpa: &HorizontalPodAutoscaler,
    status: &mut HorizontalPodAutoscalerStatus,
    history: &mut History,
    current: i32,
    raw: i32,
    min: i32,
    now: i64,
) -> i32 {
    let stamp = Time::from_unix_seconds(now);
    let b = hpa.spec.behavior.as_ref();
    let (up, down) = (behavior::scale_up(b), behavior::scale_down(b));
    let (stable, reason, message) = behavior::stabilize(history, &up, &down, current, raw, now);
    if stable == raw {
        let message = "recommended size matches current size".into();
        set(
            status,
            "AbleToScale",
            true,
            "ReadyForNewScale",
            message,
            &stamp,
        );
    } else {
        set(status, "AbleToScale", true, reason, message.into(), &stamp);
    }
    let bounds = Bounds {
        min,
        max: hpa.spec.max_replicas,
    };
    let (desired, reason, message) =
        behavior::limit(history, &up, &down, bounds, current, stable, now);
    set(
        status,
        "ScalingLimited",
        desired != stable,
        reason,
        message.into(),
        &stamp,
    );
    desired
}

/// The status after the scale call failed: AbleToScale=False, and the
/// desired count and last scale time of `before`.
pub fn scale_failed(
    status: &mut HorizontalPodAutoscalerStatus,
    before: Option<&HorizontalPodAutoscalerStatus>,
    error: &str,
    now: i64,
) {
    let message = format!("the HPA controller was unable to update the target scale: {error}");
    set(
        status,
        "AbleToScale",
        false,
        "FailedUpdateScale",
        message,
        &Time::from_unix_seconds(now),
    );
    status.desired_replicas = before.map_or(status.current_replicas, |b| b.desired_replicas);
    status.last_scale_time = before.and_then(|b| b.last_scale_time.clone());
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
