//! The heartbeat: every interval the node says it is alive and reports its
//! pods' usage and the revision its data plane is programmed from; when
//! that revision advances, at once (after [`DEBOUNCE`], so a burst of
//! passes makes one call) — a stopping pod somewhere waits for it.
//! Failures are logged and retried at the next tick; the node lifecycle
//! controller decides what a silence means.

use std::time::Duration;

use jotasu_api::client::{Client, PodUsage};
use tokio::sync::watch;
use tracing::{debug, warn};

/// Where the heartbeat gets its pods' usage.
pub trait UsageSource: Send + Sync {
    /// The latest usage of every running pod.
    fn usage(&self) -> Vec<PodUsage>;
}

/// How long a new programmed revision waits for the next before it is reported.
pub const DEBOUNCE: Duration = Duration::from_millis(20);

/// Heartbeats until `stop` turns true.
pub async fn heartbeat_loop(
    client: Client,
    node: String,
    every: Duration,
    usage: std::sync::Arc<dyn UsageSource>,
    mut programmed: watch::Receiver<Option<i64>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut programmed_open = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            r = programmed.changed(), if programmed_open => {
                if r.is_err() {
                    programmed_open = false;
                    continue;
                }
                tokio::time::sleep(DEBOUNCE).await;
                tick.reset();
            }
            () = crate::stopped(&mut stop) => return,
        }
        let revision = *programmed.borrow_and_update();
        match client
            .heartbeat_programmed(&node, usage.usage(), revision)
            .await
        {
            Ok(()) => {
                if failing {
                    debug!(%node, "heartbeat succeeded again");
                }
                failing = false;
            }
            Err(e) => {
                if !failing {
                    warn!(%node, error = %e, "heartbeat failed; the pods keep running, retrying every interval");
                }
                failing = true;
            }
        }
    }
}
