//! Tests of pod status: container states, phase, conditions.

use jotasu_api::Container;
use jotasu_api::meta::ObjectMeta;

use super::*;

const NOW: i64 = 1_714_564_800;

fn pod(names: &[&str], policy: Option<RestartPolicy>) -> Pod {
    let mut p = Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("u1".into()),
            ..ObjectMeta::default()
        },
        ..Pod::default()
    };
    p.spec.restart_policy = policy;
    p.spec.containers = names
        .iter()
        .map(|n| Container {
            name: (*n).into(),
            image: "busybox:1.36".into(),
            ..Container::default()
        })
        .collect();
    p
}

fn running(name: &str, ready: bool) -> ContainerObservation {
    ContainerObservation {
        name: name.into(),
        image_id: Some("sha256:abc".into()),
        container_id: Some(format!("u1-{name}-0")),
        state: ObservedState::Running {
            started_at: NOW - 60,
        },
        last_terminated: None,
        restart_count: 0,
        ready,
        started: true,
    }
}

fn exited(name: &str, code: i32) -> ContainerObservation {
    ContainerObservation {
        state: ObservedState::Terminated(TerminatedState::exited(
            code,
            false,
            Some(NOW - 10),
            Some(NOW - 1),
        )),
        ready: false,
        ..running(name, false)
    }
}

fn waiting_obs(name: &str, reason: &str, last: Option<i32>) -> ContainerObservation {
    ContainerObservation {
        state: ObservedState::Waiting {
            reason: reason.into(),
            message: None,
        },
        last_terminated: last
            .map(|c| TerminatedState::exited(c, false, Some(NOW - 30), Some(NOW - 20))),
        restart_count: i32::from(last.is_some()),
        ready: false,
        ..running(name, false)
    }
}

fn status_of(p: &Pod, containers: Vec<ContainerObservation>) -> PodStatus {
    pod_status(
        &PodObservation {
            pod: p,
            host_ip: Some("192.168.50.2".into()),
            pod_ip: Some("10.244.1.5".into()),
            init_containers: Vec::new(),
            containers,
            initialized: true,
        },
        NOW,
    )
}

fn cond<'a>(s: &'a PodStatus, t: &str) -> &'a Condition {
    s.conditions.iter().find(|c| c.type_ == t).expect(t)
}

#[test]
fn terminated_reasons() {
    assert_eq!(terminated_reason(0, false), "Completed");
    assert_eq!(terminated_reason(1, false), "Error");
    assert_eq!(terminated_reason(137, false), "Error");
    assert_eq!(terminated_reason(137, true), "OOMKilled");
    assert_eq!(terminated_reason(0, true), "OOMKilled");
}

#[test]
fn running_and_ready() {
    let p = pod(&["app"], None);
    let s = status_of(&p, vec![running("app", true)]);
    assert_eq!(s.phase, Some(PodPhase::Running));
    assert_eq!(s.pod_ip.as_deref(), Some("10.244.1.5"));
    assert_eq!(s.host_ip.as_deref(), Some("192.168.50.2"));
    assert_eq!(s.start_time, Some(Time::from_unix_seconds(NOW)));
    let c = &s.container_statuses[0];
    assert!(c.ready);
    assert_eq!(c.started, Some(true));
    assert_eq!(c.image, "busybox:1.36");
    assert_eq!(c.image_id.as_deref(), Some("sha256:abc"));
    assert_eq!(c.container_id.as_deref(), Some("containerd://u1-app-0"));
    assert_eq!(
        c.state.as_ref().and_then(|s| s.running.clone()),
        Some(ContainerStateRunning {
            started_at: Some(Time::from_unix_seconds(NOW - 60))
        })
    );
    let types: Vec<&str> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(
        types,
        ["Initialized", "Ready", "ContainersReady", "PodScheduled"]
    );
    for c in &s.conditions {
        assert_eq!(c.status, ConditionStatus::True, "{}", c.type_);
        assert_eq!(c.last_transition_time, Some(Time::from_unix_seconds(NOW)));
    }
}

#[test]
fn unready_containers_are_named() {
    let p = pod(&["a", "b", "c"], None);
    let s = status_of(&p, vec![running("a", false), running("b", true)]);
    assert_eq!(s.phase, Some(PodPhase::Pending), "c has not started");
    let ready = cond(&s, "Ready");
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [a c]")
    );
    let c = &s.container_statuses[2];
    assert_eq!(
        c.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.as_deref()),
        Some("ContainerCreating")
    );
}

#[test]
fn ready_needs_running() {
    let p = pod(&["app"], None);
    let mut o = waiting_obs("app", "CrashLoopBackOff", Some(1));
    o.ready = true;
    o.started = true;
    let s = status_of(&p, vec![o]);
    assert!(!s.container_statuses[0].ready);
    assert_eq!(s.container_statuses[0].started, Some(false));
}

#[test]
fn phases_follow_get_phase() {
    use PodPhase::*;
    use RestartPolicy::*;
    let cases: Vec<(Option<RestartPolicy>, Vec<ContainerObservation>, PodPhase)> = vec![
        (None, vec![], Pending),
        (
            None,
            vec![waiting_obs("a", "ContainerCreating", None)],
            Pending,
        ),
        (None, vec![waiting_obs("a", "ErrImagePull", None)], Pending),
        (None, vec![running("a", false)], Running),
        // Crash-looping: waiting after a termination counts as stopped.
        (
            None,
            vec![waiting_obs("a", "CrashLoopBackOff", Some(1))],
            Running,
        ),
        (Some(Always), vec![exited("a", 0)], Running),
        (Some(OnFailure), vec![exited("a", 0)], Succeeded),
        (Some(OnFailure), vec![exited("a", 2)], Running),
        (Some(Never), vec![exited("a", 0)], Succeeded),
        (Some(Never), vec![exited("a", 2)], Failed),
        (
            Some(OnFailure),
            vec![waiting_obs("a", "CrashLoopBackOff", Some(1))],
            Running,
        ),
    ];
    for (policy, obs, want) in cases {
        let p = pod(&["a"], policy);
        let desc = format!("{policy:?} {obs:?}");
        assert_eq!(status_of(&p, obs).phase, Some(want), "{desc}");
    }
}

#[test]
fn multi_container_phases() {
    use PodPhase::*;
    let p = pod(&["a", "b"], Some(RestartPolicy::Never));
    assert_eq!(
        status_of(&p, vec![running("a", true), exited("b", 1)]).phase,
        Some(Running)
    );
    assert_eq!(
        status_of(&p, vec![exited("a", 0), exited("b", 0)]).phase,
        Some(Succeeded)
    );
    assert_eq!(
        status_of(&p, vec![exited("a", 0), exited("b", 3)]).phase,
        Some(Failed)
    );
    assert_eq!(
        status_of(
            &p,
            vec![
                running("a", true),
                waiting_obs("b", "ContainerCreating", None)
            ]
        )
        .phase,
        Some(Pending)
    );
    // One container not observed yet: Pending (it is shown as ContainerCreating).
    assert_eq!(status_of(&p, vec![exited("a", 0)]).phase, Some(Pending));
}

#[test]
fn terminal_pods_report_completed_conditions() {
    let p = pod(&["a"], Some(RestartPolicy::Never));
    let s = status_of(&p, vec![exited("a", 0)]);
    assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodCompleted"));
    assert_eq!(cond(&s, "ContainersReady").status, ConditionStatus::False);
    let s = status_of(&p, vec![exited("a", 1)]);
    assert_eq!(cond(&s, "Ready").reason.as_deref(), Some("PodFailed"));
    let t = s.container_statuses[0]
        .state
        .as_ref()
        .and_then(|s| s.terminated.clone())
        .expect("terminated");
    assert_eq!(t.exit_code, 1);
    assert_eq!(t.reason.as_deref(), Some("Error"));
    assert_eq!(t.finished_at, Some(Time::from_unix_seconds(NOW - 1)));
}

#[test]
fn crash_loop_shows_last_state_and_message() {
    let p = pod(&["a"], None);
    let mut o = waiting_obs("a", "CrashLoopBackOff", Some(137));
    if let ObservedState::Waiting { message, .. } = &mut o.state {
        *message = Some("back-off 10s restarting failed container=a pod=web_default(u1)".into());
    }
    o.last_terminated = Some(TerminatedState::exited(
        137,
        true,
        Some(NOW - 30),
        Some(NOW - 20),
    ));
    o.restart_count = 3;
    let s = status_of(&p, vec![o]);
    let c = &s.container_statuses[0];
    assert_eq!(c.restart_count, 3);
    let w = c
        .state
        .as_ref()
        .and_then(|s| s.waiting.clone())
        .expect("waiting");
    assert_eq!(w.reason.as_deref(), Some("CrashLoopBackOff"));
    assert!(
        w.message
            .as_deref()
            .is_some_and(|m| m.starts_with("back-off 10s"))
    );
    let last = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.clone())
        .expect("last");
    assert_eq!(last.reason.as_deref(), Some("OOMKilled"));
    assert_eq!(last.exit_code, 137);
}

#[test]
fn previous_status_keeps_times_ips_and_terminal_phase() {
    let mut p = pod(&["a"], Some(RestartPolicy::Never));
    let first = status_of(&p, vec![running("a", false)]);
    assert_eq!(cond(&first, "Ready").status, ConditionStatus::False);
    let mut old = first.clone();
    old.start_time = Some(Time::from_unix_seconds(NOW - 500));
    for c in &mut old.conditions {
        c.last_transition_time = Some(Time::from_unix_seconds(NOW - 400));
    }
    p.status = Some(old);
    // Later: ready now. Ready flips (new time), Initialized keeps its time.
    let later = pod_status(
        &PodObservation {
            pod: &p,
            host_ip: None,
            pod_ip: None,
            init_containers: Vec::new(),
            containers: vec![running("a", true)],
            initialized: true,
        },
        NOW + 100,
    );
    assert_eq!(later.start_time, Some(Time::from_unix_seconds(NOW - 500)));
    assert_eq!(
        later.pod_ip.as_deref(),
        Some("10.244.1.5"),
        "kept from before"
    );
    assert_eq!(later.host_ip.as_deref(), Some("192.168.50.2"));
    assert_eq!(
        cond(&later, "Initialized").last_transition_time,
        Some(Time::from_unix_seconds(NOW - 400))
    );
    assert_eq!(
        cond(&later, "Ready").last_transition_time,
        Some(Time::from_unix_seconds(NOW + 100))
    );
    // Terminal phases never go back.
    let mut done = later.clone();
    done.phase = Some(PodPhase::Failed);
    p.status = Some(done);
    assert_eq!(
        status_of(&p, vec![running("a", true)]).phase,
        Some(PodPhase::Failed)
    );
}

#[test]
fn terminating_pods_keep_their_phase() {
    let mut p = pod(&["a"], None);
    p.status = Some(PodStatus {
        phase: Some(PodPhase::Running),
        ..PodStatus::default()
    });
    p.metadata.deletion_timestamp = Some(Time::from_unix_seconds(NOW - 5));
    let s = status_of(&p, vec![waiting_obs("a", "ContainerCreating", None)]);
    assert_eq!(s.phase, Some(PodPhase::Running));
}

#[test]
fn raw_and_prefixed_container_ids() {
    let p = pod(&["a"], None);
    let mut o = running("a", true);
    o.container_id = Some("containerd://x".into());
    let s = status_of(&p, vec![o]);
    assert_eq!(
        s.container_statuses[0].container_id.as_deref(),
        Some("containerd://x")
    );
}

/// A pod with init containers `inits` (a `+` suffix makes a sidecar) before `app`.
fn pod_with_inits(inits: &[&str], policy: Option<RestartPolicy>) -> Pod {
    let mut p = pod(&["app"], policy);
    p.spec.init_containers = inits
        .iter()
        .map(|n| Container {
            name: n.trim_end_matches('+').into(),
            image: "busybox:1.36".into(),
            restart_policy: n.ends_with('+').then(|| "Always".to_owned()),
            ..Container::default()
        })
        .collect();
    p
}

fn with_inits(
    p: &Pod,
    inits: Vec<ContainerObservation>,
    app: ContainerObservation,
    initialized: bool,
) -> PodStatus {
    pod_status(
        &PodObservation {
            pod: p,
            host_ip: None,
            pod_ip: None,
            init_containers: inits,
            containers: vec![app],
            initialized,
        },
        NOW,
    )
}

#[test]
fn initializing_pods_are_pending_with_the_init_containers_named() {
    let p = pod_with_inits(&["one", "two"], None);
    let s = with_inits(
        &p,
        vec![exited("one", 0), running("two", false)],
        waiting_obs("app", reasons::POD_INITIALIZING, None),
        false,
    );
    assert_eq!(s.phase, Some(PodPhase::Pending));
    let init = cond(&s, "Initialized");
    assert_eq!(init.status, ConditionStatus::False);
    assert_eq!(init.reason.as_deref(), Some("ContainersNotInitialized"));
    assert_eq!(
        init.message.as_deref(),
        Some("containers with incomplete status: [two]")
    );
    assert_eq!(s.init_container_statuses.len(), 2);
    assert!(
        s.init_container_statuses[0].ready,
        "a completed init container is ready"
    );
    assert!(!s.init_container_statuses[1].ready);
    let app = &s.container_statuses[0];
    let reason = app
        .state
        .as_ref()
        .and_then(|st| st.waiting.as_ref())
        .and_then(|w| w.reason.as_deref());
    assert_eq!(reason, Some("PodInitializing"));
}

#[test]
fn a_failed_init_container_fails_the_pod_only_under_never() {
    let never = pod_with_inits(&["one"], Some(RestartPolicy::Never));
    let app = waiting_obs("app", reasons::POD_INITIALIZING, None);
    let s = with_inits(&never, vec![exited("one", 1)], app.clone(), false);
    assert_eq!(s.phase, Some(PodPhase::Failed));
    let always = pod_with_inits(&["one"], None);
    let backing_off = waiting_obs("one", reasons::CRASH_LOOP_BACK_OFF, Some(1));
    let s = with_inits(&always, vec![backing_off], app, false);
    assert_eq!(s.phase, Some(PodPhase::Pending));
}

#[test]
fn sidecars_count_for_readiness_and_not_for_completion() {
    let p = pod_with_inits(&["setup", "proxy+"], Some(RestartPolicy::Never));
    let s = with_inits(
        &p,
        vec![exited("setup", 0), running("proxy", false)],
        running("app", true),
        true,
    );
    assert_eq!(s.phase, Some(PodPhase::Running));
    assert_eq!(cond(&s, "Initialized").status, ConditionStatus::True);
    let ready = cond(&s, "Ready");
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [proxy]")
    );
    // The app exited 0 and the sidecar was stopped after it: Succeeded.
    let s = with_inits(
        &p,
        vec![exited("setup", 0), exited("proxy", 137)],
        exited("app", 0),
        true,
    );
    assert_eq!(s.phase, Some(PodPhase::Succeeded));
}
