//! Starts the informers, the scheduler and every controller in the
//! control-plane process, and stops them on shutdown.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{Instrument as _, info, info_span};

use super::runtime::{Context, Informers};
use super::{daemonset, deployment, endpoints, hpa, nodes, replicaset};
use crate::apiserver::ApiServer;
use crate::scheduler;
use crate::store::Store;

/// Settings of the controllers and the scheduler.
#[derive(Debug, Clone)]
pub struct Config {
    /// The scheduler's settings.
    pub scheduler: scheduler::Config,
    /// Node lifecycle: heartbeat grace and eviction delay.
    pub nodes: nodes::Config,
    /// The autoscaler's settings.
    pub hpa: hpa::Config,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            scheduler: scheduler::Config::default(),
            nodes: nodes::Config {
                grace: Duration::from_secs(10),
                eviction_delay: Duration::from_secs(30),
            },
            hpa: hpa::Config::default(),
        }
    }
}

fn spawn<F>(set: &mut JoinSet<()>, name: &'static str, task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    set.spawn(task.instrument(info_span!("controller", name)));
}

/// Runs the scheduler and the controllers until `shutdown` turns true.
pub async fn run<S: Store>(api: ApiServer<S>, config: Config, shutdown: watch::Receiver<bool>) {
    let informers = Informers::start(&api, &shutdown);
    let mut stop = shutdown.clone();
    tokio::select! {
        () = informers.synced() => {}
        _ = stop.wait_for(|s| *s) => return,
    }
    info!("caches synced; starting the scheduler and controllers");
    let ctx = Context {
        api,
        informers,
        shutdown,
    };
    let mut set = JoinSet::new();
    spawn(
        &mut set,
        "scheduler",
        scheduler::run(ctx.clone(), config.scheduler),
    );
    spawn(&mut set, "replicaset", replicaset::run(ctx.clone()));
    spawn(&mut set, "deployment", deployment::run(ctx.clone()));
    spawn(&mut set, "daemonset", daemonset::run(ctx.clone()));
    spawn(&mut set, "endpoints", endpoints::run(ctx.clone()));
    spawn(&mut set, "nodes", nodes::run(ctx.clone(), config.nodes));
    spawn(&mut set, "hpa", hpa::run(ctx, config.hpa));
    while set.join_next().await.is_some() {}
    info!("controllers stopped");
}
