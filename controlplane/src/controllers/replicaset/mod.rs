//! The replica set controller: keeps `spec.replicas` active pods of a
//! ReplicaSet's template, deleting the surplus in Kubernetes' victim
//! order, and reports replicas / ready / available in its status. The
//! decisions are pure ([`plan`], [`rank`]); this runner feeds them from the
//! informers, creates pods in slow-start batches (1, 2, 4, …) and waits for
//! its own writes to reach the cache before reconciling again.

pub mod plan;
pub mod rank;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use jotasu_api::{Kind, Object, ObjectRef, Pod, ReplicaSet};
use tracing::{debug, warn};

use crate::apiserver::{ApiResult, ApiServerError};
use crate::runtime::status::is_active;
use crate::runtime::{
    CATCH_UP, Context, Controller, Informer, Key, controlled_by, key_of, now_seconds,
};
use crate::store::Store;
use plan::{Failure, claim, plan_replica_set, pod_from_template, replica_set_status};

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>) {
    Controller::new(ctx, "replicaset", |i| &i.replica_sets)
        .watches(|i| &i.pods, |i, pod| pod_keys(&i.replica_sets, pod))
        .run(|ctx, key| async move { sync(&ctx, &key).await })
        .await;
}

/// The ReplicaSets a pod change concerns: its controller, or (an orphan)
/// every ReplicaSet of its namespace whose selector matches it.
fn pod_keys(sets: &Informer<ReplicaSet>, pod: &Pod) -> Vec<Key> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    match pod.metadata.controller_ref() {
        Some(r) if r.kind == "ReplicaSet" => vec![(ns, r.name.clone())],
        Some(_) => Vec::new(),
        None => sets
            .list_in(&ns)
            .iter()
            .filter(|rs| {
                !rs.spec.selector.is_empty() && rs.spec.selector.matches(&pod.metadata.labels)
            })
            .map(|rs| key_of(&**rs))
            .collect(),
    }
}

/// The inputs of one reconcile, read from the caches.
struct Snapshot {
    candidates: Vec<Arc<Pod>>,
    related: Vec<Arc<Pod>>,
}

fn snapshot<S: Store>(ctx: &Context<S>, rs: &ReplicaSet) -> Snapshot {
    let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
    let pods = ctx.informers.pods.list_in(ns);
    let candidates = pods
        .iter()
        .filter(|p| controlled_by(&***p, rs) || p.metadata.controller_ref().is_none())
        .cloned()
        .collect();
    // Siblings: ReplicaSets with the same controller (a Deployment's revisions).
    let related = match rs.metadata.controller_ref() {
        Some(owner) => {
            let siblings: HashSet<String> = ctx
                .informers
                .replica_sets
                .list_in(ns)
                .iter()
                .filter(|s| {
                    s.metadata
                        .controller_ref()
                        .is_some_and(|o| o.uid == owner.uid)
                })
                .filter_map(|s| s.metadata.uid.clone())
                .collect();
            pods.iter()
                .filter(|p| {
                    p.metadata
                        .controller_ref()
                        .is_some_and(|o| o.kind == "ReplicaSet" && siblings.contains(&o.uid))
                })
                .cloned()
                .collect()
        }
        None => Vec::new(),
    };
    Snapshot {
        candidates,
        related,
    }
}

fn pod_ref(namespace: &str, name: &str) -> ObjectRef {
    ObjectRef {
        kind: Kind::Pod,
        namespace: Some(namespace.to_owned()),
        name: name.to_owned(),
    }
}

/// Reconciles one ReplicaSet; returns when to look again, if ever.
async fn sync<S: Store>(ctx: &Context<S>, key: &Key) -> ApiResult<Option<Duration>> {
    let Some(rs) = ctx.informers.replica_sets.get(&key.0, &key.1) else {
        return Ok(None);
    };
    let now = now_seconds();
    let snap = snapshot(ctx, &rs);
    let candidates: Vec<&Pod> = snap.candidates.iter().map(|p| &**p).collect();
    let related: Vec<&Pod> = snap.related.iter().map(|p| &**p).collect();
    let plan = plan_replica_set(&rs, &candidates, &related, now);
    let pods = &ctx.informers.pods;

    let claims: Vec<Object> = plan
        .adopt
        .iter()
        .chain(&plan.release)
        .cloned()
        .map(Object::from)
        .collect();
    if !claims.is_empty() {
        let applied = ctx.apply(&claims).await?;
        pods.shows(&applied, CATCH_UP).await;
    }

    let mut failure = None;
    if plan.create > 0 {
        let template = Object::from(pod_from_template(&rs));
        let (mut done, mut batch, mut created) = (0, 1, Vec::new());
        while done < plan.create {
            let n = batch.min(plan.create - done);
            match ctx.apply(&vec![template.clone(); n]).await {
                Ok(applied) => {
                    created.extend(applied);
                    done += n;
                    batch *= 2;
                }
                Err(e) => {
                    warn!(namespace = %key.0, replicaset = %key.1, error = %e, "creating pods");
                    failure = Some(Failure {
                        reason: "FailedCreate",
                        message: e.to_string(),
                    });
                    break;
                }
            }
        }
        debug!(namespace = %key.0, replicaset = %key.1, created = done, "created pods");
        pods.shows(&created, CATCH_UP).await;
    }

    if !plan.delete.is_empty() {
        for name in &plan.delete {
            match ctx.api.delete(&pod_ref(&key.0, name), None).await {
                Ok(_) | Err(ApiServerError::NotFound(_)) => {}
                Err(e) => {
                    warn!(namespace = %key.0, pod = %name, error = %e, "deleting a pod");
                    failure = Some(Failure {
                        reason: "FailedDelete",
                        message: e.to_string(),
                    });
                }
            }
        }
        debug!(namespace = %key.0, replicaset = %key.1, deleted = plan.delete.len(), "deleted pods");
        pods.wait_until(CATCH_UP, |cache| {
            plan.delete.iter().all(|name| {
                cache
                    .objects
                    .get(&(key.0.clone(), name.clone()))
                    .is_none_or(|p| !is_active(p))
            })
        })
        .await;
    }

    // The status of what this reconcile saw (its own writes show next time).
    let (claimed, _, _) = claim(&rs, &candidates);
    let active: Vec<&Pod> = claimed.into_iter().filter(|p| is_active(p)).collect();
    let status = replica_set_status(&rs, &active, failure.as_ref(), now);
    if rs.status.as_ref() != Some(&status) {
        let mut updated = (*rs).clone();
        updated.status = Some(status);
        let written = ctx.update_status(&Object::ReplicaSet(updated)).await?;
        if let Some(rv) = written.metadata().revision() {
            ctx.informers.replica_sets.caught_up(rv, CATCH_UP).await;
        }
    }
    if let Some(f) = failure {
        return Err(ApiServerError::Invalid(f.message));
    }
    Ok(plan
        .requeue_after
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs))
}
