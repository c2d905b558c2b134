//! Tests of probe settings, schedules and result handling.

use jotasu_api::kinds::pod::TcpSocketAction;

use super::*;

fn probe(period: i32, success: i32, failure: i32, delay: i32) -> Probe {
    Probe {
        tcp_socket: Some(TcpSocketAction::default()),
        period_seconds: Some(period),
        success_threshold: Some(success),
        failure_threshold: Some(failure),
        initial_delay_seconds: Some(delay),
        ..Probe::default()
    }
}

fn fail() -> ProbeOutcome {
    ProbeOutcome::Failure("HTTP probe failed with statuscode: 500".into())
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Runs every due probe at `now` with `outcome`; returns the events.
fn tick(p: &mut ContainerProbes, now: Instant, outcome: &ProbeOutcome) -> Vec<ProbeEvent> {
    p.take_due(now)
        .into_iter()
        .filter_map(|t| p.record(t, outcome))
        .collect()
}

#[test]
fn defaults_are_kubernetes() {
    let s = ProbeSettings::new(ProbeKind::Readiness, &Probe::default());
    assert_eq!(
        s,
        ProbeSettings {
            initial_delay: Duration::ZERO,
            period: secs(10),
            timeout: secs(1),
            success_threshold: 1,
            failure_threshold: 3,
        }
    );
    let odd = Probe {
        period_seconds: Some(0),
        timeout_seconds: Some(-5),
        success_threshold: Some(4),
        failure_threshold: Some(0),
        initial_delay_seconds: Some(-1),
        ..Probe::default()
    };
    let s = ProbeSettings::new(ProbeKind::Liveness, &odd);
    assert_eq!(s.period, secs(1));
    assert_eq!(s.timeout, secs(1));
    assert_eq!(
        s.success_threshold, 1,
        "liveness success threshold is always 1"
    );
    assert_eq!(s.failure_threshold, 1);
    assert_eq!(s.initial_delay, Duration::ZERO);
    assert_eq!(
        ProbeSettings::new(ProbeKind::Readiness, &odd).success_threshold,
        4
    );
}

#[test]
fn no_probes_means_started_and_ready_while_running() {
    let mut p = ContainerProbes::new(&Container::default());
    assert!(!p.ready() && !p.started());
    let t0 = Instant::now();
    p.container_started(t0);
    assert!(p.started() && p.ready());
    assert_eq!(p.next_due(), None);
    assert!(p.take_due(t0 + secs(100)).is_empty());
    p.container_stopped();
    assert!(!p.ready() && !p.started());
}

#[test]
fn readiness_starts_false_and_follows_thresholds() {
    let c = Container {
        readiness_probe: Some(probe(5, 2, 3, 3)),
        ..Container::default()
    };
    let mut p = ContainerProbes::new(&c);
    let t0 = Instant::now();
    p.container_started(t0);
    assert!(p.started() && !p.ready());
    assert_eq!(p.next_due(), Some(t0 + secs(3)), "initial delay");
    assert!(p.take_due(t0 + secs(2)).is_empty());
    let ok = ProbeOutcome::Success;
    assert_eq!(tick(&mut p, t0 + secs(3), &ok), vec![]);
    assert_eq!(p.next_due(), Some(t0 + secs(8)));
    assert_eq!(
        tick(&mut p, t0 + secs(8), &ok),
        vec![ProbeEvent::ReadyChanged(true)]
    );
    assert!(p.ready());
    // Two failures are not enough, the third flips it.
    assert_eq!(tick(&mut p, t0 + secs(13), &fail()), vec![]);
    assert_eq!(tick(&mut p, t0 + secs(18), &fail()), vec![]);
    assert_eq!(
        tick(&mut p, t0 + secs(23), &fail()),
        vec![ProbeEvent::ReadyChanged(false)]
    );
    // A success resets the failure run but one is below the threshold of 2.
    assert_eq!(tick(&mut p, t0 + secs(28), &ok), vec![]);
    assert_eq!(tick(&mut p, t0 + secs(33), &fail()), vec![]);
    assert!(!p.ready());
    assert_eq!(
        p.worker(ProbeKind::Readiness)
            .and_then(ProbeWorker::last_message),
        Some("HTTP probe failed with statuscode: 500")
    );
}

#[test]
fn liveness_failure_restarts_once_then_holds() {
    let c = Container {
        liveness_probe: Some(probe(10, 1, 3, 0)),
        ..Container::default()
    };
    let mut p = ContainerProbes::new(&c);
    let t0 = Instant::now();
    p.container_started(t0);
    assert!(p.ready(), "no readiness probe: ready");
    assert_eq!(p.next_due(), Some(t0));
    assert_eq!(tick(&mut p, t0, &ProbeOutcome::Success), vec![]);
    assert_eq!(tick(&mut p, t0 + secs(10), &fail()), vec![]);
    assert_eq!(tick(&mut p, t0 + secs(20), &fail()), vec![]);
    assert_eq!(
        tick(&mut p, t0 + secs(30), &fail()),
        vec![ProbeEvent::LivenessFailed(
            "HTTP probe failed with statuscode: 500".into()
        )]
    );
    assert_eq!(p.next_due(), None, "on hold until the container restarts");
    assert!(tick(&mut p, t0 + secs(40), &fail()).is_empty());
    p.container_stopped();
    p.container_started(t0 + secs(50));
    assert_eq!(p.next_due(), Some(t0 + secs(50)));
    assert_eq!(
        p.worker(ProbeKind::Liveness).map(ProbeWorker::result),
        Some(ProbeResult::Success)
    );
}

#[test]
fn a_terminating_pod_keeps_its_readiness_probe_only() {
    let c = Container {
        liveness_probe: Some(probe(10, 1, 1, 0)),
        readiness_probe: Some(probe(10, 1, 1, 0)),
        ..Container::default()
    };
    let mut p = ContainerProbes::new(&c);
    let t0 = Instant::now();
    p.container_started(t0);
    assert_eq!(tick(&mut p, t0, &ProbeOutcome::Success).len(), 1);
    assert!(p.ready());
    p.pod_terminating();
    assert!(p.ready(), "terminating alone does not drop readiness");
    let due = p.take_due(t0 + secs(10));
    assert_eq!(
        due.iter().map(|t| t.kind).collect::<Vec<_>>(),
        [ProbeKind::Readiness],
        "only the readiness probe still runs"
    );
    let events: Vec<ProbeEvent> = due
        .into_iter()
        .filter_map(|t| p.record(t, &fail()))
        .collect();
    assert_eq!(events, vec![ProbeEvent::ReadyChanged(false)]);
}

#[test]
fn unknown_outcomes_are_thrown_away() {
    let c = Container {
        liveness_probe: Some(probe(1, 1, 2, 0)),
        ..Container::default()
    };
    let mut p = ContainerProbes::new(&c);
    let t0 = Instant::now();
    p.container_started(t0);
    let unknown = ProbeOutcome::Unknown("exec: containerd unavailable".into());
    assert!(tick(&mut p, t0, &fail()).is_empty());
    assert!(tick(&mut p, t0 + secs(1), &unknown).is_empty());
    assert_eq!(tick(&mut p, t0 + secs(2), &fail()).len(), 1);
}

#[test]
fn startup_probe_gates_the_others() {
    let c = Container {
        startup_probe: Some(probe(2, 1, 3, 0)),
        liveness_probe: Some(probe(10, 1, 3, 5)),
        readiness_probe: Some(probe(10, 1, 3, 0)),
        ..Container::default()
    };
    let mut p = ContainerProbes::new(&c);
    let t0 = Instant::now();
    p.container_started(t0);
    assert!(!p.started() && !p.ready());
    let kinds = |p: &mut ContainerProbes, at| -> Vec<ProbeKind> {
        p.take_due(at).into_iter().map(|t| t.kind).collect()
    };
    // Only the startup probe runs while not started.
    let t = p.take_due(t0 + secs(6));
    assert_eq!(
        t.iter().map(|t| t.kind).collect::<Vec<_>>(),
        vec![ProbeKind::Startup]
    );
    assert_eq!(p.record(t[0], &fail()), None);
    let t = p.take_due(t0 + secs(8));
    assert_eq!(
        p.record(t[0], &ProbeOutcome::Success),
        Some(ProbeEvent::Started)
    );
    assert!(p.started() && !p.ready());
    // Now liveness (overdue: delay 5 s) and readiness run; startup no more.
    assert_eq!(
        kinds(&mut p, t0 + secs(8)),
        vec![ProbeKind::Liveness, ProbeKind::Readiness]
    );
}

#[test]
fn startup_failure_restarts() {
    let c = Container {
        startup_probe: Some(probe(1, 1, 2, 0)),
        ..Container::default()
    };
    let mut p = ContainerProbes::new(&c);
    let t0 = Instant::now();
    p.container_started(t0);
    assert!(tick(&mut p, t0, &fail()).is_empty());
    assert!(matches!(
        tick(&mut p, t0 + secs(1), &fail()).as_slice(),
        [ProbeEvent::StartupFailed(_)]
    ));
    assert!(!p.started());
    assert_eq!(p.next_due(), None);
}

#[test]
fn startup_success_makes_a_probe_less_container_ready() {
    let c = Container {
        startup_probe: Some(probe(1, 1, 2, 0)),
        ..Container::default()
    };
    let mut p = ContainerProbes::new(&c);
    let t0 = Instant::now();
    p.container_started(t0);
    assert_eq!(
        tick(&mut p, t0, &ProbeOutcome::Success),
        vec![ProbeEvent::Started]
    );
    assert!(p.ready());
}

#[test]
fn in_flight_probes_are_not_handed_out_twice_and_stale_results_ignored() {
    let c = Container {
        readiness_probe: Some(probe(1, 1, 1, 0)),
        ..Container::default()
    };
    let mut p = ContainerProbes::new(&c);
    let t0 = Instant::now();
    p.container_started(t0);
    let t = p.take_due(t0);
    assert_eq!(t.len(), 1);
    assert!(p.take_due(t0 + secs(5)).is_empty(), "still in flight");
    // The container restarts before the result comes back.
    p.container_started(t0 + secs(6));
    assert_eq!(p.record(t[0], &ProbeOutcome::Success), None);
    assert!(!p.ready());
    let t = p.take_due(t0 + secs(6));
    assert_eq!(
        p.record(t[0], &ProbeOutcome::Success),
        Some(ProbeEvent::ReadyChanged(true))
    );
    // Stopping makes it unready; results after that are ignored.
    let t = p.take_due(t0 + secs(7));
    p.container_stopped();
    assert!(!p.ready());
    assert_eq!(p.record(t[0], &fail()), None);
}

#[test]
fn kinds_have_kubelet_names() {
    assert_eq!(ProbeKind::Liveness.as_str(), "Liveness");
    assert_eq!(ProbeKind::Readiness.as_str(), "Readiness");
    assert_eq!(ProbeKind::Startup.as_str(), "Startup");
}
