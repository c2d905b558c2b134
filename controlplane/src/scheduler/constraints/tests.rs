//! Affinity and spread rules through the scheduler's own pick, on a
//! cluster built in memory.

use std::sync::Arc;

use jotasu_api::Pod;
use serde_json::{Value, json};

use crate::scheduler::Scoring;
use crate::scheduler::filter::{PodNeeds, unschedulable_message};
use crate::scheduler::nodes::tests::{key, node};
use crate::scheduler::nodes::{Cluster, owner_of};
use crate::scheduler::resources::pod_usage;
use crate::scheduler::score::pick;

/// Nodes with these labels (8 CPU each; `kubernetes.io/hostname` = name).
fn cluster(nodes: &[(&str, &[(&str, &str)])]) -> Cluster {
    let mut c = Cluster::new();
    for (name, labels) in nodes {
        let mut n = node(name, "8", "16Gi", "110");
        n.metadata
            .labels
            .insert("kubernetes.io/hostname".into(), (*name).into());
        for (k, v) in *labels {
            n.metadata.labels.insert((*k).into(), (*v).into());
        }
        c.set_node(Arc::new(n));
    }
    c
}

/// A pod with `labels` and these spec fields (100m CPU).
fn pod(name: &str, labels: Value, spec: Value) -> Pod {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "c", "image": "x",
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]);
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default",
        "labels": labels}, "spec": spec}))
    .expect("pod")
}

/// Schedules `p` as the scheduler does (choice counted as assumed); the
/// node's name, or the unschedulable message.
fn schedule(c: &mut Cluster, p: &Pod) -> Result<String, String> {
    let needs = PodNeeds::of(p);
    let (group, rules) = c.rules_for(p);
    match pick(
        c,
        &needs,
        rules.as_ref(),
        Scoring::MostAllocated,
        &mut Vec::new(),
    ) {
        Some(slot) => {
            c.assume(
                key(p.metadata.name()),
                slot,
                pod_usage(p),
                owner_of(p),
                group,
            );
            Ok(c.slots()[slot].name.clone())
        }
        None => Err(unschedulable_message(c.slots(), &needs, rules.as_ref())),
    }
}

fn anti_affinity(app: &str, key: &str) -> Value {
    json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        [{"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}}})
}

#[test]
fn required_anti_affinity_puts_one_replica_per_node() {
    let mut c = cluster(&[("n1", &[]), ("n2", &[]), ("n3", &[])]);
    let spec = anti_affinity("web", "kubernetes.io/hostname");
    let mut used: Vec<String> = (0..3)
        .map(|i| {
            schedule(
                &mut c,
                &pod(&format!("web-{i}"), json!({"app": "web"}), spec.clone()),
            )
            .unwrap()
        })
        .collect();
    used.sort();
    assert_eq!(used, ["n1", "n2", "n3"]);
    assert_eq!(
        schedule(&mut c, &pod("web-3", json!({"app": "web"}), spec)),
        Err("0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules.".into())
    );
    // Another app is not affected by web's rule.
    assert!(schedule(&mut c, &pod("db", json!({"app": "db"}), json!({}))).is_ok());
}

#[test]
fn a_placed_pods_anti_affinity_keeps_the_pods_it_selects_away() {
    let mut c = cluster(&[("n1", &[]), ("n2", &[])]);
    let lonely = schedule(
        &mut c,
        &pod(
            "lonely",
            json!({"app": "lonely"}),
            anti_affinity("noisy", "kubernetes.io/hostname"),
        ),
    )
    .unwrap();
    for i in 0..4 {
        let at = schedule(
            &mut c,
            &pod(&format!("noisy-{i}"), json!({"app": "noisy"}), json!({})),
        )
        .unwrap();
        assert_ne!(
            at, lonely,
            "noisy-{i} placed beside the pod that refuses it"
        );
    }
    // With its only other node gone, a noisy pod has nowhere to go.
    let other = if lonely == "n1" { "n2" } else { "n1" };
    c.remove_node(other);
    assert_eq!(
        schedule(&mut c, &pod("noisy-9", json!({"app": "noisy"}), json!({}))),
        Err(
            "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules."
                .into()
        )
    );
}

#[test]
fn required_pod_affinity_follows_the_selected_pods() {
    let mut c = cluster(&[("n1", &[]), ("n2", &[]), ("n3", &[])]);
    let near_cache = json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        [{"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    assert_eq!(
        schedule(
            &mut c,
            &pod("web-0", json!({"app": "web"}), near_cache.clone())
        ),
        Err("0/3 nodes are available: 3 node(s) didn't match pod affinity rules.".into())
    );
    let cache = schedule(&mut c, &pod("cache", json!({"app": "cache"}), json!({}))).unwrap();
    for i in 1..4 {
        assert_eq!(
            schedule(
                &mut c,
                &pod(
                    &format!("web-{i}"),
                    json!({"app": "web"}),
                    near_cache.clone()
                )
            )
            .unwrap(),
            cache
        );
    }
    // The first pod of a group that selects itself may go anywhere.
    let own = json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        [{"labelSelector": {"matchLabels": {"app": "pack"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    let first = schedule(&mut c, &pod("pack-0", json!({"app": "pack"}), own.clone())).unwrap();
    assert_eq!(
        schedule(&mut c, &pod("pack-1", json!({"app": "pack"}), own)).unwrap(),
        first
    );
}

#[test]
fn node_affinity_requires_and_prefers() {
    let mut c = cluster(&[
        ("a1", &[("zone", "a"), ("cores", "4")]),
        ("b1", &[("zone", "b"), ("cores", "16")]),
        ("c1", &[("zone", "c")]),
    ]);
    let required = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]}]}}}});
    assert_eq!(
        schedule(&mut c, &pod("big", json!({}), required)).unwrap(),
        "b1"
    );
    let nowhere = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z"]}]}]}}}});
    assert_eq!(
        schedule(&mut c, &pod("lost", json!({}), nowhere)),
        Err("0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.".into())
    );
    // A preference outweighs bin-packing towards the fuller node b1.
    let prefer_c = json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution":
        [{"weight": 100, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["c"]}]}}]}}});
    assert_eq!(
        schedule(&mut c, &pod("likes-c", json!({}), prefer_c)).unwrap(),
        "c1"
    );
}

#[test]
fn spread_constraints_bound_the_skew_between_zones() {
    let mut c = cluster(&[
        ("a1", &[("zone", "a")]),
        ("a2", &[("zone", "a")]),
        ("b1", &[("zone", "b")]),
        ("x", &[]),
    ]);
    let spec = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]});
    let mut zones = std::collections::BTreeMap::<String, u32>::new();
    for i in 0..6 {
        let at = schedule(
            &mut c,
            &pod(&format!("web-{i}"), json!({"app": "web"}), spec.clone()),
        )
        .unwrap();
        assert_ne!(at, "x", "a node without the zone label took web-{i}");
        *zones.entry(at[..1].to_owned()).or_default() += 1;
    }
    assert_eq!(zones, [("a".to_owned(), 3), ("b".to_owned(), 3)].into());
    // Pods held to zone a by their nodeSelector, counting zone b too
    // (nodeAffinityPolicy: Ignore): the second one would make the skew 2.
    let held = json!({"nodeSelector": {"zone": "a"}, "topologySpreadConstraints": [{"maxSkew": 1,
        "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "nodeAffinityPolicy": "Ignore",
        "labelSelector": {"matchLabels": {"app": "held"}}}]});
    assert!(schedule(&mut c, &pod("held-0", json!({"app": "held"}), held.clone())).is_ok());
    assert_eq!(
        schedule(&mut c, &pod("held-1", json!({"app": "held"}), held)),
        Err("0/4 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 2 node(s) didn't match pod topology spread constraints.".into())
    );
}

#[test]
fn schedule_anyway_spreads_over_hosts_despite_bin_packing() {
    let mut c = cluster(&[("n1", &[]), ("n2", &[]), ("n3", &[])]);
    let spec = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "web"}}}]});
    let mut used: Vec<String> = (0..3)
        .map(|i| {
            schedule(
                &mut c,
                &pod(&format!("web-{i}"), json!({"app": "web"}), spec.clone()),
            )
            .unwrap()
        })
        .collect();
    used.sort();
    assert_eq!(used, ["n1", "n2", "n3"]);
    // Without the constraint MostAllocated packs pods onto one node.
    let a = schedule(&mut c, &pod("p-0", json!({"app": "p"}), json!({}))).unwrap();
    let b = schedule(&mut c, &pod("p-1", json!({"app": "p"}), json!({}))).unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_missing_topology_label_is_reported() {
    let mut c = cluster(&[("x", &[])]);
    let spec = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]});
    assert_eq!(
        schedule(&mut c, &pod("web", json!({"app": "web"}), spec)),
        Err("0/1 nodes are available: 1 node(s) didn't match pod topology spread constraints (missing required label).".into())
    );
}
