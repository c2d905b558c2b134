//! Kubernetes' replica calculation for a resource metric (`cpu` or
//! `memory`), as a pure function of the target's pods and their usage.
//!
//! Pods being deleted or Failed are ignored; Pending pods and (for CPU)
//! pods not yet ready are *unready*; pods without a usage report are
//! *missing*. The ratio of the ready pods' usage to the target decides,
//! unless within the tolerance; then missing pods count as using 100 % of
//! their request (or the target value) when scaling down and 0 % when
//! scaling up, unready pods 0 % when scaling up, and the ratio is taken
//! again — a change of direction, or a result within the tolerance,
//! keeps the current count.

use jotasu_api::kinds::pod_status::PodPhase;
use jotasu_api::{ConditionStatus, Pod};

use crate::runtime::status::{condition, is_terminating};

/// Changes of the usage ratio within this fraction of 1 are ignored.
pub const TOLERANCE: f64 = 0.1;
/// Seconds after a pod starts during which CPU samples of an unready pod are ignored.
pub const CPU_INITIALIZATION_PERIOD: i64 = 300;
/// Seconds after a pod starts within which it is taken as never ready yet.
pub const INITIAL_READINESS_DELAY: i64 = 30;

/// What a metric aims at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Average usage as a percentage of the pods' requests.
    Utilization(i32),
    /// Average usage per pod, in thousandths of the unit (millicores, millibytes).
    AverageValue(i64),
}

/// One pod of the target and its usage in thousandths of the unit.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// Its usage (None: no report).
    pub usage: Option<i64>,
}

/// What the calculation proposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal {
    /// The replica count.
    pub replicas: i32,
    /// Average utilization of the ready pods, percent (Utilization targets).
    pub utilization: Option<i32>,
    /// Average usage of the ready pods, thousandths of the unit.
    pub average: i64,
}

/// The pod's request of `resource` summed over its containers, in
/// thousandths of the unit; an error names a container without one.
pub fn pod_request(pod: &Pod, resource: &str) -> Result<i64, String> {
    let mut sum = 0i64;
    for c in &pod.spec.containers {
        let request = c.resources.as_ref().and_then(|r| r.requests.get(resource));
        match request {
            Some(q) => sum = sum.saturating_add(q.millis()),
            None => {
                return Err(format!(
                    "missing request for {resource} in container {} of Pod {}",
                    c.name,
                    pod.metadata.name()
                ));
            }
        }
    }
    Ok(sum)
}

/// Whether a CPU sample of a running pod is left out as not ready:
/// within the initialization period, unless it is Ready; later, only if
/// it has never been ready.
fn cpu_unready(pod: &Pod, now: i64) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return true;
    };
    let ready = condition(&status.conditions, "Ready");
    let start = status
        .start_time
        .as_ref()
        .and_then(jotasu_api::Time::unix_seconds);
    let (Some(ready), Some(start)) = (ready, start) else {
        return true;
    };
    if start + CPU_INITIALIZATION_PERIOD > now {
        ready.status == ConditionStatus::False
    } else {
        let changed = ready
            .last_transition_time
            .as_ref()
            .and_then(jotasu_api::Time::unix_seconds)
            .unwrap_or(start);
        ready.status == ConditionStatus::False && start + INITIAL_READINESS_DELAY > changed
    }
}

/// The pods sorted into ready (with their usage), unready and missing.
struct Groups<'a> {
    ready: Vec<(&'a Pod, i64)>,
    unready: Vec<&'a Pod>,
    missing: Vec<&'a Pod>,
}

fn group<'a>(samples: &[Sample<'a>], resource: &str, now: i64) -> Groups<'a> {
    let mut g = Groups {
        ready: Vec::new(),
        unready: Vec::new(),
        missing: Vec::new(),
    };
    for s in samples {
        let phase = s.pod.status.as_ref().and_then(|st| st.phase);
        if is_terminating(s.pod) || phase == Some(PodPhase::Failed) {
            continue;
        }
        if matches!(phase, None | Some(PodPhase::Pending)) {
            g.unready.push(s.pod);
            continue;
        }
        let Some(usage) = s.usage else {
            g.missing.push(s.pod);
            continue;
        };
        if resource == "cpu" && cpu_unready(s.pod, now) {
            g.unready.push(s.pod);
            continue;
        }
        g.ready.push((s.pod, usage));
    }
    g
}

/// Usage ratio, utilization percent and average usage of `metrics`
/// (pods with their usage and request) against `target`.
fn ratio(metrics: &[(i64, i64)], target: Target) -> Result<(f64, Option<i32>, i64), String> {
    let count = i64::try_from(metrics.len().max(1)).unwrap_or(i64::MAX);
    let used: i64 = metrics.iter().map(|m| m.0).sum();
    let average = used / count;
    match target {
        Target::Utilization(percent) => {
            let requested: i64 = metrics.iter().map(|m| m.1).sum();
            if requested <= 0 {
                return Err("no metrics returned matched known pods".into());
            }
            let utilization =
                i32::try_from(used.saturating_mul(100) / requested).unwrap_or(i32::MAX);
            let r = f64::from(utilization) / f64::from(percent.max(1));
            Ok((r, Some(utilization), average))
        }
        Target::AverageValue(value) => {
            // Precision: both sides are in thousandths; the ratio is unitless.
            #[allow(clippy::cast_precision_loss)]
            let r = average as f64 / value.max(1) as f64;
            Ok((r, None, average))
        }
    }
}

fn ceil_replicas(ratio: f64, count: usize) -> i32 {
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    let r = (ratio * count as f64).ceil() as i64;
    i32::try_from(r.clamp(0, i64::from(i32::MAX))).unwrap_or(i32::MAX)
}

/// The replicas `samples` (every pod the target selects) call for at
/// `current` replicas; `Err` is why no count can be computed.
pub fn replicas(
    current: i32,
    resource: &str,
    target: Target,
    samples: &[Sample<'_>],
    now: i64,
) -> Result<Proposal, String> {
    if samples.iter().all(|s| s.usage.is_none()) {
        return Err(format!(
            "unable to get metrics for resource {resource}: no metrics returned from resource metrics API"
        ));
    }
    let g = group(samples, resource, now);
    let request = |pod: &Pod| -> Result<i64, String> {
        match target {
            Target::Utilization(_) => pod_request(pod, resource),
            Target::AverageValue(_) => Ok(0),
        }
    };
    let mut metrics = Vec::with_capacity(samples.len());
    for &(pod, usage) in &g.ready {
        metrics.push((usage, request(pod)?));
    }
    if metrics.is_empty() {
        return Err("did not receive metrics for targeted pods (pods might be unready)".into());
    }
    let (usage_ratio, utilization, average) = ratio(&metrics, target)?;
    let proposal = |replicas| Proposal {
        replicas,
        utilization,
        average,
    };
    let scale_up_with_unready = !g.unready.is_empty() && usage_ratio > 1.0;
    if !scale_up_with_unready && g.missing.is_empty() {
        if (1.0 - usage_ratio).abs() <= TOLERANCE {
            return Ok(proposal(current));
        }
        return Ok(proposal(ceil_replicas(usage_ratio, g.ready.len())));
    }
    if !g.missing.is_empty() {
        for &pod in &g.missing {
            let req = request(pod)?;
            let assumed = match target {
                _ if usage_ratio > 1.0 => 0,
                Target::Utilization(_) if usage_ratio < 1.0 => req,
                Target::AverageValue(v) if usage_ratio < 1.0 => v,
                Target::AverageValue(_) => 0,
                // Exactly on target: Kubernetes leaves utilization's missing pods out.
                Target::Utilization(_) => continue,
            };
            metrics.push((assumed, req));
        }
    }
    if scale_up_with_unready {
        for &pod in &g.unready {
            metrics.push((0, request(pod)?));
        }
    }
    let (new_ratio, _, _) = ratio(&metrics, target)?;
    if (1.0 - new_ratio).abs() <= TOLERANCE
        || (usage_ratio < 1.0 && new_ratio > 1.0)
        || (usage_ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(proposal(current));
    }
    let n = ceil_replicas(new_ratio, metrics.len());
    if (new_ratio < 1.0 && n > current) || (new_ratio > 1.0 && n < current) {
        return Ok(proposal(current));
    }
    Ok(proposal(n))
}

#[cfg(test)]
#[path = "replicas_tests.rs"]
mod tests;
