//! The job controller: runs a Job's pods to completion. The decisions are
//! pure ([`plan`], [`pods`]); this runner feeds them from the informers,
//! creates pods (owned by the Job, so deleting the Job deletes them),
//! stops pods a finished, failed or suspended Job no longer needs, writes
//! the Job's status and deletes Jobs whose `ttlSecondsAfterFinished` is over.

pub mod feed;
pub mod plan;
pub mod pods;

#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use jotasu_api::{Job, Kind, Object, ObjectRef, Pod};
use tracing::{debug, info, warn};

use crate::apiserver::{ApiResult, ApiServerError};
use crate::runtime::{CATCH_UP, Context, Key, WorkQueue, controlled_by, key_of, now_seconds, work};
use crate::store::Store;
use plan::plan_job;
use pods::pod_for;

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>) {
    let queue = WorkQueue::new();
    let feeder = tokio::spawn(feed::feed(
        ctx.informers.jobs.clone(),
        ctx.informers.pods.clone(),
        queue.clone(),
        ctx.shutdown.clone(),
    ));
    for job in ctx.informers.jobs.list() {
        queue.add(key_of(&*job));
    }
    work("job", &queue, ctx.shutdown.clone(), |key| {
        let ctx = ctx.clone();
        async move { sync(&ctx, &key).await }
    })
    .await;
    feeder.abort();
}

fn object_ref(kind: Kind, namespace: &str, name: &str) -> ObjectRef {
    ObjectRef {
        kind,
        namespace: Some(namespace.to_owned()),
        name: name.to_owned(),
    }
}

/// Reconciles one Job; returns when to look again, if ever.
async fn sync<S: Store>(ctx: &Context<S>, key: &Key) -> ApiResult<Option<Duration>> {
    let Some(job) = ctx.informers.jobs.get(&key.0, &key.1) else {
        return Ok(None);
    };
    if job.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let now = now_seconds();
    let owned: Vec<Arc<Pod>> = ctx
        .informers
        .pods
        .list_in(&key.0)
        .into_iter()
        .filter(|p| controlled_by(&**p, &*job))
        .collect();
    let pods: Vec<&Pod> = owned.iter().map(|p| &**p).collect();
    let plan = plan_job(&job, &pods, now);

    if plan.expired {
        info!(namespace = %key.0, job = %key.1, "time to live after finishing is over; deleting the job and its pods");
        return match ctx
            .api
            .delete(&object_ref(Kind::Job, &key.0, &key.1), None)
            .await
        {
            Ok(_) | Err(ApiServerError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        };
    }

    for name in &plan.delete {
        match ctx
            .api
            .delete(&object_ref(Kind::Pod, &key.0, name), None)
            .await
        {
            Ok(_) | Err(ApiServerError::NotFound(_)) => {}
            Err(e) => {
                warn!(namespace = %key.0, job = %key.1, pod = %name, error = %e, "stopping a pod")
            }
        }
    }

    if !plan.create.is_empty() {
        let created: Vec<Object> = plan
            .create
            .iter()
            .map(|i| Object::from(pod_for(&job, *i)))
            .collect();
        // Slow start (1, 2, 4, …), as Kubernetes creates a job's pods.
        let (mut done, mut batch, mut applied) = (0, 1, Vec::new());
        while done < created.len() {
            let n = batch.min(created.len() - done);
            match ctx.apply(&created[done..done + n]).await {
                Ok(a) => {
                    applied.extend(a);
                    done += n;
                    batch *= 2;
                }
                Err(e) => {
                    warn!(namespace = %key.0, job = %key.1, error = %e, "creating pods");
                    break;
                }
            }
        }
        debug!(namespace = %key.0, job = %key.1, created = done, "created pods");
        ctx.informers.pods.shows(&applied, CATCH_UP).await;
    }

    if job.status.as_ref() != Some(&plan.status) {
        let mut updated: Job = (*job).clone();
        updated.status = Some(plan.status.clone());
        let written = ctx.update_status(&Object::Job(updated)).await?;
        if let Some(rv) = written.metadata().revision() {
            ctx.informers.jobs.caught_up(rv, CATCH_UP).await;
        }
    }
    Ok(plan
        .requeue_after
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs))
}
