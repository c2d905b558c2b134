//! Restart back-off as the kubelet does it (`flowcontrol.Backoff` without
//! jitter, used by `doBackOff`): the first restart after a crash is
//! immediate; each later one waits, 10 s doubling to 5 min, counted from
//! when the container finished; the delay starts over once a container runs
//! more than 10 min (it finished more than twice the cap after the last
//! restart). Times are explicit Unix seconds: no clock inside.

use std::time::Duration;

use jotasu_api::Pod;

use crate::pod::pod_display;

/// The first back-off delay.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
/// The longest back-off delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Per-item back-off (one per container, or per image pull).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    initial: u64,
    max: u64,
    entry: Option<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// The current delay, in seconds.
    backoff: u64,
    /// When [`Backoff::next`] last ran.
    last_update: i64,
}

/// What to do with a container that exited and should be restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecision {
    /// Restart it now (the back-off has been advanced).
    Now,
    /// Wait: the container is in CrashLoopBackOff.
    Wait {
        /// When the wait ends (Unix seconds).
        until: i64,
        /// The current delay (for the `back-off 20s …` message).
        backoff: Duration,
    },
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(INITIAL_BACKOFF, MAX_BACKOFF)
    }
}

impl Backoff {
    /// A back-off from `initial` doubling up to `max` (whole seconds).
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial: initial.as_secs().max(1),
            max: max.as_secs().max(1),
            entry: None,
        }
    }

    /// Kubernetes' container restart back-off: 10 s doubling to 300 s.
    pub fn crash_loop() -> Self {
        Self::default()
    }

    /// Whether the entry is stale: the event came more than twice the cap
    /// after the last update.
    fn expired(&self, entry: &Entry, event_time: i64) -> bool {
        let max2 = i64::try_from(self.max.saturating_mul(2)).unwrap_or(i64::MAX);
        event_time.saturating_sub(entry.last_update) > max2
    }

    /// Advances the back-off for an event (a container's finish) at
    /// `event_time`: starts at the initial delay when there is none or it
    /// expired, else doubles up to the cap; remembers `now` as the update.
    pub fn next(&mut self, event_time: i64, now: i64) {
        let backoff = match self.entry {
            Some(e) if !self.expired(&e, event_time) => e.backoff.saturating_mul(2).min(self.max),
            _ => self.initial,
        };
        self.entry = Some(Entry {
            backoff,
            last_update: now,
        });
    }

    /// Whether, at `now`, an event at `event_time` is still within the
    /// current delay.
    pub fn is_in_backoff_since(&self, event_time: i64, now: i64) -> bool {
        match self.entry {
            Some(e) if !self.expired(&e, event_time) => {
                let delay = i64::try_from(e.backoff).unwrap_or(i64::MAX);
                now.saturating_sub(event_time) < delay
            }
            _ => false,
        }
    }

    /// The current delay (zero before the first [`Self::next`]).
    pub fn current(&self) -> Duration {
        Duration::from_secs(self.entry.map_or(0, |e| e.backoff))
    }

    /// Forgets everything (e.g. when the container's spec changes).
    pub fn reset(&mut self) {
        self.entry = None;
    }

    /// The kubelet's `doBackOff` for a container that finished at
    /// `finished_at`: wait while in back-off, else advance it and restart.
    /// Calling it again while waiting changes nothing.
    pub fn restart_decision(&mut self, finished_at: i64, now: i64) -> RestartDecision {
        if self.is_in_backoff_since(finished_at, now) {
            let backoff = self.current();
            let delay = i64::try_from(backoff.as_secs()).unwrap_or(i64::MAX);
            RestartDecision::Wait {
                until: finished_at.saturating_add(delay),
                backoff,
            }
        } else {
            self.next(finished_at, now);
            RestartDecision::Now
        }
    }
}

/// A duration as Go prints it (`10s`, `1m20s`, `5m0s`, `1h0m0s`), whole seconds.
pub fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec}s"),
        (h, m, sec) => format!("{h}h{m}m{sec}s"),
    }
}

/// The `CrashLoopBackOff` waiting message:
/// `back-off 20s restarting failed container=app pod=web_default(uid)`.
pub fn crash_loop_message(backoff: Duration, container: &str, pod: &Pod) -> String {
    format!(
        "back-off {} restarting failed container={container} pod={}",
        go_duration(backoff),
        pod_display(pod)
    )
}

/// The `ImagePullBackOff` waiting message: `Back-off pulling image "busybox"`.
pub fn image_pull_backoff_message(image: &str) -> String {
    format!("Back-off pulling image {image:?}")
}

#[cfg(test)]
mod tests {
    use jotasu_api::meta::ObjectMeta;

    use super::*;

    const T0: i64 = 1_700_000_000;

    /// A container that crashes `ran` seconds after each start, restarted as
    /// soon as the back-off allows.
    struct Sim {
        b: Backoff,
        now: i64,
    }

    impl Sim {
        fn new(b: Backoff) -> Self {
            Self { b, now: T0 }
        }

        /// Runs `crashes` crashes; returns the waits between crash and restart.
        fn crashes(&mut self, crashes: usize, ran: i64) -> Vec<i64> {
            let mut waits = Vec::new();
            for _ in 0..crashes {
                self.now += ran;
                let finished = self.now;
                while let RestartDecision::Wait { until, .. } =
                    self.b.restart_decision(finished, self.now)
                {
                    assert!(until > self.now);
                    self.now = until;
                }
                waits.push(self.now - finished);
            }
            waits
        }
    }

    #[test]
    fn first_restart_is_immediate_then_doubles_to_the_cap() {
        let mut sim = Sim::new(Backoff::crash_loop());
        assert_eq!(
            sim.crashes(9, 1),
            vec![0, 10, 20, 40, 80, 160, 300, 300, 300]
        );
        assert_eq!(sim.b.current(), MAX_BACKOFF);
    }

    #[test]
    fn waiting_does_not_advance() {
        let mut b = Backoff::crash_loop();
        assert_eq!(b.restart_decision(T0, T0), RestartDecision::Now);
        let w = b.restart_decision(T0 + 5, T0 + 6);
        assert_eq!(
            w,
            RestartDecision::Wait {
                until: T0 + 15,
                backoff: Duration::from_secs(10)
            }
        );
        assert_eq!(b.restart_decision(T0 + 5, T0 + 9), w);
        assert_eq!(b.current(), Duration::from_secs(10));
        assert_eq!(b.restart_decision(T0 + 5, T0 + 15), RestartDecision::Now);
        assert_eq!(b.current(), Duration::from_secs(20));
    }

    #[test]
    fn ten_minutes_of_running_resets() {
        let mut sim = Sim::new(Backoff::crash_loop());
        sim.crashes(5, 1);
        assert_eq!(sim.b.current(), Duration::from_secs(160));
        // Ran 601 s after its last restart: back to an immediate restart, then 10 s.
        assert_eq!(sim.crashes(2, 601), vec![0, 0]);
        assert_eq!(sim.b.current(), INITIAL_BACKOFF);
        assert_eq!(sim.crashes(2, 1), vec![10, 20]);
    }

    #[test]
    fn exactly_ten_minutes_does_not_reset() {
        let mut sim = Sim::new(Backoff::crash_loop());
        sim.crashes(3, 1);
        assert_eq!(sim.b.current(), Duration::from_secs(40));
        assert_eq!(sim.crashes(1, 600), vec![40]);
    }

    #[test]
    fn reset_and_custom() {
        let mut sim = Sim::new(Backoff::new(Duration::from_secs(1), Duration::from_secs(4)));
        assert_eq!(sim.crashes(5, 0), vec![0, 1, 2, 4, 4]);
        sim.b.reset();
        assert_eq!(sim.b.current(), Duration::ZERO);
        assert!(!sim.b.is_in_backoff_since(T0, T0));
    }

    #[test]
    fn messages() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("1234".into()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        };
        assert_eq!(
            crash_loop_message(Duration::from_secs(20), "app", &pod),
            "back-off 20s restarting failed container=app pod=web_shop(1234)"
        );
        assert_eq!(
            image_pull_backoff_message("busybox:1.36"),
            r#"Back-off pulling image "busybox:1.36""#
        );
    }
}
