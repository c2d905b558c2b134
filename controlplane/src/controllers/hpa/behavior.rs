//! Scaling behaviour, as Kubernetes applies it after the metrics' raw
//! recommendation: the stabilization window (the highest recommendation
//! of the scale-down window, the lowest of the scale-up one), then the
//! rate policies over their periods, measured against the scale events
//! remembered per HPA, and minReplicas / maxReplicas.

use jotasu_api::kinds::hpa::{
    HorizontalPodAutoscalerBehavior, HpaScalingPolicy, HpaScalingPolicyType, HpaScalingRules,
    ScalingPolicySelect,
};

/// Default scale-down stabilization window, seconds.
pub const DOWN_WINDOW: i32 = 300;
/// Default policies' period, seconds.
pub const DEFAULT_PERIOD: i32 = 15;

/// One direction's rules with Kubernetes' defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Stabilization window, seconds.
    pub window: i64,
    /// Which policy wins.
    pub select: ScalingPolicySelect,
    /// Rate limits.
    pub policies: Vec<HpaScalingPolicy>,
}

fn policy(type_: HpaScalingPolicyType, value: i32) -> HpaScalingPolicy {
    HpaScalingPolicy {
        type_,
        value,
        period_seconds: DEFAULT_PERIOD,
    }
}

fn rules(given: Option<&HpaScalingRules>, window: i32, policies: Vec<HpaScalingPolicy>) -> Rules {
    let given = given.cloned().unwrap_or_default();
    Rules {
        window: i64::from(given.stabilization_window_seconds.unwrap_or(window).max(0)),
        select: given.select_policy.unwrap_or_default(),
        policies: if given.policies.is_empty() {
            policies
        } else {
            given.policies
        },
    }
}

/// Scale-up rules: no window, 100 % or 4 pods per 15 s, the larger.
pub fn scale_up(behavior: Option<&HorizontalPodAutoscalerBehavior>) -> Rules {
    rules(
        behavior.and_then(|b| b.scale_up.as_ref()),
        0,
        vec![
            policy(HpaScalingPolicyType::Percent, 100),
            policy(HpaScalingPolicyType::Pods, 4),
        ],
    )
}

/// Scale-down rules: a 300 s window, 100 % per 15 s.
pub fn scale_down(behavior: Option<&HorizontalPodAutoscalerBehavior>) -> Rules {
    rules(
        behavior.and_then(|b| b.scale_down.as_ref()),
        DOWN_WINDOW,
        vec![policy(HpaScalingPolicyType::Percent, 100)],
    )
}

/// A past recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recommendation {
    /// When (seconds since the epoch).
    pub at: i64,
    /// The replicas recommended.
    pub replicas: i32,
}

/// A past scaling in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScaleEvent {
    /// When.
    pub at: i64,
    /// Pods added (or removed), positive.
    pub change: i32,
    /// Older than every policy period: its slot may be reused.
    pub outdated: bool,
}

/// What the controller remembers of one HPA (in memory, as Kubernetes does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Recommendations.
    pub recommendations: Vec<Recommendation>,
    /// Scale-ups.
    pub up: Vec<ScaleEvent>,
    /// Scale-downs.
    pub down: Vec<ScaleEvent>,
}

impl History {
    /// The first sight of an HPA counts its current replicas as a
    /// recommendation (no scale-down before a window has passed).
    pub fn init(&mut self, current: i32, now: i64) {
        if self.recommendations.is_empty() {
            self.recommendations.push(Recommendation {
                at: now,
                replicas: current,
            });
        }
    }
}

/// The stabilized recommendation for a raw `desired` at `current`: the
/// current count brought up to the lowest recommendation of the scale-up
/// window and down to the highest of the scale-down window (`desired`
/// included in both), with the condition reason and message used when it
/// differs from `desired`. Records `desired`, reusing the slot of one
/// recommendation older than both windows.
pub fn stabilize(
    history: &mut History,
    up: &Rules,
    down: &Rules,
    current: i32,
    desired: i32,
    now: i64,
) -> (i32, &'static str, &'static str) {
    let up_cutoff = now - up.window;
    let down_cutoff = now - down.window;
    let mut up_recommendation = desired;
    let mut down_recommendation = desired;
    let mut old = None;
    for (i, r) in history.recommendations.iter().enumerate() {
        if r.at > up_cutoff {
            up_recommendation = up_recommendation.min(r.replicas);
        }
        if r.at > down_cutoff {
            down_recommendation = down_recommendation.max(r.replicas);
        }
        if r.at < up_cutoff && r.at < down_cutoff {
            old = Some(i);
        }
    }
    let recommendation = current.max(up_recommendation).min(down_recommendation);
    let fresh = Recommendation {
        at: now,
        replicas: desired,
    };
    match old {
        Some(i) => history.recommendations[i] = fresh,
        None => history.recommendations.push(fresh),
    }
    if desired >= current {
        (
            recommendation,
            "ScaleUpStabilized",
            "recent recommendations were lower than current one, applying the lowest recent recommendation",
        )
    } else {
        (
            recommendation,
            "ScaleDownStabilized",
            "recent recommendations were higher than current one, applying the highest recent recommendation",
        )
    }
}

/// Replicas changed within the last `period` seconds.
fn changed_within(events: &[ScaleEvent], period: i32, now: i64) -> i32 {
    let cutoff = now - i64::from(period);
    events
        .iter()
        .filter(|e| e.at > cutoff)
        .map(|e| e.change)
        .sum()
}

/// The most replicas the scale-up rules allow now.
pub fn scale_up_limit(current: i32, events: &[ScaleEvent], rules: &Rules, now: i64) -> i32 {
    let pick: fn(i32, i32) -> i32 = match rules.select {
        ScalingPolicySelect::Disabled => return current,
        ScalingPolicySelect::Min => i32::min,
        ScalingPolicySelect::Max => i32::max,
    };
    let mut result = if rules.select == ScalingPolicySelect::Min {
        i32::MAX
    } else {
        i32::MIN
    };
    for p in &rules.policies {
        let start = current - changed_within(events, p.period_seconds, now);
        let proposed = match p.type_ {
            HpaScalingPolicyType::Pods => start.saturating_add(p.value),
            HpaScalingPolicyType::Percent => {
                let v = (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil();
                #[allow(clippy::cast_possible_truncation)]
                let v = v.min(f64::from(i32::MAX)) as i32;
                v
            }
        };
        result = pick(result, proposed);
    }
    result
}

/// The fewest replicas the scale-down rules allow now.
pub fn scale_down_limit(current: i32, events: &[ScaleEvent], rules: &Rules, now: i64) -> i32 {
    let pick: fn(i32, i32) -> i32 = match rules.select {
        ScalingPolicySelect::Disabled => return current,
        // The smallest change is the largest count.
        ScalingPolicySelect::Min => i32::max,
        ScalingPolicySelect::Max => i32::min,
    };
    let mut result = if rules.select == ScalingPolicySelect::Min {
        i32::MIN
    } else {
        i32::MAX
    };
    for p in &rules.policies {
        let start = current + changed_within(events, p.period_seconds, now);
        let proposed = match p.type_ {
            HpaScalingPolicyType::Pods => start - p.value,
            HpaScalingPolicyType::Percent => {
                #[allow(clippy::cast_possible_truncation)]
                let v = (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32;
                v
            }
        };
        result = pick(result, proposed);
    }
    result
}

/// Bounds of the rate limiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// minReplicas.
    pub min: i32,
    /// maxReplicas.
    pub max: i32,
}

/// `desired` limited by the rates and the bounds, with the
/// ScalingLimited reason and message.
pub fn limit(
    history: &History,
    up: &Rules,
    down: &Rules,
    bounds: Bounds,
    current: i32,
    desired: i32,
    now: i64,
) -> (i32, &'static str, &'static str) {
    if desired > current {
        let rate = scale_up_limit(current, &history.up, up, now).max(current);
        let (allowed, reason, message) = if bounds.max > rate {
            (
                rate,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        } else {
            (
                bounds.max,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        };
        if desired > allowed {
            return (allowed, reason, message);
        }
    } else if desired < current {
        let rate = scale_down_limit(current, &history.down, down, now).min(current);
        let (allowed, reason, message) = if bounds.min < rate {
            (
                rate,
                "ScaleDownLimit",
                "the desired replica count is decreasing faster than the maximum scale rate",
            )
        } else {
            (
                bounds.min,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        };
        if desired < allowed {
            return (allowed, reason, message);
        }
    }
    (
        desired,
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    )
}

fn longest_period(rules: &Rules) -> i64 {
    rules
        .policies
        .iter()
        .map(|p| i64::from(p.period_seconds))
        .max()
        .unwrap_or(0)
}

/// Remembers a scaling from `previous` to `new` replicas, reusing the slot
/// of an event older than every policy period of its direction.
pub fn record_scale(
    history: &mut History,
    up: &Rules,
    down: &Rules,
    previous: i32,
    new: i32,
    now: i64,
) {
    let (events, rules, change) = if new > previous {
        (&mut history.up, up, new - previous)
    } else {
        (&mut history.down, down, previous - new)
    };
    let cutoff = now - longest_period(rules);
    for e in events.iter_mut() {
        if e.at < cutoff {
            e.outdated = true;
        }
    }
    let fresh = ScaleEvent {
        at: now,
        change,
        outdated: false,
    };
    match events.iter().rposition(|e| e.outdated) {
        Some(i) => events[i] = fresh,
        None => events.push(fresh),
    }
}

#[cfg(test)]
#[path = "behavior_tests.rs"]
mod tests;
