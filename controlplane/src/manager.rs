//! Starts the informers, the scheduler and every controller in the
//! control-plane process, and stops them on shutdown.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{Instrument as _, info, info_span, warn};

use crate::apiserver::ApiServer;
use crate::controllers::{
    cronjob, daemonset, deployment, disruption, endpoints, hpa, job, namespace, nodes, quota,
    replicaset, serviceaccounts, statefulset, volumes,
};
use crate::runtime::{Context, Informers};
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
                eviction_rate: nodes::rate::DEFAULT_EVICTION_RATE,
            },
            hpa: hpa::Config::default(),
        }
    }
}

/// How often the garbage collector sweeps for objects whose every owner
/// is gone: a controller that created a dependent while its owner was
/// being deleted (its cache still held the owner) leaves one behind, as
/// does a cascade cut short.
pub const GC_PERIOD: Duration = Duration::from_secs(20);

/// Kubernetes' garbage collector, as a periodic sweep (the API server sweeps
/// once at start-up; cascading deletes handle the common case at once).
async fn collect_garbage<S: Store>(ctx: Context<S>) {
    let mut stop = ctx.shutdown.clone();
    let mut tick = tokio::time::interval(GC_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // The first tick is at once: a start-up sweep finishes cascading
        // deletes an earlier leader left half done.
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match ctx.api.collect_garbage().await {
            Ok(gone) if !gone.is_empty() => {
                info!(count = gone.len(), "deleted objects whose owners are gone");
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "garbage collection sweep failed; retrying next period"),
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
    spawn(&mut set, "statefulset", statefulset::run(ctx.clone()));
    spawn(&mut set, "disruption", disruption::run(ctx.clone()));
    spawn(&mut set, "job", job::run(ctx.clone()));
    spawn(&mut set, "cronjob", cronjob::run(ctx.clone()));
    spawn(&mut set, "endpoints", endpoints::run(ctx.clone()));
    spawn(&mut set, "nodes", nodes::run(ctx.clone(), config.nodes));
    spawn(&mut set, "garbage-collector", collect_garbage(ctx.clone()));
    spawn(&mut set, "namespace", namespace::run(ctx.clone()));
    spawn(&mut set, "resourcequota", quota::run(ctx.clone()));
    spawn(
        &mut set,
        "serviceaccounts",
        serviceaccounts::run(ctx.clone()),
    );
    spawn(&mut set, "volumes", volumes::run(ctx.clone()));
    spawn(&mut set, "hpa", hpa::run(ctx, config.hpa));
    while set.join_next().await.is_some() {}
    info!("controllers stopped");
}
