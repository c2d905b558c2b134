//! The statefulset controller: keeps a StatefulSet's revisions
//! ([`revisions`]) and pods ([`plan`]) as Kubernetes' does, and reports
//! replicas, ready, available, current and updated counts and revisions
//! in its status. The decisions are pure; this runner feeds them from the
//! informers, writes them through the API and waits for its own writes
//! to reach the cache before reconciling again.

pub mod plan;
pub mod revisions;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::time::Duration;

use jotasu_api::{ControllerRevision, Kind, Object, ObjectRef, OwnerReference, Pod, StatefulSet};
use tracing::{debug, warn};

use crate::apiserver::{ApiResult, ApiServerError};
use crate::runtime::status::{is_available, is_ready};
use crate::runtime::{CATCH_UP, Context, Controller, Key, controlled_by, now_seconds};
use crate::store::Store;
use plan::{Revisions, revision_of};
use revisions::plan_revisions;

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>) {
    Controller::new(ctx, "statefulset", |i| &i.stateful_sets)
        .owns(|i| &i.pods)
        .run(|ctx, key| async move { sync(&ctx, &key).await })
        .await;
}

/// Creates the claims of pod `ordinal` that do not exist.
async fn ensure_claims<S: Store>(
    ctx: &Context<S>,
    set: &StatefulSet,
    ordinal: i32,
) -> ApiResult<()> {
    let ns = set.metadata.namespace.as_deref().unwrap_or_default();
    for claim in plan::claims_for(set, ordinal) {
        let r = object_ref(Kind::PersistentVolumeClaim, ns, claim.metadata.name());
        match ctx.api.get(&r).await {
            Ok(_) => {}
            Err(ApiServerError::NotFound(_)) => {
                ctx.apply(&[Object::PersistentVolumeClaim(claim)]).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Makes a condemned pod the owner of its claims (`whenScaled: Delete`),
/// so they are deleted once the pod is gone.
async fn hand_claims_to<S: Store>(ctx: &Context<S>, set: &StatefulSet, pod: &Pod) -> ApiResult<()> {
    let ns = set.metadata.namespace.as_deref().unwrap_or_default();
    let Some(ordinal) = plan::ordinal_of(set, pod) else {
        return Ok(());
    };
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: pod.metadata.name().to_owned(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        controller: Some(false),
        block_owner_deletion: Some(true),
    };
    for t in &set.spec.volume_claim_templates {
        let r = object_ref(
            Kind::PersistentVolumeClaim,
            ns,
            &plan::claim_name(set, t.metadata.name(), ordinal),
        );
        let Ok(json) = ctx.api.get(&r).await else {
            continue;
        };
        let Ok(Object::PersistentVolumeClaim(mut claim)) = serde_json::from_str(&json) else {
            continue;
        };
        if claim
            .metadata
            .owner_references
            .iter()
            .any(|o| o.uid == owner.uid)
        {
            continue;
        }
        claim.metadata.owner_references.push(owner.clone());
        claim.status = None;
        ctx.apply(&[Object::PersistentVolumeClaim(claim)]).await?;
    }
    Ok(())
}

fn object_ref(kind: Kind, namespace: &str, name: &str) -> ObjectRef {
    ObjectRef {
        kind,
        namespace: Some(namespace.to_owned()),
        name: name.to_owned(),
    }
}

/// Reconciles one StatefulSet; returns when to look again, if ever.
async fn sync<S: Store>(ctx: &Context<S>, key: &Key) -> ApiResult<Option<Duration>> {
    let Some(set) = ctx.informers.stateful_sets.get(&key.0, &key.1) else {
        return Ok(None);
    };
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let (ns, name) = (key.0.as_str(), key.1.as_str());
    let now = now_seconds();
    let all_pods = ctx.informers.pods.list_in(ns);
    let pods: Vec<&Pod> = all_pods
        .iter()
        .map(|p| &**p)
        .filter(|p| controlled_by(*p, &*set))
        .collect();
    let stored = ctx.informers.controller_revisions.list_in(ns);
    let owned: Vec<&ControllerRevision> = stored
        .iter()
        .map(|r| &**r)
        .filter(|r| controlled_by(*r, &*set))
        .collect();
    let in_use: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| revision_of(p).map(str::to_owned))
        .collect();
    let revs = plan_revisions(&set, &owned, &in_use);
    if revs.write_update {
        let applied = ctx
            .apply(&[Object::ControllerRevision(revs.update.clone())])
            .await?;
        ctx.informers
            .controller_revisions
            .shows(&applied, CATCH_UP)
            .await;
        debug!(namespace = ns, statefulset = name, revision = %revs.update.metadata.name(), number = revs.update.revision, "revision written");
    }
    let update_template = revs
        .update
        .template()
        .unwrap_or_else(|| set.spec.template.clone());
    let current_template = revs
        .current
        .template()
        .unwrap_or_else(|| update_template.clone());
    let revisions = Revisions {
        current: (revs.current.metadata.name(), &current_template),
        update: (revs.update.metadata.name(), &update_template),
    };
    let plan = plan::plan(&set, &pods, revisions, now);

    let mut failure = None;
    for pod in &plan.create {
        let r = object_ref(Kind::Pod, ns, pod.metadata.name());
        // The cache may lag a pod this controller just made: never
        // overwrite one (an apply would reconfigure it).
        if ctx.api.get(&r).await.is_ok() {
            continue;
        }
        // Its claims first (kept ones are reused as they are).
        if let Some(ordinal) = plan::ordinal_of(&set, pod)
            && let Err(e) = ensure_claims(ctx, &set, ordinal).await
        {
            warn!(namespace = ns, statefulset = name, pod = %pod.metadata.name(), error = %e, "creating the pod's claims");
            failure = Some(e);
            break;
        }
        match ctx.apply(&[Object::Pod(pod.clone())]).await {
            Ok(applied) => {
                debug!(namespace = ns, statefulset = name, pod = %pod.metadata.name(), "created pod");
                ctx.informers.pods.shows(&applied, CATCH_UP).await;
            }
            Err(e) => {
                warn!(namespace = ns, statefulset = name, pod = %pod.metadata.name(), error = %e, "creating a pod");
                failure = Some(e);
                break;
            }
        }
    }
    for pod in &plan.delete {
        if plan::delete_claims_on_scale_down(&set)
            && let Some(p) = pods.iter().find(|p| p.metadata.name() == pod)
            && plan::ordinal_of(&set, p)
                .is_some_and(|o| o >= set.spec.start() + set.spec.replicas())
            && let Err(e) = hand_claims_to(ctx, &set, p).await
        {
            warn!(namespace = ns, statefulset = name, pod = %pod, error = %e, "handing the pod's claims to it");
        }
        match ctx.api.delete(&object_ref(Kind::Pod, ns, pod), None).await {
            Ok(_) | Err(ApiServerError::NotFound(_)) => {
                debug!(namespace = ns, statefulset = name, pod = %pod, "deleted pod");
            }
            Err(e) => {
                warn!(namespace = ns, statefulset = name, pod = %pod, error = %e, "deleting a pod");
                failure = Some(e);
            }
        }
    }
    if !plan.delete.is_empty() {
        ctx.informers
            .pods
            .wait_until(CATCH_UP, |cache| {
                plan.delete.iter().all(|p| {
                    cache
                        .objects
                        .get(&(ns.to_owned(), p.clone()))
                        .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
                })
            })
            .await;
    }
    for old in &revs.delete {
        let r = object_ref(Kind::ControllerRevision, ns, old);
        if let Err(e) = ctx.api.delete(&r, None).await
            && !matches!(e, ApiServerError::NotFound(_))
        {
            warn!(namespace = ns, statefulset = name, revision = %old, error = %e, "deleting an old revision");
        }
    }

    if set.status.as_ref() != Some(&plan.status) {
        let mut updated = (*set).clone();
        updated.status = Some(plan.status.clone());
        let written = ctx.update_status(&Object::StatefulSet(updated)).await?;
        if let Some(rv) = written.metadata().revision() {
            ctx.informers.stateful_sets.caught_up(rv, CATCH_UP).await;
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    // A ready pod becomes available after minReadySeconds: look again then.
    let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
    let pending = pods
        .iter()
        .any(|p| is_ready(p) && !is_available(p, min_ready, now));
    Ok(pending.then(|| Duration::from_secs(1)))
}
