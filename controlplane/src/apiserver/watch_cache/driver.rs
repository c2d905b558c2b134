//! A kind cache's one store watch: list the kind, watch from the list's
//! revision + 1, apply every event; resume a watch that lags or loses its
//! connection from where it stopped (with backoff), list again when the
//! resume point was compacted away. Ends when the control plane shuts down
//! or the cache is dropped.

use std::sync::Weak;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::KindCache;
use crate::apiserver::keys::kind_prefix;
use crate::store::{Store, StoreError, WatchOptions};

/// The first pause after a failure; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Resolves when the control plane stops (or its signal is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    drop(shutdown.wait_for(|stop| *stop).await);
}

/// Sleeps `backoff` (then doubles it); false if the control plane stopped
/// meanwhile.
async fn pause(backoff: &mut Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    let d = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = stopped(shutdown) => false,
    }
}

/// Follows one kind into its cache until shutdown or until the cache is
/// dropped.
pub async fn follow<S: Store>(
    store: std::sync::Arc<S>,
    cache: Weak<KindCache>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(kind) = cache.upgrade().map(|c| c.kind()) else {
        return;
    };
    let prefix = kind_prefix(kind, None);
    let mut backoff = MIN_BACKOFF;
    'list: loop {
        let range = tokio::select! {
            r = store.range(&prefix, None) => r,
            () = stopped(&mut shutdown) => break 'list,
        };
        let range = match range {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "watch cache: listing failed; retrying");
                if !pause(&mut backoff, &mut shutdown).await {
                    break 'list;
                }
                continue;
            }
        };
        let Some(c) = cache.upgrade() else { return };
        let mut from = range.revision + 1;
        let (count, revision) = (range.kvs.len(), range.revision);
        let ended = c.reset(range);
        info!(objects = count, revision, ended, "watch cache: listed");
        loop {
            let options = WatchOptions::from_revision(from).with_prev_kv();
            let opened = tokio::select! {
                s = store.watch(&prefix, options) => s,
                () = stopped(&mut shutdown) => break 'list,
            };
            let mut stream = match opened {
                Ok(s) => s,
                Err(StoreError::Compacted { .. }) => {
                    let ended = c.invalidate();
                    warn!(
                        from,
                        ended, "watch cache: resume point compacted; listing again"
                    );
                    continue 'list;
                }
                Err(e) => {
                    warn!(from, error = %e, "watch cache: store watch failed; retrying");
                    if !pause(&mut backoff, &mut shutdown).await {
                        break 'list;
                    }
                    continue;
                }
            };
            let _open = c.store_watch_opened();
            debug!(from, "watch cache: store watch open");
            loop {
                let item = tokio::select! {
                    biased;
                    () = stopped(&mut shutdown) => break 'list,
                    item = stream.next() => item,
                };
                match item {
                    Some(Ok(ev)) => {
                        // A resume repeats this revision; the cache drops repeats.
                        from = ev.revision;
                        let applied = c.apply(ev);
                        if applied.overflowed > 0 {
                            debug!(
                                overflowed = applied.overflowed,
                                "watch cache: slow watchers cut off"
                            );
                        }
                        backoff = MIN_BACKOFF;
                    }
                    Some(Err(StoreError::Lagged { resume_from })) => {
                        debug!(resume_from, "watch cache: store watch lagged; resuming");
                        from = resume_from;
                        break;
                    }
                    Some(Err(
                        StoreError::WatchClosed { resume_from }
                        | StoreError::WatchCanceled { resume_from, .. },
                    )) => {
                        warn!(resume_from, "watch cache: store watch closed; resuming");
                        from = resume_from;
                        if !pause(&mut backoff, &mut shutdown).await {
                            break 'list;
                        }
                        break;
                    }
                    Some(Err(e)) => {
                        let ended = c.invalidate();
                        warn!(error = %e, ended, "watch cache: store watch failed; listing again");
                        if !pause(&mut backoff, &mut shutdown).await {
                            break 'list;
                        }
                        continue 'list;
                    }
                    None => break,
                }
            }
        }
    }
    if let Some(c) = cache.upgrade() {
        c.stop();
    }
    debug!("watch cache: stopped");
}
