//! Scaling behaviour against Kubernetes' documented examples.

use jotasu_api::kinds::hpa::{
    HorizontalPodAutoscalerBehavior, HpaScalingPolicy, HpaScalingPolicyType, HpaScalingRules,
    ScalingPolicySelect,
};

use super::*;

const NOW: i64 = 1_000_000;

fn pol(type_: HpaScalingPolicyType, value: i32, period: i32) -> HpaScalingPolicy {
    HpaScalingPolicy {
        type_,
        value,
        period_seconds: period,
    }
}

fn event(ago: i64, change: i32) -> ScaleEvent {
    ScaleEvent {
        at: NOW - ago,
        change,
        outdated: false,
    }
}

fn rec(ago: i64, replicas: i32) -> Recommendation {
    Recommendation {
        at: NOW - ago,
        replicas,
    }
}

#[test]
fn defaults_fill_what_is_not_given() {
    let up = scale_up(None);
    assert_eq!(up.window, 0);
    assert_eq!(up.select, ScalingPolicySelect::Max);
    assert_eq!(
        up.policies,
        [
            pol(HpaScalingPolicyType::Percent, 100, 15),
            pol(HpaScalingPolicyType::Pods, 4, 15)
        ]
    );
    let down = scale_down(None);
    assert_eq!(down.window, 300);
    assert_eq!(down.policies, [pol(HpaScalingPolicyType::Percent, 100, 15)]);

    let b = HorizontalPodAutoscalerBehavior {
        scale_up: None,
        scale_down: Some(HpaScalingRules {
            stabilization_window_seconds: Some(4),
            select_policy: None,
            policies: Vec::new(),
        }),
    };
    let down = scale_down(Some(&b));
    assert_eq!(down.window, 4);
    assert_eq!(down.policies, scale_down(None).policies);
}

#[test]
fn default_scale_up_is_double_or_four_pods_per_fifteen_seconds() {
    let up = scale_up(None);
    assert_eq!(scale_up_limit(1, &[], &up, NOW), 5);
    assert_eq!(scale_up_limit(10, &[], &up, NOW), 20);
    // 1 → 5 five seconds ago: the period started at 1, nothing more yet.
    assert_eq!(scale_up_limit(5, &[event(5, 4)], &up, NOW), 5);
    // Sixteen seconds ago: a new period.
    assert_eq!(scale_up_limit(5, &[event(16, 4)], &up, NOW), 10);
}

#[test]
fn the_documented_scale_down_example() {
    // 4 pods or 10 % per minute, whichever removes more: from 80, 8 go,
    // then from 72, 8 again (7.2 rounded up); at 30 the Pods policy wins.
    let down = Rules {
        window: 300,
        select: ScalingPolicySelect::Max,
        policies: vec![
            pol(HpaScalingPolicyType::Pods, 4, 60),
            pol(HpaScalingPolicyType::Percent, 10, 60),
        ],
    };
    assert_eq!(scale_down_limit(80, &[], &down, NOW), 72);
    assert_eq!(scale_down_limit(72, &[], &down, NOW), 64);
    assert_eq!(scale_down_limit(30, &[], &down, NOW), 26);
    // Within the period, the 8 removed count against it.
    assert_eq!(scale_down_limit(72, &[event(30, 8)], &down, NOW), 72);
    let min = Rules {
        select: ScalingPolicySelect::Min,
        ..down.clone()
    };
    assert_eq!(scale_down_limit(80, &[], &min, NOW), 76);
    let off = Rules {
        select: ScalingPolicySelect::Disabled,
        ..down
    };
    assert_eq!(scale_down_limit(80, &[], &off, NOW), 80);
}

#[test]
fn min_select_and_disabled_scale_up() {
    let up = Rules {
        select: ScalingPolicySelect::Min,
        ..scale_up(None)
    };
    assert_eq!(scale_up_limit(10, &[], &up, NOW), 14);
    let off = Rules {
        select: ScalingPolicySelect::Disabled,
        ..scale_up(None)
    };
    assert_eq!(scale_up_limit(10, &[], &off, NOW), 10);
    let h = History::default();
    let b = Bounds { min: 1, max: 100 };
    assert_eq!(
        limit(&h, &off, &scale_down(None), b, 10, 50, NOW),
        (
            10,
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate"
        )
    );
}

#[test]
fn scale_down_waits_for_the_window() {
    // Recommendations of the last 300 s: the highest wins.
    let up = scale_up(None);
    let down = scale_down(None);
    let mut h = History {
        recommendations: vec![rec(100, 5), rec(400, 8), rec(200, 3)],
        ..History::default()
    };
    let (n, reason, _) = stabilize(&mut h, &up, &down, 6, 2, NOW);
    assert_eq!((n, reason), (5, "ScaleDownStabilized"));
    assert_eq!(h.recommendations.len(), 3, "the stale one's slot is reused");
    assert!(h.recommendations.contains(&rec(0, 2)));
    // Once the window passed, the raw recommendation stands.
    let mut h = History {
        recommendations: vec![rec(301, 5)],
        ..History::default()
    };
    assert_eq!(stabilize(&mut h, &up, &down, 6, 2, NOW).0, 2);
}

#[test]
fn scale_up_is_immediate_by_default_and_stabilized_with_a_window() {
    let down = scale_down(None);
    let mut h = History {
        recommendations: vec![rec(10, 3)],
        ..History::default()
    };
    let (n, reason, _) = stabilize(&mut h, &scale_up(None), &down, 3, 8, NOW);
    assert_eq!((n, reason), (8, "ScaleUpStabilized"));
    let up = Rules {
        window: 60,
        ..scale_up(None)
    };
    let mut h = History {
        recommendations: vec![rec(30, 5), rec(50, 7)],
        ..History::default()
    };
    assert_eq!(
        stabilize(&mut h, &up, &down, 3, 8, NOW).0,
        5,
        "the lowest wins"
    );
    // Never below the current count because of the scale-up window.
    let mut h = History {
        recommendations: vec![rec(30, 2)],
        ..History::default()
    };
    assert_eq!(stabilize(&mut h, &up, &down, 4, 6, NOW).0, 4);
}

#[test]
fn the_first_sight_counts_the_current_replicas() {
    let mut h = History::default();
    h.init(4, NOW);
    h.init(9, NOW + 1);
    assert_eq!(h.recommendations, [rec(0, 4)]);
    let (n, _, _) = stabilize(&mut h, &scale_up(None), &scale_down(None), 4, 1, NOW + 60);
    assert_eq!(n, 4, "no scale-down in the first window");
}

#[test]
fn limits_and_bounds_with_their_reasons() {
    let up = scale_up(None);
    let down = scale_down(None);
    let h = History::default();
    let b = Bounds { min: 2, max: 6 };
    assert_eq!(limit(&h, &up, &down, b, 1, 9, NOW).0, 5);
    assert_eq!(limit(&h, &up, &down, b, 1, 9, NOW).1, "ScaleUpLimit");
    assert_eq!(limit(&h, &up, &down, b, 4, 9, NOW).0, 6);
    assert_eq!(limit(&h, &up, &down, b, 4, 9, NOW).1, "TooManyReplicas");
    assert_eq!(limit(&h, &up, &down, b, 4, 0, NOW).0, 2);
    assert_eq!(limit(&h, &up, &down, b, 4, 0, NOW).1, "TooFewReplicas");
    assert_eq!(limit(&h, &up, &down, b, 4, 3, NOW).1, "DesiredWithinRange");
    let slow = Rules {
        policies: vec![pol(HpaScalingPolicyType::Pods, 1, 60)],
        ..down
    };
    assert_eq!(
        limit(&h, &up, &slow, b, 5, 2, NOW),
        (
            4,
            "ScaleDownLimit",
            "the desired replica count is decreasing faster than the maximum scale rate"
        )
    );
}

#[test]
fn scale_events_reuse_outdated_slots() {
    let up = scale_up(None);
    let down = scale_down(None);
    let mut h = History::default();
    record_scale(&mut h, &up, &down, 1, 5, NOW - 10);
    record_scale(&mut h, &up, &down, 5, 8, NOW - 5);
    assert_eq!(h.up.len(), 2);
    record_scale(&mut h, &up, &down, 8, 10, NOW + 10);
    assert_eq!(
        h.up.len(),
        2,
        "the slot of the event older than 15 s is reused"
    );
    assert_eq!(changed_within(&h.up, 15, NOW + 10), 2);
    assert_eq!(changed_within(&h.up, 30, NOW + 10), 5);
    record_scale(&mut h, &up, &down, 10, 7, NOW);
    assert_eq!(h.down, [event(0, 3)]);
}
