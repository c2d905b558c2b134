//! The ResourceQuota controller: keeps each quota's `status.hard` and
//! `status.used` current (what `jotactl describe quota` shows), recounting
//! its namespace's objects every few seconds.
//! Admission (`apiserver::quota`) enforces the limits; this only reports.

use std::collections::BTreeSet;
use std::time::Duration;

use jotasu_api::kinds::limits::{ResourceQuotaSpec, ResourceQuotaStatus};
use jotasu_api::{Kind, LabelSelector, Object};
use tracing::{debug, info, warn};

use crate::apiserver::quota::{counted_by, tracked_kinds, usage};
use crate::runtime::{Context, stopped};
use crate::store::Store;

/// How often every quota is recounted.
const RESYNC: Duration = Duration::from_secs(5);

/// Runs until shutdown.
pub async fn run<S: Store>(ctx: Context<S>) {
    let mut shutdown = ctx.shutdown.clone();
    let mut tick = tokio::time::interval(RESYNC);
    loop {
        tokio::select! {
            () = stopped(&mut shutdown) => break,
            _ = tick.tick() => recount(&ctx).await,
        }
    }
    info!("resourcequota controller stopped");
}

/// `status` of a quota with `spec` over its namespace's `objects`.
pub fn status(spec: &ResourceQuotaSpec, objects: &[Object]) -> ResourceQuotaStatus {
    let hard = &spec.hard;
    let used = hard
        .keys()
        .map(|r| {
            let nanos = usage(r, counted_by(spec, objects.iter()));
            (r.clone(), crate::apiserver::quota::quantity(r, nanos))
        })
        .collect();
    ResourceQuotaStatus {
        hard: hard.clone(),
        used,
    }
}

async fn recount<S: Store>(ctx: &Context<S>) {
    let all = LabelSelector::default();
    let Ok((quotas, _)) = ctx.api.list(Kind::ResourceQuota, None, &all).await else {
        return;
    };
    for json in quotas {
        let Ok(Object::ResourceQuota(q)) = serde_json::from_str::<Object>(&json) else {
            continue;
        };
        let ns = q.metadata.namespace.clone().unwrap_or_default();
        let kinds: BTreeSet<Kind> = tracked_kinds(&q.spec.hard);
        let mut objects = Vec::new();
        for kind in kinds {
            match ctx.api.list(kind, Some(&ns), &all).await {
                Ok((items, _)) => objects.extend(
                    items
                        .iter()
                        .filter_map(|j| serde_json::from_str::<Object>(j).ok()),
                ),
                Err(e) => {
                    warn!(namespace = %ns, error = %e, "cannot count for a quota");
                    return;
                }
            }
        }
        let wanted = status(&q.spec, &objects);
        if q.status.as_ref() == Some(&wanted) {
            continue;
        }
        let mut updated = q.clone();
        updated.status = Some(wanted);
        match ctx.update_status(&Object::ResourceQuota(updated)).await {
            Ok(_) => debug!(quota = %q.metadata.name(), namespace = %ns, "quota usage written"),
            Err(e) => {
                debug!(quota = %q.metadata.name(), error = %e, "quota usage not written; next round")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::Quantity;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn usage_is_counted_for_every_hard_resource() {
        let hard: BTreeMap<String, Quantity> = [
            ("pods".to_owned(), Quantity::parse("10").unwrap()),
            ("requests.cpu".to_owned(), Quantity::parse("2").unwrap()),
        ]
        .into();
        let pod = |name: &str| -> Object {
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "d"},
                "spec": {"containers": [{"name": "c", "image": "x",
                    "resources": {"requests": {"cpu": "250m"}}}]}}))
            .unwrap()
        };
        let spec = ResourceQuotaSpec {
            hard: hard.clone(),
            ..ResourceQuotaSpec::default()
        };
        let s = status(&spec, &[pod("a"), pod("b")]);
        assert_eq!(s.used["pods"].to_string(), "2");
        assert_eq!(s.used["requests.cpu"].to_string(), "500m");
        assert_eq!(s.hard, hard);
    }

    /// With the controller running on a real API server: a quota's
    /// status shows the namespace's pods and their requests.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_controller_writes_what_is_used() {
        use crate::controllers::nodes::testkit::Cluster;
        let c = Cluster::start(&["n1"]).await;
        tokio::spawn(run(c.ctx.clone()));
        c.apply(vec![
            json!({"apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": "q", "namespace": "default"},
                "spec": {"hard": {"pods": "5", "requests.cpu": "1"}}}),
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "a", "namespace": "default"},
                "spec": {"containers": [{"name": "c", "image": "x",
                    "resources": {"requests": {"cpu": "300m"}, "limits": {"cpu": "300m"}}}]}}),
        ])
        .await;
        let r = jotasu_api::ObjectRef {
            kind: Kind::ResourceQuota,
            namespace: Some("default".into()),
            name: "q".into(),
        };
        let used = c
            .eventually(
                "the quota's usage written",
                Duration::from_secs(20),
                || async {
                    let json = c.ctx.api.get(&r).await.ok()?;
                    let Ok(Object::ResourceQuota(q)) = serde_json::from_str::<Object>(&json) else {
                        return None;
                    };
                    q.status.map(|s| s.used)
                },
            )
            .await;
        assert_eq!(used["pods"].to_string(), "1");
        assert_eq!(used["requests.cpu"].to_string(), "300m");
    }
}
