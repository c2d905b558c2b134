//! The namespace controller: empties a namespace that was deleted (the API
//! server marked it `Terminating`), then removes its `kubernetes`
//! finalizer so it goes. Every namespaced kind is listed from the store;
//! what is not being deleted yet is deleted (owners first, cascading to
//! their dependents); bound pods are gone only once their nodes have
//! stopped them, so the controller looks again until nothing is left,
//! reporting what remains in the namespace's conditions ([`plan`]).

pub mod plan;

use std::time::Duration;

use jotasu_api::{Kind, LabelSelector, Namespace, Object, Pod};
use serde::Deserialize;
use tracing::{debug, info, warn};

use crate::apiserver::lifecycle::Finalized;
use crate::apiserver::{ApiResult, ApiServerError};
use crate::runtime::{Change, Context, WorkQueue, next_change, work};
use crate::store::Store;
use plan::{Content, plan, status};

/// How often a terminating namespace is looked at while objects remain
/// (pod deletions in it also wake the controller).
pub const RECHECK: Duration = Duration::from_secs(2);

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>) {
    let queue = WorkQueue::new();
    let feeder = tokio::spawn(feed(ctx.clone(), queue.clone()));
    queue_terminating(&ctx, &queue);
    work("namespace", &queue, ctx.shutdown.clone(), |name: String| {
        let ctx = ctx.clone();
        async move { sync(&ctx, &name).await }
    })
    .await;
    feeder.abort();
}

fn queue_terminating<S: Store>(ctx: &Context<S>, queue: &WorkQueue<String>) {
    for ns in ctx.informers.namespaces.list() {
        if ns.metadata.deletion_timestamp.is_some() {
            queue.add(ns.metadata.name().to_owned());
        }
    }
}

/// Terminating namespaces, and those a pod left, to look at.
async fn feed<S: Store>(ctx: Context<S>, queue: WorkQueue<String>) {
    let mut namespaces = ctx.informers.namespaces.subscribe();
    let mut pods = ctx.informers.pods.subscribe();
    let mut stop = ctx.shutdown.clone();
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            change = next_change(&mut namespaces) => match change {
                Some(Change::Applied { new, .. }) if new.metadata.deletion_timestamp.is_some() => {
                    queue.add(new.metadata.name().to_owned());
                }
                Some(Change::Applied { .. } | Change::Deleted(_)) => {}
                Some(Change::Resynced) => queue_terminating(&ctx, &queue),
                None => return,
            },
            change = next_change(&mut pods) => match change {
                Some(Change::Deleted(pod)) => on_pod_gone(&ctx, &queue, &pod),
                Some(Change::Applied { .. }) => {}
                Some(Change::Resynced) => queue_terminating(&ctx, &queue),
                None => return,
            },
        }
    }
}

fn on_pod_gone<S: Store>(ctx: &Context<S>, queue: &WorkQueue<String>, pod: &Pod) {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    if ctx
        .informers
        .namespaces
        .get("", ns)
        .is_some_and(|n| n.metadata.deletion_timestamp.is_some())
    {
        queue.add(ns.to_owned());
    }
}

/// Just what the controller reads of any object.
#[derive(Deserialize)]
struct Listed {
    #[serde(default)]
    metadata: ListedMeta,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListedMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    deletion_timestamp: Option<String>,
}

/// Everything stored in `namespace`, of every namespaced kind.
async fn contents<S: Store>(ctx: &Context<S>, namespace: &str) -> ApiResult<Vec<Content>> {
    let mut found = Vec::new();
    for kind in Kind::ALL.iter().copied().filter(|k| k.namespaced()) {
        let (items, _) = ctx
            .api
            .list(kind, Some(namespace), &LabelSelector::default())
            .await?;
        for json in items {
            let listed: Listed = serde_json::from_str(&json).map_err(|e| {
                ApiServerError::Invalid(format!("a {kind} in namespace {namespace}: {e}"))
            })?;
            found.push(Content {
                kind,
                name: listed.metadata.name,
                terminating: listed.metadata.deletion_timestamp.is_some(),
            });
        }
    }
    Ok(found)
}

/// One round for one namespace; returns when to look again, if ever.
async fn sync<S: Store>(ctx: &Context<S>, name: &str) -> ApiResult<Option<Duration>> {
    let Some(ns) = ctx.informers.namespaces.get("", name) else {
        return Ok(None);
    };
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(None);
    }
    let found = contents(ctx, name).await?;
    let plan = plan(name, &found);
    if plan.finalize {
        return match ctx.api.finalize_namespace(name).await {
            Ok(Finalized::Gone) | Err(ApiServerError::NotFound(_)) => {
                info!(namespace = %name, "namespace empty: removed");
                Ok(None)
            }
            Ok(Finalized::Waiting) => {
                info!(namespace = %name, "namespace empty: waiting for its other finalizers");
                Ok(None)
            }
            Ok(Finalized::NotTerminating) => Ok(None),
            Err(e) => Err(e),
        };
    }
    let mut failure = None;
    for r in &plan.delete {
        match ctx.api.delete(r, None).await {
            Ok(deleted) => debug!(object = %r, count = deleted.len(), "deleted with its namespace"),
            Err(ApiServerError::NotFound(_)) => {}
            Err(e) => {
                warn!(object = %r, error = %e, "cannot delete an object of a terminating namespace");
                failure = Some(e.to_string());
            }
        }
    }
    if let Some(new) = status(
        &ns,
        &plan.remaining,
        failure.as_deref(),
        &jotasu_api::Time::now(),
    ) {
        let mut updated = Namespace::clone(&ns);
        updated.status = Some(new);
        match ctx.update_status(&Object::Namespace(updated)).await {
            // Changed meanwhile, or gone: the next round sees it.
            Ok(_) | Err(ApiServerError::Conflict(_) | ApiServerError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(RECHECK))
}

#[cfg(test)]
mod tests;
