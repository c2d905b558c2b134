//! The replica calculation against Kubernetes' own examples
//! (pkg/controller/podautoscaler/replica_calculator_test.go scenarios and
//! the documented algorithm).

use jotasu_api::kinds::pod::ResourceRequirements;
use jotasu_api::kinds::pod_status::{PodPhase, PodStatus};
use jotasu_api::{Condition, Container, Pod, Quantity, Time};

use super::*;

const NOW: i64 = 1_000_000;

/// A running pod requesting `cpu` millicores, ready (or not) since long
/// ago, started `age` seconds ago.
fn pod(name: &str, cpu: i64, ready: bool, age: i64) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    let mut c = Container {
        name: "c".into(),
        ..Container::default()
    };
    let mut r = ResourceRequirements::default();
    r.requests.insert("cpu".into(), Quantity::from_millis(cpu));
    r.requests
        .insert("memory".into(), Quantity::parse("100Mi").expect("q"));
    c.resources = Some(r);
    p.spec.containers.push(c);
    p.status = Some(PodStatus {
        phase: Some(PodPhase::Running),
        start_time: Some(Time::from_unix_seconds(NOW - age)),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: ready.into(),
            last_transition_time: Some(Time::from_unix_seconds(NOW - age + 40)),
            ..Condition::default()
        }],
        ..PodStatus::default()
    });
    p
}

fn pods(n: usize) -> Vec<Pod> {
    (0..n)
        .map(|i| pod(&format!("p{i}"), 1000, true, 3600))
        .collect()
}

fn samples<'a>(pods: &'a [Pod], usage: &[Option<i64>]) -> Vec<Sample<'a>> {
    pods.iter()
        .zip(usage)
        .map(|(pod, usage)| Sample { pod, usage: *usage })
        .collect()
}

fn cpu(current: i32, target: i32, pods: &[Pod], usage: &[Option<i64>]) -> Proposal {
    replicas(
        current,
        "cpu",
        Target::Utilization(target),
        &samples(pods, usage),
        NOW,
    )
    .expect("a proposal")
}

#[test]
fn scale_up() {
    // 1500m of 3000m requested is 50 % against 30 %: ceil(1.67 × 3) = 5.
    let p = cpu(3, 30, &pods(3), &[Some(300), Some(500), Some(700)]);
    assert_eq!(
        p,
        Proposal {
            replicas: 5,
            utilization: Some(50),
            average: 500
        }
    );
}

#[test]
fn scale_down() {
    // 1400m of 5000m is 28 % against 50 %: ceil(0.56 × 5) = 3.
    let p = cpu(
        5,
        50,
        &pods(5),
        &[Some(100), Some(300), Some(500), Some(250), Some(250)],
    );
    assert_eq!((p.replicas, p.utilization), (3, Some(28)));
}

#[test]
fn within_tolerance_nothing_changes() {
    let p = cpu(3, 100, &pods(3), &[Some(1010), Some(1030), Some(1020)]);
    assert_eq!((p.replicas, p.utilization), (3, Some(102)));
}

#[test]
fn unready_pods_count_as_idle_when_scaling_up() {
    // Ready pods use 1200m of 2000m (60 % against 30 %); the unready one
    // counts as 0 %: 1200m of 3000m is 40 %, ceil(1.33 × 3) = 4.
    let mut ps = pods(3);
    ps[0] = pod("p0", 1000, false, 10);
    let p = cpu(3, 30, &ps, &[Some(300), Some(500), Some(700)]);
    assert_eq!((p.replicas, p.utilization, p.average), (4, Some(60), 600));
}

#[test]
fn pending_pods_are_unready_and_failed_or_deleted_ones_ignored() {
    let mut ps = pods(4);
    ps[1].status.as_mut().expect("s").phase = Some(PodPhase::Pending);
    ps[2].status.as_mut().expect("s").phase = Some(PodPhase::Failed);
    ps[3].metadata.deletion_timestamp = Some(Time::from_unix_seconds(NOW));
    // Only p0 counts: 500 % of its request, then p1 as 0 %: 250 % → ceil(2.5 × 2) = 5.
    let p = cpu(4, 100, &ps, &[Some(5000), None, Some(9000), Some(9000)]);
    assert_eq!(p.replicas, 5);
}

#[test]
fn missing_metrics_count_as_full_on_scale_down_and_idle_on_scale_up() {
    // Scale down: 400m + 400m + (missing: 1000m) of 3000m = 60 % against
    // 100 %: ceil(0.6 × 3) = 2.
    let p = cpu(3, 100, &pods(3), &[Some(400), Some(400), None]);
    assert_eq!(p.replicas, 2);
    assert_eq!(
        p.utilization,
        Some(40),
        "reported from the pods with metrics"
    );
    // Scale up: 2000m + 0 of 2000m... 1 pod at 200 %, the missing one at
    // 0 %: 100 % — within tolerance, so nothing changes.
    let p = cpu(2, 100, &pods(2), &[Some(2000), None]);
    assert_eq!(p.replicas, 2);
    // Scale up with room: 300 % and 0 %: 150 %, ceil(1.5 × 2) = 3.
    let p = cpu(2, 100, &pods(2), &[Some(3000), None]);
    assert_eq!(p.replicas, 3);
}

#[test]
fn a_change_of_direction_keeps_the_count() {
    // 50 % against 60 % says down, but with the missing pod at 100 % it
    // is 75 %, up: the count stays.
    let p = cpu(2, 60, &pods(2), &[Some(500), None]);
    assert_eq!(p.replicas, 2);
}

#[test]
fn cpu_samples_of_young_unready_pods_are_left_out_but_old_ones_used() {
    // Started 10 s ago and not ready: unready. Started an hour ago, ready
    // long ago, unready now: its usage counts.
    let young = pod("y", 1000, false, 10);
    let old = pod("o", 1000, false, 3600);
    assert!(cpu_unready(&young, NOW));
    assert!(!cpu_unready(&old, NOW));
    let mut never = pod("n", 1000, false, 3600);
    never.status.as_mut().expect("s").conditions[0].last_transition_time =
        Some(Time::from_unix_seconds(NOW - 3600 + 5));
    assert!(cpu_unready(&never, NOW), "never ready since its start");
}

#[test]
fn average_value_targets() {
    // The documented example: 200m per pod against 100m doubles, 50m halves.
    let ps = pods(2);
    let avg = |usage: i64| {
        replicas(
            2,
            "cpu",
            Target::AverageValue(100),
            &samples(&ps, &[Some(usage), Some(usage)]),
            NOW,
        )
        .expect("a proposal")
    };
    assert_eq!(avg(200).replicas, 4);
    assert_eq!(avg(50).replicas, 1);
    assert_eq!(avg(200).average, 200);
    assert_eq!(avg(200).utilization, None);
}

#[test]
fn memory_ignores_readiness() {
    let mut ps = pods(2);
    ps[0] = pod("young", 1000, false, 10);
    let mib = 1024 * 1024 * 1000;
    let p = replicas(
        2,
        "memory",
        Target::Utilization(50),
        &samples(&ps, &[Some(100 * mib), Some(100 * mib)]),
        NOW,
    )
    .expect("a proposal");
    assert_eq!((p.replicas, p.utilization), (4, Some(100)));
}

#[test]
fn errors() {
    let ps = pods(2);
    let none = replicas(
        2,
        "cpu",
        Target::Utilization(50),
        &samples(&ps, &[None, None]),
        NOW,
    );
    assert!(
        none.expect_err("no metrics")
            .contains("no metrics returned")
    );
    let mut bare = pods(1);
    bare[0].spec.containers[0].resources = None;
    let missing = replicas(
        1,
        "cpu",
        Target::Utilization(50),
        &samples(&bare, &[Some(5)]),
        NOW,
    );
    assert_eq!(
        missing.expect_err("no request"),
        "missing request for cpu in container c of Pod p0"
    );
    let young = [pod("y", 1000, false, 10)];
    let unready = replicas(
        1,
        "cpu",
        Target::Utilization(50),
        &samples(&young, &[Some(5)]),
        NOW,
    );
    assert!(
        unready
            .expect_err("unready")
            .contains("pods might be unready")
    );
}
