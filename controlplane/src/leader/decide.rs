//! The leader election's decisions as pure functions of what a candidate
//! observed, so every rule is tested without a store or a clock.
//!
//! As client-go's leader election, expiry is judged by the candidate's own
//! clock: a lease is free once its record has not changed for
//! `leaseDurationSeconds` of *local* time since this candidate first saw
//! that record. The holder's `renewTime` is never compared with the local
//! clock, so skewed clocks cannot make two leaders.

use std::time::{Duration, Instant};

/// The parts of the election Lease a candidate reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The holder (empty: released).
    pub holder: String,
    /// Its lease duration.
    pub duration: Duration,
    /// The store's mod revision of the Lease: any renewal changes it.
    pub mod_revision: u64,
}

/// A record and when this candidate first saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// What was read.
    pub record: Record,
    /// When this candidate first read this exact record (local clock).
    pub since: Instant,
}

impl Observation {
    /// The observation after reading `record` at `now`: the same start
    /// while the record does not change.
    pub fn next(previous: Option<&Observation>, record: Record, now: Instant) -> Observation {
        match previous {
            Some(p) if p.record == record => p.clone(),
            _ => Observation { record, since: now },
        }
    }
}

/// What a candidate should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nobody has created the Lease: create it.
    Create,
    /// Take the Lease (it is free, expired, or already ours from an
    /// earlier run of this control plane).
    Take,
    /// Someone else holds it: wait and look again.
    Wait,
}

/// Decides from the current observation (`None`: no Lease exists).
pub fn decide(me: &str, observed: Option<&Observation>, now: Instant) -> Decision {
    let Some(o) = observed else {
        return Decision::Create;
    };
    let r = &o.record;
    if r.holder.is_empty() || r.holder == me {
        return Decision::Take;
    }
    if now.saturating_duration_since(o.since) >= r.duration {
        Decision::Take
    } else {
        Decision::Wait
    }
}

/// Whether a leader whose last successful renewal was at `last_renewal`
/// must step down at `now`: it could not renew within `renew_deadline`
/// (shorter than the lease duration, so it stops before anyone may take
/// over; the fence refuses whatever it still tries after that).
pub fn must_step_down(last_renewal: Instant, now: Instant, renew_deadline: Duration) -> bool {
    now.saturating_duration_since(last_renewal) >= renew_deadline
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: &str, rev: u64) -> Record {
        Record {
            holder: holder.into(),
            duration: Duration::from_secs(2),
            mod_revision: rev,
        }
    }

    #[test]
    fn a_missing_lease_is_created_a_released_or_own_one_taken_at_once() {
        let t0 = Instant::now();
        assert_eq!(decide("a", None, t0), Decision::Create);
        let released = Observation::next(None, record("", 5), t0);
        assert_eq!(decide("a", Some(&released), t0), Decision::Take);
        let own = Observation::next(None, record("a", 5), t0);
        assert_eq!(decide("a", Some(&own), t0), Decision::Take);
    }

    #[test]
    fn another_holder_is_waited_for_a_whole_duration_of_the_local_clock() {
        let t0 = Instant::now();
        let o = Observation::next(None, record("b", 5), t0);
        assert_eq!(decide("a", Some(&o), t0), Decision::Wait);
        let later = t0 + Duration::from_millis(1999);
        let same = Observation::next(Some(&o), record("b", 5), later);
        assert_eq!(same.since, t0, "an unchanged record keeps its first sight");
        assert_eq!(decide("a", Some(&same), later), Decision::Wait);
        let expired = t0 + Duration::from_secs(2);
        assert_eq!(decide("a", Some(&same), expired), Decision::Take);
    }

    #[test]
    fn a_renewal_restarts_the_wait() {
        let t0 = Instant::now();
        let o = Observation::next(None, record("b", 5), t0);
        let t1 = t0 + Duration::from_millis(1500);
        let renewed = Observation::next(Some(&o), record("b", 6), t1);
        assert_eq!(renewed.since, t1);
        assert_eq!(
            decide("a", Some(&renewed), t0 + Duration::from_millis(2500)),
            Decision::Wait
        );
        assert_eq!(
            decide("a", Some(&renewed), t1 + Duration::from_secs(2)),
            Decision::Take
        );
    }

    #[test]
    fn a_leader_steps_down_when_it_cannot_renew_within_the_deadline() {
        let t0 = Instant::now();
        let deadline = Duration::from_millis(1500);
        assert!(!must_step_down(
            t0,
            t0 + Duration::from_millis(1499),
            deadline
        ));
        assert!(must_step_down(t0, t0 + deadline, deadline));
    }
}
