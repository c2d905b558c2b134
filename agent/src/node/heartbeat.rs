//! The heartbeat: every interval the node says it is alive and reports its
//! pods' usage. Failures are logged and retried at the next tick; the node
//! lifecycle controller decides what a silence means.

use std::time::Duration;

use jotasu_api::client::{Client, PodUsage};
use tokio::sync::watch;
use tracing::{debug, warn};

/// Where the heartbeat gets its pods' usage.
pub trait UsageSource: Send + Sync {
    /// The latest usage of every running pod.
    fn usage(&self) -> Vec<PodUsage>;
}

/// Heartbeats until `stop` turns true.
pub async fn heartbeat_loop(
    client: Client,
    node: String,
    every: Duration,
    usage: std::sync::Arc<dyn UsageSource>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = crate::stopped(&mut stop) => return,
        }
        match client.heartbeat(&node, usage.usage()).await {
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
