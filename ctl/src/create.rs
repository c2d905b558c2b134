//! `jotactl create job NAME --from=cronjob/CRONJOB` (a run of a CronJob by
//! hand, as kubectl makes it: the job template, the annotation
//! `cronjob.kubernetes.io/instantiate: manual`, owned by the CronJob) and
//! `jotactl create job NAME --image=IMAGE [-- COMMAND…]`.

use clap::{Args, Subcommand};
use jotasu_api::kinds::batch::INSTANTIATE_ANNOTATION;
use jotasu_api::kinds::pod::RestartPolicy;
use jotasu_api::{Container, CronJob, Job, Kind, Object, ObjectMeta, ObjectRef, OwnerReference};

use crate::cli::GlobalArgs;
use crate::connect;
use crate::names::slash_name;
use crate::report::{CtlError, out};

/// `jotactl create …`.
#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// Create a Job: from a CronJob's template (--from=cronjob/NAME) or
    /// running an image (--image=IMAGE [-- COMMAND ARGS…]).
    Job(CreateJobArgs),
}

/// `jotactl create job`.
#[derive(Debug, Args)]
pub struct CreateJobArgs {
    /// The Job's name.
    pub name: String,
    /// The CronJob whose job template to run: cronjob/NAME.
    #[arg(long, value_name = "cronjob/NAME", conflicts_with = "image")]
    pub from: Option<String>,
    /// The image to run (one container named after the Job, restartPolicy Never).
    #[arg(long)]
    pub image: Option<String>,
    /// The container's command (after --).
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// The Job kubectl creates from `cj` (`create job NAME --from=cronjob/…`).
pub fn job_from_cron_job(cj: &CronJob, name: &str) -> Job {
    let template = &cj.spec.job_template;
    let mut annotations = template.metadata.annotations.clone();
    annotations.insert(INSTANTIATE_ANNOTATION.to_owned(), "manual".to_owned());
    Job {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: cj.metadata.namespace.clone(),
            labels: template.metadata.labels.clone(),
            annotations,
            // As kubectl: controller, without blockOwnerDeletion.
            owner_references: vec![OwnerReference {
                api_version: "batch/v1".to_owned(),
                kind: "CronJob".to_owned(),
                name: cj.metadata.name().to_owned(),
                uid: cj.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: None,
            }],
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        ..Job::default()
    }
}

/// The Job of `create job NAME --image=IMAGE -- COMMAND…`.
pub fn job_from_image(namespace: &str, name: &str, image: &str, command: &[String]) -> Job {
    let mut job = Job::default();
    job.metadata.name = Some(name.to_owned());
    job.metadata.namespace = Some(namespace.to_owned());
    let spec = &mut job.spec.template.spec;
    spec.restart_policy = Some(RestartPolicy::Never);
    spec.containers.push(Container {
        name: name.to_owned(),
        image: image.to_owned(),
        command: command.to_vec(),
        ..Container::default()
    });
    job
}

/// Runs `create`.
pub async fn run(global: &GlobalArgs, command: &CreateCommand) -> Result<(), CtlError> {
    let CreateCommand::Job(args) = command;
    let namespace = connect::namespace(global).to_owned();
    let job = match (&args.from, &args.image) {
        (Some(from), None) => {
            let Some(("cronjob" | "cronjobs" | "cj" | "cronjob.batch", cron)) =
                from.split_once('/')
            else {
                return Err(CtlError::Usage(format!(
                    "--from={from}: only cronjob/NAME is supported as a source"
                )));
            };
            let client = connect::connect(global).await?;
            let r = ObjectRef {
                kind: Kind::CronJob,
                namespace: Some(namespace.clone()),
                name: cron.to_owned(),
            };
            let Object::CronJob(cj) = client.get(&r).await? else {
                return Err(CtlError::Usage(format!("{from} is not a CronJob")));
            };
            return create(global, job_from_cron_job(&cj, &args.name)).await;
        }
        (None, Some(image)) => job_from_image(&namespace, &args.name, image, &args.command),
        _ => {
            return Err(CtlError::Usage(
                "create job needs --from=cronjob/NAME or --image=IMAGE".to_owned(),
            ));
        }
    };
    create(global, job).await
}

/// Creates the Job; refuses (as kubectl) if one of that name exists.
async fn create(global: &GlobalArgs, job: Job) -> Result<(), CtlError> {
    let client = connect::connect(global).await?;
    let name = job.metadata.name().to_owned();
    let r = ObjectRef {
        kind: Kind::Job,
        namespace: job.metadata.namespace.clone(),
        name: name.clone(),
    };
    match client.get(&r).await {
        Ok(_) => {
            return Err(CtlError::Usage(format!(
                "jobs.batch {name:?} already exists"
            )));
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    client.apply(&[Object::Job(job)], false).await?;
    out(&format!("{} created\n", slash_name(Kind::Job, &name)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_run_of_a_cron_job() {
        let cj: CronJob = serde_json::from_value(serde_json::json!({
            "apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "ops", "uid": "c-1"},
            "spec": {"schedule": "@daily", "jobTemplate": {
                "metadata": {"labels": {"app": "n"}, "annotations": {"team": "x"}},
                "spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}]}}}}}}))
        .expect("a cronjob");
        let job = job_from_cron_job(&cj, "by-hand");
        assert_eq!(job.metadata.annotations[INSTANTIATE_ANNOTATION], "manual");
        assert_eq!(job.metadata.annotations["team"], "x");
        assert_eq!(job.metadata.labels["app"], "n");
        assert_eq!(job.metadata.namespace.as_deref(), Some("ops"));
        let owner = &job.metadata.owner_references[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("CronJob", "c-1", Some(true))
        );
        assert_eq!(job.spec.backoff_limit, Some(2));

        let job = job_from_image("default", "once", "busybox", &["true".to_owned()]);
        assert_eq!(job.spec.template.spec.containers[0].command, ["true"]);
        assert_eq!(
            job.spec.template.spec.restart_policy,
            Some(RestartPolicy::Never)
        );
    }
}
