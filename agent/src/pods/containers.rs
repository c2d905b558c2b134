//! A pod's containers as its worker runs them ([`PodRun`]): adopt what a
//! previous agent left running, start and restart them (image, env,
//! volumes, spec, containerd), follow their exits, stop them gracefully,
//! and report the status the pod logic computes.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use jotasu_api::kinds::pod_status::PodStatus;
use jotasu_api::meta::{Time, unix_now};
use jotasu_api::{Container, Pod};
use std::time::Instant;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::registry::{ContainerRecord, PodRecord, Registry};
use super::sandbox::{self, PodId, Sandbox};
use super::{NodeContext, ViewConfig, labels, report};
use crate::containerd::{Exit, LogFile, NewContainer, TaskState};
use crate::pod::backoff::{Backoff, RestartDecision, crash_loop_message};
use crate::pod::probe::ContainerProbes;
use crate::pod::status::{ContainerObservation, ObservedState, PodObservation, TerminatedState};
use crate::pod::volume_ops::HostVolumeOps;
use crate::pod::volumes::MaterializedVolume;

/// A container's exit, as its waiter saw it.
#[derive(Debug, Clone, Copy)]
pub struct Exited {
    /// The container's index in the pod spec.
    pub index: usize,
    /// Which instance exited.
    pub generation: u64,
    /// How.
    pub exit: Exit,
}

/// One container of the pod.
#[derive(Debug)]
pub(super) struct Ctr {
    pub name: String,
    /// containerd's id: `<pod uid>-<index>`.
    pub id: String,
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
}

/// The pod as its worker runs it.
#[derive(Debug)]
pub struct PodRun {
    pub(super) ctx: Arc<NodeContext>,
    registry: Arc<Registry>,
    pub(super) id: PodId,
    pod: Pod,
    exits: mpsc::UnboundedSender<Exited>,
    pub(super) sandbox: Option<Sandbox>,
    sandbox_error: Option<String>,
    pub(super) ctrs: Vec<Ctr>,
    last_status: Option<PodStatus>,
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
        let ctrs = pod
            .spec
            .containers
            .iter()
            .enumerate()
            .map(|(i, c)| Ctr {
                name: c.name.clone(),
                id: format!("{}-{i}", id.uid),
                state: ObservedState::Waiting {
                    reason: "ContainerCreating".into(),
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

    fn spec_of(&self, index: usize) -> Option<&Container> {
        self.pod.spec.containers.get(index)
    }

    fn logs_dir(&self, name: &str) -> PathBuf {
        self.ctx
            .config
            .pod_dir(&self.id.uid)
            .join("logs")
            .join(name)
    }

    /// Takes over containers a previous agent left: running ones are
    /// followed, their restart counts read back from the pod's status.
    pub async fn adopt(&mut self) {
        let previous = self
            .pod
            .status
            .as_ref()
            .map(|s| s.container_statuses.clone())
            .unwrap_or_default();
        for i in 0..self.ctrs.len() {
            let id = self.ctrs[i].id.clone();
            let Ok(Some(state)) = self.ctx.containerd.state(&id).await else {
                continue;
            };
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

    fn spawn_waiter(&self, index: usize) {
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
        let volumes = match self.write_volumes() {
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
        let mut wake: Option<Instant> = None;
        let policy = self.pod.spec.restart_policy.unwrap_or_default();
        for i in 0..self.ctrs.len() {
            let c = &self.ctrs[i];
            let restart_after = match &c.state {
                ObservedState::Running { .. } => continue,
                ObservedState::Waiting { .. } if !c.ever_started => None,
                ObservedState::Waiting { .. } | ObservedState::Terminated(_) => {
                    let last = c.last_terminated.as_ref();
                    if !crate::pod::restart::should_restart(policy, last.map(|t| t.exit_code)) {
                        continue;
                    }
                    last.and_then(|t| t.finished_at)
                }
            };
            if let Some(finished) = restart_after {
                let now = unix_now();
                let c = &mut self.ctrs[i];
                if let RestartDecision::Wait { until, backoff } =
                    c.backoff.restart_decision(finished, now)
                {
                    c.state = ObservedState::Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message: Some(crash_loop_message(backoff, &c.name, &self.pod)),
                    };
                    let at = Instant::now()
                        + Duration::from_secs(u64::try_from(until - now).unwrap_or(0).max(1));
                    wake = Some(wake.map_or(at, |w: Instant| w.min(at)));
                    continue;
                }
            }
            if let Err(Some(at)) = self.start(i, &volumes).await {
                wake = Some(wake.map_or(at, |w| w.min(at)));
            }
        }
        self.publish();
        Ok(wake)
    }

    fn write_volumes(&self) -> Result<Vec<MaterializedVolume>, String> {
        let view = self.ctx.view.read().unwrap_or_else(PoisonError::into_inner);
        let contents = crate::pod::volumes::plan_volumes(&self.pod, &ViewConfig(&view))
            .map_err(|e| e.to_string())?;
        drop(view);
        crate::pod::volumes::write_volumes(
            &self.ctx.config.pod_dir(&self.id.uid),
            &contents,
            &HostVolumeOps,
        )
        .map_err(|e| format!("MountVolume.SetUp failed: {e}"))
    }

    /// Starts container `index`; on failure records why (as a waiting
    /// reason) and returns when to try again.
    async fn start(
        &mut self,
        index: usize,
        volumes: &[MaterializedVolume],
    ) -> Result<(), Option<Instant>> {
        let Some(spec) = self.spec_of(index).cloned() else {
            return Err(None);
        };
        let retry = |secs: u64| Some(Instant::now() + Duration::from_secs(secs));
        // The image.
        let name = crate::containerd::normalize(&spec.image);
        let image = match self.ctx.containerd.image(&name).await {
            Ok(Some(i)) => i,
            Ok(None) => match self.ctx.containerd.pull(&name).await {
                Ok(i) => i,
                Err(e) => {
                    let c = &mut self.ctrs[index];
                    let pulled_before = matches!(&c.state, ObservedState::Waiting { reason, .. } if reason == "ErrImagePull" || reason == "ImagePullBackOff");
                    c.state = ObservedState::Waiting {
                        reason: if pulled_before {
                            "ImagePullBackOff"
                        } else {
                            "ErrImagePull"
                        }
                        .into(),
                        message: Some(e.to_string()),
                    };
                    return Err(retry(10));
                }
            },
            Err(e) => {
                self.ctrs[index].state = ObservedState::Waiting {
                    reason: "ErrImagePull".into(),
                    message: Some(e.to_string()),
                };
                return Err(retry(10));
            }
        };
        // The environment.
        let env = {
            let view = self.ctx.view.read().unwrap_or_else(PoisonError::into_inner);
            crate::pod::env::resolve_env(&self.pod, &spec, &ViewConfig(&view))
        };
        let env = match env {
            Ok(e) => e,
            Err(e) => {
                self.ctrs[index].state = ObservedState::Waiting {
                    reason: "CreateContainerConfigError".into(),
                    message: Some(e.to_string()),
                };
                return Err(retry(5));
            }
        };
        let Some(sandbox) = self.sandbox.clone() else {
            return Err(retry(1));
        };
        let etc = match self.write_etc_files(sandbox.ip) {
            Ok(e) => e,
            Err(e) => {
                self.ctrs[index].state = ObservedState::Waiting {
                    reason: "ContainerCreating".into(),
                    message: Some(e),
                };
                return Err(retry(2));
            }
        };
        let id = self.ctrs[index].id.clone();
        let mounts = match crate::pod::mounts::mounts_for(&spec, volumes) {
            Ok(m) => m,
            Err(e) => {
                self.ctrs[index].state = ObservedState::Waiting {
                    reason: "CreateContainerConfigError".into(),
                    message: Some(e.to_string()),
                };
                return Err(retry(5));
            }
        };
        let setup = crate::pod::spec::ContainerSetup {
            pod: &self.pod,
            container: &spec,
            image: &image,
            env,
            mounts,
            netns: sandbox.netns.clone(),
            cgroups_path: self.ctx.cgroups.container_path(&self.id.uid, &id),
            hostname: crate::pod::etc_files::pod_hostname(&self.pod),
            resolv_conf: Some(etc.resolv),
            hosts: Some(etc.hosts),
            hostname_file: Some(etc.hostname),
            oom_score_adj: Some(
                crate::pod::resources::oom_score_adj(&self.pod, &spec, self.ctx.memory_capacity)
                    .max(crate::pod::resources::oom_score_adj_floor()),
            ),
            limit_swap: false,
        };
        let oci = match crate::pod::spec::runtime_spec_json(&setup) {
            Ok(s) => s,
            Err(e) => {
                self.ctrs[index].state = ObservedState::Waiting {
                    reason: "CreateContainerError".into(),
                    message: Some(e.to_string()),
                };
                return Err(retry(10));
            }
        };
        // A fresh container for every instance (a clean root filesystem, as
        // Kubernetes gives a restarted container).
        if self.ctrs[index].ever_started
            && let Err(e) = self.ctx.containerd.remove(&id).await
        {
            debug!(container = %id, error = %e, "removing the previous instance");
        }
        let new = NewContainer {
            id: id.clone(),
            image: image.clone(),
            spec: oci,
            labels: [
                (labels::POD_UID.to_owned(), self.id.uid.clone()),
                (labels::POD_NAMESPACE.to_owned(), self.id.namespace.clone()),
                (labels::POD_NAME.to_owned(), self.id.name.clone()),
                (labels::CONTAINER.to_owned(), spec.name.clone()),
            ]
            .into(),
        };
        let dir = self.logs_dir(&spec.name);
        let attempt = if self.ctrs[index].ever_started {
            self.ctrs[index].restart_count + 1
        } else {
            0
        };
        let log = dir.join(format!("{attempt}.log"));
        let started = async {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            match self.ctx.containerd.create(&new).await {
                // Left by an agent that stopped between create and start.
                Err(e) if e.is_already_exists() => {
                    self.ctx
                        .containerd
                        .remove(&id)
                        .await
                        .map_err(|e| e.to_string())?;
                    self.ctx.containerd.create(&new).await
                }
                other => other,
            }
            .map_err(|e| e.to_string())?;
            self.ctx
                .containerd
                .start(&id, &LogFile(log.clone()))
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        let c = &mut self.ctrs[index];
        match started {
            Ok(pid) => {
                if c.ever_started {
                    c.restart_count += 1;
                }
                c.ever_started = true;
                c.generation += 1;
                c.image_id = image.digest.clone();
                c.state = ObservedState::Running {
                    started_at: unix_now(),
                };
                c.probes.container_started(Instant::now());
                c.logs.push(log);
                // Keep the current and the previous instance's logs.
                while c.logs.len() > 2 {
                    let old = c.logs.remove(0);
                    let _ = std::fs::remove_file(old);
                }
                info!(pod = %self.id, container = %c.name, pid, restarts = c.restart_count, "container started");
                self.spawn_waiter(index);
                Ok(())
            }
            Err(msg) => {
                warn!(pod = %self.id, container = %c.name, error = %msg, "starting the container failed");
                c.state = ObservedState::Waiting {
                    reason: "CreateContainerError".into(),
                    message: Some(msg),
                };
                let _ = self.ctx.containerd.remove(&id).await;
                Err(retry(10))
            }
        }
    }

    fn write_etc_files(&self, ip: Ipv4Addr) -> Result<EtcFiles, String> {
        use crate::pod::{dns, etc_files};
        let dir = self.ctx.config.pod_dir(&self.id.uid).join("etc");
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let hostname = etc_files::pod_hostname(&self.pod);
        let config = &self.ctx.config;
        let domain = etc_files::pod_domain(&self.pod, &config.cluster_domain);
        let write = |name: &str, text: String| -> Result<PathBuf, String> {
            let p = dir.join(name);
            std::fs::write(&p, text).map_err(|e| format!("writing {}: {e}", p.display()))?;
            Ok(p)
        };
        let hosts = write(
            "hosts",
            etc_files::hosts_file(Some(ip.into()), &hostname, domain.as_deref()),
        )?;
        let hostname_path = write("hostname", etc_files::hostname_file(&hostname))?;
        let node_resolv = dns::ResolvConf::read(&config.resolv_conf).map_err(|e| e.to_string())?;
        let spec = &self.pod.spec;
        let resolv_conf = dns::pod_resolv_conf(
            spec.dns_policy.unwrap_or_default(),
            spec.dns_config.as_ref(),
            &self.id.namespace,
            config.cluster_dns.map(Into::into),
            &config.cluster_domain,
            &node_resolv,
        );
        let resolv = write("resolv.conf", resolv_conf.render())?;
        Ok(EtcFiles {
            hosts,
            hostname: hostname_path,
            resolv,
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
        let term = TerminatedState::exited(code, oom, Some(started_at), Some(exited.exit.at_unix));
        info!(pod = %self.id, container = %c.name, exit_code = code, reason = %term.reason, "container exited");
        c.probes.container_stopped();
        c.last_terminated = Some(term.clone());
        c.state = ObservedState::Terminated(term);
        self.publish();
    }

    /// Stops every container gracefully: out of the endpoints first (the
    /// pod reports not ready and the worker waits, briefly, until the
    /// node's data plane no longer balances to it), then SIGTERM, then
    /// SIGKILL after the grace period; then removes them.
    pub async fn stop_all(&mut self, exits: &mut mpsc::UnboundedReceiver<Exited>) {
        let grace = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or(self.pod.spec.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0);
        let grace = Duration::from_secs(u64::try_from(grace).unwrap_or(30));
        for c in &mut self.ctrs {
            c.probes.container_stopped();
        }
        self.report().await;
        if let Some(ip) = self.sandbox.as_ref().map(|s| s.ip) {
            let until = Instant::now() + grace.min(Duration::from_secs(3));
            while crate::datapath::is_backend(&self.ctx.datapath, ip) && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let running: Vec<usize> = (0..self.ctrs.len())
            .filter(|i| matches!(self.ctrs[*i].state, ObservedState::Running { .. }))
            .collect();
        for &i in &running {
            let id = self.ctrs[i].id.clone();
            if let Err(e) = self.ctx.containerd.kill(&id, libc::SIGTERM, true).await {
                debug!(container = %id, error = %e, "SIGTERM");
            }
        }
        let mut pending: Vec<usize> = running;
        let deadline = tokio::time::Instant::now() + grace;
        let mut killed = false;
        while !pending.is_empty() {
            tokio::select! {
                Some(exit) = exits.recv() => {
                    pending.retain(|i| *i != exit.index);
                    self.on_exit(exit).await;
                }
                () = tokio::time::sleep_until(deadline), if !killed => {
                    killed = true;
                    for &i in &pending {
                        let id = self.ctrs[i].id.clone();
                        warn!(pod = %self.id, container = %self.ctrs[i].name, "grace period over: SIGKILL");
                        let _ = self.ctx.containerd.kill(&id, libc::SIGKILL, true).await;
                    }
                }
                () = tokio::time::sleep_until(deadline + Duration::from_secs(10)), if killed => break,
            }
        }
        for c in &self.ctrs {
            if let Err(e) = self.ctx.containerd.remove(&c.id).await {
                warn!(container = %c.id, error = %e, "removing the container");
            }
        }
    }

    /// The status as the pod logic computes it from what the worker observed.
    pub fn status(&self) -> PodStatus {
        let obs = PodObservation {
            pod: &self.pod,
            host_ip: Some(self.ctx.config.node_ip.to_string()),
            pod_ip: self.sandbox.as_ref().map(|s| s.ip.to_string()),
            containers: self
                .ctrs
                .iter()
                .map(|c| ContainerObservation {
                    name: c.name.clone(),
                    image_id: (!c.image_id.is_empty()).then(|| c.image_id.clone()),
                    container_id: c.ever_started.then(|| c.id.clone()),
                    state: c.state.clone(),
                    last_terminated: c.last_terminated.clone(),
                    restart_count: c.restart_count,
                    ready: c.probes.ready(),
                    started: c.probes.started(),
                })
                .collect(),
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
        rec.containers = self
            .ctrs
            .iter()
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

struct EtcFiles {
    hosts: PathBuf,
    hostname: PathBuf,
    resolv: PathBuf,
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
