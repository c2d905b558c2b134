//! The PV controller and jotasu's local provisioner: binds claims to
//! matching volumes (class, access modes, size, selector; the smallest
//! fit), provisions a directory volume on a node for claims of
//! `jotasu.io/local` classes (at once for `Immediate` classes, on the
//! node with the most room; for `WaitForFirstConsumer` classes on the node
//! the scheduler chose for the claim's first pod), keeps claims' and
//! volumes' statuses, and reclaims volumes whose claim is gone (Delete:
//! the volume goes and its node's agent removes the directory; Retain:
//! it stays, Released; a volume whose claim some pod still names is kept
//! until the pod is gone), and deletes claims whose deletion waited for
//! their pods (pvc-protection, `apiserver/storage.rs`). Decisions are
//! [`plan::plan`]'s; this runs them.

pub mod matching;
pub mod plan;
#[cfg(test)]
mod tests;

use std::time::Duration;

use jotasu_api::{Kind, Object, ObjectRef, PersistentVolume, PersistentVolumeClaim, Time};
use tracing::{debug, info, warn};

use crate::apiserver::{ApiResult, ApiServerError};
use crate::runtime::{Context, WorkQueue, next_change, work};
use crate::store::Store;
use plan::{Action, World, plan};

/// Everything is looked at again at least this often.
pub const RESYNC: Duration = Duration::from_secs(10);

/// The one work item: the whole picture is planned at once.
const ALL: &str = "volumes";

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>) {
    let queue = WorkQueue::new();
    let feeder = tokio::spawn(feed(ctx.clone(), queue.clone()));
    queue.add(ALL.to_owned());
    work("volumes", &queue, ctx.shutdown.clone(), |_: String| {
        let ctx = ctx.clone();
        async move { sync(&ctx).await }
    })
    .await;
    feeder.abort();
}

/// Any change of a claim, volume, class or node: plan again.
async fn feed<S: Store>(ctx: Context<S>, queue: WorkQueue<String>) {
    let mut claims = ctx.informers.claims.subscribe();
    let mut volumes = ctx.informers.volumes.subscribe();
    let mut classes = ctx.informers.storage_classes.subscribe();
    let mut nodes = ctx.informers.nodes.subscribe();
    let mut pods = ctx.informers.pods.subscribe();
    let mut stop = ctx.shutdown.clone();
    loop {
        let alive = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            c = next_change(&mut claims) => c.is_some(),
            c = next_change(&mut volumes) => c.is_some(),
            c = next_change(&mut classes) => c.is_some(),
            c = next_change(&mut nodes) => c.is_some(),
            c = next_change(&mut pods) => match c {
                // A pod going can let a volume go; a pod placed can place its claim.
                Some(crate::runtime::Change::Applied { old, new }) => {
                    let placed = |p: &jotasu_api::Pod| p.spec.node_name.is_some();
                    if old.as_deref().is_some_and(placed) || !placed(&new) {
                        continue;
                    }
                    true
                }
                other => other.is_some(),
            },
        };
        if !alive {
            return;
        }
        queue.add(ALL.to_owned());
    }
}

async fn sync<S: Store>(ctx: &Context<S>) -> ApiResult<Option<Duration>> {
    let claims = ctx.informers.claims.list();
    let volumes = ctx.informers.volumes.list();
    let classes = ctx.informers.storage_classes.list();
    let nodes = ctx.informers.nodes.list();
    let pods = ctx.informers.pods.list();
    let in_use = matching::claims_in_use(pods.iter().map(|p| &**p));
    let placed = matching::claims_placed(pods.iter().map(|p| &**p));
    let world = World {
        claims: &claims,
        volumes: &volumes,
        classes: &classes,
        nodes: &nodes,
        in_use: &in_use,
        placed: &placed,
    };
    let actions = plan(world, &Time::now());
    let mut wrote = false;
    for action in actions {
        match run_action(ctx, action).await {
            Ok(()) => wrote = true,
            // A cache behind the store: the next round decides afresh.
            Err(ApiServerError::Conflict(_) | ApiServerError::NotFound(_)) => {}
            Err(e) => warn!(error = %e, "volume controller write failed; retrying"),
        }
    }
    if wrote {
        let revision = ctx.revision().await?;
        ctx.informers
            .claims
            .caught_up(revision, crate::runtime::CATCH_UP)
            .await;
        ctx.informers
            .volumes
            .caught_up(revision, crate::runtime::CATCH_UP)
            .await;
    }
    Ok(Some(RESYNC))
}

fn claim_ref(c: &PersistentVolumeClaim) -> ObjectRef {
    ObjectRef {
        kind: Kind::PersistentVolumeClaim,
        namespace: c.metadata.namespace.clone(),
        name: c.metadata.name().to_owned(),
    }
}

async fn run_action<S: Store>(ctx: &Context<S>, action: Action) -> ApiResult<()> {
    match action {
        Action::Bind {
            volume,
            claim,
            created,
        } => {
            let (pv, pvc) = (volume.metadata.name().to_owned(), claim_ref(&claim));
            ctx.apply(&[
                Object::PersistentVolume(*volume),
                Object::PersistentVolumeClaim(*claim),
            ])
            .await?;
            if created {
                info!(volume = %pv, claim = %pvc, "provisioned a local volume and bound it");
            } else {
                info!(volume = %pv, claim = %pvc, "bound a claim to a volume");
            }
        }
        Action::ClaimStatus(c) => {
            let phase = c.phase().to_owned();
            let r = claim_ref(&c);
            ctx.update_status(&Object::PersistentVolumeClaim(*c))
                .await?;
            debug!(claim = %r, %phase, "claim status written");
        }
        Action::VolumeStatus(v) => {
            let phase = v.phase().to_owned();
            let name = v.metadata.name().to_owned();
            ctx.update_status(&Object::PersistentVolume(*v)).await?;
            debug!(volume = %name, %phase, "volume status written");
        }
        Action::Delete(pv) => reclaim(ctx, &pv).await?,
        Action::DeleteClaim(c) => {
            let r = claim_ref(&c);
            ctx.api
                .delete(&r, c.metadata.resource_version.as_deref())
                .await?;
            info!(claim = %r, "no pod uses the deleted claim any more: deleted it");
        }
    }
    Ok(())
}

/// Deletes a released volume the local provisioner made, once the store
/// (not just the cache) confirms its claim is gone.
async fn reclaim<S: Store>(ctx: &Context<S>, pv: &PersistentVolume) -> ApiResult<()> {
    let Some(r) = &pv.spec.claim_ref else {
        return Ok(());
    };
    let claim = ObjectRef {
        kind: Kind::PersistentVolumeClaim,
        namespace: r.namespace.clone(),
        name: r.name.clone().unwrap_or_default(),
    };
    match ctx.api.get(&claim).await {
        Err(ApiServerError::NotFound(_)) => {}
        Ok(json) => {
            let same = serde_json::from_str::<Object>(&json)
                .ok()
                .and_then(|o| o.metadata().uid.clone());
            if same.is_some() && same == r.uid {
                return Ok(()); // the cache was behind: it still exists
            }
        }
        Err(e) => return Err(e),
    }
    let me = ObjectRef {
        kind: Kind::PersistentVolume,
        namespace: None,
        name: pv.metadata.name().to_owned(),
    };
    ctx.api
        .delete(&me, pv.metadata.resource_version.as_deref())
        .await?;
    info!(volume = %me.name, claim = %claim, "claim gone: deleted its volume (reclaim policy Delete)");
    Ok(())
}
