//! The two strategies, as kube-controller-manager runs them. RollingUpdate:
//! grow the new ReplicaSet within `replicas + maxSurge` pods, then shrink
//! old ones while `replicas - maxUnavailable` pods stay available
//! (unhealthy old pods first). Recreate: scale every old ReplicaSet to 0,
//! wait until their pods are gone, then create and grow the new one.

use jotasu_api::Deployment;
use jotasu_api::kinds::workloads::{DeploymentStrategyType, RollingUpdate};

use super::plan::{Sync, strategy_type};
use super::status::deployment_complete;

fn rolling_update(d: &Deployment) -> Option<&RollingUpdate> {
    d.spec.strategy.as_ref()?.rolling_update.as_ref()
}

/// Whether the Deployment rolls (rather than recreates).
pub fn is_rolling_update(d: &Deployment) -> bool {
    strategy_type(d) == DeploymentStrategyType::RollingUpdate
}

/// maxSurge and maxUnavailable resolved against `desired` (surge rounds
/// up, unavailability down; both 0 becomes unavailability 1).
pub fn resolve_fenceposts(d: &Deployment, desired: i32) -> (i32, i32) {
    let ru = rolling_update(d);
    let value = |v: Option<&jotasu_api::IntOrString>, up: bool| {
        v.and_then(|v| v.scaled_value(desired, up)).unwrap_or(0)
    };
    let surge = value(ru.and_then(|r| r.max_surge.as_ref()), true);
    let unavailable = value(ru.and_then(|r| r.max_unavailable.as_ref()), false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// Pods allowed above `replicas` (0 for Recreate).
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    resolve_fenceposts(d, d.spec.replicas()).0
}

/// Pods allowed to be unavailable (0 for Recreate; at most `replicas`).
pub fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = d.spec.replicas();
    if !is_rolling_update(d) || replicas == 0 {
        return 0;
    }
    resolve_fenceposts(d, replicas).1.min(replicas)
}

impl Sync<'_> {
    /// Kubernetes' `NewRSNewReplicas`: the size the new ReplicaSet may grow to now.
    pub fn new_rs_new_replicas(&self, new: usize) -> i32 {
        let replicas = self.replicas();
        if !is_rolling_update(&self.d) {
            return replicas;
        }
        let surge = rolling_update(&self.d)
            .and_then(|r| r.max_surge.as_ref())
            .and_then(|v| v.scaled_value(replicas, true))
            .unwrap_or(0);
        let current = self.total_spec(&self.live());
        let max_total = replicas + surge;
        let size = self.spec(new);
        if current >= max_total {
            return size;
        }
        size + (max_total - current).min(replicas - size)
    }

    /// `rolloutRolling`.
    pub fn rollout_rolling(&mut self) {
        let new = self.new_replica_set(true);
        let Some(new) = new else {
            self.sync_rollout_status(None);
            return;
        };
        if self.reconcile_new(new) || self.reconcile_old(new) {
            self.sync_rollout_status(Some(new));
            return;
        }
        if deployment_complete(&self.d, &self.status) {
            self.cleanup(Some(new));
        }
        self.sync_rollout_status(Some(new));
    }

    /// `reconcileNewReplicaSet`: grow (or shrink) the new ReplicaSet.
    fn reconcile_new(&mut self, new: usize) -> bool {
        let replicas = self.replicas();
        let size = self.spec(new);
        if size == replicas {
            return false;
        }
        if size > replicas {
            return self.scale(new, replicas);
        }
        let grow_to = self.new_rs_new_replicas(new);
        self.scale(new, grow_to)
    }

    /// `reconcileOldReplicaSets`: shrink old ReplicaSets as far as
    /// availability allows, their unhealthy pods first.
    fn reconcile_old(&mut self, new: usize) -> bool {
        let olds: Vec<usize> = self
            .olds(Some(new))
            .into_iter()
            .filter(|i| self.spec(*i) > 0)
            .collect();
        if self.total_spec(&olds) == 0 {
            return false;
        }
        let all_pods = self.total_spec(&self.live());
        let min_available = self.replicas() - max_unavailable(&self.d);
        let new_unavailable = self.spec(new) - self.available_within_spec(new);
        let max_scaled_down = all_pods - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let cleaned = self.cleanup_unhealthy(&olds, max_scaled_down);
        let scaled = self.scale_down_old_for_rolling(&olds, new);
        cleaned + scaled > 0
    }

    /// `cleanupUnhealthyReplicas`: drop old pods that are not available
    /// (oldest ReplicaSet first), at most `max` of them.
    fn cleanup_unhealthy(&mut self, olds: &[usize], max: i32) -> i32 {
        let mut total = 0;
        for &i in olds {
            if total >= max {
                break;
            }
            let size = self.spec(i);
            let healthy = self.available_within_spec(i);
            if size == 0 || size == healthy {
                continue;
            }
            let n = (max - total).min(size - healthy);
            self.scale(i, size - n);
            total += n;
        }
        total
    }

    /// `scaleDownOldReplicaSetsForRollingUpdate`: shrink old ReplicaSets
    /// (oldest first) by the available pods beyond the minimum.
    fn scale_down_old_for_rolling(&mut self, olds: &[usize], new: usize) -> i32 {
        let min_available = self.replicas() - max_unavailable(&self.d);
        let available: i32 = olds
            .iter()
            .chain(std::iter::once(&new))
            .map(|i| self.available_within_spec(*i))
            .sum();
        if available <= min_available {
            return 0;
        }
        let target = available - min_available;
        let mut total = 0;
        for &i in olds {
            if total >= target {
                break;
            }
            let size = self.spec(i);
            if size == 0 {
                continue;
            }
            let n = size.min(target - total);
            self.scale(i, size - n);
            total += n;
        }
        total
    }

    /// `rolloutRecreate`.
    pub fn rollout_recreate(&mut self) {
        let new = self.new_replica_set(false);
        let olds = self.olds(new);
        let mut scaled_down = false;
        for &i in &olds {
            if self.spec(i) != 0 {
                scaled_down |= self.scale(i, 0);
            }
        }
        if scaled_down || self.old_pods_running(&olds) {
            self.sync_rollout_status(new);
            return;
        }
        let Some(new) = new.or_else(|| self.new_replica_set(true)) else {
            self.sync_rollout_status(None);
            return;
        };
        let replicas = self.replicas();
        self.scale(new, replicas);
        if deployment_complete(&self.d, &self.status) {
            self.cleanup(Some(new));
        }
        self.sync_rollout_status(Some(new));
    }

    /// Whether any pod of an old ReplicaSet still runs (terminating included).
    fn old_pods_running(&self, olds: &[usize]) -> bool {
        olds.iter().any(|i| {
            let c = &self.sets[*i].counts;
            c.replicas > 0 || c.running > 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::IntOrString;
    use jotasu_api::kinds::workloads::DeploymentStrategy;

    fn d(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        let mut d = Deployment::default();
        d.spec.replicas = Some(replicas);
        d.spec.strategy = Some(DeploymentStrategy {
            type_: Some(DeploymentStrategyType::RollingUpdate),
            rolling_update: Some(RollingUpdate {
                max_surge: Some(surge),
                max_unavailable: Some(unavailable),
            }),
        });
        d
    }

    #[test]
    fn fenceposts_round_like_kubernetes() {
        let p = |s: &str| IntOrString::from(s);
        let x = d(10, p("25%"), p("25%"));
        assert_eq!((max_surge(&x), max_unavailable(&x)), (3, 2));
        let x = d(1, p("25%"), p("25%"));
        assert_eq!((max_surge(&x), max_unavailable(&x)), (1, 0));
        let x = d(3, IntOrString::Int(0), p("10%"));
        assert_eq!((max_surge(&x), max_unavailable(&x)), (0, 1));
        let x = d(2, IntOrString::Int(0), IntOrString::Int(5));
        assert_eq!(max_unavailable(&x), 2);
        let x = d(0, IntOrString::Int(1), IntOrString::Int(1));
        assert_eq!(max_unavailable(&x), 0);
        let mut r = d(4, IntOrString::Int(1), IntOrString::Int(1));
        r.spec.strategy = Some(DeploymentStrategy {
            type_: Some(DeploymentStrategyType::Recreate),
            rolling_update: None,
        });
        assert_eq!((max_surge(&r), max_unavailable(&r)), (0, 0));
        assert!(!is_rolling_update(&r));
    }
}
