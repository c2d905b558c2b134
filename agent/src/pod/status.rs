//! A pod's status from what the agent observed of its containers, with the
//! kubelet's rules: per-container states and the reasons users know, the
//! phase (`getPhase`), the `Initialized`, `Ready`, `ContainersReady` and
//! `PodScheduled` conditions (transition times kept while unchanged), the
//! addresses and the start time.

use jotasu_api::kinds::pod::RestartPolicy;
use jotasu_api::kinds::pod_status::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, PodPhase,
};
use jotasu_api::{Condition, ConditionStatus, Pod, PodStatus, Time};

use crate::pod::restart::restart_policy;

/// The waiting and terminated reasons the agent reports.
pub mod reasons {
    /// Waiting: image pull, volume set-up or container creation in progress.
    pub const CONTAINER_CREATING: &str = "ContainerCreating";
    /// Waiting: the image pull failed.
    pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
    /// Waiting: backing off before pulling again.
    pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
    /// Waiting: backing off before restarting a crashed container.
    pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
    /// Waiting: env or config refers to a missing ConfigMap, Secret or key.
    pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
    /// Waiting: the runtime refused to create the container.
    pub const CREATE_CONTAINER_ERROR: &str = "CreateContainerError";
    /// Waiting: the container was created but could not start.
    pub const RUN_CONTAINER_ERROR: &str = "RunContainerError";
    /// Terminated: exit code 0.
    pub const COMPLETED: &str = "Completed";
    /// Terminated: non-zero exit code.
    pub const ERROR: &str = "Error";
    /// Terminated: killed by the kernel's OOM killer.
    pub const OOM_KILLED: &str = "OOMKilled";
    /// Condition reason: some container is not ready.
    pub const CONTAINERS_NOT_READY: &str = "ContainersNotReady";
    /// Condition reason: the pod succeeded.
    pub const POD_COMPLETED: &str = "PodCompleted";
    /// Condition reason: the pod failed.
    pub const POD_FAILED: &str = "PodFailed";
    /// Condition reason: some init container has not done its part.
    pub const CONTAINERS_NOT_INITIALIZED: &str = "ContainersNotInitialized";
    /// Waiting: an app container while the init containers run.
    pub const POD_INITIALIZING: &str = "PodInitializing";
}

/// The terminated reason for an exit: `OOMKilled`, `Completed` (0) or `Error`.
pub fn terminated_reason(exit_code: i32, oom_killed: bool) -> &'static str {
    if oom_killed {
        reasons::OOM_KILLED
    } else if exit_code == 0 {
        reasons::COMPLETED
    } else {
        reasons::ERROR
    }
}

/// How a container ended (times as Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminatedState {
    /// Exit code (128 + N when killed by signal N).
    pub exit_code: i32,
    /// The signal, when the runtime reports one.
    pub signal: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`.
    pub reason: String,
    /// Details, if any.
    pub message: Option<String>,
    /// When it started.
    pub started_at: Option<i64>,
    /// When it ended.
    pub finished_at: Option<i64>,
}

impl TerminatedState {
    /// An exit with its reason from [`terminated_reason`].
    pub fn exited(
        exit_code: i32,
        oom_killed: bool,
        started_at: Option<i64>,
        finished_at: Option<i64>,
    ) -> Self {
        Self {
            exit_code,
            signal: None,
            reason: terminated_reason(exit_code, oom_killed).to_owned(),
            message: None,
            started_at,
            finished_at,
        }
    }
}

/// A container's current state as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObservedState {
    /// Not running, with a reason from [`reasons`] and a message.
    Waiting {
        /// E.g. `ContainerCreating`, `CrashLoopBackOff`.
        reason: String,
        /// E.g. `back-off 20s restarting failed container=…`.
        message: Option<String>,
    },
    /// Running since (Unix seconds).
    Running {
        /// When it started.
        started_at: i64,
    },
    /// Ended and not restarted (yet).
    Terminated(TerminatedState),
}

/// What the agent knows of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerObservation {
    /// The container's name in the pod spec.
    pub name: String,
    /// The image digest (`sha256:…`), once pulled.
    pub image_id: Option<String>,
    /// containerd's container id (reported as `containerd://<id>`).
    pub container_id: Option<String>,
    /// The current state.
    pub state: ObservedState,
    /// The previous run's end, if it ran before.
    pub last_terminated: Option<TerminatedState>,
    /// Restarts so far.
    pub restart_count: i32,
    /// The readiness verdict ([`crate::pod::probe::ContainerProbes::ready`]).
    pub ready: bool,
    /// The startup verdict ([`crate::pod::probe::ContainerProbes::started`]).
    pub started: bool,
}

/// What the agent knows of one pod.
#[derive(Debug, Clone)]
pub struct PodObservation<'a> {
    /// The pod (spec, and the previous status for start time, phase and
    /// condition transition times).
    pub pod: &'a Pod,
    /// The node's IP.
    pub host_ip: Option<String>,
    /// The pod's IP, once its network is up.
    pub pod_ip: Option<String>,
    /// Its init containers, sidecars included.
    pub init_containers: Vec<ContainerObservation>,
    /// Its containers (a spec container missing here is `ContainerCreating`).
    pub containers: Vec<ContainerObservation>,
    /// Whether every init container has done its part once (regular ones
    /// completed, sidecars started): the `Initialized` condition.
    pub initialized: bool,
}

fn time(secs: i64) -> Time {
    Time::from_unix_seconds(secs)
}

fn terminated(t: &TerminatedState) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: t.exit_code,
            signal: t.signal,
            reason: Some(t.reason.clone()),
            message: t.message.clone(),
            started_at: t.started_at.map(time),
            finished_at: t.finished_at.map(time),
        }),
        ..ContainerState::default()
    }
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_owned()),
            message,
        }),
        ..ContainerState::default()
    }
}

fn container_status(
    spec_image: &str,
    name: &str,
    obs: Option<&ContainerObservation>,
) -> ContainerStatus {
    let Some(o) = obs else {
        return ContainerStatus {
            name: name.to_owned(),
            image: spec_image.to_owned(),
            state: Some(waiting(reasons::CONTAINER_CREATING, None)),
            started: Some(false),
            ..ContainerStatus::default()
        };
    };
    let running = matches!(o.state, ObservedState::Running { .. });
    let state = match &o.state {
        ObservedState::Waiting { reason, message } => waiting(reason, message.clone()),
        ObservedState::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(time(*started_at)),
            }),
            ..ContainerState::default()
        },
        ObservedState::Terminated(t) => terminated(t),
    };
    ContainerStatus {
        name: name.to_owned(),
        ready: running && o.ready,
        restart_count: o.restart_count,
        state: Some(state),
        last_state: o.last_terminated.as_ref().map(terminated),
        image: spec_image.to_owned(),
        image_id: o.image_id.clone(),
        container_id: o.container_id.as_ref().map(|id| {
            if id.contains("://") {
                id.clone()
            } else {
                format!("containerd://{id}")
            }
        }),
        started: Some(running && o.started),
    }
}

/// The kubelet's `getPhase`: Pending while a regular init container has
/// not completed, or a sidecar has not started before any app container
/// ran, or an app container waits to start for the first time; Failed when
/// an init container failed and the policy is `Never`; Running when all
/// have started and one runs (sidecars count while they run) or, with
/// `Always` or a failure under `OnFailure`, all stopped but will restart;
/// Succeeded when all app containers exited 0 and none restarts; Failed
/// when all stopped, one failed, and the policy restarts none.
pub fn pod_phase(
    pod: &Pod,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
) -> PodPhase {
    let find = |list: &[ContainerStatus], name: &str| list.iter().find(|s| s.name == name).cloned();
    let last_terminated = |s: &ContainerStatus| {
        s.last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .map(|t| t.exit_code)
    };
    let (mut pending_init, mut pending_sidecars, mut failed_init) = (0, 0, 0);
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in &pod.spec.init_containers {
        let Some(s) = find(init_statuses, &c.name) else {
            if c.is_sidecar() {
                pending_sidecars += 1;
                unknown += 1;
            } else {
                pending_init += 1;
            }
            continue;
        };
        let state = s.state.clone().unwrap_or_default();
        if c.is_sidecar() {
            if state.running.is_some() {
                if s.started != Some(true) {
                    pending_sidecars += 1;
                }
                running += 1;
            } else if state.waiting.is_some() && last_terminated(&s).is_none() {
                pending_sidecars += 1;
                waiting += 1;
            }
            continue;
        }
        if state.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = &state.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if let Some(code) = last_terminated(&s) {
            if code != 0 {
                failed_init += 1;
            }
        } else {
            pending_init += 1;
        }
    }
    let mut app_ran = false;
    for c in &pod.spec.containers {
        let Some(s) = find(statuses, &c.name) else {
            unknown += 1;
            continue;
        };
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
            app_ran = true;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            app_ran = true;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.waiting.is_some() {
            if last_terminated(&s).is_some() {
                stopped += 1;
                app_ran = true;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }
    let policy = restart_policy(pod);
    if failed_init > 0 && policy == RestartPolicy::Never {
        return PodPhase::Failed;
    }
    if pending_init > 0 || (pending_sidecars > 0 && !app_ran) || waiting > 0 {
        PodPhase::Pending
    } else if running > 0 && unknown == 0 {
        PodPhase::Running
    } else if stopped > 0 && unknown == 0 {
        if policy == RestartPolicy::Always {
            PodPhase::Running
        } else if stopped == succeeded {
            PodPhase::Succeeded
        } else if policy == RestartPolicy::Never {
            PodPhase::Failed
        } else {
            PodPhase::Running
        }
    } else {
        PodPhase::Pending
    }
}

fn is_terminal(p: PodPhase) -> bool {
    matches!(p, PodPhase::Succeeded | PodPhase::Failed)
}

/// `ContainersReady` (and `Ready`, which has the same value without
/// readiness gates), as `GenerateContainersReadyCondition` words it.
fn readiness_condition(
    type_: &str,
    pod: &Pod,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    phase: PodPhase,
) -> Condition {
    let mut c = Condition {
        type_: type_.to_owned(),
        status: ConditionStatus::False,
        ..Condition::default()
    };
    match phase {
        PodPhase::Succeeded => {
            c.reason = Some(reasons::POD_COMPLETED.into());
            return c;
        }
        PodPhase::Failed => {
            c.reason = Some(reasons::POD_FAILED.into());
            return c;
        }
        _ => {}
    }
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    let sidecars = pod.spec.init_containers.iter().filter(|c| c.is_sidecar());
    for spec in sidecars.chain(&pod.spec.containers) {
        let list = if spec.is_sidecar() {
            init_statuses
        } else {
            statuses
        };
        match list.iter().find(|s| s.name == spec.name) {
            Some(s) if !s.ready => unready.push(spec.name.as_str()),
            Some(_) => {}
            None => unknown.push(spec.name.as_str()),
        }
    }
    let mut parts = Vec::new();
    if !unknown.is_empty() {
        parts.push(format!(
            "containers with unknown status: [{}]",
            unknown.join(" ")
        ));
    }
    if !unready.is_empty() {
        parts.push(format!(
            "containers with unready status: [{}]",
            unready.join(" ")
        ));
    }
    if parts.is_empty() {
        c.status = ConditionStatus::True;
    } else {
        c.reason = Some(reasons::CONTAINERS_NOT_READY.into());
        c.message = Some(parts.join(", "));
    }
    c
}

/// `Initialized`: true once every init container did its part, else the
/// kubelet's `ContainersNotInitialized` with the ones still to go.
fn initialized_condition(pod: &Pod, init_statuses: &[ContainerStatus], done: bool) -> Condition {
    let mut c = Condition {
        type_: "Initialized".to_owned(),
        status: ConditionStatus::True,
        ..Condition::default()
    };
    if done {
        return c;
    }
    let incomplete: Vec<&str> = pod
        .spec
        .init_containers
        .iter()
        .filter(|spec| {
            let s = init_statuses.iter().find(|s| s.name == spec.name);
            let state = s.and_then(|s| s.state.as_ref());
            let done = if spec.is_sidecar() {
                state.is_some_and(|st| st.running.is_some())
                    && s.is_some_and(|s| s.started == Some(true))
            } else {
                state
                    .and_then(|st| st.terminated.as_ref())
                    .is_some_and(|t| t.exit_code == 0)
            };
            !done
        })
        .map(|spec| spec.name.as_str())
        .collect();
    if incomplete.is_empty() {
        return c;
    }
    c.status = ConditionStatus::False;
    c.reason = Some(reasons::CONTAINERS_NOT_INITIALIZED.into());
    c.message = Some(format!(
        "containers with incomplete status: [{}]",
        incomplete.join(" ")
    ));
    c
}

/// Sets `c`'s lastTransitionTime: the previous one when the status did not
/// change, else `now`.
fn with_transition(mut c: Condition, previous: &[Condition], now: &Time) -> Condition {
    c.last_transition_time = match previous.iter().find(|p| p.type_ == c.type_) {
        Some(p) if p.status == c.status => p.last_transition_time.clone().or(Some(now.clone())),
        _ => Some(now.clone()),
    };
    c
}

/// The pod's status at `now` (Unix seconds). A terminal phase never goes
/// back, and a pod being deleted keeps the phase it had.
pub fn pod_status(input: &PodObservation<'_>, now: i64) -> PodStatus {
    let pod = input.pod;
    let prev = pod.status.clone().unwrap_or_default();
    let now_t = time(now);
    let statuses: Vec<ContainerStatus> = pod
        .spec
        .containers
        .iter()
        .map(|c| {
            let obs = input.containers.iter().find(|o| o.name == c.name);
            container_status(&c.image, &c.name, obs)
        })
        .collect();
    let init_statuses: Vec<ContainerStatus> = pod
        .spec
        .init_containers
        .iter()
        .map(|c| {
            let obs = input.init_containers.iter().find(|o| o.name == c.name);
            let mut s = container_status(&c.image, &c.name, obs);
            let completed = s
                .state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .is_some_and(|t| t.exit_code == 0);
            if !c.is_sidecar() {
                s.ready = completed;
            }
            s
        })
        .collect();
    let mut phase = pod_phase(pod, &init_statuses, &statuses);
    if let Some(old) = prev.phase
        && (is_terminal(old) || pod.metadata.deletion_timestamp.is_some())
    {
        phase = old;
    }
    let mut statuses = statuses;
    let mut init_statuses = init_statuses;
    if is_terminal(phase) {
        for s in statuses.iter_mut().chain(&mut init_statuses) {
            s.ready = false;
        }
    }
    let bare = |t: &str| Condition {
        type_: t.to_owned(),
        status: ConditionStatus::True,
        ..Condition::default()
    };
    let conditions = [
        initialized_condition(pod, &init_statuses, input.initialized),
        readiness_condition("Ready", pod, &init_statuses, &statuses, phase),
        readiness_condition("ContainersReady", pod, &init_statuses, &statuses, phase),
        bare("PodScheduled"),
    ]
    .into_iter()
    .map(|c| with_transition(c, &prev.conditions, &now_t))
    .collect();
    PodStatus {
        phase: Some(phase),
        conditions,
        reason: None,
        message: None,
        pod_ip: input.pod_ip.clone().or(prev.pod_ip),
        host_ip: input.host_ip.clone().or(prev.host_ip),
        init_container_statuses: init_statuses,
        container_statuses: statuses,
        start_time: prev.start_time.or(Some(now_t)),
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
