//! Kubernetes' ResourceQuota admission: objects created in a namespace
//! with quotas must fit them — object counts (`pods`, `services`,
//! `count/deployments.apps`, …) and the sums of the pods' requests and
//! limits (`requests.cpu`, `cpu`, `limits.memory`, …) over what the
//! namespace already holds. A pod must state every compute resource a
//! quota tracks. Claims count by storage (`requests.storage`, and per
//! class `<class>.storageclass.storage.k8s.io/requests.storage` and
//! `…/persistentvolumeclaims`). Refusals are worded as Kubernetes words them. Plain
//! functions over what the API server read.

use std::collections::{BTreeMap, BTreeSet};

use jotasu_api::kinds::limits::{ResourceQuota, ResourceQuotaSpec};
use jotasu_api::kinds::pod_status::PodPhase;
use jotasu_api::{Kind, Object, Outcome, Pod, Quantity};

use super::admit::Prepared;
use super::error::{ApiResult, ApiServerError};

/// What a quota's resource name counts, in nanos (counts are units).
fn compute(resource: &str) -> Option<(&'static str, &'static str)> {
    match resource {
        "cpu" | "requests.cpu" => Some(("requests", "cpu")),
        "memory" | "requests.memory" => Some(("requests", "memory")),
        "limits.cpu" => Some(("limits", "cpu")),
        "limits.memory" => Some(("limits", "memory")),
        _ => None,
    }
}

/// The kinds a quota resource name counts (`pods`, `count/pods`,
/// `count/deployments.apps`).
fn counted(resource: &str) -> Option<Kind> {
    let name = resource.strip_prefix("count/").unwrap_or(resource);
    let (plural, group) = name.split_once('.').unwrap_or((name, ""));
    Kind::ALL
        .iter()
        .copied()
        .find(|k| k.plural() == plural && k.group() == group)
}

fn takes_room(p: &Pod) -> bool {
    !matches!(
        p.status.as_ref().and_then(|s| s.phase),
        Some(PodPhase::Succeeded | PodPhase::Failed)
    )
}

/// `which` (`requests` or `limits`) of `resource` over the pod's containers,
/// in nanos; None when a container does not state it.
fn pod_amount(p: &Pod, which: &str, resource: &str) -> Option<i128> {
    let mut total = 0;
    for c in &p.spec.containers {
        let r = c.resources.as_ref()?;
        let m = if which == "requests" {
            &r.requests
        } else {
            &r.limits
        };
        let q = m.get(resource).or_else(|| {
            (which == "requests")
                .then(|| r.limits.get(resource))
                .flatten()
        })?;
        total += q.nanos();
    }
    Some(total)
}

/// The claims a storage quota resource counts: `requests.storage` and
/// `persistentvolumeclaims` (any class: `None`), or
/// `<class>.storageclass.storage.k8s.io/requests.storage` and
/// `…/persistentvolumeclaims` (that class); `true` for the size.
fn storage(resource: &str) -> Option<(Option<&str>, bool)> {
    match resource {
        "requests.storage" => Some((None, true)),
        _ => {
            let (class, what) = resource.split_once(".storageclass.storage.k8s.io/")?;
            match what {
                "requests.storage" => Some((Some(class), true)),
                "persistentvolumeclaims" => Some((Some(class), false)),
                _ => None,
            }
        }
    }
}

/// The amount of quota resource `resource` that `objects` take, in nanos.
pub fn usage<'a>(resource: &str, objects: impl Iterator<Item = &'a Object>) -> i128 {
    if let Some((class, size)) = storage(resource) {
        return objects
            .filter_map(|o| match o {
                Object::PersistentVolumeClaim(c) if class.is_none_or(|k| c.class() == k) => {
                    Some(if size {
                        c.spec
                            .resources
                            .as_ref()
                            .and_then(|r| r.requests.get(jotasu_api::kinds::storage::STORAGE))
                            .map_or(0, Quantity::nanos)
                    } else {
                        1_000_000_000
                    })
                }
                _ => None,
            })
            .sum();
    }
    if let Some((which, r)) = compute(resource) {
        return objects
            .filter_map(|o| match o {
                Object::Pod(p) if takes_room(p) => pod_amount(p, which, r),
                _ => None,
            })
            .sum();
    }
    match counted(resource) {
        Some(kind) => {
            let n = objects
                .filter(|o| o.kind() == kind && !matches!(o, Object::Pod(p) if !takes_room(p)))
                .count();
            i128::try_from(n).unwrap_or(i128::MAX) * 1_000_000_000
        }
        None => 0,
    }
}

/// The objects of `objects` quota `spec` counts: all of them, or for a
/// scoped quota the pods its scopes select.
pub fn counted_by<'a>(
    spec: &'a ResourceQuotaSpec,
    objects: impl Iterator<Item = &'a Object>,
) -> impl Iterator<Item = &'a Object> {
    objects.filter(move |o| match o {
        Object::Pod(p) => spec.selects(p),
        _ => !spec.is_scoped(),
    })
}

/// `nanos` of quota resource `resource` as a quantity (CPU in millis).
pub fn quantity(resource: &str, nanos: i128) -> Quantity {
    if compute(resource).is_some_and(|(_, r)| r == "cpu") {
        Quantity::from_millis(i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX))
    } else {
        Quantity::from_units(i64::try_from(nanos / 1_000_000_000).unwrap_or(i64::MAX))
    }
}

/// The kinds whose objects `hard` counts.
pub fn tracked_kinds(hard: &BTreeMap<String, Quantity>) -> BTreeSet<Kind> {
    hard.keys()
        .filter_map(|r| {
            if compute(r).is_some() {
                Some(Kind::Pod)
            } else if storage(r).is_some() {
                Some(Kind::PersistentVolumeClaim)
            } else {
                counted(r)
            }
        })
        .collect()
}

fn show(resource: &str, nanos: i128) -> String {
    if compute(resource).is_some_and(|(_, r)| r == "cpu") {
        Quantity::from_millis(i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)).to_string()
    } else {
        Quantity::from_units(i64::try_from(nanos / 1_000_000_000).unwrap_or(i64::MAX)).to_string()
    }
}

/// Checks the objects an apply creates in `namespace` (`new`) against its
/// `quotas`, given what it holds (`existing`).
pub fn check(
    quotas: &[ResourceQuota],
    existing: &[Object],
    new: &[&Object],
) -> Result<(), (usize, String)> {
    for q in quotas {
        // A pod the quota selects must state what it tracks.
        for (i, o) in new.iter().enumerate() {
            let Object::Pod(p) = o else { continue };
            if !q.spec.selects(p) {
                continue;
            }
            let mut missing: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for resource in q.spec.hard.keys() {
                if let Some((which, r)) = compute(resource) {
                    for c in &p.spec.containers {
                        let stated = c.resources.as_ref().is_some_and(|res| {
                            res.limits.contains_key(r)
                                || (which == "requests" && res.requests.contains_key(r))
                        });
                        if !stated {
                            missing.entry(resource.as_str()).or_default().push(&c.name);
                        }
                    }
                }
            }
            if !missing.is_empty() {
                let parts: Vec<String> = missing
                    .iter()
                    .map(|(r, cs)| format!("{r} for: {}", cs.join(",")))
                    .collect();
                return Err((
                    i,
                    format!(
                        "failed quota: {}: must specify {}",
                        q.metadata.name(),
                        parts.join("; ")
                    ),
                ));
            }
        }
        let mut over = BTreeSet::new();
        let (mut requested, mut used, mut limited) = (Vec::new(), Vec::new(), Vec::new());
        for (resource, hard) in &q.spec.hard {
            let wanted = usage(resource, counted_by(&q.spec, new.iter().copied()));
            if wanted == 0 {
                continue;
            }
            let now = usage(resource, counted_by(&q.spec, existing.iter()));
            requested.push(format!("{resource}={}", show(resource, wanted)));
            used.push(format!("{resource}={}", show(resource, now)));
            limited.push(format!("{resource}={hard}"));
            if now + wanted > hard.nanos() {
                over.insert(resource.clone());
            }
        }
        if !over.is_empty() {
            return Err((
                0,
                format!(
                    "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                    q.metadata.name(),
                    requested.join(","),
                    used.join(","),
                    limited.join(",")
                ),
            ));
        }
    }
    Ok(())
}

impl<S: crate::store::Store> super::ApiServer<S> {
    /// Reads the quotas of the namespaces the apply creates objects in
    /// and, where there are any, what those namespaces hold; checks the
    /// creations ([`check`]). Returns the quota keys read with their
    /// revisions (the commit holds them unchanged), and the guard of each
    /// quota-limited namespace the apply creates in ([`guard_key`]): the
    /// commit bumps it, so of two applies that counted the same usage one
    /// commits and the other counts again — the last free unit goes once.
    pub(super) async fn admit_quota(&self, prepared: &[Prepared]) -> ApiResult<(Reads, Reads)> {
        let mut by_namespace: BTreeMap<&str, Vec<&Prepared>> = BTreeMap::new();
        for p in prepared.iter().filter(|p| p.outcome == Outcome::Created) {
            if let Some(ns) = p.object.namespace() {
                by_namespace.entry(ns).or_default().push(p);
            }
        }
        let mut read = Vec::new();
        let mut guards = Vec::new();
        for (ns, created) in by_namespace {
            let prefix = super::keys::kind_prefix(Kind::ResourceQuota, Some(ns));
            let mut quotas = Vec::new();
            for kv in &self.store.range(&prefix, None).await?.kvs {
                if let Object::ResourceQuota(q) = super::decode(kv)? {
                    quotas.push(q);
                    read.push((kv.key.clone(), kv.mod_revision));
                }
            }
            if quotas.is_empty() {
                continue;
            }
            // Read before the usage, so a commit counted after it fails ours.
            let guard = guard_key(ns);
            let expected = self
                .store
                .get(&guard)
                .await?
                .map_or(0, |kv| kv.mod_revision);
            guards.push((guard, expected));
            let kinds: BTreeSet<Kind> = quotas
                .iter()
                .flat_map(|q| q.spec.hard.keys())
                .filter_map(|r| {
                    if compute(r).is_some() {
                        Some(Kind::Pod)
                    } else {
                        counted(r)
                    }
                })
                .collect();
            let mut existing = Vec::new();
            for kind in kinds {
                for kv in &self
                    .store
                    .range(&super::keys::kind_prefix(kind, Some(ns)), None)
                    .await?
                    .kvs
                {
                    existing.push(super::decode(kv)?);
                }
            }
            let new: Vec<&Object> = created.iter().map(|p| &p.object).collect();
            if let Err((i, reason)) = check(&quotas, &existing, &new) {
                return Err(ApiServerError::Refused {
                    object: new[i].object_ref(),
                    reason,
                });
            }
        }
        Ok((read, guards))
    }
}

/// Keys with the revision they were read at.
type Reads = Vec<(Vec<u8>, crate::store::Revision)>;

/// The key every creation in quota-limited namespace `ns` writes: it
/// serializes the commits whose usage counts could overlap.
pub fn guard_key(ns: &str) -> Vec<u8> {
    format!("/registry/quota-guards/{ns}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_count_by_storage_and_class() {
        let claim = |name: &str, class: &str, size: &str| -> Object {
            serde_json::from_value(
                serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": "d"},
                "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                    "resources": {"requests": {"storage": size}}}}),
            )
            .unwrap()
        };
        let objects = [claim("a", "gold", "1Gi"), claim("b", "standard", "2Gi")];
        assert_eq!(
            usage("requests.storage", objects.iter()),
            3 * (1 << 30) * 1_000_000_000
        );
        assert_eq!(
            usage(
                "gold.storageclass.storage.k8s.io/requests.storage",
                objects.iter()
            ),
            (1 << 30) * 1_000_000_000
        );
        assert_eq!(
            usage(
                "standard.storageclass.storage.k8s.io/persistentvolumeclaims",
                objects.iter()
            ),
            1_000_000_000
        );
        assert_eq!(
            usage("persistentvolumeclaims", objects.iter()),
            2_000_000_000
        );
        let hard: BTreeMap<String, Quantity> = [(
            "requests.storage".to_owned(),
            Quantity::parse("2Gi").unwrap(),
        )]
        .into();
        assert_eq!(
            tracked_kinds(&hard),
            BTreeSet::from([Kind::PersistentVolumeClaim])
        );
    }

    fn quota(hard: serde_json::Value) -> ResourceQuota {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": "compute", "namespace": "d"}, "spec": {"hard": hard}}))
        .expect("a quota")
    }

    fn pod(name: &str, cpu: Option<&str>) -> Object {
        let resources = cpu.map_or(
            json!({}),
            |c| json!({"requests": {"cpu": c}, "limits": {"cpu": c}}),
        );
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "d"},
            "spec": {"containers": [{"name": "c", "image": "x", "resources": resources}]}}))
        .expect("a pod")
    }

    #[test]
    fn pods_fit_until_the_quota_is_used_up() {
        let q = [quota(json!({"pods": "2", "requests.cpu": "1"}))];
        let existing = [pod("a", Some("500m"))];
        assert!(check(&q, &existing, &[&pod("b", Some("500m"))]).is_ok());
        let (_, e) = check(&q, &existing, &[&pod("b", Some("600m"))]).unwrap_err();
        assert_eq!(
            e,
            "exceeded quota: compute, requested: pods=1,requests.cpu=600m, used: pods=1,requests.cpu=500m, limited: pods=2,requests.cpu=1"
        );
        let full = [pod("a", Some("100m")), pod("b", Some("100m"))];
        let (_, e) = check(&q, &full, &[&pod("c", Some("100m"))]).unwrap_err();
        assert!(
            e.starts_with("exceeded quota: compute, requested: pods=1"),
            "{e}"
        );
    }

    #[test]
    fn a_pod_must_state_what_the_quota_tracks_and_counts_are_by_kind() {
        let q = [quota(json!({"limits.memory": "1Gi"}))];
        let (_, e) = check(&q, &[], &[&pod("a", None)]).unwrap_err();
        assert_eq!(
            e,
            "failed quota: compute: must specify limits.memory for: c"
        );
        let services = [quota(json!({"count/services": "1", "configmaps": "5"}))];
        let svc: Object = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "namespace": "d"}, "spec": {"ports": [{"port": 80}]}}))
        .unwrap();
        assert!(check(&services, &[], &[&svc]).is_ok());
        let (_, e) = check(&services, std::slice::from_ref(&svc), &[&svc]).unwrap_err();
        assert!(e.contains("count/services=1"), "{e}");
    }

    #[test]
    fn scoped_quotas_count_only_the_pods_they_select() {
        let best_effort: ResourceQuota = serde_json::from_value(json!({"apiVersion": "v1",
            "kind": "ResourceQuota", "metadata": {"name": "be", "namespace": "d"},
            "spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]}}))
        .unwrap();
        // Pods with requests are not BestEffort: not counted, not limited.
        let q = [best_effort];
        let sized = [pod("a", Some("100m")), pod("b", Some("100m"))];
        assert!(check(&q, &sized, &[&pod("c", Some("100m"))]).is_ok());
        assert!(check(&q, &sized, &[&pod("c", None)]).is_ok());
        let (_, e) = check(&q, &[pod("a", None)], &[&pod("c", None)]).unwrap_err();
        assert!(
            e.starts_with("exceeded quota: be, requested: pods=1, used: pods=1"),
            "{e}"
        );

        // PriorityClass In: only pods of that class must state the CPU.
        let high: ResourceQuota = serde_json::from_value(json!({"apiVersion": "v1",
            "kind": "ResourceQuota", "metadata": {"name": "high", "namespace": "d"},
            "spec": {"hard": {"limits.cpu": "1"}, "scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}}))
        .unwrap();
        let q = [high];
        assert!(check(&q, &[], &[&pod("plain", None)]).is_ok());
        let mut urgent = pod("urgent", None);
        if let Object::Pod(p) = &mut urgent {
            p.spec.priority_class_name = Some("high".into());
        }
        let (_, e) = check(&q, &[], &[&urgent]).unwrap_err();
        assert_eq!(e, "failed quota: high: must specify limits.cpu for: c");
    }
}

#[cfg(test)]
mod server_tests {
    /// Through a real API server: the second pod over a one-pod quota is
    /// refused and not written; other namespaces are not limited.
    #[tokio::test]
    async fn a_quota_refuses_what_does_not_fit() {
        let (_dir, server) = crate::apiserver::bootstrap::test_server().await;
        let quota = r#"{"apiVersion":"v1","kind":"ResourceQuota","metadata":{"name":"one","namespace":"default"},"spec":{"hard":{"pods":"1"}}}"#;
        server.apply(&[quota.to_owned()], false).await.unwrap();
        let pod = |name: &str, ns: &str| {
            format!(
                r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"{ns}"}},"spec":{{"containers":[{{"name":"c","image":"x"}}]}}}}"#
            )
        };
        server.apply(&[pod("a", "default")], false).await.unwrap();
        let e = server
            .apply(&[pod("b", "default")], false)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("exceeded quota: one, requested: pods=1, used: pods=1, limited: pods=1"),
            "{e}"
        );
        server
            .apply(&[pod("b", "kube-public")], false)
            .await
            .unwrap();
    }

    /// Twenty creations at once against a five-pod quota: exactly five
    /// are written, every other one is refused with the quota's words.
    #[tokio::test]
    async fn concurrent_creations_take_the_last_unit_once() {
        let (_dir, server) = crate::apiserver::bootstrap::test_server().await;
        let quota = r#"{"apiVersion":"v1","kind":"ResourceQuota","metadata":{"name":"five","namespace":"default"},"spec":{"hard":{"pods":"5"}}}"#;
        server.apply(&[quota.to_owned()], false).await.unwrap();
        let server = std::sync::Arc::new(server);
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let server = std::sync::Arc::clone(&server);
                tokio::spawn(async move {
                    let pod = format!(
                        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"p{i}","namespace":"default"}},"spec":{{"containers":[{{"name":"c","image":"x"}}]}}}}"#
                    );
                    server.apply(&[pod], false).await
                })
            })
            .collect();
        let (mut written, mut refused) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => written += 1,
                Err(e) => {
                    assert!(e.to_string().contains("exceeded quota: five"), "{e}");
                    refused += 1;
                }
            }
        }
        assert_eq!((written, refused), (5, 15));
        let (pods, _) = server
            .list(
                jotasu_api::Kind::Pod,
                Some("default"),
                &jotasu_api::LabelSelector::default(),
            )
            .await
            .unwrap();
        assert_eq!(pods.len(), 5, "pods stored: {}", pods.len());
    }
}
