//! The HorizontalPodAutoscaler controller: every sync period, each HPA
//! whose target is a Deployment is evaluated as Kubernetes does it
//! ([`evaluate`]): per-pod usage from the heartbeat registry against the
//! pods' requests ([`replicas`]), then stabilization and rate policies
//! ([`behavior`]) with their history kept in memory per HPA. The target is
//! scaled through the API's scale call and the status written when it
//! changes. A new or changed HPA is evaluated at once.

pub mod behavior;
pub mod evaluate;
pub mod replicas;

use std::collections::HashMap;
use std::time::Duration;

use jotasu_api::{Deployment, HorizontalPodAutoscaler, Kind, Object, ObjectRef, Pod};
use tracing::{debug, info, warn};

use crate::apiserver::{ApiServerError, Usage};
use crate::runtime::{CATCH_UP, Change, Context, Key, key_of, next_change, now_seconds, stopped};
use crate::store::Store;

use behavior::History;

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
pub async fn run<S: Store>(ctx: Context<S>, config: Config) {
    let mut histories: HashMap<Key, History> = HashMap::new();
    let mut hpa_rx = ctx.informers.hpas.subscribe();
    let mut shutdown = ctx.shutdown.clone();
    let mut tick = tokio::time::interval(config.sync_period.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            c = next_change(&mut hpa_rx) => match c {
                // Created or its spec changed: at once.
                Some(Change::Applied { old, new }) => {
                    let fresh = old.is_none_or(|o| o.metadata.generation != new.metadata.generation);
                    if fresh {
                        sync(&ctx, &key_of(new.as_ref()), &mut histories).await;
                    }
                }
                Some(Change::Deleted(h)) => { histories.remove(&key_of(h.as_ref())); }
                Some(Change::Resynced) => {}
                None => break,
            },
            _ = tick.tick() => {
                let keys: Vec<Key> = ctx.informers.hpas.read().objects.keys().cloned().collect();
                histories.retain(|k, _| keys.contains(k));
                scrape_usage(&ctx, &keys).await;
                for key in keys {
                    sync(&ctx, &key, &mut histories).await;
                }
            }
        }
    }
    info!("autoscaler stopped");
}

/// Reads the usage of the autoscaled pods from their nodes' agents into
/// the heartbeat registry (metrics-server's way: the agents measure, the
/// leader asks). A node that does not answer keeps what its heartbeats
/// brought this control plane, if anything.
async fn scrape_usage<S: Store>(ctx: &Context<S>, hpas: &[Key]) {
    let mut nodes = std::collections::BTreeSet::new();
    for key in hpas {
        let Some(hpa) = ctx.informers.hpas.get(&key.0, &key.1) else {
            continue;
        };
        let Ok(d) = target(ctx, &hpa) else { continue };
        if d.spec.selector.is_empty() {
            continue;
        }
        for p in ctx.informers.pods.list_in(&key.0) {
            if d.spec.selector.matches(&p.metadata.labels)
                && let Some(node) = p.spec.node_name.clone()
            {
                nodes.insert(node);
            }
        }
    }
    let scrapes = nodes.into_iter().filter_map(|name| {
        let node = ctx.informers.nodes.get("", &name)?;
        Some(async move { (name, ctx.api.node_usage(&node).await) })
    });
    for (name, result) in futures::future::join_all(scrapes).await {
        match result {
            Ok(pods) => ctx.api.heartbeats().record_usage(
                &name,
                pods.into_iter().map(|u| {
                    (
                        (u.namespace, u.name),
                        Usage {
                            cpu_millicores: u.cpu_millicores,
                            memory_bytes: u.memory_bytes,
                        },
                    )
                }),
            ),
            Err(e) => {
                debug!(node = %name, error = %e, "cannot read the node's pod usage; using its heartbeats'")
            }
        }
    }
}

/// The Deployment an HPA scales, or why it cannot be read.
fn target<S: Store>(
    ctx: &Context<S>,
    hpa: &HorizontalPodAutoscaler,
) -> Result<std::sync::Arc<Deployment>, String> {
    let r = &hpa.spec.scale_target_ref;
    let api_version = r.api_version.as_deref().unwrap_or("apps/v1");
    if r.kind != "Deployment" || api_version != "apps/v1" {
        return Err(format!(
            "unsupported target {api_version}/{}: only apps/v1 Deployments are scaled",
            r.kind
        ));
    }
    let namespace = hpa.metadata.namespace.as_deref().unwrap_or_default();
    ctx.informers
        .deployments
        .get(namespace, &r.name)
        .ok_or_else(|| format!("deployments.apps {:?} not found", r.name))
}

/// Evaluates one HPA, scales its target and writes its status.
async fn sync<S: Store>(ctx: &Context<S>, key: &Key, histories: &mut HashMap<Key, History>) {
    let Some(hpa) = ctx.informers.hpas.get(&key.0, &key.1) else {
        return;
    };
    let now = now_seconds();
    let deployment = target(ctx, &hpa);
    let pods: Vec<std::sync::Arc<Pod>> = match &deployment {
        Ok(d) if !d.spec.selector.is_empty() => ctx
            .informers
            .pods
            .list_in(&key.0)
            .into_iter()
            .filter(|p| d.spec.selector.matches(&p.metadata.labels))
            .collect(),
        _ => Vec::new(),
    };
    let heartbeats = ctx.api.heartbeats();
    let samples: Vec<(&Pod, Option<Usage>)> = pods
        .iter()
        .map(|p| (p.as_ref(), heartbeats.pod_usage(&key.0, p.metadata.name())))
        .collect();
    let history = histories.entry(key.clone()).or_default();
    let mut e = evaluate::evaluate(
        &hpa,
        deployment.as_deref().map_err(Clone::clone),
        &samples,
        history,
        now,
    );

    if let (Some(n), Ok(d)) = (e.scale_to, &deployment) {
        let r = ObjectRef {
            kind: Kind::Deployment,
            namespace: Some(key.0.clone()),
            name: d.metadata.name().to_owned(),
        };
        match ctx.api.scale(&r, n).await {
            Ok(scaled) => {
                info!(hpa = %key.1, namespace = %key.0, from = e.current, to = n, "rescaled");
                let b = hpa.spec.behavior.as_ref();
                let (up, down) = (behavior::scale_up(b), behavior::scale_down(b));
                behavior::record_scale(history, &up, &down, e.current, n, now);
                let rev = scaled.metadata().revision().unwrap_or(0);
                ctx.informers.deployments.caught_up(rev, CATCH_UP).await;
            }
            Err(err) => {
                warn!(hpa = %key.1, namespace = %key.0, error = %err, "cannot rescale");
                evaluate::scale_failed(&mut e.status, hpa.status.as_ref(), &err.to_string(), now);
            }
        }
    }
    if hpa.status.as_ref() == Some(&e.status) {
        return;
    }
    let mut updated = HorizontalPodAutoscaler::clone(&hpa);
    updated.status = Some(e.status);
    match ctx
        .update_status(&Object::HorizontalPodAutoscaler(updated))
        .await
    {
        Ok(written) => {
            let rev = written.metadata().revision().unwrap_or(0);
            ctx.informers.hpas.caught_up(rev, CATCH_UP).await;
        }
        // Changed meanwhile: the next period writes afresh.
        Err(ApiServerError::Conflict(_) | ApiServerError::NotFound(_)) => {}
        Err(err) => {
            warn!(hpa = %key.1, namespace = %key.0, error = %err, "cannot write the status")
        }
    }
}

#[cfg(test)]
mod tests;
