//! PLACEHOLDER (being written).

use std::time::Duration;

use crate::controllers::runtime::Context;
use crate::store::Store;

/// Autoscaler settings.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// How often every HPA is evaluated (Kubernetes: 15 s).
    pub sync_period: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sync_period: Duration::from_secs(15),
        }
    }
}

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>, _config: Config) {
    let mut stop = ctx.shutdown.clone();
    let _ = stop.wait_for(|s| *s).await;
}
