//! Probe semantics as the kubelet's prober workers have them, as state
//! machines driven by explicit instants: when each probe is due, how
//! results become consecutive successes or failures, and what changes —
//! readiness flips, a liveness or startup failure restarts the container,
//! a startup probe holds the other two until it passes.
//!
//! Initial results: readiness Failure (not ready until a probe passes),
//! liveness Success, startup Unknown (`started: false`). A container without
//! a readiness probe is ready once started; without a startup probe it is
//! started once running.

use std::time::{Duration, Instant};

use jotasu_api::Container;
use jotasu_api::kinds::pod::Probe;

/// Seconds between probes when the pod gives none.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(10);
/// Probe timeout when the pod gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Consecutive failures that count as failed when the pod gives none.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    /// Restarts the container when it fails.
    Liveness,
    /// Gates Service endpoints.
    Readiness,
    /// Holds the other probes until it passes; restarts when it fails.
    Startup,
}

impl ProbeKind {
    /// `Liveness`, `Readiness`, `Startup` (as in the kubelet's events).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
            Self::Startup => "Startup",
        }
    }
}

/// What one probe run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Passed.
    Success,
    /// Failed, with the kubelet-style reason
    /// (`HTTP probe failed with statuscode: 500`).
    Failure(String),
    /// Could not be run (the prober's own error): the result is thrown away.
    Unknown(String),
}

/// The result a probe publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeResult {
    /// Not decided yet.
    Unknown,
    /// Passing.
    Success,
    /// Failing.
    Failure,
}

/// A probe's timing and thresholds with Kubernetes' defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Delay after the container starts before the first probe (default 0).
    pub initial_delay: Duration,
    /// Between probes (default 10 s).
    pub period: Duration,
    /// Per probe (default 1 s).
    pub timeout: Duration,
    /// Consecutive successes to pass (default 1; always 1 for liveness and startup).
    pub success_threshold: u32,
    /// Consecutive failures to fail (default 3).
    pub failure_threshold: u32,
}

fn secs(v: Option<i32>, default: Duration, min: u64) -> Duration {
    v.and_then(|s| u64::try_from(s).ok())
        .map_or(default, |s| Duration::from_secs(s.max(min)))
}

fn count(v: Option<i32>, default: u32) -> u32 {
    v.and_then(|n| u32::try_from(n).ok())
        .map_or(default, |n| n.max(1))
}

impl ProbeSettings {
    /// The settings of `probe` used as a `kind` probe.
    pub fn new(kind: ProbeKind, probe: &Probe) -> Self {
        let success = match kind {
            ProbeKind::Readiness => count(probe.success_threshold, 1),
            ProbeKind::Liveness | ProbeKind::Startup => 1,
        };
        Self {
            initial_delay: secs(probe.initial_delay_seconds, Duration::ZERO, 0),
            period: secs(probe.period_seconds, DEFAULT_PERIOD, 1),
            timeout: secs(probe.timeout_seconds, DEFAULT_TIMEOUT, 1),
            success_threshold: success,
            failure_threshold: count(probe.failure_threshold, DEFAULT_FAILURE_THRESHOLD),
        }
    }
}

/// A probe run handed out by [`ContainerProbes::take_due`]; results of runs
/// started before the container restarted are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTicket {
    /// Which probe to run.
    pub kind: ProbeKind,
    generation: u64,
}

/// One probe of one container (the kubelet's `worker`).
#[derive(Debug, Clone)]
pub struct ProbeWorker {
    kind: ProbeKind,
    probe: Probe,
    settings: ProbeSettings,
    result: ProbeResult,
    last: Option<bool>,
    run: u32,
    on_hold: bool,
    in_flight: bool,
    next_due: Option<Instant>,
    last_message: Option<String>,
}

impl ProbeWorker {
    /// A worker for `probe` used as `kind`, for a container not running yet.
    pub fn new(kind: ProbeKind, probe: &Probe) -> Self {
        Self {
            kind,
            probe: probe.clone(),
            settings: ProbeSettings::new(kind, probe),
            result: Self::initial(kind),
            last: None,
            run: 0,
            on_hold: false,
            in_flight: false,
            next_due: None,
            last_message: None,
        }
    }

    fn initial(kind: ProbeKind) -> ProbeResult {
        match kind {
            ProbeKind::Readiness => ProbeResult::Failure,
            ProbeKind::Liveness => ProbeResult::Success,
            ProbeKind::Startup => ProbeResult::Unknown,
        }
    }

    /// The probe as the pod gives it (what to run).
    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    /// Its settings.
    pub fn settings(&self) -> &ProbeSettings {
        &self.settings
    }

    /// The published result.
    pub fn result(&self) -> ProbeResult {
        self.result
    }

    /// The last failure's message.
    pub fn last_message(&self) -> Option<&str> {
        self.last_message.as_deref()
    }

    fn restart(&mut self, at: Instant) {
        self.result = Self::initial(self.kind);
        self.last = None;
        self.run = 0;
        self.on_hold = false;
        self.in_flight = false;
        self.next_due = Some(at + self.settings.initial_delay);
        self.last_message = None;
    }

    fn stop(&mut self) {
        self.next_due = None;
        self.in_flight = false;
        if self.kind == ProbeKind::Readiness {
            self.result = ProbeResult::Failure;
        }
    }

    fn due_at(&self) -> Option<Instant> {
        if self.on_hold || self.in_flight {
            None
        } else {
            self.next_due
        }
    }

    /// Applies a result; returns the new published result if it changed.
    fn apply(&mut self, outcome: &ProbeOutcome) -> Option<ProbeResult> {
        self.in_flight = false;
        let ok = match outcome {
            ProbeOutcome::Success => true,
            ProbeOutcome::Failure(msg) => {
                self.last_message = Some(msg.clone());
                false
            }
            ProbeOutcome::Unknown(_) => return None,
        };
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let threshold = if ok {
            self.settings.success_threshold
        } else {
            self.settings.failure_threshold
        };
        if self.run < threshold {
            return None;
        }
        let new = if ok {
            ProbeResult::Success
        } else {
            ProbeResult::Failure
        };
        if !ok && matches!(self.kind, ProbeKind::Liveness | ProbeKind::Startup) {
            // The container is about to be killed: stop until it restarts.
            self.on_hold = true;
            self.run = 0;
        }
        let changed = new != self.result;
        self.result = new;
        changed.then_some(new)
    }
}

/// A change the agent acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeEvent {
    /// The startup probe passed: the container counts as started (and is
    /// ready at once when it has no readiness probe: read
    /// [`ContainerProbes::ready`]).
    Started,
    /// The container's readiness changed.
    ReadyChanged(bool),
    /// The liveness probe failed: kill the container (restart per policy).
    LivenessFailed(String),
    /// The startup probe failed: kill the container (restart per policy).
    StartupFailed(String),
}

/// The probes of one container.
#[derive(Debug, Clone)]
pub struct ContainerProbes {
    startup: Option<ProbeWorker>,
    liveness: Option<ProbeWorker>,
    readiness: Option<ProbeWorker>,
    running: bool,
    generation: u64,
}

impl ContainerProbes {
    /// The container's probes, for a container not running yet.
    pub fn new(container: &Container) -> Self {
        let w = |kind, p: &Option<Probe>| p.as_ref().map(|p| ProbeWorker::new(kind, p));
        Self {
            startup: w(ProbeKind::Startup, &container.startup_probe),
            liveness: w(ProbeKind::Liveness, &container.liveness_probe),
            readiness: w(ProbeKind::Readiness, &container.readiness_probe),
            running: false,
            generation: 0,
        }
    }

    /// The worker of `kind`, if the container has that probe.
    pub fn worker(&self, kind: ProbeKind) -> Option<&ProbeWorker> {
        match kind {
            ProbeKind::Startup => self.startup.as_ref(),
            ProbeKind::Liveness => self.liveness.as_ref(),
            ProbeKind::Readiness => self.readiness.as_ref(),
        }
    }

    fn worker_mut(&mut self, kind: ProbeKind) -> Option<&mut ProbeWorker> {
        match kind {
            ProbeKind::Startup => self.startup.as_mut(),
            ProbeKind::Liveness => self.liveness.as_mut(),
            ProbeKind::Readiness => self.readiness.as_mut(),
        }
    }

    fn workers_mut(&mut self) -> impl Iterator<Item = &mut ProbeWorker> {
        [&mut self.startup, &mut self.liveness, &mut self.readiness]
            .into_iter()
            .filter_map(Option::as_mut)
    }

    /// The container (re)started at `at`: every probe starts over.
    pub fn container_started(&mut self, at: Instant) {
        self.running = true;
        self.generation += 1;
        for w in self.workers_mut() {
            w.restart(at);
        }
    }

    /// The container stopped: no more probes, not ready.
    pub fn container_stopped(&mut self) {
        self.running = false;
        self.generation += 1;
        for w in self.workers_mut() {
            w.stop();
        }
    }

    /// The pod is being deleted: the liveness and startup probes stop (a
    /// failure would only restart a container that is stopping, as the
    /// kubelet reasons); the readiness probe keeps running until the
    /// container stops, so `serving` follows the app while it drains.
    pub fn pod_terminating(&mut self) {
        for w in [&mut self.startup, &mut self.liveness]
            .into_iter()
            .filter_map(Option::as_mut)
        {
            w.stop();
        }
    }

    /// `status.started`: running, and the startup probe (if any) passed.
    pub fn started(&self) -> bool {
        self.running
            && self
                .startup
                .as_ref()
                .is_none_or(|w| w.result == ProbeResult::Success)
    }

    /// `status.ready`: started, and the readiness probe (if any) passes.
    pub fn ready(&self) -> bool {
        self.started()
            && self
                .readiness
                .as_ref()
                .is_none_or(|w| w.result == ProbeResult::Success)
    }

    /// The probes that may run now: the startup probe until it passes, the
    /// others once started.
    fn active(&self) -> impl Iterator<Item = &ProbeWorker> {
        let started = self.started();
        [&self.startup, &self.liveness, &self.readiness]
            .into_iter()
            .filter_map(Option::as_ref)
            .filter(move |w| {
                self.running
                    && if w.kind == ProbeKind::Startup {
                        !started
                    } else {
                        started
                    }
            })
    }

    /// When the next probe is due (`None`: nothing to wait for).
    pub fn next_due(&self) -> Option<Instant> {
        self.active().filter_map(ProbeWorker::due_at).min()
    }

    /// The probes due at `now`, marked in flight and rescheduled one period
    /// on; run each and hand its outcome to [`Self::record`].
    pub fn take_due(&mut self, now: Instant) -> Vec<ProbeTicket> {
        let due: Vec<ProbeKind> = self
            .active()
            .filter(|w| w.due_at().is_some_and(|d| d <= now))
            .map(|w| w.kind)
            .collect();
        let generation = self.generation;
        due.into_iter()
            .filter_map(|kind| {
                let w = self.worker_mut(kind)?;
                w.in_flight = true;
                w.next_due = Some(now + w.settings.period);
                Some(ProbeTicket { kind, generation })
            })
            .collect()
    }

    /// Applies the outcome of a probe run; returns what changed, if anything.
    pub fn record(&mut self, ticket: ProbeTicket, outcome: &ProbeOutcome) -> Option<ProbeEvent> {
        if ticket.generation != self.generation || !self.running {
            return None;
        }
        let was_ready = self.ready();
        let w = self.worker_mut(ticket.kind)?;
        let changed = w.apply(outcome)?;
        let message = w.last_message.clone().unwrap_or_default();
        match (ticket.kind, changed) {
            (ProbeKind::Startup, ProbeResult::Success) => Some(ProbeEvent::Started),
            (ProbeKind::Startup, _) => Some(ProbeEvent::StartupFailed(message)),
            (ProbeKind::Liveness, ProbeResult::Failure) => {
                Some(ProbeEvent::LivenessFailed(message))
            }
            (ProbeKind::Liveness, _) => None,
            (ProbeKind::Readiness, _) => {
                let ready = self.ready();
                (ready != was_ready).then_some(ProbeEvent::ReadyChanged(ready))
            }
        }
    }
}

#[cfg(test)]
#[path = "probe_tests.rs"]
mod tests;
