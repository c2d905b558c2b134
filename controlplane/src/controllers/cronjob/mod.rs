//! The cronjob controller: creates a CronJob's Jobs at the times its
//! schedule names (in its `timeZone`, else the control plane's zone),
//! applies the concurrency policy, deletes finished Jobs past the history
//! limits and reports the active Jobs and the last schedule and success
//! times. The decisions are pure ([`plan`]); Jobs it creates are owned by
//! the CronJob, so deleting the CronJob deletes them and their pods.

pub mod plan;

#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use jiff::tz::TimeZone;
use jotasu_api::{CronJob, Job, Kind, Object, ObjectRef};
use tracing::{debug, info, warn};

use crate::apiserver::{ApiResult, ApiServerError};
use crate::controllers::job::feed::feed;
use crate::runtime::{CATCH_UP, Context, Key, WorkQueue, controlled_by, key_of, now_seconds, work};
use crate::store::Store;
use plan::plan_cron_job;

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>) {
    let queue = WorkQueue::new();
    let feeder = tokio::spawn(feed(
        ctx.informers.cron_jobs.clone(),
        ctx.informers.jobs.clone(),
        queue.clone(),
        ctx.shutdown.clone(),
    ));
    for cj in ctx.informers.cron_jobs.list() {
        queue.add(key_of(&*cj));
    }
    work("cronjob", &queue, ctx.shutdown.clone(), |key| {
        let ctx = ctx.clone();
        async move { sync(&ctx, &key).await }
    })
    .await;
    feeder.abort();
}

/// The zone a CronJob's schedule is read in: its `timeZone`, else the
/// control plane's own (as Kubernetes' controller manager reads it).
pub fn zone(cj: &CronJob) -> Result<TimeZone, String> {
    match cj.spec.time_zone.as_deref() {
        Some(name) => jotasu_api::cron::zone_of(name),
        None => Ok(TimeZone::system()),
    }
}

/// Reconciles one CronJob; returns when to look again.
async fn sync<S: Store>(ctx: &Context<S>, key: &Key) -> ApiResult<Option<Duration>> {
    let Some(cj) = ctx.informers.cron_jobs.get(&key.0, &key.1) else {
        return Ok(None);
    };
    let zone = match zone(&cj) {
        Ok(z) => z,
        Err(e) => {
            warn!(namespace = %key.0, cronjob = %key.1, error = %e, "cannot read the time zone; not scheduling");
            return Ok(None);
        }
    };
    let owned: Vec<Arc<Job>> = ctx
        .informers
        .jobs
        .list_in(&key.0)
        .into_iter()
        .filter(|j| controlled_by(&**j, &*cj))
        .collect();
    let jobs: Vec<&Job> = owned.iter().map(|j| &**j).collect();
    let now = now_seconds();
    let plan = plan_cron_job(&cj, &jobs, now, &zone);
    if let Some(why) = &plan.skipped {
        debug!(namespace = %key.0, cronjob = %key.1, why, "no run now");
    }

    for name in &plan.delete {
        let r = ObjectRef {
            kind: Kind::Job,
            namespace: Some(key.0.clone()),
            name: name.clone(),
        };
        match ctx.api.delete(&r, None).await {
            Ok(_) | Err(ApiServerError::NotFound(_)) => {}
            Err(e) => {
                warn!(namespace = %key.0, cronjob = %key.1, job = %name, error = %e, "deleting a job")
            }
        }
    }
    if let Some(job) = &plan.create {
        match ctx.apply(&[Object::Job(job.clone())]).await {
            Ok(applied) => {
                info!(namespace = %key.0, cronjob = %key.1, job = %job.metadata.name(), "created a job");
                ctx.informers.jobs.shows(&applied, CATCH_UP).await;
            }
            Err(e) => {
                warn!(namespace = %key.0, cronjob = %key.1, error = %e, "creating a job");
                return Err(e);
            }
        }
    }
    if cj.status.as_ref() != Some(&plan.status) {
        let mut updated: CronJob = (*cj).clone();
        updated.status = Some(plan.status.clone());
        let written = ctx.update_status(&Object::CronJob(updated)).await?;
        if let Some(rv) = written.metadata().revision() {
            ctx.informers.cron_jobs.caught_up(rv, CATCH_UP).await;
        }
    }
    Ok(plan
        .requeue_after
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs))
}
