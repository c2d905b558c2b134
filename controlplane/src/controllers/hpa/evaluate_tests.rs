//! Whole evaluations: scaling decisions and the status Kubernetes reports.

use jotasu_api::{ConditionStatus, Deployment, HorizontalPodAutoscaler, Object, Pod, Quantity};

use super::*;
use crate::controllers::hpa::behavior::{record_scale, scale_down, scale_up};
use crate::controllers::nodes::testkit::running_status;
use crate::runtime::status::condition;

const NOW: i64 = 2_000_000_000;

fn parse(v: serde_json::Value) -> Object {
    let mut o: Object = serde_json::from_value(v).expect("object");
    o.apply_defaults();
    o
}

fn hpa(max: i32, down_window: i32) -> HorizontalPodAutoscaler {
    let Object::HorizontalPodAutoscaler(h) = parse(serde_json::json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default", "generation": 1},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": max,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": down_window}}}
    })) else {
        unreachable!()
    };
    h
}

fn deployment(replicas: i32) -> Deployment {
    let Object::Deployment(d) = parse(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "busybox:1",
                    "resources": {"requests": {"cpu": "100m"}}}]}}}
    })) else {
        unreachable!()
    };
    d
}

fn pods(d: &Deployment, n: usize) -> Vec<Pod> {
    (0..n)
        .map(|i| {
            let mut p = Pod {
                spec: d.spec.template.spec.clone(),
                ..Pod::default()
            };
            p.metadata.name = Some(format!("web-{i}"));
            p.metadata.labels = d.spec.template.metadata.labels.clone();
            let mut s = running_status("10.0.0.1");
            s.start_time = Some(Time::from_unix_seconds(NOW - 3600));
            s.conditions[0].last_transition_time = Some(Time::from_unix_seconds(NOW - 3590));
            p.status = Some(s);
            p
        })
        .collect()
}

fn using(pods: &[Pod], cpu: i64) -> Vec<(&Pod, Option<Usage>)> {
    pods.iter()
        .map(|p| {
            let u = Usage {
                cpu_millicores: cpu,
                memory_bytes: 1 << 20,
            };
            (p, Some(u))
        })
        .collect()
}

fn cond(s: &HorizontalPodAutoscalerStatus, type_: &str) -> (ConditionStatus, String) {
    let c = condition(&s.conditions, type_).expect("condition");
    (c.status, c.reason.clone().unwrap_or_default())
}

#[test]
fn scales_up_on_cpu_and_reports_the_metric() {
    let h = hpa(4, 4);
    let d = deployment(1);
    let ps = pods(&d, 1);
    let mut history = History::default();
    let e = evaluate(&h, Ok(&d), &using(&ps, 150), &mut history, NOW);
    assert_eq!(
        e.scale_to,
        Some(3),
        "150 % against 50 %: three times the pods"
    );
    let s = &e.status;
    assert_eq!((s.current_replicas, s.desired_replicas), (1, 3));
    assert_eq!(s.last_scale_time, Some(Time::from_unix_seconds(NOW)));
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(
        cond(s, "AbleToScale"),
        (ConditionStatus::True, "SucceededRescale".into())
    );
    assert_eq!(
        cond(s, "ScalingActive"),
        (ConditionStatus::True, "ValidMetricFound".into())
    );
    assert_eq!(
        cond(s, "ScalingLimited"),
        (ConditionStatus::False, "DesiredWithinRange".into())
    );
    let m = s.current_metrics[0].resource.as_ref().expect("resource");
    assert_eq!(m.name, "cpu");
    assert_eq!(m.current.average_utilization, Some(150));
    assert_eq!(m.current.average_value, Some(Quantity::from_millis(150)));

    // The runner records the scaling; three pods later, 9 are wanted but 4 is the most.
    let (up, down) = (
        scale_up(h.spec.behavior.as_ref()),
        scale_down(h.spec.behavior.as_ref()),
    );
    record_scale(&mut history, &up, &down, 1, 3, NOW);
    let d = deployment(3);
    let ps = pods(&d, 3);
    let e = evaluate(&h, Ok(&d), &using(&ps, 150), &mut history, NOW + 1);
    assert_eq!(e.scale_to, Some(4));
    assert_eq!(
        cond(&e.status, "ScalingLimited"),
        (ConditionStatus::True, "TooManyReplicas".into())
    );
}

#[test]
fn scales_down_only_after_the_stabilization_window() {
    let h = hpa(4, 4);
    let d = deployment(4);
    let ps = pods(&d, 4);
    let mut history = History::default();
    let busy = evaluate(&h, Ok(&d), &using(&ps, 50), &mut history, NOW);
    assert_eq!(busy.scale_to, None, "exactly on target");
    for t in 1..4 {
        let e = evaluate(&h, Ok(&d), &using(&ps, 5), &mut history, NOW + t);
        assert_eq!(e.scale_to, None, "at +{t} s");
        assert_eq!(
            cond(&e.status, "AbleToScale"),
            (ConditionStatus::True, "ScaleDownStabilized".into())
        );
        assert_eq!(e.status.desired_replicas, 4);
    }
    let e = evaluate(&h, Ok(&d), &using(&ps, 5), &mut history, NOW + 4);
    assert_eq!(e.scale_to, Some(1));
}

#[test]
fn a_missing_target_or_metrics_are_reported() {
    let h = hpa(4, 4);
    let mut history = History::default();
    let e = evaluate(
        &h,
        Err("deployments.apps \"web\" not found".into()),
        &[],
        &mut history,
        NOW,
    );
    assert_eq!(e.scale_to, None);
    let (status, reason) = cond(&e.status, "AbleToScale");
    assert_eq!(
        (status, reason.as_str()),
        (ConditionStatus::False, "FailedGetScale")
    );

    let d = deployment(2);
    let ps = pods(&d, 2);
    let silent: Vec<(&Pod, Option<Usage>)> = ps.iter().map(|p| (p, None)).collect();
    let e = evaluate(&h, Ok(&d), &silent, &mut history, NOW);
    assert_eq!(e.scale_to, None);
    assert_eq!(
        cond(&e.status, "ScalingActive"),
        (ConditionStatus::False, "FailedGetResourceMetric".into())
    );
    let message = condition(&e.status.conditions, "ScalingActive")
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        message.starts_with(
            "the HPA was unable to compute the replica count: failed to get cpu utilization"
        ),
        "{message}"
    );
    assert_eq!(e.status.current_replicas, 2);
}

#[test]
fn zero_replicas_disable_and_out_of_bounds_counts_are_brought_in() {
    let h = hpa(4, 4);
    let mut history = History::default();
    let e = evaluate(&h, Ok(&deployment(0)), &[], &mut history, NOW);
    assert_eq!(e.scale_to, None);
    assert_eq!(
        cond(&e.status, "ScalingActive"),
        (ConditionStatus::False, "ScalingDisabled".into())
    );
    let e = evaluate(&h, Ok(&deployment(9)), &[], &mut history, NOW);
    assert_eq!(e.scale_to, Some(4));
}

#[test]
fn a_failed_scale_keeps_the_last_decision() {
    let h = hpa(4, 4);
    let d = deployment(1);
    let ps = pods(&d, 1);
    let mut history = History::default();
    let before = HorizontalPodAutoscalerStatus {
        desired_replicas: 1,
        ..HorizontalPodAutoscalerStatus::default()
    };
    let mut e = evaluate(&h, Ok(&d), &using(&ps, 150), &mut history, NOW);
    scale_failed(&mut e.status, Some(&before), "boom", NOW);
    assert_eq!(e.status.desired_replicas, 1);
    assert_eq!(e.status.last_scale_time, None);
    assert_eq!(
        cond(&e.status, "AbleToScale"),
        (ConditionStatus::False, "FailedUpdateScale".into())
    );
}
