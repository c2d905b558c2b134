//! The API server's side of the cache: which watches it serves, the pump
//! from a subscription to an API watch (the same translation, selector and
//! node-scope rules as a store watch's, [`super::super::watch`]), and List
//! from the cache.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use jotasu_api::{Kind, LabelSelector};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{End, KindCache, Subscription};
use crate::apiserver::error::{ApiResult, ApiServerError};
use crate::apiserver::keys::{kind_prefix, split_key};
use crate::apiserver::node_scope::NodeScope;
use crate::apiserver::watch::{Event, WATCH_QUEUE, WatchSpec, next};
use crate::apiserver::{ApiServer, raw};
use crate::store::{Revision, Store, StoreError};

/// How long a watch or List waits for its kind's cache to be listed
/// before it reads the store itself.
const READY_WAIT: Duration = Duration::from_secs(2);

/// The kind a watch follows if the cache can serve it: one kind, and not
/// a node's ConfigMaps or Secrets (those follow the node's Pods too).
pub fn cacheable(spec: &WatchSpec) -> Option<Kind> {
    match spec.kinds.as_slice() {
        [Kind::ConfigMap | Kind::Secret] if spec.node.is_some() => None,
        [kind] => Some(*kind),
        _ => None,
    }
}

impl<S: Store> ApiServer<S> {
    /// Starts `spec` from the cache; `None` when the cache cannot serve it
    /// (the caller opens a store watch, as before the cache).
    pub(crate) async fn watch_cached(
        &self,
        spec: &WatchSpec,
    ) -> ApiResult<Option<mpsc::Receiver<ApiResult<Event>>>> {
        let Some(kind) = cacheable(spec) else {
            return Ok(None);
        };
        let cache = &self.watch_cache;
        let Some(kc) = cache.ready(kind, READY_WAIT).await else {
            cache.count(|c| &c.fallbacks);
            return Ok(None);
        };
        // "From now on" is after the store's revision, as for a store
        // watch (the cache may not have seen the latest writes yet). A
        // start after what the cache has seen is served only if the store
        // has reached it (a future revision is the store's error to give).
        let from = match spec.from_revision {
            0 => self.store.current_revision().await? + 1,
            from if from > kc.revision() + 1 => {
                if from > self.store.current_revision().await? + 1 {
                    cache.count(|c| &c.fallbacks);
                    return Ok(None);
                }
                from
            }
            from => from,
        };
        let sub = match kc.subscribe(from) {
            Ok(sub) => sub,
            Err(refused) => {
                debug!(%kind, from = spec.from_revision, ?refused, "watch cache: using a store watch");
                cache.count(|c| &c.fallbacks);
                return Ok(None);
            }
        };
        let scope = match &spec.node {
            Some(node) => Some(self.node_scope(spec, node).await?),
            None => None,
        };
        cache.count(|c| &c.served);
        let (tx, rx) = mpsc::channel(WATCH_QUEUE);
        let me = self.clone();
        let spec = spec.clone();
        tokio::spawn(async move { me.cache_pump(spec, scope, kc, sub, tx).await });
        Ok(Some(rx))
    }

    /// Feeds one API watch from its subscription until it ends.
    async fn cache_pump(
        &self,
        spec: WatchSpec,
        mut scope: Option<NodeScope>,
        kc: Arc<KindCache>,
        mut sub: Subscription,
        tx: mpsc::Sender<ApiResult<Event>>,
    ) {
        let mut shutdown = self.shutdown.clone();
        // As a store watch's pump: the last revision delivered and the
        // keys of it already sent, so a resume does not repeat them.
        let mut last: Revision = 0;
        let mut sent_at_last: HashSet<Vec<u8>> = HashSet::new();
        let mut replay = std::mem::take(&mut sub.replay).into_iter();
        loop {
            let item = match replay.next() {
                Some(ev) => Some(ev),
                None => tokio::select! {
                    biased;
                    ev = sub.rx.recv() => ev,
                    () = async { drop(shutdown.wait_for(|stop| *stop).await) } => None,
                    () = tx.closed() => return,
                },
            };
            if let Some(ev) = item {
                if ev.revision == last && sent_at_last.contains(&ev.kv.key) {
                    continue;
                }
                if ev.revision != last {
                    last = ev.revision;
                    sent_at_last.clear();
                }
                sent_at_last.insert(ev.kv.key.clone());
                if !self.deliver(&spec, scope.as_mut(), &ev, &tx).await {
                    return;
                }
                continue;
            }
            let resume_from = next(last, sub.from);
            let error = match sub.end.get().copied() {
                Some(End::Overflow { at }) => {
                    // Cut off for a full queue: carry on from the ring if
                    // it still holds what comes next.
                    match kc.subscribe(if last == 0 { sub.from } else { last }) {
                        Ok(resumed) => {
                            self.watch_cache.count(|c| &c.resumed);
                            sub = resumed;
                            replay = std::mem::take(&mut sub.replay).into_iter();
                            continue;
                        }
                        Err(refused) => {
                            self.watch_cache.count(|c| &c.ended_slow);
                            // Part of `last` may be unsent: resume there.
                            let resume_from = if at == last { last } else { resume_from };
                            warn!(kind = %kc.kind(), resume_from, ?refused, "watch cache: ending a watcher too slow to follow");
                            ApiServerError::Store(StoreError::Lagged { resume_from })
                        }
                    }
                }
                Some(End::Resync { listed_at }) => {
                    self.watch_cache.count(|c| &c.ended_resync);
                    ApiServerError::Store(StoreError::Compacted {
                        requested: resume_from,
                        compact_revision: listed_at + 1,
                    })
                }
                // The cache stopped: the control plane is shutting down.
                None => ApiServerError::ShuttingDown { resume_from },
            };
            let _ = tx.send(Err(error)).await;
            return;
        }
    }

    /// [`Self::list`] from the watch cache (Kubernetes' List with
    /// `resourceVersion: "0"`: any recent state will do). The revision is
    /// the cache's; a watch from it + 1 is served from the cache too. Reads
    /// the store if the kind's cache is not listed within a moment.
    pub async fn list_cached(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: &LabelSelector,
    ) -> ApiResult<(Vec<String>, Revision)> {
        let listed = match self.watch_cache.ready(kind, READY_WAIT).await {
            Some(kc) => kc.list(&kind_prefix(kind, namespace)),
            None => None,
        };
        let Some((kvs, revision)) = listed else {
            return self.list(kind, namespace, selector).await;
        };
        self.watch_cache.count(|c| &c.lists_served);
        let mut items = Vec::with_capacity(kvs.len());
        for kv in &kvs {
            if !raw::matches(selector, &kv.key, &kv.value)? {
                continue;
            }
            let (_, ns, name) = split_key(&kv.key).ok_or_else(|| ApiServerError::Corrupt {
                key: String::from_utf8_lossy(&kv.key).into_owned(),
                reason: "not an object key".into(),
            })?;
            items.push(((ns, name), raw::stamp(&kv.key, &kv.value, kv.mod_revision)?));
        }
        // As the store's List: by namespace and name, not key order.
        items.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((items.into_iter().map(|(_, json)| json).collect(), revision))
    }

    /// The watch cache's counters.
    pub fn watch_cache_stats(&self) -> super::Stats {
        self.watch_cache.stats()
    }

    /// The figures of `kind`'s cache, if a watch or List started it.
    pub fn watch_cache_kind_stats(&self, kind: Kind) -> Option<super::KindStats> {
        self.watch_cache.kind_stats(kind)
    }
}
