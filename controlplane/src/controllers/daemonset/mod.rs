//! The DaemonSet controller: one pod per eligible node ([`eligible`]),
//! created already bound to its node, removed from nodes that leave or
//! stop fitting, replaced node by node on a template change within
//! maxUnavailable (or only when deleted, for `OnDelete`), with the status
//! Kubernetes reports ([`plan`]). The runner reads the caches, writes the
//! plan and waits for its cache to show the writes before the next round.

pub mod eligible;
pub mod plan;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jotasu_api::{DaemonSet, Kind, Node, Object, ObjectRef, Pod};
use tracing::{debug, info, warn};

use crate::apiserver::ApiServerError;
use crate::runtime::{
    CATCH_UP, CONFLICT_RETRY, Cache, Change, Context, Key, WorkQueue, backoff, controlled_by,
    key_of, next_change, now_seconds, stopped,
};
use crate::store::Store;

use plan::{DsPlan, Removal, template_hash};

/// Pods created per apply (etcd's default `--max-txn-ops`).
const CREATE_BATCH: usize = 128;

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>) {
    let informers = ctx.informers.clone();
    let mut ds_rx = informers.daemon_sets.subscribe();
    let mut pods_rx = informers.pods.subscribe();
    let mut nodes_rx = informers.nodes.subscribe();
    let mut shutdown = ctx.shutdown.clone();
    let queue = WorkQueue::new();
    let mut failures: HashMap<Key, u32> = HashMap::new();
    queue_all(&ctx, &queue);
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            c = next_change(&mut ds_rx) => match c {
                Some(Change::Applied { new, .. }) => queue.add(key_of(new.as_ref())),
                Some(Change::Deleted(d)) => { failures.remove(&key_of(d.as_ref())); }
                Some(Change::Resynced) => queue_all(&ctx, &queue),
                None => break,
            },
            c = next_change(&mut pods_rx) => match c {
                Some(c) => on_pod(&ctx, &queue, c),
                None => break,
            },
            c = next_change(&mut nodes_rx) => match c {
                Some(c) => if node_matters(&c) { queue_all(&ctx, &queue) },
                None => break,
            },
            key = queue.next() => {
                match reconcile(&ctx, &key).await {
                    Ok(Some(after)) => queue.add_after(key.clone(), after),
                    Ok(None) => {}
                    Err(Retry::Conflict) => queue.add_after(key.clone(), CONFLICT_RETRY),
                    Err(Retry::Backoff) => {
                        let n = failures.entry(key.clone()).or_default();
                        *n = n.saturating_add(1);
                        queue.add_after(key, backoff(*n));
                        continue;
                    }
                }
                failures.remove(&key);
            }
        }
    }
    info!("daemonset controller stopped");
}

fn queue_all<S: Store>(ctx: &Context<S>, queue: &WorkQueue<Key>) {
    for key in ctx.informers.daemon_sets.read().objects.keys() {
        queue.add(key.clone());
    }
}

/// The DaemonSet controlling `pod`, if any.
fn owner_key(pod: &Pod) -> Option<Key> {
    let owner = pod.metadata.controller_ref()?;
    (owner.kind == "DaemonSet").then(|| {
        (
            pod.metadata.namespace.clone().unwrap_or_default(),
            owner.name.clone(),
        )
    })
}

fn on_pod<S: Store>(ctx: &Context<S>, queue: &WorkQueue<Key>, change: Change<Pod>) {
    match change {
        Change::Applied { old, new } => {
            for key in old.iter().chain([&new]).filter_map(|p| owner_key(p)) {
                queue.add(key);
            }
        }
        Change::Deleted(p) => {
            if let Some(key) = owner_key(&p) {
                queue.add(key);
            }
        }
        Change::Resynced => queue_all(ctx, queue),
    }
}

/// Whether a node change can change where daemons run: added, removed,
/// relabelled, retainted, being deleted (readiness does not matter).
fn node_matters(change: &Change<Node>) -> bool {
    match change {
        Change::Applied {
            old: Some(old),
            new,
        } => {
            old.metadata.labels != new.metadata.labels
                || old.spec.taints != new.spec.taints
                || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
        }
        _ => true,
    }
}

/// How a reconcile that did not finish is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Something changed under it: again shortly.
    Conflict,
    /// It failed: again after a growing delay.
    Backoff,
}

fn pod_ref(namespace: &str, name: &str) -> ObjectRef {
    ObjectRef {
        kind: Kind::Pod,
        namespace: Some(namespace.to_owned()),
        name: name.to_owned(),
    }
}

/// One round for one DaemonSet; `Ok(Some(d))` asks to come back after `d`.
async fn reconcile<S: Store>(ctx: &Context<S>, key: &Key) -> Result<Option<Duration>, Retry> {
    let Some(ds) = ctx.informers.daemon_sets.get(&key.0, &key.1) else {
        return Ok(None);
    };
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let hash = template_hash(&ds);
    let nodes = ctx.informers.nodes.list();
    let pods: Vec<Arc<Pod>> = ctx
        .informers
        .pods
        .list_in(&key.0)
        .into_iter()
        .filter(|p| controlled_by(p.as_ref(), ds.as_ref()))
        .collect();
    let node_refs: Vec<&Node> = nodes.iter().map(Arc::as_ref).collect();
    let pod_refs: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();
    let plan = plan::plan(&ds, &hash, &node_refs, &pod_refs, now_seconds());
    let DsPlan {
        create,
        delete,
        mut status,
        requeue_after,
    } = plan;

    let wrote = !create.is_empty() || !delete.is_empty();
    let attempted = !create.is_empty();
    let created = create_pods(ctx, &ds, create).await;
    plan::record_create_failure(
        &mut status,
        attempted,
        created.as_ref().err().map(String::as_str),
        now_seconds(),
    );
    let mut result = created.map_err(|_| Retry::Backoff);
    for removal in &delete {
        if let Err(r) = delete_pod(ctx, &key.0, removal).await {
            result = result.and(Err(r));
        }
    }
    if !delete.is_empty() {
        // Read our deletes before the next round: each pod gone or terminating.
        let shown = |cache: &Cache<Pod>| {
            delete.iter().all(|d| {
                cache
                    .objects
                    .get(&(key.0.clone(), d.name.clone()))
                    .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
            })
        };
        ctx.informers.pods.wait_until(CATCH_UP, shown).await;
    }
    if ds.status.as_ref() != Some(&status) {
        let mut updated = DaemonSet::clone(&ds);
        updated.status = Some(status);
        match ctx.update_status(&Object::DaemonSet(updated)).await {
            Ok(written) => {
                let rev = written.metadata().revision().unwrap_or(0);
                ctx.informers.daemon_sets.caught_up(rev, CATCH_UP).await;
            }
            Err(ApiServerError::Conflict(_)) => result = result.and(Err(Retry::Conflict)),
            Err(ApiServerError::NotFound(_)) => return Ok(None),
            Err(e) => {
                warn!(daemonset = %key.1, error = %e, "cannot write the status");
                result = result.and(Err(Retry::Backoff));
            }
        }
    }
    result?;
    if wrote {
        // The cache shows the writes: look again (deleted pods' replacements).
        return Ok(Some(Duration::ZERO));
    }
    Ok(requeue_after.map(|s| Duration::from_secs(u64::try_from(s.max(1)).unwrap_or(1))))
}

/// Creates the pods; the API's refusal if it refuses (retried with backoff).
async fn create_pods<S: Store>(
    ctx: &Context<S>,
    ds: &DaemonSet,
    pods: Vec<Pod>,
) -> Result<(), String> {
    let objects: Vec<Object> = pods.into_iter().map(Object::Pod).collect();
    for batch in objects.chunks(CREATE_BATCH) {
        match ctx.apply(batch).await {
            Ok(applied) => {
                debug!(daemonset = %ds.metadata.name(), count = applied.len(), "created pods");
                ctx.informers.pods.shows(&applied, CATCH_UP).await;
            }
            Err(e) => {
                warn!(daemonset = %ds.metadata.name(), error = %e, "cannot create pods");
                return Err(e.to_string());
            }
        }
    }
    Ok(())
}

async fn delete_pod<S: Store>(
    ctx: &Context<S>,
    namespace: &str,
    removal: &Removal,
) -> Result<(), Retry> {
    let mut grace = None;
    if removal.node_gone {
        // Confirm with the store: the node cache may merely lag.
        let node = ObjectRef {
            kind: Kind::Node,
            namespace: None,
            name: removal.node.clone(),
        };
        match ctx.api.get(&node).await {
            Err(ApiServerError::NotFound(_)) => grace = Some(0),
            Ok(_) => return Err(Retry::Conflict),
            Err(e) => {
                warn!(node = %removal.node, error = %e, "cannot check the node");
                return Err(Retry::Backoff);
            }
        }
    }
    let r = pod_ref(namespace, &removal.name);
    match ctx.api.delete_graceful(&r, None, grace).await {
        Ok(_) | Err(ApiServerError::NotFound(_)) => {
            debug!(pod = %removal.name, node = %removal.node, "deleted daemon pod");
            Ok(())
        }
        Err(e) => {
            warn!(pod = %removal.name, error = %e, "cannot delete the pod");
            Err(Retry::Backoff)
        }
    }
}

#[cfg(test)]
mod tests;
