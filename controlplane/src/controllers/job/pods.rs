//! Reading a Job's pods as Kubernetes' job controller does: which are
//! active, succeeded, failed (and whether the pod failure policy ignores
//! or fails the job for a failure), the completion index of each, the
//! back-off after failures, and the pods it creates.

use std::collections::BTreeSet;

use jotasu_api::kinds::batch::{
    COMPLETION_INDEX_ANNOTATION, COMPLETION_INDEX_ENV, CompletionMode, PodFailureAction,
    PodFailurePolicy,
};
use jotasu_api::kinds::env::{EnvVar, EnvVarSource, ObjectFieldSelector};
use jotasu_api::kinds::pod_status::{ContainerStatus, PodPhase};
use jotasu_api::{ConditionStatus, Job, ObjectMeta, Pod, Time};

use crate::runtime::controller_reference;
use crate::runtime::status::{is_ready, is_terminating};

/// The first delay before a failed pod is replaced.
pub const BACKOFF_BASE_SECONDS: i64 = 10;
/// The longest delay (Kubernetes caps the doubling at six minutes).
pub const BACKOFF_MAX_SECONDS: i64 = 360;

/// What a pod is, for its Job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState {
    /// Pending or running, not being deleted.
    Active,
    /// Being deleted, not finished.
    Terminating,
    /// Phase Succeeded.
    Succeeded,
    /// Phase Failed.
    Failed,
}

/// Where a pod stands.
pub fn state(pod: &Pod) -> PodState {
    match pod.status.as_ref().and_then(|s| s.phase) {
        Some(PodPhase::Succeeded) => PodState::Succeeded,
        Some(PodPhase::Failed) => PodState::Failed,
        _ if is_terminating(pod) => PodState::Terminating,
        _ => PodState::Active,
    }
}

/// Whether an active pod is Ready.
pub fn ready(pod: &Pod) -> bool {
    state(pod) == PodState::Active && is_ready(pod)
}

/// The completion index of an Indexed Job's pod (its annotation).
pub fn index_of(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .get(COMPLETION_INDEX_ANNOTATION)
        .and_then(|v| v.parse().ok())
        .filter(|i| *i >= 0)
}

/// What the pod failure policy makes of a failed pod: the action of the
/// first matching rule and a message naming why; `None` when no rule
/// matches (the failure counts).
pub fn failure_action(
    policy: Option<&PodFailurePolicy>,
    pod: &Pod,
) -> Option<(PodFailureAction, String)> {
    let policy = policy?;
    let status = pod.status.as_ref()?;
    let who = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name()
    );
    for (i, rule) in policy.rules.iter().enumerate() {
        let Some(action) = rule.action() else {
            continue;
        };
        if let Some(req) = &rule.on_exit_codes {
            let matching = |list: &[ContainerStatus]| {
                list.iter()
                    .filter(|c| req.container_name.as_deref().is_none_or(|n| n == c.name))
                    .find_map(|c| {
                        let code = c.state.as_ref()?.terminated.as_ref()?.exit_code;
                        (code != 0 && req.matches(code)).then(|| (c.name.clone(), code))
                    })
            };
            let found = matching(&status.container_statuses)
                .or_else(|| matching(&status.init_container_statuses));
            if let Some((container, code)) = found {
                return Some((
                    action,
                    format!(
                        "Container {container} for pod {who} failed with exit code {code} matching {} rule at index {i}",
                        rule.action
                    ),
                ));
            }
        }
        for pattern in &rule.on_pod_conditions {
            let want = pattern.status.as_deref().unwrap_or("True");
            let hit = status.conditions.iter().any(|c| {
                c.type_ == pattern.type_
                    && match c.status {
                        ConditionStatus::True => want == "True",
                        ConditionStatus::False => want == "False",
                        ConditionStatus::Unknown => want == "Unknown",
                    }
            });
            if hit {
                return Some((
                    action,
                    format!(
                        "Pod {who} has condition {} matching {} rule at index {i}",
                        pattern.type_, rule.action
                    ),
                ));
            }
        }
    }
    None
}

/// When the pod finished: its containers' latest `finishedAt`, else its
/// latest condition change.
pub fn finished_at(pod: &Pod) -> Option<i64> {
    let status = pod.status.as_ref()?;
    let exits = status
        .container_statuses
        .iter()
        .chain(&status.init_container_statuses)
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .filter_map(Time::unix_seconds);
    let changes = status
        .conditions
        .iter()
        .filter_map(|c| c.last_transition_time.as_ref())
        .filter_map(Time::unix_seconds);
    exits.max().or_else(|| changes.max())
}

/// Kubernetes' back-off before the next pod after `failures` failures
/// since the last success: 10 s doubling, at most 6 minutes; none before
/// the first failure.
pub fn backoff_seconds(failures: u32) -> i64 {
    if failures == 0 {
        return 0;
    }
    let shift = (failures - 1).min(16);
    (BACKOFF_BASE_SECONDS << shift).min(BACKOFF_MAX_SECONDS)
}

/// `1,3-5,7` for a set of indexes (Kubernetes' completedIndexes).
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

/// The indexes of `1,3-5,7` (what [`format_indexes`] writes); parts
/// that are not indexes are skipped.
pub fn parse_indexes(text: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>())
            && (0..=b).contains(&a)
        {
            out.extend(a..=b);
        }
    }
    out
}

/// The pod a Job creates (index for Indexed Jobs): the template, owned by
/// the Job; an Indexed pod gets its index as annotation, label and
/// `JOB_COMPLETION_INDEX`, and the hostname `<job>-<index>`.
pub fn pod_for(job: &Job, index: Option<i32>) -> Pod {
    let template = &job.spec.template;
    let name = job.metadata.name();
    let mut meta = ObjectMeta {
        generate_name: Some(format!("{name}-")),
        namespace: job.metadata.namespace.clone(),
        labels: template.metadata.labels.clone(),
        annotations: template.metadata.annotations.clone(),
        owner_references: vec![controller_reference(job)],
        ..ObjectMeta::default()
    };
    let mut spec = template.spec.clone();
    if let (Some(i), CompletionMode::Indexed) = (index, job.spec.completion_mode()) {
        meta.generate_name = Some(format!("{name}-{i}-"));
        meta.annotations
            .insert(COMPLETION_INDEX_ANNOTATION.to_owned(), i.to_string());
        meta.labels
            .insert(COMPLETION_INDEX_ANNOTATION.to_owned(), i.to_string());
        if spec.hostname.as_deref().is_none_or(str::is_empty) {
            spec.hostname = Some(format!("{name}-{i}"));
        }
        let env = EnvVar {
            name: COMPLETION_INDEX_ENV.to_owned(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: Some("v1".to_owned()),
                    field_path: format!("metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"),
                }),
                ..EnvVarSource::default()
            }),
        };
        for c in spec.init_containers.iter_mut().chain(&mut spec.containers) {
            if !c.env.iter().any(|e| e.name == COMPLETION_INDEX_ENV) {
                c.env.push(env.clone());
            }
        }
    }
    Pod {
        metadata: meta,
        spec,
        ..Pod::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_six_minutes() {
        let delays: Vec<i64> = (0..8).map(backoff_seconds).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 320, 360]);
        assert_eq!(backoff_seconds(u32::MAX), 360);
    }

    #[test]
    fn index_ranges() {
        let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into_iter().collect();
        assert_eq!(format_indexes(&set), "0-2,4,6-7");
        assert_eq!(format_indexes(&BTreeSet::new()), "");
        assert_eq!(parse_indexes("0-2,4,6-7"), set);
        assert_eq!(parse_indexes(""), BTreeSet::new());
        assert_eq!(parse_indexes("x,3-1,5"), [5].into_iter().collect());
    }
}
