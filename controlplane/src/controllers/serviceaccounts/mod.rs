//! The service accounts controller: every active namespace has a `default`
//! ServiceAccount, made again if it is deleted, as Kubernetes'
//! serviceaccounts-controller does. (The API server writes it with a new
//! namespace already; this controller covers deletions and namespaces
//! that existed before.) Terminating namespaces are left alone.

use std::time::Duration;

use jotasu_api::kinds::service_account::DEFAULT_SERVICE_ACCOUNT;
use jotasu_api::{Kind, Namespace, ObjectRef, ServiceAccount};
use tracing::info;

use crate::apiserver::lifecycle::service_account;
use crate::apiserver::{ApiResult, ApiServerError};
use crate::runtime::{Change, Context, WorkQueue, next_change, work};
use crate::store::Store;

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>) {
    let queue = WorkQueue::new();
    let feeder = tokio::spawn(feed(ctx.clone(), queue.clone()));
    queue_all(&ctx, &queue);
    work(
        "serviceaccounts",
        &queue,
        ctx.shutdown.clone(),
        |ns: String| {
            let ctx = ctx.clone();
            async move { sync(&ctx, &ns).await }
        },
    )
    .await;
    feeder.abort();
}

fn queue_all<S: Store>(ctx: &Context<S>, queue: &WorkQueue<String>) {
    for ns in ctx.informers.namespaces.list() {
        queue.add(ns.metadata.name().to_owned());
    }
}

/// New namespaces, and namespaces whose `default` account went.
async fn feed<S: Store>(ctx: Context<S>, queue: WorkQueue<String>) {
    let mut namespaces = ctx.informers.namespaces.subscribe();
    let mut accounts = ctx.informers.service_accounts.subscribe();
    let mut stop = ctx.shutdown.clone();
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            change = next_change(&mut namespaces) => match change {
                Some(Change::Applied { old: None, new }) => queue.add(new.metadata.name().to_owned()),
                Some(Change::Applied { .. } | Change::Deleted(_)) => {}
                Some(Change::Resynced) => queue_all(&ctx, &queue),
                None => return,
            },
            change = next_change(&mut accounts) => match change {
                Some(Change::Deleted(sa)) if sa.metadata.name() == DEFAULT_SERVICE_ACCOUNT => {
                    queue.add(sa.metadata.namespace.clone().unwrap_or_default());
                }
                Some(Change::Applied { .. } | Change::Deleted(_)) => {}
                Some(Change::Resynced) => queue_all(&ctx, &queue),
                None => return,
            },
        }
    }
}

/// Whether `namespace` needs its default account made: it is active and
/// has none.
pub fn needs_default(namespace: Option<&Namespace>, default: Option<&ServiceAccount>) -> bool {
    namespace.is_some_and(|ns| !ns.is_terminating()) && default.is_none()
}

/// Makes the namespace's `default` account if it lacks one.
async fn sync<S: Store>(ctx: &Context<S>, namespace: &str) -> ApiResult<Option<Duration>> {
    let ns = ctx.informers.namespaces.get("", namespace);
    let cached = ctx
        .informers
        .service_accounts
        .get(namespace, DEFAULT_SERVICE_ACCOUNT);
    if !needs_default(ns.as_deref(), cached.as_deref()) {
        return Ok(None);
    }
    // The cache may lag: never overwrite an account someone wrote.
    let r = ObjectRef {
        kind: Kind::ServiceAccount,
        namespace: Some(namespace.to_owned()),
        name: DEFAULT_SERVICE_ACCOUNT.to_owned(),
    };
    match ctx.api.get(&r).await {
        Ok(_) => return Ok(None),
        Err(ApiServerError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    match ctx
        .apply(&[service_account(namespace, DEFAULT_SERVICE_ACCOUNT)])
        .await
    {
        Ok(_) => {
            info!(namespace, "made the default ServiceAccount");
            Ok(None)
        }
        // Deleted or terminating meanwhile: nothing to do.
        Err(ApiServerError::NotFound(_) | ApiServerError::Refused { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::Time;

    #[test]
    fn only_active_namespaces_without_one_get_a_default_account() {
        let active = Namespace::default();
        let mut terminating = Namespace::default();
        terminating.metadata.deletion_timestamp = Some(Time::from_unix_seconds(1));
        let sa = ServiceAccount::default();
        assert!(needs_default(Some(&active), None));
        assert!(!needs_default(Some(&active), Some(&sa)));
        assert!(!needs_default(Some(&terminating), None));
        assert!(!needs_default(None, None));
    }
}
