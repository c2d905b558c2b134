//! The worker loop shared by queue-driven controllers: take a key,
//! reconcile it, requeue as the outcome says — soon after a conflict, with
//! doubling backoff after other errors — until shutdown.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, warn};

use super::queue::WorkQueue;
use crate::apiserver::{ApiResult, ApiServerError};

/// Requeue delay after losing an optimistic-concurrency race.
pub const CONFLICT_RETRY: Duration = Duration::from_millis(100);
/// Backoff after other errors: this, doubled per failure, up to [`MAX_BACKOFF`].
pub const BASE_BACKOFF: Duration = Duration::from_millis(200);
/// The longest backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The backoff after `failures` failures in a row.
pub fn backoff(failures: u32) -> Duration {
    BASE_BACKOFF
        .saturating_mul(1 << failures.min(8))
        .min(MAX_BACKOFF)
}

/// Runs `sync` on each queued key until `shutdown` turns true. `sync`
/// returns when to look at the key again, if ever.
pub async fn work<K, F, Fut>(
    controller: &'static str,
    queue: &WorkQueue<K>,
    mut shutdown: watch::Receiver<bool>,
    mut sync: F,
) where
    K: Clone + Eq + Hash + Send + Debug + 'static,
    F: FnMut(K) -> Fut,
    Fut: Future<Output = ApiResult<Option<Duration>>>,
{
    let mut failures: HashMap<K, u32> = HashMap::new();
    loop {
        let key = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            key = queue.next() => key,
        };
        match sync(key.clone()).await {
            Ok(requeue) => {
                failures.remove(&key);
                if let Some(after) = requeue {
                    queue.add_after(key, after);
                }
            }
            Err(ApiServerError::Conflict(r)) => {
                debug!(controller, object = %r, "conflict; retrying");
                queue.add_after(key, CONFLICT_RETRY);
            }
            Err(e) => {
                let n = failures.entry(key.clone()).or_default();
                *n = n.saturating_add(1);
                let delay = backoff(*n);
                warn!(controller, ?key, error = %e, "sync failed; retrying in {delay:?}");
                queue.add_after(key, delay);
            }
        }
    }
}
