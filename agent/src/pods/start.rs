//! Starting one container of a pod ([`PodRun::start`]): its image, its
//! environment, the pod's `/etc` files, its mounts, its OCI spec, then
//! containerd's create and start; each failure becomes the waiting reason
//! the kubelet reports.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use jotasu_api::meta::unix_now;
use tracing::{debug, info, warn};

use super::containers::PodRun;
use super::probes::ContainerdExec;
use super::{ViewConfig, labels};
use crate::containerd::{LogFile, NewContainer};
use crate::pod::downward::NodeFacts;
use crate::pod::lifecycle::{Hook, run_hook};
use crate::pod::status::ObservedState;
use crate::pod::volumes::MaterializedVolume;

impl PodRun {
    /// Starts container `index`; on failure records why (as a waiting
    /// reason) and returns when to try again.
    pub(super) async fn start(
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
            Ok(None) => match self
                .ctx
                .containerd
                .pull_with(&name, |registry| self.pull_credentials(registry))
                .await
            {
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
            let facts = self.node_facts();
            crate::pod::env::resolve_env_with_services(
                &self.pod,
                &spec,
                &ViewConfig(&view),
                &[],
                &facts,
            )
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
            allow_privileged: self.ctx.config.allow_privileged,
        };
        let oci = match crate::pod::spec::runtime_spec_json(&setup) {
            Ok(s) => s,
            Err(e) => {
                let reason = match e {
                    crate::pod::spec::SpecError::Security(_) => "CreateContainerConfigError",
                    _ => "CreateContainerError",
                };
                warn!(pod = %self.id, container = %spec.name, error = %e, "the container cannot be created");
                self.ctrs[index].state = ObservedState::Waiting {
                    reason: reason.into(),
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
                self.post_start(index, &spec, sandbox.ip).await;
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
}

/// How long a postStart hook may run (the kubelet has no bound; the
/// worker waits on it, so jotasu has one).
const POST_START_TIMEOUT: Duration = Duration::from_secs(120);

impl PodRun {
    /// Runs the container's postStart hook, if any; when it fails the
    /// container is killed (its restart policy decides what follows) and
    /// the hook's error becomes its terminated message.
    async fn post_start(&mut self, index: usize, spec: &jotasu_api::Container, ip: Ipv4Addr) {
        let Some(handler) = Hook::PostStart.handler(spec).cloned() else {
            return;
        };
        let id = self.ctrs[index].id.clone();
        let exec = ContainerdExec {
            containerd: self.ctx.containerd.clone(),
            id: id.clone(),
        };
        let pod = crate::pod::pod_display(&self.pod);
        let result = run_hook(
            Hook::PostStart,
            &handler,
            spec,
            &pod,
            ip,
            POST_START_TIMEOUT,
            &exec,
        )
        .await;
        if let Err(msg) = result {
            warn!(pod = %self.id, container = %spec.name, error = %msg, "postStart hook failed: killing the container");
            self.ctrs[index].hook_error = Some(msg);
            if let Err(e) = self.ctx.containerd.kill(&id, libc::SIGKILL, true).await {
                warn!(container = %id, error = %e, "killing after a failed postStart hook");
            }
        }
    }
}

impl PodRun {
    /// Credentials for `registry` from the pod's `imagePullSecrets`.
    fn pull_credentials(&self, registry: &str) -> Option<crate::pod::pull_secrets::Credentials> {
        let view = self.ctx.view.read().unwrap_or_else(PoisonError::into_inner);
        let ns = self.pod.metadata.namespace.as_deref().unwrap_or("default");
        let secrets: Vec<&jotasu_api::Secret> = self
            .pod
            .spec
            .image_pull_secrets
            .iter()
            .filter_map(|r| view.secrets.get(&(ns.to_owned(), r.name.clone())))
            .collect();
        crate::pod::pull_secrets::credentials(registry, &secrets)
    }

    /// What the downward API reads besides the pod: its IP, the node's IP
    /// and allocatable CPU and memory (the node's capacity when not set).
    pub(super) fn node_facts(&self) -> NodeFacts {
        let config = &self.ctx.config;
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        NodeFacts {
            pod_ip: self
                .sandbox
                .as_ref()
                .map(|s| s.ip.to_string())
                .unwrap_or_default(),
            host_ip: config.node_ip.to_string(),
            cpu_millis: config
                .cpu_millis
                .unwrap_or(u64::try_from(cpus).unwrap_or(1) * 1000),
            memory_bytes: config.memory_bytes.unwrap_or(self.ctx.memory_capacity),
        }
    }
}

struct EtcFiles {
    hosts: PathBuf,
    hostname: PathBuf,
    resolv: PathBuf,
}
