//! The disruption controller: keeps every PodDisruptionBudget's status
//! ([`budget::budget_status`]) current as its pods change, so the
//! eviction call ([`crate::apiserver::eviction`]) decides on fresh counts.

pub mod budget;

use std::time::Duration;

use jotasu_api::{Object, Pod, PodDisruptionBudget};

use crate::apiserver::ApiResult;
use crate::runtime::{CATCH_UP, Context, Controller, Key, key_of, now_seconds};
use crate::store::Store;

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>) {
    // Budget changes, and changes of pods a budget selects.
    Controller::new(ctx, "disruption", |i| &i.disruption_budgets)
        .watches(
            |i| &i.pods,
            |i, pod: &Pod| {
                let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
                i.disruption_budgets
                    .list_in(ns)
                    .iter()
                    .filter(|b| crate::apiserver::eviction::selects(b, pod))
                    .map(|b| key_of(&**b))
                    .collect()
            },
        )
        .run(|ctx, key| async move { sync(&ctx, &key).await })
        .await;
}

/// The replicas of the controller of `pod` (a Deployment through its
/// ReplicaSet, a ReplicaSet, a StatefulSet), keyed by that controller.
fn scale_of<S: Store>(ctx: &Context<S>, pod: &Pod) -> Option<(String, i32)> {
    let owner = pod.metadata.controller_ref()?;
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let i = &ctx.informers;
    match owner.kind.as_str() {
        "ReplicaSet" => {
            let rs = i.replica_sets.get(ns, &owner.name)?;
            if let Some(d) = rs
                .metadata
                .controller_ref()
                .filter(|d| d.kind == "Deployment")
            {
                let dep = i.deployments.get(ns, &d.name)?;
                return Some((d.uid.clone(), dep.spec.replicas()));
            }
            Some((owner.uid.clone(), rs.spec.replicas()))
        }
        "StatefulSet" => {
            let set = i.stateful_sets.get(ns, &owner.name)?;
            Some((owner.uid.clone(), set.spec.replicas()))
        }
        _ => None,
    }
}

/// Recounts one budget; looks again when a remembered eviction expires.
async fn sync<S: Store>(ctx: &Context<S>, key: &Key) -> ApiResult<Option<Duration>> {
    let Some(b) = ctx.informers.disruption_budgets.get(&key.0, &key.1) else {
        return Ok(None);
    };
    let pods = ctx.informers.pods.list_in(&key.0);
    let refs: Vec<&Pod> = pods.iter().map(|p| &**p).collect();
    let status = budget::budget_status(&b, &refs, &|p| scale_of(ctx, p), now_seconds());
    let pending = !status.disrupted_pods.is_empty();
    if b.status.as_ref() != Some(&status) {
        let mut updated: PodDisruptionBudget = (*b).clone();
        updated.status = Some(status);
        let written = ctx
            .update_status(&Object::PodDisruptionBudget(updated))
            .await?;
        if let Some(rv) = written.metadata().revision() {
            ctx.informers
                .disruption_budgets
                .caught_up(rv, CATCH_UP)
                .await;
        }
    }
    Ok(pending.then(|| Duration::from_secs(10)))
}
