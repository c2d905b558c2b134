//! The scheduler's loop, thin I/O around [`Scheduler`]: it takes in every
//! pod and node change the informers broadcast, runs a cycle whenever pods
//! wait and fewer than [`BINDS_IN_FLIGHT`] binding calls are under way,
//! writes each cycle's bindings in one call on a task of its own (the
//! store group-commits concurrent calls), feeds the outcomes back, and
//! reports unschedulable pods through a status writer task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jotasu_api::kinds::storage::SELECTED_NODE;
use jotasu_api::{Node, Object, PersistentVolumeClaim, Pod, Time};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::TryRecvError;
use tokio::sync::mpsc;
use tracing::{Instrument as _, debug, info, info_span, warn};

use super::Config;
use super::queue::INITIAL_BACKOFF;
use super::state::{Scheduler, unschedulable_status};
use crate::apiserver::{ApiServerError, BindOutcome, Binding};
use crate::runtime::{Change, Context, Informer, next_change};
use crate::store::Store;

/// Pods scheduled per cycle (and bound per call) at most.
pub const BATCH: usize = 1024;
/// Binding calls under way at once: the store group-commits the
/// transactions of concurrent calls (8 placed the most pods per second in
/// the benchmark on 2 cores).
pub const BINDS_IN_FLIGHT: usize = 8;
/// Unschedulable pods are tried again at least this often.
pub const RETRY_EVERY: Duration = Duration::from_secs(10);

/// A binding call's bindings and outcomes (None: the call failed).
type Done = (Vec<Binding>, Option<Vec<BindOutcome>>);

fn on_pod(s: &mut Scheduler, change: Change<Pod>, pods: &Informer<Pod>) -> bool {
    match change {
        Change::Applied { new, .. } => s.pod_applied(new),
        Change::Deleted(p) => s.pod_deleted(&p),
        Change::Resynced => {
            s.resync_pods(&pods.list());
            true
        }
    }
}

fn on_node(s: &mut Scheduler, change: Change<Node>, nodes: &Informer<Node>) -> bool {
    match change {
        Change::Applied { new, .. } => s.node_applied(new),
        Change::Deleted(n) => {
            s.node_deleted(&n);
            false
        }
        Change::Resynced => {
            s.resync_nodes(&nodes.list());
            true
        }
    }
}

fn on_claim(
    s: &mut Scheduler,
    change: Change<PersistentVolumeClaim>,
    all: &Informer<PersistentVolumeClaim>,
) -> bool {
    match change {
        Change::Applied { new, .. } => s.volumes.claim_applied(new),
        Change::Deleted(c) => s.volumes.claim_deleted(&c),
        Change::Resynced => {
            s.volumes.claims.clear();
            for c in all.list() {
                s.volumes.claim_applied(c);
            }
        }
    }
    true
}

/// Keeps `map` (cluster-scoped objects by name) in step with an informer.
fn by_name<T: jotasu_api::Resource + serde::de::DeserializeOwned + Send + Sync + 'static>(
    map: &mut std::collections::HashMap<String, Arc<T>>,
    change: Change<T>,
    all: &Informer<T>,
) -> bool {
    match change {
        Change::Applied { new, .. } => {
            map.insert(new.metadata().name().to_owned(), new);
        }
        Change::Deleted(v) => {
            map.remove(v.metadata().name());
        }
        Change::Resynced => {
            *map = all
                .list()
                .into_iter()
                .map(|v| (v.metadata().name().to_owned(), v))
                .collect();
        }
    }
    true
}

/// Records the node chosen for a claim's first pod
/// (`volume.kubernetes.io/selected-node`), for the PV controller to
/// provision its volume there.
fn spawn_select<S: Store>(ctx: &Context<S>, selected: Vec<(String, String, String)>) {
    let ctx = ctx.clone();
    let task = async move {
        for (namespace, claim, node) in selected {
            let r = jotasu_api::ObjectRef {
                kind: jotasu_api::Kind::PersistentVolumeClaim,
                namespace: Some(namespace),
                name: claim,
            };
            for _ in 0..3 {
                let Ok(json) = ctx.api.get(&r).await else {
                    break;
                };
                let Ok(Object::PersistentVolumeClaim(mut c)) =
                    serde_json::from_str::<Object>(&json)
                else {
                    break;
                };
                if c.spec.volume_name.is_some()
                    || c.metadata.annotations.contains_key(SELECTED_NODE)
                {
                    break;
                }
                c.metadata
                    .annotations
                    .insert(SELECTED_NODE.to_owned(), node.clone());
                match ctx.apply(&[Object::PersistentVolumeClaim(c)]).await {
                    Ok(_) => {
                        debug!(claim = %r, %node, "selected the claim's node");
                        break;
                    }
                    Err(ApiServerError::Conflict(_)) => {}
                    Err(e) => {
                        warn!(claim = %r, error = %e, "cannot record the claim's node");
                        break;
                    }
                }
            }
        }
    };
    tokio::spawn(task.instrument(info_span!("select-node")));
}

/// Takes in every change already broadcast, without waiting; `None` when
/// the informer is gone.
fn drain<T>(
    rx: &mut Receiver<Change<T>>,
    mut apply: impl FnMut(Change<T>) -> bool,
) -> Option<bool> {
    let mut freed = false;
    loop {
        match rx.try_recv() {
            Ok(c) => freed |= apply(c),
            Err(TryRecvError::Empty) => return Some(freed),
            Err(TryRecvError::Lagged(_)) => freed |= apply(Change::Resynced),
            Err(TryRecvError::Closed) => return None,
        }
    }
}

/// Writes PodScheduled=False (Unschedulable) conditions, one at a time.
async fn write_statuses<S: Store>(
    ctx: Context<S>,
    mut rx: mpsc::UnboundedReceiver<(Arc<Pod>, String)>,
) {
    while let Some((pod, message)) = rx.recv().await {
        let now = Time::now();
        let Some(updated) = unschedulable_status(&pod, &message, &now) else {
            continue;
        };
        let name = pod.metadata.name().to_owned();
        match ctx.update_status(&Object::Pod(updated)).await {
            Ok(_) => debug!(pod = %name, %message, "unschedulable"),
            // It changed or went: the next attempt reports afresh.
            Err(ApiServerError::Conflict(_) | ApiServerError::NotFound(_)) => {}
            Err(e) => warn!(pod = %name, error = %e, "cannot report the pod unschedulable"),
        }
    }
}

/// Writes `bindings` in one call on a task of its own; the outcomes come
/// back through `done`.
fn spawn_bind<S: Store>(
    ctx: &Context<S>,
    bindings: Vec<Binding>,
    done: mpsc::UnboundedSender<Done>,
) {
    let api = ctx.api.clone();
    let task = async move {
        let outcomes = match api.bind(&bindings).await {
            Ok(o) => Some(o),
            Err(e) => {
                warn!(pods = bindings.len(), error = %e, "binding failed; retrying");
                None
            }
        };
        let _ = done.send((bindings, outcomes));
    };
    tokio::spawn(task.instrument(info_span!("bind")));
}

/// Runs the scheduler until shutdown.
pub async fn run<S: Store>(ctx: Context<S>, config: Config) {
    let mut shutdown = ctx.shutdown.clone();
    let pods = ctx.informers.pods.clone();
    let nodes = ctx.informers.nodes.clone();
    let claims = ctx.informers.claims.clone();
    let volumes = ctx.informers.volumes.clone();
    let classes = ctx.informers.storage_classes.clone();
    let mut pods_rx = pods.subscribe();
    let mut nodes_rx = nodes.subscribe();
    let mut claims_rx = claims.subscribe();
    let mut volumes_rx = volumes.subscribe();
    let mut classes_rx = classes.subscribe();
    tokio::select! {
        () = async {
            pods.synced().await;
            nodes.synced().await;
            claims.synced().await;
            volumes.synced().await;
            classes.synced().await;
        } => {}
        _ = shutdown.wait_for(|s| *s) => return,
    }
    let mut s = Scheduler::new(config.scoring);
    on_claim(&mut s, Change::Resynced, &claims);
    by_name(&mut s.volumes.volumes, Change::Resynced, &volumes);
    by_name(&mut s.volumes.classes, Change::Resynced, &classes);
    s.resync_nodes(&nodes.list());
    s.resync_pods(&pods.list());
    info!(
        nodes = s.cluster.node_count(),
        pending = s.queue.len(),
        "scheduler started"
    );

    let (status_tx, status_rx) = mpsc::unbounded_channel();
    tokio::spawn(write_statuses(ctx.clone(), status_rx).instrument(info_span!("status")));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut binds = 0usize;
    let mut next_retry = Instant::now() + RETRY_EVERY;
    let mut next_backoff: Option<Instant> = None;
    let mut freed = false;
    let backoff_from = |next: Option<Instant>, now: Instant| {
        let at = now + INITIAL_BACKOFF;
        Some(next.map_or(at, |t| t.min(at)))
    };

    loop {
        if *shutdown.borrow() {
            break;
        }
        match (
            drain(&mut pods_rx, |c| on_pod(&mut s, c, &pods)),
            drain(&mut nodes_rx, |c| on_node(&mut s, c, &nodes)),
            drain(&mut claims_rx, |c| on_claim(&mut s, c, &claims)),
            drain(&mut volumes_rx, |c| {
                by_name(&mut s.volumes.volumes, c, &volumes)
            }),
            drain(&mut classes_rx, |c| {
                by_name(&mut s.volumes.classes, c, &classes)
            }),
        ) {
            (Some(p), Some(n), Some(c), Some(v), Some(k)) => freed |= p || n || c || v || k,
            _ => break,
        }
        let now = Instant::now();
        while let Ok((bindings, outcomes)) = done_rx.try_recv() {
            binds -= 1;
            freed |= s.bound(&bindings, outcomes.as_deref(), now);
            next_backoff = backoff_from(next_backoff, now);
        }
        if now >= next_retry {
            next_retry = now + RETRY_EVERY;
            freed = true;
        }
        if std::mem::take(&mut freed) {
            s.queue.retry_unschedulable();
        }
        if next_backoff.is_some_and(|t| t <= now) {
            next_backoff = s.queue.end_backoffs(now);
        }
        if binds < BINDS_IN_FLIGHT && s.queue.has_active() {
            let decisions = s.cycle(BATCH);
            for u in decisions.unschedulable {
                let _ = status_tx.send(u);
            }
            if !decisions.selected.is_empty() {
                spawn_select(&ctx, decisions.selected);
            }
            if !decisions.bindings.is_empty() {
                binds += 1;
                spawn_bind(&ctx, decisions.bindings, done_tx.clone());
            }
            // Let the binding tasks and informers run, then look again.
            tokio::task::yield_now().await;
            continue;
        }
        let wake = next_backoff.map_or(next_retry, |b| b.min(next_retry));
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            c = next_change(&mut pods_rx) => match c {
                Some(c) => freed |= on_pod(&mut s, c, &pods),
                None => break,
            },
            c = next_change(&mut nodes_rx) => match c {
                Some(c) => freed |= on_node(&mut s, c, &nodes),
                None => break,
            },
            c = next_change(&mut claims_rx) => match c {
                Some(c) => freed |= on_claim(&mut s, c, &claims),
                None => break,
            },
            c = next_change(&mut volumes_rx) => match c {
                Some(c) => freed |= by_name(&mut s.volumes.volumes, c, &volumes),
                None => break,
            },
            c = next_change(&mut classes_rx) => match c {
                Some(c) => freed |= by_name(&mut s.volumes.classes, c, &classes),
                None => break,
            },
            Some((bindings, outcomes)) = done_rx.recv() => {
                binds -= 1;
                let now = Instant::now();
                freed |= s.bound(&bindings, outcomes.as_deref(), now);
                next_backoff = backoff_from(next_backoff, now);
            },
            () = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    info!("scheduler stopped");
}
