//! Keeps the [`ClusterView`] current: list every kind node-scoped, then one
//! watch of all of them from the lists' revision; on a break, resume from
//! the last revision seen with backoff (0.2 s doubling to 10 s); when the
//! control plane says the revision was compacted away, list again. While the
//! control plane is unreachable the view stays as it was, so the node keeps
//! its pods and its data plane.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use jotasu_api::Kind;
use jotasu_api::client::{Client, ClientError, WatchFilter};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::view::{ClusterView, KINDS, Touched};

/// The view, shared with its readers (short read locks only).
pub type SharedView = Arc<RwLock<ClusterView>>;

/// Counters that wake consumers: each bumps when its part of the view changed.
#[derive(Debug, Clone)]
pub struct Generations {
    /// Pods, ConfigMaps, Secrets.
    pub pods: watch::Sender<u64>,
    /// Services, Endpoints.
    pub services: watch::Sender<u64>,
    /// Nodes.
    pub nodes: watch::Sender<u64>,
}

impl Default for Generations {
    fn default() -> Self {
        Self {
            pods: watch::Sender::new(0),
            services: watch::Sender::new(0),
            nodes: watch::Sender::new(0),
        }
    }
}

impl Generations {
    fn bump(&self, t: Touched) {
        let inc = |s: &watch::Sender<u64>| s.send_modify(|g| *g += 1);
        if t.pods {
            inc(&self.pods);
        }
        if t.services {
            inc(&self.services);
        }
        if t.nodes {
            inc(&self.nodes);
        }
    }
}

/// How the stream stands (for metrics and readiness).
#[derive(Debug, Clone, Copy, Default)]
pub struct WatchStatus {
    /// A full list has been applied at least once.
    pub synced: bool,
    /// The stream is connected.
    pub connected: bool,
    /// The last revision applied.
    pub revision: i64,
    /// Events applied since start.
    pub events: u64,
    /// When the stream was last known current (None: connected now or never).
    pub stale_since: Option<Instant>,
}

const MAX_BACKOFF: Duration = Duration::from_secs(10);

fn read_view(view: &SharedView) -> std::sync::RwLockWriteGuard<'_, ClusterView> {
    view.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Follows the control plane until `stop` turns true.
pub async fn follow(
    client: Client,
    node: String,
    view: SharedView,
    gens: Generations,
    status: watch::Sender<WatchStatus>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(200);
    // Per kind: the revision its list reflects (events at or before it are
    // already in the view).
    let mut listed: Vec<(Kind, i64)> = Vec::new();
    let mut resume_from: Option<i64> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        let result = match resume_from {
            None => list_all(&client, &node, &view).await.map(|revs| {
                let from = revs.iter().map(|(_, r)| *r).min().unwrap_or(0);
                listed = revs;
                gens.bump(Touched::ALL);
                status.send_modify(|s| {
                    s.synced = true;
                    s.revision = from;
                });
                info!(%node, revision = from, "view listed");
                resume_from = Some(from + 1);
            }),
            Some(from) => {
                let r = watch_from(
                    &client, &node, from, &listed, &view, &gens, &status, &mut stop,
                )
                .await;
                match r {
                    Ok(next) => {
                        resume_from = Some(next);
                        backoff = Duration::from_millis(200);
                        Ok(())
                    }
                    Err((next, e)) => {
                        if e.is_resync() {
                            info!(%node, "watch fell behind compaction; listing again");
                            resume_from = None;
                            Ok(())
                        } else {
                            resume_from = Some(next);
                            Err(e)
                        }
                    }
                }
            }
        };
        status.send_modify(|s| {
            s.connected = false;
            s.stale_since.get_or_insert_with(Instant::now);
        });
        if let Err(e) = result {
            warn!(%node, error = %e, retry_in = ?backoff, "control plane unreachable; keeping the node as it is");
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = crate::stopped(&mut stop) => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

async fn list_all(
    client: &Client,
    node: &str,
    view: &SharedView,
) -> Result<Vec<(Kind, i64)>, ClientError> {
    let mut lists = Vec::with_capacity(KINDS.len());
    for kind in KINDS {
        lists.push((kind, client.list_for_node(kind, node).await?));
    }
    let mut v = read_view(view);
    let mut revs = Vec::with_capacity(lists.len());
    for (kind, list) in lists {
        revs.push((kind, list.revision));
        v.replace(kind, list.items);
    }
    // The view covers every change up to the oldest list; its Services and
    // slices hold changes up to the newest of theirs. (A relist may go
    // back, e.g. after a restore: the view is the lists'.)
    v.revision = revs.iter().map(|(_, r)| *r).min().unwrap_or(0);
    v.services_revision = revs
        .iter()
        .filter(|(k, _)| matches!(k, Kind::Service | Kind::EndpointSlice))
        .map(|(_, r)| *r)
        .max()
        .unwrap_or(v.revision);
    Ok(revs)
}

/// One watch; returns the revision to resume from (with the error that ended it).
#[allow(clippy::too_many_arguments)]
async fn watch_from(
    client: &Client,
    node: &str,
    from: i64,
    listed: &[(Kind, i64)],
    view: &SharedView,
    gens: &Generations,
    status: &watch::Sender<WatchStatus>,
    stop: &mut watch::Receiver<bool>,
) -> Result<i64, (i64, ClientError)> {
    let filter = WatchFilter {
        kinds: KINDS.to_vec(),
        from_revision: from,
        node: Some(node.to_owned()),
        ..WatchFilter::default()
    };
    let mut events = client.watch(&filter).await.map_err(|e| (from, e))?;
    status.send_modify(|s| {
        s.connected = true;
        s.stale_since = None;
    });
    debug!(%node, from, "watching");
    let mut next = from;
    loop {
        let item = tokio::select! {
            item = events.next() => item,
            () = crate::stopped(stop) => return Ok(next),
        };
        let event = match item {
            Some(Ok(e)) => e,
            Some(Err(e)) => return Err((next, e)),
            None => return Ok(next),
        };
        // Resume from this revision, not the next: a break in the middle of a
        // revision must not lose its other events (a repeat is an upsert).
        next = event.revision;
        let kind = event.object.kind();
        if listed
            .iter()
            .any(|(k, r)| *k == kind && event.revision <= *r)
        {
            continue;
        }
        let touched = read_view(view).apply_at(event.kind, event.object, event.revision);
        gens.bump(touched);
        status.send_modify(|s| {
            s.revision = event.revision;
            s.events += 1;
        });
    }
}
