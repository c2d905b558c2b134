//! The pod manager: one worker per pod of the view (by uid), told of every
//! change to its pod and of its pod's disappearance; orphans (containers,
//! namespaces, attachments and directories of pods the view no longer has)
//! collected once the first list is in; usage sampled for the heartbeat.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jotasu_api::Pod;
use jotasu_api::client::PodUsage;
use tokio::sync::watch;
use tracing::{Instrument as _, debug, info, warn};

use super::registry::Registry;
use super::sandbox::{self, PodId};
use super::{NodeContext, labels, worker};
use crate::node::UsageSource;
use crate::watch::WatchStatus;

/// Runs the node's pods.
#[derive(Debug, Clone)]
pub struct Manager {
    ctx: Arc<NodeContext>,
    registry: Arc<Registry>,
    workers: Arc<Mutex<HashMap<String, watch::Sender<Option<Pod>>>>>,
}

#[derive(Debug)]
struct Usage(Arc<Registry>);

impl UsageSource for Usage {
    fn usage(&self) -> Vec<PodUsage> {
        self.0.usage()
    }
}

impl Manager {
    /// A manager for the node of `ctx`, publishing its pods to `registry`.
    pub fn new(ctx: Arc<NodeContext>, registry: Arc<Registry>) -> Self {
        Self {
            ctx,
            registry,
            workers: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The shared context.
    pub fn ctx(&self) -> &Arc<NodeContext> {
        &self.ctx
    }

    /// What the workers publish.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The heartbeat's usage source.
    pub fn usage_source(&self) -> Arc<dyn UsageSource> {
        Arc::new(Usage(Arc::clone(&self.registry)))
    }

    /// Follows the view's pods until `stop`; the pods keep running after it.
    pub async fn run(
        self,
        mut pods: watch::Receiver<u64>,
        mut status: watch::Receiver<WatchStatus>,
        mut stop: watch::Receiver<bool>,
    ) {
        tokio::select! {
            () = async { let _ = status.wait_for(|s| s.synced).await; } => {}
            () = crate::stopped(&mut stop) => return,
        }
        self.collect_orphans().await;
        let mut usage_tick =
            tokio::time::interval(self.ctx.config.heartbeat.max(Duration::from_secs(1)));
        let mut last_sample = Instant::now();
        loop {
            self.sync(&stop);
            tokio::select! {
                r = pods.changed() => if r.is_err() { return },
                _ = usage_tick.tick() => {
                    let elapsed = last_sample.elapsed();
                    last_sample = Instant::now();
                    self.sample_usage(elapsed);
                }
                () = crate::stopped(&mut stop) => return,
            }
        }
    }

    fn sync(&self, stop: &watch::Receiver<bool>) {
        let pods: Vec<(String, Pod)> = {
            let v = self.ctx.view.read().unwrap_or_else(PoisonError::into_inner);
            v.pods
                .values()
                .filter_map(|p| Some((p.metadata.uid.clone()?, p.clone())))
                .collect()
        };
        let mut workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        workers.retain(|_, tx| !tx.is_closed());
        let live: HashSet<&str> = pods.iter().map(|(u, _)| u.as_str()).collect();
        for (uid, tx) in workers.iter() {
            if !live.contains(uid.as_str()) {
                tx.send_if_modified(|p| p.take().is_some());
            }
        }
        for (uid, pod) in pods {
            match workers.get(&uid) {
                Some(tx) => {
                    tx.send_if_modified(|cur| {
                        let changed = cur.as_ref() != Some(&pod);
                        if changed {
                            *cur = Some(pod);
                        }
                        changed
                    });
                }
                None => {
                    let span = tracing::info_span!(
                        "pod",
                        pod = %format!("{}/{}", crate::pod::pod_namespace(&pod), pod.metadata.name())
                    );
                    let (tx, rx) = watch::channel(Some(pod));
                    tokio::spawn(
                        worker::run(
                            Arc::clone(&self.ctx),
                            Arc::clone(&self.registry),
                            uid.clone(),
                            rx,
                            stop.clone(),
                        )
                        .instrument(span),
                    );
                    workers.insert(uid, tx);
                }
            }
        }
    }

    fn sample_usage(&self, elapsed: Duration) {
        let running: Vec<(String, String, String)> = self
            .registry
            .lock()
            .iter()
            .flat_map(|(uid, r)| {
                r.containers
                    .iter()
                    .filter(|(_, c)| c.running && !c.id.is_empty())
                    .map(move |(name, c)| (uid.clone(), name.clone(), c.id.clone()))
            })
            .collect();
        let samples: Vec<_> = running
            .into_iter()
            .filter_map(|(uid, name, id)| {
                let u = self.ctx.cgroups.usage(&uid, &id)?;
                Some((uid, name, u))
            })
            .collect();
        let secs = elapsed.as_secs_f64().max(0.001);
        let mut reg = self.registry.lock();
        let mut per_pod: HashMap<String, (i64, i64, bool)> = HashMap::new();
        for (uid, name, u) in samples {
            let Some(rec) = reg.get_mut(&uid) else {
                continue;
            };
            let Some((_, c)) = rec.containers.iter_mut().find(|(n, _)| *n == name) else {
                continue;
            };
            let delta = u.cpu_nanos.saturating_sub(c.cpu_nanos);
            let first = c.cpu_nanos == 0;
            c.cpu_nanos = u.cpu_nanos;
            let millis = if first {
                0
            } else {
                (delta as f64 / 1e6 / secs) as i64
            };
            let e = per_pod.entry(uid).or_insert((0, 0, true));
            e.0 += millis;
            e.1 += i64::try_from(u.memory_bytes).unwrap_or(i64::MAX);
            e.2 &= !first;
        }
        for (uid, (cpu, mem, measured)) in per_pod {
            if let Some(rec) = reg.get_mut(&uid) {
                rec.cpu_millis = cpu;
                rec.memory_bytes = mem;
                rec.usage_measured = measured;
            }
        }
    }

    /// Removes what belongs to pods the view no longer has: their
    /// containers, network attachments, namespaces and directories (pods
    /// deleted while the agent was down).
    async fn collect_orphans(&self) {
        let live: HashSet<String> = {
            let v = self.ctx.view.read().unwrap_or_else(PoisonError::into_inner);
            v.pods
                .values()
                .filter_map(|p| p.metadata.uid.clone())
                .collect()
        };
        let mut orphans: HashMap<String, PodId> = HashMap::new();
        match self.ctx.containerd.list().await {
            Ok(all) => {
                for c in all {
                    let Some(uid) = c.labels.get(labels::POD_UID) else {
                        continue;
                    };
                    if live.contains(uid) {
                        continue;
                    }
                    if let Err(e) = self.ctx.containerd.remove(&c.id).await {
                        warn!(container = %c.id, error = %e, "removing an orphaned container");
                    }
                    orphans.entry(uid.clone()).or_insert_with(|| PodId {
                        uid: uid.clone(),
                        namespace: c
                            .labels
                            .get(labels::POD_NAMESPACE)
                            .cloned()
                            .unwrap_or_default(),
                        name: c.labels.get(labels::POD_NAME).cloned().unwrap_or_default(),
                    });
                }
            }
            Err(e) => warn!(error = %e, "listing containers for orphans failed"),
        }
        let prefix = format!("{}-", self.ctx.config.node);
        let uids = self
            .ctx
            .netns
            .list(&prefix)
            .into_iter()
            .filter_map(|n| n.strip_prefix(&prefix).map(str::to_owned))
            .chain(self.ctx.network.attached_uids())
            .chain(
                std::fs::read_dir(self.ctx.config.state_dir.join("pods"))
                    .map(|d| {
                        d.flatten()
                            .filter_map(|e| e.file_name().into_string().ok())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default(),
            )
            .collect::<Vec<_>>();
        for uid in uids {
            if !live.contains(&uid) {
                orphans.entry(uid.clone()).or_insert_with(|| PodId {
                    uid,
                    namespace: String::new(),
                    name: String::new(),
                });
            }
        }
        for pod in orphans.values() {
            info!(uid = %pod.uid, pod = %format!("{}/{}", pod.namespace, pod.name), "collecting an orphaned pod");
            let errors = sandbox::teardown(&self.ctx, pod).await;
            if !errors.is_empty() {
                debug!(uid = %pod.uid, ?errors, "orphan teardown left errors");
            }
        }
    }
}
