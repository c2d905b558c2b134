//! Leader election among control planes sharing one store: exactly one
//! runs the scheduler and the controllers at a time.
//!
//! The leader holds the `coordination.k8s.io/v1` Lease
//! `kube-system/jotasu-controlplane` ([`elector`], judged as client-go
//! judges it: [`decide`]) and runs them on a [`fence::Fenced`] store: each
//! of their writes is refused unless the fence it set when it won is still
//! in place, so a leader that was paused (SIGSTOP, a long GC, a network
//! cut) and wakes up after another took over writes nothing on its stale
//! view. When the leadership ends the controllers stop, and start afresh
//! with new caches (and every node a fresh grace period) if it comes back.
//! Node liveness lives in the store too
//! ([`crate::apiserver::node_lease`]), so whichever control plane leads
//! judges every node alike.

pub mod apiservers;
pub mod decide;
pub mod elector;
pub mod fence;

use std::sync::Arc;

use tokio::sync::watch;
use tracing::info;

pub use elector::{ElectionConfig, Leadership};

use crate::apiserver::ApiServer;
use crate::manager;
use crate::store::Store;

/// Campaigns for the leadership and runs the scheduler and the
/// controllers while this control plane leads, until `stop` turns true;
/// then stops them and releases the Lease. `standing` follows every
/// change (for metrics and tests).
pub async fn run<S: Store>(
    api: ApiServer<S>,
    election: ElectionConfig,
    controllers: manager::Config,
    standing: watch::Sender<Leadership>,
    mut stop: watch::Receiver<bool>,
) {
    let (campaign_stop_tx, campaign_stop_rx) = watch::channel(false);
    let mut rx = standing.subscribe();
    let campaign = tokio::spawn(elector::campaign(
        Arc::clone(api.store()),
        election,
        standing,
        campaign_stop_rx,
    ));
    loop {
        let fence = tokio::select! {
            r = rx.wait_for(|l| matches!(l, Leadership::Leading { .. })) => match r.as_deref() {
                Ok(Leadership::Leading { fence }) => *fence,
                _ => break,
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let (ctl_stop_tx, ctl_stop_rx) = watch::channel(false);
        let fenced = api.with_store(Arc::new(fence::Fenced::new(Arc::clone(api.store()), fence)));
        let publisher = tokio::spawn(apiservers::publish(fenced.clone(), ctl_stop_rx.clone()));
        let mut task = tokio::spawn(manager::run(fenced, controllers.clone(), ctl_stop_rx));
        let stopping = tokio::select! {
            _ = rx.wait_for(|l| *l != Leadership::Leading { fence }) => false,
            _ = stop.wait_for(|s| *s) => true,
            _ = &mut task => false,
        };
        let _ = ctl_stop_tx.send(true);
        let _ = task.await;
        let _ = publisher.await;
        if stopping {
            break;
        }
        info!("no longer leading: the scheduler and the controllers stopped");
    }
    let _ = campaign_stop_tx.send(true);
    let _ = campaign.await;
}
