//! Scaling a Deployment without a template change (and while paused): the
//! one active ReplicaSet takes the new size; during a rollout every active
//! ReplicaSet grows or shrinks in proportion to its size (`scale` in
//! kube-controller-manager's sync.go), read from the replicas annotations
//! each ReplicaSet was last sized with.

use std::cmp::Reverse;

use super::annotations::{desired_replicas, max_replicas};
use super::plan::Sync;
use super::rollout::{is_rolling_update, max_surge};

impl Sync<'_> {
    /// `isScalingEvent`: an active ReplicaSet was sized for another replica count.
    pub fn is_scaling_event(&mut self) -> bool {
        let new = self.new_replica_set(false);
        let replicas = self.replicas();
        let mut all = self.olds(new);
        all.extend(new);
        all.into_iter()
            .filter(|i| self.spec(*i) > 0)
            .any(|i| desired_replicas(&self.sets[i].rs).is_some_and(|d| d != replicas))
    }

    /// `sync`: scale, clean up history while paused, report status.
    pub fn sync(&mut self) {
        let new = self.new_replica_set(false);
        self.scale_sets(new);
        if self.d.spec.paused {
            self.cleanup(new);
        }
        self.sync_deployment_status(new);
    }

    /// `FindActiveOrLatest`: the one ReplicaSet with pods wanted, or the
    /// newest when none has; `None` when several have.
    fn active_or_latest(&self, new: Option<usize>) -> Option<usize> {
        let mut olds = self.olds(new);
        if new.is_none() && olds.is_empty() {
            return None;
        }
        olds.reverse();
        let mut all = olds.clone();
        all.extend(new);
        let active: Vec<usize> = all.into_iter().filter(|i| self.spec(*i) > 0).collect();
        match active.as_slice() {
            [] => new.or_else(|| olds.first().copied()),
            [one] => Some(*one),
            _ => None,
        }
    }

    /// `IsSaturated`: the new ReplicaSet is fully sized and available.
    fn is_saturated(&self, new: usize) -> bool {
        let replicas = self.replicas();
        let w = &self.sets[new];
        w.rs.spec.replicas() == replicas
            && desired_replicas(&w.rs) == Some(replicas)
            && w.counts.available == replicas
    }

    /// `scale`.
    fn scale_sets(&mut self, new: Option<usize>) {
        let replicas = self.replicas();
        if let Some(i) = self.active_or_latest(new) {
            // Already sized: refresh its annotations so that this stops
            // counting as a scaling event.
            self.scale_with_annotations(i, replicas);
            return;
        }
        let olds = self.olds(new);
        if new.is_some_and(|n| self.is_saturated(n)) {
            for i in olds {
                if self.spec(i) > 0 {
                    self.scale(i, 0);
                }
            }
            return;
        }
        if !is_rolling_update(&self.d) {
            return;
        }
        let mut all: Vec<usize> = olds;
        all.extend(new);
        all.retain(|i| self.spec(*i) > 0);
        let allowed = if replicas > 0 {
            replicas + max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed - self.total_spec(&all);
        let key = |s: &Self, i: usize| {
            let rs = &s.sets[i].rs;
            let t = rs
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(jotasu_api::Time::unix_seconds);
            (s.spec(i), t, rs.metadata.name().to_owned())
        };
        if to_add > 0 {
            // Larger first; among equals, newer first.
            all.sort_by_key(|i| Reverse(key(self, *i)));
        } else if to_add < 0 {
            // Larger first; among equals, older first.
            all.sort_by(|a, b| {
                let (ka, kb) = (key(self, *a), key(self, *b));
                kb.0.cmp(&ka.0)
                    .then_with(|| (ka.1, ka.2).cmp(&(kb.1, kb.2)))
            });
        }
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(all.len());
        for &i in &all {
            if to_add == 0 {
                sizes.push(self.spec(i));
            } else {
                let p = self.proportion(i, to_add, added);
                sizes.push(self.spec(i) + p);
                added += p;
            }
        }
        if to_add != 0
            && let Some(first) = sizes.first_mut()
        {
            *first = (*first + to_add - added).max(0);
        }
        for (i, size) in all.into_iter().zip(sizes) {
            self.scale_with_annotations(i, size);
        }
    }

    /// `GetProportion`: how many of `to_add` (less `added` so far) go to `i`.
    fn proportion(&self, i: usize, to_add: i32, added: i32) -> i32 {
        if self.spec(i) == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = self.fraction(i);
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    /// `getReplicaSetFraction`: `i`'s share of the new size, from the
    /// maximum it was last sized for.
    fn fraction(&self, i: usize) -> i32 {
        let size = self.spec(i);
        let replicas = self.replicas();
        if replicas == 0 {
            return -size;
        }
        let max_now = replicas + max_surge(&self.d);
        let before = match max_replicas(&self.sets[i].rs) {
            Some(m) if m != 0 => m,
            _ => {
                let r = self.original.status.as_ref().map_or(0, |s| s.replicas);
                if r == 0 {
                    return 0;
                }
                r
            }
        };
        let scaled = (f64::from(size) * f64::from(max_now) / f64::from(before)).round();
        // At most size * max_now / before: an i32 for any valid spec.
        let scaled = scaled as i32;
        scaled - size
    }
}
