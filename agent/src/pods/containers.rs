//! A pod's containers as its worker runs them ([`PodRun`]): adopt what a
//! previous agent left running, start and restart them (image, env,
//! volumes, spec, containerd), follow their exits, stop them gracefully,
//! and report the status the pod logic computes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jotasu_api::kinds::pod::RestartPolicy;
use jotasu_api::kinds::pod_status::PodStatus;
use jotasu_api::meta::{Time, unix_now};
use jotasu_api::{Container, Pod};
use std::time::Instant;
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::registry::{ContainerRecord, PodRecord, Registry};
use super::sandbox::{self, PodId, Sandbox};
use super::{NodeContext, report};
use crate::containerd::{Exit, TaskState};
use crate::pod::backoff::{Backoff, RestartDecision, crash_loop_message};
use crate::pod::probe::ContainerProbes;
use crate::pod::status::{
    ContainerObservation, ObservedState, PodObservation, TerminatedState, reasons,
};
use crate::pod::volumes::MaterializedVolume;

/// A container's exit, as its waiter saw it.
#[derive(Debug, Clone, Copy)]
pub struct Exited {
    /// The container's index in [`PodRun`]'s list (init containers first).
    pub index: usize,
    /// Which instance exited.
    pub generation: u64,
    /// How.
    pub exit: Exit,
}

/// What a container is to its pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// An init container run to completion.
    Init,
    /// An init container with `restartPolicy: Always`.
    Sidecar,
    /// An app container.
    App,
}

/// One container of the pod.
#[derive(Debug)]
pub(super) struct Ctr {
    pub name: String,
    /// containerd's id: `<pod uid>-<index>` (app containers),
    /// `<pod uid>-init-<index>` (init containers).
    pub id: String,
    pub role: Role,
    /// Its index in `spec.initContainers` or `spec.containers`.
    pub spec_index: usize,
    pub state: ObservedState,
    pub restart_count: i32,
    pub last_terminated: Option<TerminatedState>,
    pub backoff: Backoff,
    pub image_id: String,
    /// Bumped at every start, so a stale exit is recognised.
    pub generation: u64,
    pub probes: ContainerProbes,
    pub logs: Vec<PathBuf>,
    /// Whether the container ever started in this pod (restart counting).
    pub ever_started: bool,
    /// Why its postStart hook failed (the agent killed it): the message
    /// of its terminated state.
    pub hook_error: Option<String>,
}

/// The pod as its worker runs it.
#[derive(Debug)]
pub struct PodRun {
    pub(super) ctx: Arc<NodeContext>,
    registry: Arc<Registry>,
    pub(super) id: PodId,
    pub(super) pod: Pod,
    exits: mpsc::UnboundedSender<Exited>,
    pub(super) sandbox: Option<Sandbox>,
    sandbox_error: Option<String>,
    /// Init containers (spec order), then app containers (spec order).
    pub(super) ctrs: Vec<Ctr>,
    last_status: Option<PodStatus>,
    /// Whether every init container did its part once (the app containers
    /// may run; regular init containers never run again).
    pub(super) initialized: bool,
    /// The sidecar being stopped after the app containers finished, and
    /// when it gets SIGKILL.
    pub(super) sidecars_stopping: Option<(usize, Instant)>,
    /// A regular init container failed under `restartPolicy: Never` (logged once).
    pub(super) init_failed: bool,
    /// The volumes of the pod's claims, once read ([`super::volumes`]).
    pub(super) claims: crate::pod::claims::ClaimVolumes,
}

impl PodRun {
    /// A run for `pod` (nothing started yet).
    pub fn new(
        ctx: Arc<NodeContext>,
        registry: Arc<Registry>,
        id: PodId,
        pod: Pod,
        exits: mpsc::UnboundedSender<Exited>,
    ) -> Self {
        let has_init = !pod.spec.init_containers.is_empty();
        let inits = pod.spec.init_containers.iter().enumerate().map(|(i, c)| {
            let role = if c.is_sidecar() {
                Role::Sidecar
            } else {
                Role::Init
            };
            (role, i, c, format!("{}-init-{i}", id.uid))
        });
        let apps = pod
            .spec
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| (Role::App, i, c, format!("{}-{i}", id.uid)));
        let ctrs = inits
            .chain(apps)
            .map(|(role, spec_index, c, cid)| Ctr {
                name: c.name.clone(),
                id: cid,
                role,
                spec_index,
                state: ObservedState::Waiting {
                    reason: if has_init {
                        reasons::POD_INITIALIZING
                    } else {
                        reasons::CONTAINER_CREATING
                    }
                    .into(),
                    message: None,
                },
                restart_count: 0,
                last_terminated: None,
                backoff: Backoff::default(),
                image_id: String::new(),
                generation: 0,
                probes: ContainerProbes::new(c),
                logs: Vec::new(),
                ever_started: false,
                hook_error: None,
            })
            .collect();
        Self {
            ctx,
            registry,
            id,
            pod,
            exits,
            sandbox: None,
            sandbox_error: None,
            ctrs,
            last_status: None,
            initialized: !has_init,
            sidecars_stopping: None,
            init_failed: false,
            claims: crate::pod::claims::ClaimVolumes::new(),
        }
    }

    /// The pod as last seen.
    pub fn pod(&self) -> &Pod {
        &self.pod
    }

    /// Takes a newer version of the pod (its spec's containers are fixed).
    pub fn set_pod(&mut self, pod: Pod) {
        self.pod = pod;
    }

    /// The spec of container `index` (of [`Self::ctrs`]).
    pub(super) fn spec_of(&self, index: usize) -> Option<&Container> {
        let c = self.ctrs.get(index)?;
        match c.role {
            Role::App => self.pod.spec.containers.get(c.spec_index),
            Role::Init | Role::Sidecar => self.pod.spec.init_containers.get(c.spec_index),
        }
    }

    pub(super) fn logs_dir(&self, name: &str) -> PathBuf {
        self.ctx
            .config
            .pod_dir(&self.id.uid)
            .join("logs")
            .join(name)
    }

    /// Takes over containers a previous agent left: running ones are
    /// followed, their restart counts read back from the pod's status.
    pub async fn adopt(&mut self) {
        let previous: Vec<_> = self
            .pod
            .status
            .as_ref()
            .map(|s| {
                s.init_container_statuses
                    .iter()
                    .chain(&s.container_statuses)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        // Initialized before: the init containers do not run again.
        let was_initialized = self.pod.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Initialized" && c.status == jotasu_api::ConditionStatus::True)
        });
        if was_initialized {
            self.initialized = true;
        }
        for i in 0..self.ctrs.len() {
            let id = self.ctrs[i].id.clone();
            let Ok(Some(state)) = self.ctx.containerd.state(&id).await else {
                // No task: one that ended before (its task released) stays
                // ended — a completed init container does not run again,
                // nor an app container under Never.
                let prev = previous.iter().find(|s| s.name == self.ctrs[i].name);
                if let Some(t) = prev.and_then(terminated_of) {
                    let c = &mut self.ctrs[i];
                    c.restart_count = prev.map_or(0, |p| p.restart_count);
                    c.image_id = prev.and_then(|p| p.image_id.clone()).unwrap_or_default();
                    c.ever_started = true;
                    c.last_terminated = Some(t.clone());
                    c.state = ObservedState::Terminated(t);
                }
                continue;
            };
            if self.ctrs[i].role == Role::App {
                self.initialized = true;
            }
            let prev = previous.iter().find(|s| s.name == self.ctrs[i].name);
            let dir = self.logs_dir(&self.ctrs[i].name);
            let c = &mut self.ctrs[i];
            c.restart_count = prev.map_or(0, |p| p.restart_count);
            c.ever_started = true;
            c.image_id = prev.and_then(|p| p.image_id.clone()).unwrap_or_default();
            c.logs = log_files(&dir);
            match state {
                TaskState::Running { .. } => {
                    let started = prev
                        .and_then(|p| p.state.as_ref())
                        .and_then(|s| s.running.as_ref())
                        .and_then(|r| r.started_at.as_ref())
                        .and_then(Time::unix_seconds)
                        .unwrap_or_else(unix_now);
                    c.state = ObservedState::Running {
                        started_at: started,
                    };
                    c.probes.container_started(Instant::now());
                    c.generation += 1;
                    info!(container = %c.name, "adopted a running container");
                    self.spawn_waiter(i);
                }
                TaskState::Stopped(exit) => {
                    c.generation += 1;
                    let g = c.generation;
                    let _ = self.exits.send(Exited {
                        index: i,
                        generation: g,
                        exit,
                    });
                    c.state = ObservedState::Running {
                        started_at: unix_now(),
                    };
                }
                TaskState::Created | TaskState::Unknown => {}
            }
        }
        self.publish();
    }

    pub(super) fn spawn_waiter(&self, index: usize) {
        let c = &self.ctrs[index];
        let (cd, id, generation, tx) = (
            self.ctx.containerd.clone(),
            c.id.clone(),
            c.generation,
            self.exits.clone(),
        );
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            loop {
                match cd.wait(&id).await {
                    Ok(exit) => {
                        let _ = tx.send(Exited {
                            index,
                            generation,
                            exit,
                        });
                        return;
                    }
                    Err(e) if e.is_not_found() => {
                        let exit = Exit {
                            code: 255,
                            at_unix: unix_now(),
                        };
                        let _ = tx.send(Exited {
                            index,
                            generation,
                            exit,
                        });
                        return;
                    }
                    Err(e) => {
                        debug!(container = %id, error = %e, "waiting on the task failed; again");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }

    /// One pass: sandbox, volumes, containers to (re)start. Returns when
    /// it wants to be woken at the latest (a back-off ending).
    pub async fn sync(&mut self) -> Result<Option<Instant>, String> {
        if self.sandbox.is_none() {
            match sandbox::ensure(&self.ctx, &self.id).await {
                Ok(s) => {
                    info!(pod = %self.id, ip = %s.ip, "sandbox ready");
                    self.sandbox = Some(s);
                    self.sandbox_error = None;
                }
                Err(e) => {
                    let msg = e.to_string();
                    self.sandbox_error = Some(msg.clone());
                    return Err(msg);
                }
            }
        }
        let volumes = match self.prepare_volumes().await {
            Ok(v) => v,
            Err(msg) => {
                for c in &mut self.ctrs {
                    if !matches!(c.state, ObservedState::Running { .. }) {
                        c.state = ObservedState::Waiting {
                            reason: "ContainerCreating".into(),
                            message: Some(msg.clone()),
                        };
                    }
                }
                return Err(msg);
            }
        };
        if !self.initialized {
            match self.sync_init(&volumes).await {
                None => {
                    info!(pod = %self.id, "init containers done");
                    self.initialized = true;
                    for c in self.ctrs.iter_mut().filter(|c| c.role == Role::App) {
                        if !c.ever_started {
                            c.state = ObservedState::Waiting {
                                reason: reasons::CONTAINER_CREATING.into(),
                                message: None,
                            };
                        }
                    }
                }
                Some(wake) => {
                    self.publish();
                    return Ok(wake);
                }
            }
        }
        let mut wake: Option<Instant> = None;
        let policy = self.pod.spec.restart_policy.unwrap_or_default();
        let apps_done = self.apps_finished(policy);
        for i in 0..self.ctrs.len() {
            let c = &self.ctrs[i];
            let policy = match c.role {
                Role::Init => continue,
                // Sidecars always restart, until the app containers are done.
                Role::Sidecar if apps_done => continue,
                Role::Sidecar => RestartPolicy::Always,
                Role::App => policy,
            };
            match &c.state {
                ObservedState::Running { .. } => continue,
                ObservedState::Waiting { .. } if !c.ever_started => {}
                ObservedState::Waiting { .. } | ObservedState::Terminated(_) => {
                    let last = c.last_terminated.as_ref();
                    if !crate::pod::restart::should_restart(policy, last.map(|t| t.exit_code)) {
                        continue;
                    }
                }
            }
            if let Err(Some(at)) = self.start_after_backoff(i, &volumes).await {
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
        }
        if apps_done && let Some(at) = self.stop_sidecars().await {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        self.publish();
        Ok(wake)
    }

    /// Starts container `index` unless its crash-loop back-off holds it
    /// (then it waits in `CrashLoopBackOff`); `Err` says when to come back.
    pub(super) async fn start_after_backoff(
        &mut self,
        index: usize,
        volumes: &[MaterializedVolume],
    ) -> Result<(), Option<Instant>> {
        let c = &self.ctrs[index];
        let finished = if c.ever_started {
            c.last_terminated.as_ref().and_then(|t| t.finished_at)
        } else {
            None
        };
        if let Some(finished) = finished {
            let now = unix_now();
            let c = &mut self.ctrs[index];
            if let RestartDecision::Wait { until, backoff } =
                c.backoff.restart_decision(finished, now)
            {
                c.state = ObservedState::Waiting {
                    reason: reasons::CRASH_LOOP_BACK_OFF.into(),
                    message: Some(crash_loop_message(backoff, &c.name, &self.pod)),
                };
                let at = Instant::now()
                    + Duration::from_secs(u64::try_from(until - now).unwrap_or(0).max(1));
                return Err(Some(at));
            }
        }
        self.start(index, volumes).await
    }

    /// Whether every app container stopped for good (the pod is done):
    /// never under `Always`.
    fn apps_finished(&self, policy: RestartPolicy) -> bool {
        let mut apps = self.ctrs.iter().filter(|c| c.role == Role::App).peekable();
        apps.peek().is_some()
            && apps.all(|c| match &c.state {
                ObservedState::Running { .. } => false,
                ObservedState::Waiting { .. } if !c.ever_started => false,
                ObservedState::Waiting { .. } | ObservedState::Terminated(_) => {
                    let code = c.last_terminated.as_ref().map(|t| t.exit_code);
                    code.is_some() && !crate::pod::restart::should_restart(policy, code)
                }
            })
    }

    /// A container exited: record how (OOMKilled from the cgroup's
    /// counter), release its task, note it for back-off.
    pub async fn on_exit(&mut self, exited: Exited) {
        let Some(c) = self.ctrs.get(exited.index) else {
            return;
        };
        if exited.generation != c.generation {
            return;
        }
        let id = c.id.clone();
        let oom = self.ctx.cgroups.oom_kills(&self.id.uid, &id) > 0;
        if let Err(e) = self.ctx.containerd.delete_task(&id).await {
            debug!(container = %id, error = %e, "deleting the exited task");
        }
        let c = &mut self.ctrs[exited.index];
        let started_at = match c.state {
            ObservedState::Running { started_at } => started_at,
            _ => exited.exit.at_unix,
        };
        let code = i32::try_from(exited.exit.code).unwrap_or(255);
        let mut term =
            TerminatedState::exited(code, oom, Some(started_at), Some(exited.exit.at_unix));
        term.message = c.hook_error.take();
        info!(pod = %self.id, container = %c.name, exit_code = code, reason = %term.reason, "container exited");
        c.probes.container_stopped();
        c.last_terminated = Some(term.clone());
        c.state = ObservedState::Terminated(term);
        self.publish();
    }

    /// The status as the pod logic computes it from what the worker observed.
    pub fn status(&self) -> PodStatus {
        let observe = |c: &Ctr| ContainerObservation {
            name: c.name.clone(),
            image_id: (!c.image_id.is_empty()).then(|| c.image_id.clone()),
            container_id: c.ever_started.then(|| c.id.clone()),
            state: c.state.clone(),
            last_terminated: c.last_terminated.clone(),
            restart_count: c.restart_count,
            ready: c.probes.ready(),
            started: c.probes.started(),
        };
        let obs = PodObservation {
            pod: &self.pod,
            host_ip: Some(self.ctx.config.node_ip.to_string()),
            pod_ip: self.sandbox.as_ref().map(|s| s.ip.to_string()),
            init_containers: self
                .ctrs
                .iter()
                .filter(|c| c.role != Role::App)
                .map(observe)
                .collect(),
            containers: self
                .ctrs
                .iter()
                .filter(|c| c.role == Role::App)
                .map(observe)
                .collect(),
            initialized: self.initialized,
        };
        crate::pod::status::pod_status(&obs, unix_now())
    }

    /// Writes the status when it changed.
    pub async fn report(&mut self) {
        let status = self.status();
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        match report::write_status(&self.ctx.client, &self.pod, &status).await {
            Ok(Some(p)) => {
                self.pod.metadata.resource_version = p.metadata.resource_version;
                self.last_status = Some(status);
            }
            Ok(None) => {}
            Err(e) => {
                debug!(pod = %self.id, error = %e, "writing the status failed; again at the next pass")
            }
        }
        self.publish();
    }

    /// Publishes the pod's containers to the registry.
    pub(super) fn publish(&self) {
        let phase = self
            .last_status
            .as_ref()
            .and_then(|s| s.phase)
            .map_or_else(|| "Pending".to_owned(), |p| format!("{p:?}"));
        let mut reg = self.registry.lock();
        let rec = reg.entry(self.id.uid.clone()).or_insert_with(|| PodRecord {
            namespace: self.id.namespace.clone(),
            name: self.id.name.clone(),
            ..PodRecord::default()
        });
        rec.phase = phase;
        let old = std::mem::take(&mut rec.containers);
        // App containers first: the default container of logs and exec.
        let apps = self.ctrs.iter().filter(|c| c.role == Role::App);
        rec.containers = apps
            .chain(self.ctrs.iter().filter(|c| c.role != Role::App))
            .map(|c| {
                let cpu = old
                    .iter()
                    .find(|(n, r)| *n == c.name && r.running)
                    .map_or(0, |(_, r)| r.cpu_nanos);
                (
                    c.name.clone(),
                    ContainerRecord {
                        id: c.id.clone(),
                        running: matches!(c.state, ObservedState::Running { .. }),
                        logs: c.logs.clone(),
                        cpu_nanos: cpu,
                    },
                )
            })
            .collect();
    }
}

/// The ended state a previous status reported for a container.
fn terminated_of(s: &jotasu_api::kinds::pod_status::ContainerStatus) -> Option<TerminatedState> {
    let t = s.state.as_ref()?.terminated.as_ref()?;
    Some(TerminatedState {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: t.reason.clone().unwrap_or_default(),
        message: t.message.clone(),
        started_at: t.started_at.as_ref().and_then(Time::unix_seconds),
        finished_at: t.finished_at.as_ref().and_then(Time::unix_seconds),
    })
}

/// Log files of a container's instances (`N.log`), oldest first.
fn log_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let p = e.path();
                    let n: u64 = p.file_stem()?.to_str()?.parse().ok()?;
                    Some((n, p))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}
