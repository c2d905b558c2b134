//! Job and CronJob rules, in Kubernetes' words: counts not negative, the
//! completion mode, a selector that matches the template (and that the
//! server generated unless `manualSelector`), restartPolicy OnFailure or
//! Never, the pod failure policy's rules, a CronJob's schedule and time zone.

use crate::cron;
use crate::error::FieldError;
use crate::kinds::batch::{
    CONTROLLER_UID_LABEL, CronJob, Job, JobSpec, MAX_COMPLETIONS_INDEXED, MAX_CRONJOB_NAME,
    MAX_PARALLELISM_INDEXED, PodFailurePolicy,
};
use crate::kinds::pod::{PodSpec, RestartPolicy};
use crate::meta::ObjectMeta;
use crate::path::FieldPath;
use crate::validate::workloads::{label_selector, labels_text};
use crate::validate::{meta, non_negative, pod};

/// The most rules a pod failure policy may have.
const MAX_POD_FAILURE_RULES: usize = 20;
/// The most exit codes one rule may list.
const MAX_EXIT_CODES: usize = 255;

pub(super) fn job(j: &Job, errs: &mut Vec<FieldError>) {
    let spec = FieldPath::new("spec");
    job_spec(&j.spec, &spec, errs);
    let s = &j.spec;
    if s.manual_selector == Some(true) {
        if s.selector.is_none() {
            errs.push(FieldError::required(&spec.field("selector"), ""));
        }
    } else if let (Some(uid), Some(sel)) = (&j.metadata.uid, &s.selector)
        && sel.match_labels.get(CONTROLLER_UID_LABEL) != Some(uid)
    {
        errs.push(FieldError::invalid(
            &spec.field("selector"),
            sel,
            "`selector` not auto-generated",
        ));
    }
}

pub(super) fn cron_job(c: &CronJob, errs: &mut Vec<FieldError>) {
    let name = c.metadata.name();
    if name.len() > MAX_CRONJOB_NAME {
        errs.push(FieldError::invalid(
            &FieldPath::new("metadata").field("name"),
            name,
            format!("must be no more than {MAX_CRONJOB_NAME} characters"),
        ));
    }
    let spec = FieldPath::new("spec");
    let s = &c.spec;
    let schedule = spec.field("schedule");
    if s.schedule.is_empty() {
        errs.push(FieldError::required(&schedule, ""));
    } else {
        if let Err(e) = cron::parse(&s.schedule) {
            errs.push(FieldError::invalid(&schedule, &s.schedule, e));
        }
        if s.schedule.contains("TZ") {
            errs.push(FieldError::invalid(
                &schedule,
                &s.schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    if let Some(tz) = &s.time_zone {
        let path = spec.field("timeZone");
        if tz.is_empty() {
            errs.push(FieldError::invalid(
                &path,
                tz,
                "timeZone must be nil or non-empty string",
            ));
        } else if tz.eq_ignore_ascii_case("local") {
            errs.push(FieldError::invalid(
                &path,
                tz,
                "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
            ));
        } else if let Err(e) = cron::zone_of(tz) {
            errs.push(FieldError::invalid(&path, tz, e));
        }
    }
    if let Some(p) = &s.concurrency_policy
        && !["Allow", "Forbid", "Replace"].contains(&p.as_str())
    {
        errs.push(FieldError::not_supported(
            &spec.field("concurrencyPolicy"),
            p,
            &["Allow", "Forbid", "Replace"],
        ));
    }
    non_negative(
        s.starting_deadline_seconds,
        &spec.field("startingDeadlineSeconds"),
        errs,
    );
    non_negative(
        s.successful_jobs_history_limit,
        &spec.field("successfulJobsHistoryLimit"),
        errs,
    );
    non_negative(
        s.failed_jobs_history_limit,
        &spec.field("failedJobsHistoryLimit"),
        errs,
    );
    let template = spec.field("jobTemplate");
    template_meta(&s.job_template.metadata, &template.field("metadata"), errs);
    let tspec = template.field("spec");
    let js = &s.job_template.spec;
    if let Some(sel) = &js.selector {
        errs.push(FieldError::invalid(
            &tspec.field("selector"),
            sel,
            "`selector` will be auto-generated",
        ));
    }
    if js.manual_selector == Some(true) {
        errs.push(FieldError::not_supported(
            &tspec.field("manualSelector"),
            "true",
            &["nil", "false"],
        ));
    }
    job_spec(js, &tspec, errs);
}

fn template_meta(m: &ObjectMeta, path: &FieldPath, errs: &mut Vec<FieldError>) {
    meta::labels(&m.labels, &path.field("labels"), errs);
}

/// The rules of a Job's spec (a Job's, a CronJob's job template's).
fn job_spec(s: &JobSpec, spec: &FieldPath, errs: &mut Vec<FieldError>) {
    non_negative(s.parallelism, &spec.field("parallelism"), errs);
    non_negative(s.completions, &spec.field("completions"), errs);
    non_negative(
        s.active_deadline_seconds,
        &spec.field("activeDeadlineSeconds"),
        errs,
    );
    non_negative(s.backoff_limit, &spec.field("backoffLimit"), errs);
    non_negative(
        s.ttl_seconds_after_finished,
        &spec.field("ttlSecondsAfterFinished"),
        errs,
    );
    match s.completion_mode.as_deref() {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            match s.completions {
                None => errs.push(FieldError::required(
                    &spec.field("completions"),
                    "when completion mode is Indexed",
                )),
                Some(c) if c > MAX_COMPLETIONS_INDEXED => errs.push(FieldError::invalid(
                    &spec.field("completions"),
                    c,
                    format!(
                        "must be less than or equal to {MAX_COMPLETIONS_INDEXED} when completion mode is Indexed"
                    ),
                )),
                Some(_) => {}
            }
            if let Some(p) = s.parallelism.filter(|p| *p > MAX_PARALLELISM_INDEXED) {
                errs.push(FieldError::invalid(
                    &spec.field("parallelism"),
                    p,
                    format!(
                        "must be less than or equal to {MAX_PARALLELISM_INDEXED} when completion mode is Indexed"
                    ),
                ));
            }
        }
        Some(other) => errs.push(FieldError::not_supported(
            &spec.field("completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    let template = spec.field("template");
    let labels = &s.template.metadata.labels;
    meta::labels(labels, &template.field("metadata").field("labels"), errs);
    if let Some(sel) = &s.selector {
        label_selector(sel, &spec.field("selector"), errs);
        // The generated part (the Job's uid) is checked against the uid;
        // the server adds it to the template's labels too.
        let mut checked = sel.clone();
        if s.manual_selector != Some(true) {
            checked.match_labels.remove(CONTROLLER_UID_LABEL);
        }
        if !checked.is_empty() && !checked.matches(labels) {
            errs.push(FieldError::invalid(
                &template.field("metadata").field("labels"),
                labels_text(labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    let pspec = template.field("spec");
    pod::pod_spec(&s.template.spec, &pspec, errs);
    let restart = s.template.spec.restart_policy.unwrap_or_default();
    if !matches!(restart, RestartPolicy::OnFailure | RestartPolicy::Never) {
        errs.push(FieldError::not_supported(
            &pspec.field("restartPolicy"),
            format!("{restart:?}"),
            &["OnFailure", "Never"],
        ));
    }
    if let Some(policy) = &s.pod_failure_policy {
        if restart == RestartPolicy::OnFailure {
            errs.push(FieldError::invalid(
                &pspec.field("restartPolicy"),
                "OnFailure",
                "only \"Never\" is supported when podFailurePolicy is specified",
            ));
        }
        pod_failure_policy(
            policy,
            &s.template.spec,
            &spec.field("podFailurePolicy"),
            errs,
        );
    }
}

fn pod_failure_policy(
    policy: &PodFailurePolicy,
    pod_spec: &PodSpec,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let rules = path.field("rules");
    if policy.rules.len() > MAX_POD_FAILURE_RULES {
        errs.push(FieldError::new(
            &rules,
            format!(
                "Too many: {}: must have at most {MAX_POD_FAILURE_RULES} items",
                policy.rules.len()
            ),
        ));
    }
    let names: Vec<&str> = pod_spec
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .chain(pod_spec.init_containers.iter().map(|c| c.name.as_str()))
        .collect();
    for (i, rule) in policy.rules.iter().enumerate() {
        let rp = rules.index(i);
        if rule.action().is_none() {
            errs.push(FieldError::not_supported(
                &rp.field("action"),
                &rule.action,
                &["Count", "FailJob", "Ignore"],
            ));
        }
        match (&rule.on_exit_codes, rule.on_pod_conditions.is_empty()) {
            (Some(_), false) => errs.push(FieldError::invalid(
                &rp,
                "",
                "specifying both OnExitCodes and OnPodConditions is not supported",
            )),
            (None, true) => errs.push(FieldError::invalid(
                &rp,
                "",
                "specifying one of OnExitCodes and OnPodConditions is required",
            )),
            _ => {}
        }
        if let Some(req) = &rule.on_exit_codes {
            let ep = rp.field("onExitCodes");
            if let Some(name) = req.container_name.as_deref()
                && !names.contains(&name)
            {
                errs.push(FieldError::invalid(
                    &ep.field("containerName"),
                    name,
                    "must be one of the container or initContainer names in the pod template",
                ));
            }
            if !["In", "NotIn"].contains(&req.operator.as_str()) {
                errs.push(FieldError::not_supported(
                    &ep.field("operator"),
                    &req.operator,
                    &["In", "NotIn"],
                ));
            }
            let vp = ep.field("values");
            if req.values.is_empty() {
                errs.push(FieldError::invalid(
                    &vp,
                    "[]",
                    "at least one value is required",
                ));
            } else if req.values.len() > MAX_EXIT_CODES {
                errs.push(FieldError::new(
                    &vp,
                    format!(
                        "Too many: {}: must have at most {MAX_EXIT_CODES} items",
                        req.values.len()
                    ),
                ));
            }
            let mut previous: Option<i32> = None;
            for (j, v) in req.values.iter().enumerate() {
                let at = vp.index(j);
                if req.operator == "In" && *v == 0 {
                    errs.push(FieldError::invalid(
                        &at,
                        v,
                        "must not be 0 for the In operator",
                    ));
                }
                match previous {
                    Some(p) if p == *v => errs.push(FieldError::duplicate(&at, v)),
                    Some(p) if p > *v => {
                        errs.push(FieldError::invalid(&at, v, "must be ordered"));
                    }
                    _ => {}
                }
                previous = Some(*v);
            }
        }
        for (j, c) in rule.on_pod_conditions.iter().enumerate() {
            let cp = rp.field("onPodConditions").index(j);
            if c.type_.is_empty() {
                errs.push(FieldError::required(&cp.field("type"), ""));
            }
            if let Some(st) = &c.status
                && !["True", "False", "Unknown"].contains(&st.as_str())
            {
                errs.push(FieldError::not_supported(
                    &cp.field("status"),
                    st,
                    &["True", "False", "Unknown"],
                ));
            }
        }
    }
}
