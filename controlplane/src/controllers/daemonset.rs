//! PLACEHOLDER (being written).

use crate::controllers::runtime::Context;
use crate::store::Store;

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>) {
    let mut stop = ctx.shutdown.clone();
    let _ = stop.wait_for(|s| *s).await;
}
