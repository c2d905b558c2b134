//! PLACEHOLDER (being written).

use std::time::Duration;

use crate::controllers::runtime::Context;
use crate::store::Store;

/// Node lifecycle settings.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// A node without a heartbeat for this long is NotReady.
    pub grace: Duration,
    /// Pods of a node NotReady for this long are deleted.
    pub eviction_delay: Duration,
}

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>, _config: Config) {
    let mut stop = ctx.shutdown.clone();
    let _ = stop.wait_for(|s| *s).await;
}
