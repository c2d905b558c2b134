//! PLACEHOLDER (being written).

use crate::controllers::runtime::Context;
use crate::store::Store;

/// How nodes are scored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scoring {
    /// Prefer the fullest node that fits (bin-packing; the default).
    #[default]
    MostAllocated,
    /// Prefer the emptiest node.
    LeastAllocated,
}

/// Scheduler settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Config {
    /// How nodes are scored.
    pub scoring: Scoring,
}

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>, _config: Config) {
    let mut stop = ctx.shutdown.clone();
    let _ = stop.wait_for(|s| *s).await;
}
