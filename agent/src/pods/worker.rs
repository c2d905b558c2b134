//! One pod's worker: a loop that makes its pod real and keeps it so.
//!
//! Each pass: a pod being deleted (or gone) is stopped gracefully and
//! finalized; otherwise the sandbox is ensured, each container that should
//! run and is out of back-off is (re)started, due probes run, and the
//! status is written when it changed. Between passes the worker sleeps
//! until the pod changes, a container exits, or the next deadline (a probe,
//! a back-off) comes.

use std::sync::Arc;
use std::time::Duration;

use jotasu_api::Pod;
use std::time::Instant;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::containers::{Exited, PodRun};
use super::registry::Registry;
use super::sandbox::{self, PodId};
use super::{NodeContext, probes, report};

/// How often a pod whose sandbox failed tries again.
const SANDBOX_RETRY: Duration = Duration::from_secs(2);

/// Runs the pod `uid` until it is gone (stopped, torn down, finalized) or
/// the agent stops (then the pod keeps running).
pub async fn run(
    ctx: Arc<NodeContext>,
    registry: Arc<Registry>,
    uid: String,
    mut desired: watch::Receiver<Option<Pod>>,
    mut stop: watch::Receiver<bool>,
) {
    let Some(first) = desired.borrow_and_update().clone() else {
        return;
    };
    let id = PodId {
        uid: uid.clone(),
        namespace: crate::pod::pod_namespace(&first).to_owned(),
        name: first.metadata.name().to_owned(),
    };
    let (exits_tx, mut exits) = mpsc::unbounded_channel::<Exited>();
    let mut run = PodRun::new(
        Arc::clone(&ctx),
        Arc::clone(&registry),
        id.clone(),
        first,
        exits_tx,
    );
    run.adopt().await;
    loop {
        let pod = desired.borrow_and_update().clone();
        let terminating = match &pod {
            None => true,
            Some(p) => p.metadata.deletion_timestamp.is_some(),
        };
        if let Some(p) = pod {
            run.set_pod(p);
        }
        if terminating {
            info!(pod = %id, "stopping");
            run.stop_all(&mut exits).await;
            let errors = sandbox::teardown(&ctx, &id).await;
            if !errors.is_empty() {
                warn!(pod = %id, ?errors, "teardown left errors");
            }
            registry.lock().remove(&uid);
            let still_there = desired.borrow().is_some();
            if still_there && let Err(e) = report::finalize(&ctx.client, run.pod()).await {
                warn!(pod = %id, error = %e, "finalizing the pod failed; the control plane will collect it");
            }
            info!(pod = %id, "stopped and removed");
            return;
        }
        let next = match run.sync().await {
            Ok(next) => next,
            Err(e) => {
                debug!(pod = %id, error = %e, "sync failed; retrying");
                Some(Instant::now() + SANDBOX_RETRY)
            }
        };
        let probe_at = probes::run_due(&mut run).await;
        run.report().await;
        let deadline = match (next, probe_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = desired.changed() => if r.is_err() { return },
            Some(exit) = exits.recv() => run.on_exit(exit).await,
            () = sleep => {}
            () = crate::stopped(&mut stop) => return,
        }
    }
}

impl std::fmt::Display for PodId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}
