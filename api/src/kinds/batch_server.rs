//! What the API server does to Jobs and CronJobs besides decoding them:
//! Kubernetes' defaults, the selector it generates for a new Job, the
//! generated parts an apply keeps, and what an update may not change.

use super::batch::{
    CONTROLLER_UID_LABEL, CompletionMode, CronJob, DEFAULT_BACKOFF_LIMIT, JOB_NAME_LABEL, Job,
    JobSpec, LEGACY_CONTROLLER_UID_LABEL, LEGACY_JOB_NAME_LABEL,
};
use crate::selector::LabelSelector;

/// Kubernetes' Job defaults: completions and parallelism 1 when both are
/// unset (parallelism 1 when only it is), backoffLimit 6, completionMode
/// NonIndexed, suspend and manualSelector false, the template's labels as
/// the Job's when it has none, condition status `True` in pod failure
/// policy rules; the pod template gets the pod defaults.
pub(crate) fn default_job(job: &mut Job) {
    default_job_spec(&mut job.spec);
    if job.metadata.labels.is_empty() {
        job.metadata
            .labels
            .clone_from(&job.spec.template.metadata.labels);
    }
}

fn default_job_spec(spec: &mut JobSpec) {
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    spec.backoff_limit.get_or_insert(DEFAULT_BACKOFF_LIMIT);
    spec.completion_mode
        .get_or_insert_with(|| "NonIndexed".to_owned());
    spec.suspend.get_or_insert(false);
    spec.manual_selector.get_or_insert(false);
    if let Some(policy) = &mut spec.pod_failure_policy {
        for rule in &mut policy.rules {
            for c in &mut rule.on_pod_conditions {
                c.status.get_or_insert_with(|| "True".to_owned());
            }
        }
    }
    crate::defaults::default_pod_spec(&mut spec.template.spec);
}

/// Kubernetes' CronJob defaults: concurrencyPolicy Allow, suspend false,
/// 3 successful and 1 failed Jobs kept; the job template's pod defaults.
pub(crate) fn default_cron_job(cj: &mut CronJob) {
    let spec = &mut cj.spec;
    spec.concurrency_policy
        .get_or_insert_with(|| "Allow".to_owned());
    spec.suspend.get_or_insert(false);
    spec.successful_jobs_history_limit.get_or_insert(3);
    spec.failed_jobs_history_limit.get_or_insert(1);
    crate::defaults::default_pod_spec(&mut spec.job_template.spec.template.spec);
}

/// Kubernetes' selector generation (manualSelector unset or false): the
/// template gets `batch.kubernetes.io/controller-uid`, `batch.kubernetes.io/job-name`,
/// `controller-uid` and `job-name` labels (those it lacks), and the selector
/// matches the controller-uid label. Run when the Job is created, with its uid.
pub fn generate_selector(job: &mut Job) {
    if job.spec.manual_selector == Some(true) {
        return;
    }
    let Some(uid) = job.metadata.uid.clone() else {
        return;
    };
    let name = job.metadata.name().to_owned();
    let labels = &mut job.spec.template.metadata.labels;
    for (key, value) in [
        (LEGACY_JOB_NAME_LABEL, &name),
        (JOB_NAME_LABEL, &name),
        (LEGACY_CONTROLLER_UID_LABEL, &uid),
        (CONTROLLER_UID_LABEL, &uid),
    ] {
        labels
            .entry(key.to_owned())
            .or_insert_with(|| value.clone());
    }
    job.spec
        .selector
        .get_or_insert_with(LabelSelector::default)
        .match_labels
        .entry(CONTROLLER_UID_LABEL.to_owned())
        .or_insert(uid);
}

/// On an apply to a stored Job: the selector and template labels the
/// server generated survive a manifest that leaves them out.
pub fn keep_generated_selector(job: &mut Job, stored: &Job) {
    if job.spec.manual_selector == Some(true) {
        return;
    }
    if job.spec.selector.is_none() {
        job.spec.selector.clone_from(&stored.spec.selector);
    }
    let labels = &mut job.spec.template.metadata.labels;
    for key in [
        LEGACY_JOB_NAME_LABEL,
        JOB_NAME_LABEL,
        LEGACY_CONTROLLER_UID_LABEL,
        CONTROLLER_UID_LABEL,
    ] {
        if let Some(v) = stored.spec.template.metadata.labels.get(key) {
            labels.entry(key.to_owned()).or_insert_with(|| v.clone());
        }
    }
}

/// What an update may not change in a Job (Kubernetes' job update
/// validation): its selector, template, completion mode, pod failure
/// policy, manualSelector, and completions (but for an Indexed Job changing
/// completions and parallelism together, Kubernetes' elastic Indexed Job).
pub fn immutable_changes(new: &Job, old: &Job) -> Vec<crate::error::FieldError> {
    use crate::error::FieldError;
    use crate::path::FieldPath;
    let spec = FieldPath::new("spec");
    let (n, o) = (&new.spec, &old.spec);
    let mut errs = Vec::new();
    let mut immutable = |name: &str, changed: bool| {
        if changed {
            errs.push(FieldError::new(
                &spec.field(name),
                "Invalid value: field is immutable",
            ));
        }
    };
    immutable("selector", n.selector != o.selector);
    immutable("template", n.template != o.template);
    immutable("completionMode", n.completion_mode != o.completion_mode);
    immutable(
        "podFailurePolicy",
        n.pod_failure_policy != o.pod_failure_policy,
    );
    immutable("manualSelector", n.manual_selector != o.manual_selector);
    let elastic = n.completion_mode() == CompletionMode::Indexed
        && n.completions == n.parallelism
        && o.completions == o.parallelism;
    immutable("completions", n.completions != o.completions && !elastic);
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_selector_and_labels() {
        let mut job = Job::default();
        job.metadata.name = Some("pi".into());
        job.metadata.uid = Some("u-1".into());
        job.spec
            .template
            .metadata
            .labels
            .insert("job-name".into(), "mine".into());
        generate_selector(&mut job);
        let labels = &job.spec.template.metadata.labels;
        assert_eq!(labels["job-name"], "mine", "a label the user set is kept");
        assert_eq!(labels[JOB_NAME_LABEL], "pi");
        assert_eq!(labels[CONTROLLER_UID_LABEL], "u-1");
        assert_eq!(labels[LEGACY_CONTROLLER_UID_LABEL], "u-1");
        let sel = job.spec.selector.clone().expect("a selector");
        assert_eq!(sel.match_labels.len(), 1);
        assert!(sel.matches(labels));

        let mut again = Job::default();
        again.metadata.name = Some("pi".into());
        keep_generated_selector(&mut again, &job);
        assert_eq!(again.spec.selector, job.spec.selector);
        assert_eq!(
            again.spec.template.metadata.labels[CONTROLLER_UID_LABEL],
            "u-1"
        );

        let mut manual = Job::default();
        manual.metadata.uid = Some("u-2".into());
        manual.spec.manual_selector = Some(true);
        generate_selector(&mut manual);
        assert_eq!(manual.spec.selector, None);
    }

    #[test]
    fn what_an_update_may_change() {
        let mut old = Job::default();
        old.spec.completions = Some(3);
        old.spec.parallelism = Some(3);
        let mut new = old.clone();
        new.spec.parallelism = Some(1);
        new.spec.backoff_limit = Some(2);
        assert!(immutable_changes(&new, &old).is_empty());
        new.spec.completions = Some(4);
        new.spec
            .template
            .metadata
            .labels
            .insert("a".into(), "b".into());
        let errs: Vec<String> = immutable_changes(&new, &old)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errs,
            [
                "spec.template: Invalid value: field is immutable",
                "spec.completions: Invalid value: field is immutable"
            ]
        );
        let mut elastic = old.clone();
        elastic.spec.completion_mode = Some("Indexed".into());
        let mut grown = elastic.clone();
        grown.spec.completions = Some(5);
        grown.spec.parallelism = Some(5);
        assert!(immutable_changes(&grown, &elastic).is_empty());
    }
}
