//! Kubernetes' LimitRanger admission: when a pod is created, the
//! LimitRanges of its namespace give its containers default limits and
//! requests, then bound them (`min`, `max`, `maxLimitRequestRatio`, per
//! Container and per Pod). A pod outside the bounds is refused with every
//! broken bound, in Kubernetes' words. Plain functions over the ranges the
//! API server read.

use std::collections::BTreeMap;

use jotasu_api::kinds::limits::{LimitRange, LimitRangeItem};
use jotasu_api::kinds::pod::ResourceRequirements;
use jotasu_api::{Container, Kind, Object, Outcome, Pod, Quantity};

use super::admit::Prepared;
use super::error::{ApiResult, ApiServerError};

/// Fills the pod's containers' missing limits and requests from the
/// `Container` items' `default` and `defaultRequest` (a request defaults to
/// the default limit when no defaultRequest is given, and to the
/// container's own limit otherwise, as in Kubernetes).
pub fn apply_defaults(pod: &mut Pod, ranges: &[&LimitRange]) {
    let items: Vec<&LimitRangeItem> = container_items(ranges).collect();
    for c in pod
        .spec
        .init_containers
        .iter_mut()
        .chain(pod.spec.containers.iter_mut())
    {
        let resources = c
            .resources
            .get_or_insert_with(ResourceRequirements::default);
        // A container's own limit is its request when it gives none (the
        // API's pod defaulting, before LimitRanger).
        let own: Vec<(String, Quantity)> = resources
            .limits
            .iter()
            .map(|(r, q)| (r.clone(), q.clone()))
            .collect();
        for (r, q) in own {
            resources.requests.entry(r).or_insert(q);
        }
        for item in &items {
            for (r, q) in &item.default {
                resources
                    .limits
                    .entry(r.clone())
                    .or_insert_with(|| q.clone());
            }
            for (r, q) in item.default_request.iter().chain(&item.default) {
                resources
                    .requests
                    .entry(r.clone())
                    .or_insert_with(|| q.clone());
            }
        }
        if resources.requests.is_empty() && resources.limits.is_empty() && items.is_empty() {
            c.resources = None;
        }
    }
}

fn container_items<'a>(ranges: &'a [&'a LimitRange]) -> impl Iterator<Item = &'a LimitRangeItem> {
    ranges
        .iter()
        .flat_map(|l| &l.spec.limits)
        .filter(|i| i.type_ == "Container")
}

fn request_of(c: &Container, r: &str) -> Option<Quantity> {
    let res = c.resources.as_ref()?;
    res.requests.get(r).or_else(|| res.limits.get(r)).cloned()
}

fn limit_of(c: &Container, r: &str) -> Option<Quantity> {
    c.resources.as_ref()?.limits.get(r).cloned()
}

/// The item's `min` against the requests (`what`: Container, Pod,
/// PersistentVolumeClaim).
fn check_min(
    item: &LimitRangeItem,
    what: &str,
    request: &impl Fn(&str) -> Option<Quantity>,
    out: &mut Vec<String>,
) {
    for (r, min) in &item.min {
        match request(r) {
            None => out.push(format!(
                "minimum {r} usage per {what} is {min}.  No request is specified"
            )),
            Some(q) if q.nanos() < min.nanos() => out.push(format!(
                "minimum {r} usage per {what} is {min}, but request is {q}"
            )),
            Some(_) => {}
        }
    }
}

/// Checks one set of amounts against an item; `what` is `Container` or `Pod`.
fn check(
    item: &LimitRangeItem,
    what: &str,
    request: impl Fn(&str) -> Option<Quantity>,
    limit: impl Fn(&str) -> Option<Quantity>,
    out: &mut Vec<String>,
) {
    check_min(item, what, &request, out);
    for (r, max) in &item.max {
        match limit(r) {
            None => out.push(format!(
                "maximum {r} usage per {what} is {max}.  No limit is specified"
            )),
            Some(q) if q.nanos() > max.nanos() => out.push(format!(
                "maximum {r} usage per {what} is {max}, but limit is {q}"
            )),
            Some(_) => {}
        }
    }
    for (r, ratio) in &item.max_limit_request_ratio {
        let (Some(l), Some(q)) = (limit(r), request(r)) else {
            out.push(format!(
                "{r} max limit to request ratio per {what} is {ratio}, but no request or limit is specified"
            ));
            continue;
        };
        if q.nanos() <= 0 {
            out.push(format!(
                "{r} max limit to request ratio per {what} is {ratio}, but no request is specified or request is 0"
            ));
            continue;
        }
        let actual = l.nanos() as f64 / q.nanos() as f64;
        if actual > ratio.nanos() as f64 / 1e9 {
            out.push(format!(
                "{r} max limit to request ratio per {what} is {ratio}, but provided ratio is {actual:.6}"
            ));
        }
    }
}

/// Every bound the pod breaks.
pub fn violations(pod: &Pod, ranges: &[&LimitRange]) -> Vec<String> {
    let mut out = Vec::new();
    for item in ranges.iter().flat_map(|l| &l.spec.limits) {
        match item.type_.as_str() {
            "Container" => {
                for c in pod.spec.init_containers.iter().chain(&pod.spec.containers) {
                    check(
                        item,
                        "Container",
                        |r| request_of(c, r),
                        |r| limit_of(c, r),
                        &mut out,
                    );
                }
            }
            "Pod" => {
                let sum = |f: &dyn Fn(&Container, &str) -> Option<Quantity>, r: &str| {
                    let amounts: Vec<Quantity> = pod
                        .spec
                        .containers
                        .iter()
                        .map(|c| f(c, r))
                        .collect::<Option<_>>()?;
                    if let [one] = amounts.as_slice() {
                        return Some(one.clone());
                    }
                    let total: i128 = amounts.iter().map(Quantity::nanos).sum();
                    if r == "cpu" {
                        i64::try_from(total / 1_000_000)
                            .ok()
                            .map(Quantity::from_millis)
                    } else {
                        i64::try_from(total / 1_000_000_000)
                            .ok()
                            .map(Quantity::from_units)
                    }
                };
                check(
                    item,
                    "Pod",
                    |r| sum(&request_of, r),
                    |r| sum(&limit_of, r),
                    &mut out,
                );
            }
            _ => {}
        }
    }
    out
}

/// Every bound of the ranges' `PersistentVolumeClaim` items the claim
/// breaks: `min` and `max` against its requests (Kubernetes compares the
/// request with both).
pub fn claim_violations(
    claim: &jotasu_api::PersistentVolumeClaim,
    ranges: &[&LimitRange],
) -> Vec<String> {
    let mut out = Vec::new();
    let requests = claim
        .spec
        .resources
        .as_ref()
        .map(|r| r.requests.clone())
        .unwrap_or_default();
    let items = ranges
        .iter()
        .flat_map(|l| &l.spec.limits)
        .filter(|i| i.type_ == "PersistentVolumeClaim");
    for item in items {
        let what = "PersistentVolumeClaim";
        check_min(item, what, &|r| requests.get(r).cloned(), &mut out);
        for (r, max) in &item.max {
            if let Some(q) = requests.get(r).filter(|q| q.nanos() > max.nanos()) {
                out.push(format!(
                    "maximum {r} usage per {what} is {max}, but request is {q}"
                ));
            }
        }
    }
    out
}

/// Defaults and checks every pod the apply creates against the
/// LimitRanges of its namespace (stored ones, `by_namespace`, and those the
/// apply itself brings).
pub fn admit(
    prepared: &mut [Prepared],
    by_namespace: &BTreeMap<String, Vec<LimitRange>>,
) -> ApiResult<()> {
    let in_request: Vec<LimitRange> = prepared
        .iter()
        .filter_map(|p| match &p.object {
            Object::LimitRange(l) => Some(l.clone()),
            _ => None,
        })
        .collect();
    for p in prepared.iter_mut() {
        if p.outcome != Outcome::Created {
            continue;
        }
        let r = p.object.object_ref();
        let ns = p.object.namespace().unwrap_or_default().to_owned();
        let ranges_of = |ns: &str| -> Vec<&LimitRange> {
            let mut ranges: Vec<&LimitRange> = by_namespace
                .get(ns)
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            for l in &in_request {
                if l.metadata.namespace.as_deref() == Some(ns) {
                    ranges.retain(|s| s.metadata.name() != l.metadata.name());
                    ranges.push(l);
                }
            }
            ranges
        };
        if let Object::PersistentVolumeClaim(claim) = &p.object {
            let broken = claim_violations(claim, &ranges_of(&ns));
            if !broken.is_empty() {
                return Err(ApiServerError::Refused {
                    object: r,
                    reason: broken.join(", "),
                });
            }
            continue;
        }
        let Object::Pod(pod) = &mut p.object else {
            continue;
        };
        let ranges = ranges_of(&ns);
        if ranges.is_empty() {
            continue;
        }
        apply_defaults(pod, &ranges);
        let broken = violations(pod, &ranges);
        if !broken.is_empty() {
            let reason = if broken.len() == 1 {
                broken.into_iter().next().unwrap_or_default()
            } else {
                format!("[{}]", broken.join(", "))
            };
            return Err(ApiServerError::Refused { object: r, reason });
        }
    }
    Ok(())
}

impl<S: crate::store::Store> super::ApiServer<S> {
    /// Reads the LimitRanges of the namespaces the apply creates pods in
    /// and admits the pods ([`admit`]); returns the keys read with their
    /// revisions, which the commit holds unchanged.
    pub(super) async fn admit_limits(
        &self,
        prepared: &mut [Prepared],
    ) -> ApiResult<Vec<(Vec<u8>, crate::store::Revision)>> {
        let namespaces: std::collections::BTreeSet<String> = prepared
            .iter()
            .filter(|p| {
                p.outcome == Outcome::Created
                    && matches!(p.object.kind(), Kind::Pod | Kind::PersistentVolumeClaim)
            })
            .filter_map(|p| p.object.namespace().map(str::to_owned))
            .collect();
        let mut by_namespace: BTreeMap<String, Vec<LimitRange>> = BTreeMap::new();
        let mut read = Vec::new();
        for ns in namespaces {
            let prefix = super::keys::kind_prefix(Kind::LimitRange, Some(&ns));
            for kv in &self.store.range(&prefix, None).await?.kvs {
                if let Object::LimitRange(l) = super::decode(kv)? {
                    by_namespace.entry(ns.clone()).or_default().push(l);
                    read.push((kv.key.clone(), kv.mod_revision));
                }
            }
        }
        admit(prepared, &by_namespace)?;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn range(spec: serde_json::Value) -> LimitRange {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "LimitRange",
            "metadata": {"name": "limits", "namespace": "default"}, "spec": spec}))
        .expect("a LimitRange")
    }

    fn pod(resources: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "x", "resources": resources}]}}))
        .expect("a pod")
    }

    fn amounts(p: &Pod) -> (String, String) {
        let r = p.spec.containers[0].resources.as_ref().expect("resources");
        let get = |m: &BTreeMap<String, Quantity>| {
            m.get("cpu").map(ToString::to_string).unwrap_or_default()
        };
        (get(&r.requests), get(&r.limits))
    }

    #[test]
    fn defaults_fill_what_containers_leave_out() {
        let l = range(json!({"limits": [{"type": "Container",
            "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "250m"}}]}));
        let mut p = pod(json!({}));
        apply_defaults(&mut p, &[&l]);
        assert_eq!(amounts(&p), ("250m".into(), "500m".into()));
        // A container's own limit becomes its request when it gives none.
        let only_default =
            range(json!({"limits": [{"type": "Container", "default": {"cpu": "1"}}]}));
        let mut p = pod(json!({"limits": {"cpu": "2"}}));
        apply_defaults(&mut p, &[&only_default]);
        assert_eq!(amounts(&p), ("2".into(), "2".into()));
    }

    #[test]
    fn bounds_are_checked_in_kubernetes_words() {
        let l = range(json!({"limits": [
            {"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1"},
             "maxLimitRequestRatio": {"cpu": "2"}},
            {"type": "Pod", "max": {"memory": "1Gi"}}]}));
        let p = pod(json!({"requests": {"cpu": "50m"}, "limits": {"cpu": "2", "memory": "2Gi"}}));
        let v = violations(&p, &[&l]);
        assert_eq!(
            v,
            [
                "minimum cpu usage per Container is 100m, but request is 50m",
                "maximum cpu usage per Container is 1, but limit is 2",
                "cpu max limit to request ratio per Container is 2, but provided ratio is 40.000000",
                "maximum memory usage per Pod is 1Gi, but limit is 2Gi",
            ]
        );
        let fits =
            pod(json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "1", "memory": "512Mi"}}));
        assert!(violations(&fits, &[&l]).is_empty());
    }
    #[test]
    fn claims_are_bounded_by_persistent_volume_claim_items() {
        let l = range(json!({"limits": [{"type": "PersistentVolumeClaim",
            "min": {"storage": "1Gi"}, "max": {"storage": "5Gi"}}]}));
        let claim = |size: &str| -> jotasu_api::PersistentVolumeClaim {
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "c", "namespace": "default"},
                "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": size}}}}))
            .unwrap()
        };
        assert!(claim_violations(&claim("2Gi"), &[&l]).is_empty());
        assert_eq!(
            claim_violations(&claim("10Gi"), &[&l]),
            ["maximum storage usage per PersistentVolumeClaim is 5Gi, but request is 10Gi"]
        );
        assert_eq!(
            claim_violations(&claim("500Mi"), &[&l]),
            ["minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"]
        );
    }
}

#[cfg(test)]
mod server_tests {
    use jotasu_api::{Kind, ObjectRef};

    /// Through a real API server: a namespace's LimitRange gives a new pod
    /// its defaults, refuses one over its max, and leaves pods of other
    /// namespaces alone.
    #[tokio::test]
    async fn a_limit_range_defaults_and_bounds_new_pods() {
        let (_dir, server) = crate::apiserver::bootstrap::test_server().await;
        let range = r#"{"apiVersion":"v1","kind":"LimitRange","metadata":{"name":"cpu","namespace":"default"},
            "spec":{"limits":[{"type":"Container","default":{"cpu":"500m"},"defaultRequest":{"cpu":"200m"},"max":{"cpu":"1"}}]}}"#;
        server.apply(&[range.to_owned()], false).await.unwrap();
        let pod = |name: &str, ns: &str, resources: &str| {
            format!(
                r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"{ns}"}},"spec":{{"containers":[{{"name":"c","image":"x","resources":{resources}}}]}}}}"#
            )
        };
        server
            .apply(&[pod("plain", "default", "{}")], false)
            .await
            .unwrap();
        let r = |name: &str, ns: &str| ObjectRef {
            kind: Kind::Pod,
            namespace: Some(ns.into()),
            name: name.into(),
        };
        let stored: jotasu_api::Pod =
            serde_json::from_str(&server.get(&r("plain", "default")).await.unwrap()).unwrap();
        let res = stored.spec.containers[0].resources.clone().unwrap();
        assert_eq!(res.limits["cpu"].to_string(), "500m");
        assert_eq!(res.requests["cpu"].to_string(), "200m");
        let e = server
            .apply(&[pod("big", "default", r#"{"limits":{"cpu":"2"}}"#)], false)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("maximum cpu usage per Container is 1, but limit is 2"),
            "{e}"
        );
        assert!(server.get(&r("big", "default")).await.is_err());
        server
            .apply(
                &[pod("elsewhere", "kube-public", r#"{"limits":{"cpu":"2"}}"#)],
                false,
            )
            .await
            .unwrap();
    }
}
