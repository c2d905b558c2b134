//! The deployment controller: rolls a Deployment's template out through
//! ReplicaSets named and labelled by the template's hash, one per revision
//! (RollingUpdate within maxSurge / maxUnavailable, or Recreate), scales
//! them in proportion when only the replica count changes, keeps
//! revisionHistoryLimit old ones for rollback, and reports progress and
//! availability in the Deployment's status. [`plan::plan`] decides, purely;
//! this runner feeds it from the informers (pod counts straight from the
//! pods cache) and performs its writes in order: ReplicaSets (one
//! all-or-nothing apply), deletions, the Deployment's annotations, its
//! status — each time waiting until the caches show them.

pub mod annotations;
pub mod hash;
pub mod plan;
pub mod rollout;
pub mod scale;
pub mod status;

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod testkit;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::time::Duration;

use jotasu_api::kinds::pod_status::PodPhase;
use jotasu_api::{Deployment, Kind, Object, ObjectRef, Pod, ReplicaSet};
use tracing::debug;

use crate::apiserver::{ApiResult, ApiServerError};
use crate::runtime::status::{is_active, is_available, is_ready, ready_since};
use crate::runtime::{
    CATCH_UP, Context, Controller, Informers, Key, controlled_by, last_revision, now_seconds,
};
use crate::store::Store;
use plan::{Input, Owned, Plan, PodCounts};

/// The counts of `rs`'s pods among `pods` (those it controls).
pub fn count_pods<'a>(
    rs: &ReplicaSet,
    pods: impl IntoIterator<Item = &'a Pod>,
    now: i64,
) -> PodCounts {
    let min_ready = rs.spec.min_ready_seconds.unwrap_or(0);
    let mut c = PodCounts::default();
    for p in pods.into_iter().filter(|p| controlled_by(*p, rs)) {
        let finished = matches!(
            p.status.as_ref().and_then(|s| s.phase),
            Some(PodPhase::Succeeded | PodPhase::Failed)
        );
        if !finished {
            c.running += 1;
        }
        if !is_active(p) {
            continue;
        }
        c.replicas += 1;
        if is_ready(p) {
            c.ready += 1;
            if is_available(p, min_ready, now) {
                c.available += 1;
            } else if let Some(t) = ready_since(p) {
                let at = t + i64::from(min_ready);
                c.next_available_at = Some(c.next_available_at.map_or(at, |n| n.min(at)));
            }
        }
    }
    c
}

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>) {
    // Its ReplicaSets' changes, and their pods'.
    Controller::new(ctx, "deployment", |i| &i.deployments)
        .owns(|i| &i.replica_sets)
        .watches(
            |i| &i.pods,
            |i, pod| owner_of_pod(i, pod).into_iter().collect(),
        )
        .run(|ctx, key| async move { sync(&ctx, &key).await })
        .await;
}

/// The Deployment that controls `rs`, if any.
fn owner_of_rs(rs: &ReplicaSet) -> Option<Key> {
    let owner = rs.metadata.controller_ref()?;
    (owner.kind == "Deployment").then(|| {
        (
            rs.metadata.namespace.clone().unwrap_or_default(),
            owner.name.clone(),
        )
    })
}

/// The Deployment whose ReplicaSet controls `pod`, if any.
fn owner_of_pod(informers: &Informers, pod: &Pod) -> Option<Key> {
    let owner = pod.metadata.controller_ref()?;
    if owner.kind != "ReplicaSet" {
        return None;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let rs = informers.replica_sets.get(ns, &owner.name)?;
    owner_of_rs(&rs)
}

/// Reads the inputs of one reconcile from the caches and plans it.
fn plan_from_caches<S: Store>(ctx: &Context<S>, d: &Deployment, now: i64) -> Plan {
    let ns = d.metadata.namespace.as_deref().unwrap_or_default();
    let sets = ctx.informers.replica_sets.list_in(ns);
    let pods = ctx.informers.pods.list_in(ns);
    let taken_names: BTreeSet<String> = sets.iter().map(|r| r.metadata.name().to_owned()).collect();
    let replica_sets = sets
        .iter()
        .filter(|rs| controlled_by(&***rs, d))
        .map(|rs| Owned {
            rs: (**rs).clone(),
            counts: count_pods(rs, pods.iter().map(|p| &**p), now),
        })
        .collect();
    plan::plan(&Input {
        deployment: d,
        replica_sets,
        taken_names,
        now,
    })
}

/// Reconciles one Deployment; returns when to look again, if ever.
async fn sync<S: Store>(ctx: &Context<S>, key: &Key) -> ApiResult<Option<Duration>> {
    let Some(d) = ctx.informers.deployments.get(&key.0, &key.1) else {
        return Ok(None);
    };
    let plan = plan_from_caches(ctx, &d, now_seconds());
    let sets = &ctx.informers.replica_sets;

    let writes: Vec<Object> = plan
        .create
        .iter()
        .chain(&plan.update)
        .cloned()
        .map(Object::from)
        .collect();
    if !writes.is_empty() {
        let applied = ctx.apply(&writes).await?;
        debug!(namespace = %key.0, deployment = %key.1, created = plan.create.len(), updated = plan.update.len(), "wrote replica sets");
        sets.shows(&applied, CATCH_UP).await;
    }

    for name in &plan.delete {
        let r = ObjectRef {
            kind: Kind::ReplicaSet,
            namespace: Some(key.0.clone()),
            name: name.clone(),
        };
        match ctx.api.delete(&r, None).await {
            Ok(_) | Err(ApiServerError::NotFound(_)) => {
                debug!(namespace = %key.0, replicaset = %name, "deleted an old replica set");
            }
            Err(e) => return Err(e),
        }
    }
    if !plan.delete.is_empty() {
        sets.wait_until(CATCH_UP, |cache| {
            plan.delete
                .iter()
                .all(|n| !cache.objects.contains_key(&(key.0.clone(), n.clone())))
        })
        .await;
    }

    let mut resource_version = d.metadata.resource_version.clone();
    if let Some(annotations) = &plan.annotations {
        let mut updated = (*d).clone();
        updated.metadata.annotations.clone_from(annotations);
        updated.status = None;
        let applied = ctx.apply(&[Object::Deployment(updated)]).await?;
        let rv = last_revision(&applied);
        resource_version = Some(rv.to_string());
        ctx.informers.deployments.caught_up(rv, CATCH_UP).await;
    }

    if let Some(status) = &plan.status {
        let mut updated = (*d).clone();
        updated.metadata.resource_version = resource_version;
        updated.status = Some(status.clone());
        let written = ctx.update_status(&Object::Deployment(updated)).await?;
        if let Some(rv) = written.metadata().revision() {
            ctx.informers.deployments.caught_up(rv, CATCH_UP).await;
        }
    }
    Ok(plan
        .requeue_after
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs))
}
