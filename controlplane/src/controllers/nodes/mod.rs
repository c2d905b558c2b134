//! The node lifecycle controller: judges every node from the heartbeat
//! registry ([`health`]) several times per grace period. A node that
//! speaks is Ready; one silent for the grace period (counted from the
//! controller's start for nodes not heard since, so a control-plane
//! restart gives every node a fresh grace) turns Ready=Unknown and its
//! pods lose their Ready condition; after the eviction delay its pods are
//! deleted (DaemonSet pods excepted) so their controllers replace them.
//! Pods bound to nodes that do not exist, and terminating pods on lost
//! nodes, are deleted at once (Kubernetes' pod garbage collector).

pub mod health;
pub mod rate;
#[cfg(test)]
pub mod testkit;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jotasu_api::{Kind, Object, ObjectRef, Pod};
use tracing::{debug, info, warn};

use crate::apiserver::ApiServerError;
use crate::runtime::status::is_node_ready;
use crate::runtime::{CATCH_UP, Cache, Change, Context, next_change, now_seconds, stopped};
use crate::store::Store;

use health::{Doomed, Observed, Plan};

/// Node lifecycle settings.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// A node without a heartbeat for this long is NotReady.
    pub grace: Duration,
    /// Pods of a node NotReady for this long are deleted.
    pub eviction_delay: Duration,
    /// At most this many nodes per second begin to have their pods
    /// evicted ([`rate`]).
    pub eviction_rate: f64,
}

/// How often nodes are judged: a fifth of the grace, at most every second.
pub fn tick_period(config: &Config) -> Duration {
    (config.grace / 5).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>, config: Config) {
    let started = Instant::now();
    let mut lost_since: HashMap<String, Instant> = HashMap::new();
    let mut limiter = rate::EvictionLimiter::new(config.eviction_rate);
    let mut nodes_rx = ctx.informers.nodes.subscribe();
    let mut shutdown = ctx.shutdown.clone();
    let mut tick = tokio::time::interval(tick_period(&config));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            c = next_change(&mut nodes_rx) => match c {
                Some(Change::Deleted(n)) => {
                    // A node registering again under this name starts afresh.
                    ctx.api.heartbeats().forget(n.metadata.name());
                    lost_since.remove(n.metadata.name());
                }
                Some(_) => {}
                None => break,
            },
            _ = tick.tick() => {
                let mut plan = judge(&ctx, &config, started, &mut lost_since);
                let lost: std::collections::HashSet<String> = lost_since.keys().cloned().collect();
                let planned = plan.delete.len();
                plan.delete = limiter.admit(std::mem::take(&mut plan.delete), &lost, Instant::now());
                if plan.delete.len() < planned {
                    debug!(held = planned - plan.delete.len(), next_in = ?limiter.next_in(), "evictions held back by the eviction rate");
                }
                execute(&ctx, plan).await;
            }
        }
    }
    info!("node lifecycle controller stopped");
}

/// Reads the caches and the heartbeats, keeps the lost-since clock, plans.
fn judge<S: Store>(
    ctx: &Context<S>,
    config: &Config,
    started: Instant,
    lost_since: &mut HashMap<String, Instant>,
) -> Plan {
    let now = Instant::now();
    let nodes = ctx.informers.nodes.list();
    let pods = ctx.informers.pods.list();
    let heartbeats = ctx.api.heartbeats();
    let mut observed = Vec::with_capacity(nodes.len());
    for node in &nodes {
        let name = node.metadata.name();
        let last = heartbeats.last(name);
        let silence = now.saturating_duration_since(last.unwrap_or(started).max(started));
        let lost = health::verdict(last.is_some(), silence, config.grace) == health::Verdict::Lost;
        let lost_for = if lost {
            let since = *lost_since.entry(name.to_owned()).or_insert(now);
            Some(now.saturating_duration_since(since))
        } else {
            lost_since.remove(name);
            None
        };
        observed.push(Observed {
            node: node.as_ref(),
            heard: last.is_some(),
            silence,
            lost_for,
        });
    }
    let names: std::collections::HashSet<&str> = nodes.iter().map(|n| n.metadata.name()).collect();
    lost_since.retain(|name, _| names.contains(name.as_str()));
    let refs: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
    health::plan(config, &observed, &refs, now_seconds())
}

fn pod_ref(d: &Doomed) -> ObjectRef {
    ObjectRef {
        kind: Kind::Pod,
        namespace: Some(d.namespace.clone()),
        name: d.name.clone(),
    }
}

/// Writes a plan; failures are left for the next tick. Waits for the
/// caches to show the writes, so the next tick does not repeat them.
async fn execute<S: Store>(ctx: &Context<S>, plan: Plan) {
    let Plan {
        nodes,
        unready,
        delete,
        orphans,
        disruption,
    } = plan;
    if disruption != health::Disruption::Normal && !nodes.is_empty() {
        warn!(
            ?disruption,
            "most nodes are lost at once: their pods are not evicted until enough of them return"
        );
    }
    let mut node_rev = 0;
    for node in nodes {
        let name = node.metadata.name().to_owned();
        let ready = is_node_ready(&node);
        match ctx.update_status(&Object::Node(node)).await {
            Ok(written) => {
                node_rev = node_rev.max(written.metadata().revision().unwrap_or(0));
                if ready {
                    info!(node = %name, "node is Ready");
                } else {
                    warn!(node = %name, "node stopped posting status; Ready=Unknown");
                }
            }
            Err(ApiServerError::Conflict(_) | ApiServerError::NotFound(_)) => {}
            Err(e) => warn!(node = %name, error = %e, "cannot update the node's status"),
        }
    }
    let mut pod_rev = 0;
    for pod in unready {
        let name = pod.metadata.name().to_owned();
        match ctx.update_status(&Object::Pod(pod)).await {
            Ok(written) => {
                pod_rev = pod_rev.max(written.metadata().revision().unwrap_or(0));
                debug!(pod = %name, "marked not ready: its node is lost");
            }
            Err(ApiServerError::Conflict(_) | ApiServerError::NotFound(_)) => {}
            Err(e) => warn!(pod = %name, error = %e, "cannot mark the pod not ready"),
        }
    }
    let mut gone = Vec::new();
    for d in &delete {
        if remove(ctx, d).await {
            gone.push(d);
        }
    }
    for d in &orphans {
        let node = ObjectRef {
            kind: Kind::Node,
            namespace: None,
            name: d.node.clone(),
        };
        // The node cache may lag: only the store can say the node is gone.
        match ctx.api.get(&node).await {
            Err(ApiServerError::NotFound(_)) => {
                if remove(ctx, d).await {
                    gone.push(d);
                }
            }
            Ok(_) => {}
            Err(e) => warn!(node = %d.node, error = %e, "cannot check the node"),
        }
    }
    let informers = &ctx.informers;
    if node_rev > 0 {
        informers.nodes.caught_up(node_rev, CATCH_UP).await;
    }
    if pod_rev > 0 {
        informers.pods.caught_up(pod_rev, CATCH_UP).await;
    }
    if !gone.is_empty() {
        let shown = |cache: &Cache<Pod>| {
            gone.iter().all(|d| {
                !cache
                    .objects
                    .contains_key(&(d.namespace.clone(), d.name.clone()))
            })
        };
        informers.pods.wait_until(CATCH_UP, shown).await;
    }
}

/// Deletes a pod at once; whether it is gone.
async fn remove<S: Store>(ctx: &Context<S>, d: &Doomed) -> bool {
    match ctx.api.delete_graceful(&pod_ref(d), None, Some(0)).await {
        Ok(_) => {
            info!(pod = %d.name, namespace = %d.namespace, node = %d.node, why = d.why, "pod deleted");
            true
        }
        Err(ApiServerError::NotFound(_)) => true,
        Err(e) => {
            warn!(pod = %d.name, error = %e, "cannot delete the pod");
            false
        }
    }
}

#[cfg(test)]
mod tests;
