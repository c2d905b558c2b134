//! The workloads benchmark (`jotasu-bench workloads`), in process like the
//! scheduler's `deployment` case: an embedded store in a temp dir, the API
//! server and every controller and the scheduler (the full manager), on
//! simulated nodes that heartbeat; a simulated kubelet reports each bound
//! pod at once — a Job's pod Succeeded (exit 0), any other Running and Ready.
//!
//! Case `job`: one Job of C completions with parallelism P; the clock runs
//! from the apply until the Job is `Complete` (completions/s = C / time).
//! Case `deployment` (the comparison, in the same run, in a fresh store):
//! one Deployment of C replicas; the clock runs until C pods are Ready.
//! Cases `statefulset-parallel` and `statefulset-ordered`: one StatefulSet
//! of R replicas (Parallel, OrderedReady); the clock runs from the apply
//! until R pods are Ready; case `deployment-small`: a Deployment of R
//! replicas, their comparison.
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use jotasu_api::kinds::pod_status::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, PodPhase,
    PodStatus,
};
use jotasu_api::{Condition, ConditionStatus, Job, Object, Pod, Time};
use jotasu_controlplane::manager;
use jotasu_controlplane::runtime::{Change, Informer, next_change};
use serde_json::json;
use tokio::sync::{Semaphore, watch};

use super::Report;
use super::scheduler::{Api, heartbeats, make_nodes, server, to_json};
use crate::signals;

/// The benchmark's name (`target/bench/workloads.json`).
pub const NAME: &str = "workloads";
/// Concurrent pod status writes of the simulated kubelet.
const STATUS_WRITERS: usize = 32;

/// A case of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Case {
    /// A Job of `completions` pods, `parallelism` at a time.
    Job,
    /// A Deployment of `completions` replicas, for comparison.
    Deployment,
    /// A StatefulSet of `replicas` pods, Parallel.
    StatefulsetParallel,
    /// A StatefulSet of `replicas` pods, OrderedReady.
    StatefulsetOrdered,
    /// A Deployment of `replicas` pods, for comparison.
    DeploymentSmall,
}

/// How the benchmark runs.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Cases to run.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [
        Case::Job, Case::Deployment, Case::StatefulsetParallel, Case::StatefulsetOrdered,
        Case::DeploymentSmall,
    ])]
    pub cases: Vec<Case>,
    /// The Job's completions (and the Deployment's replicas).
    #[arg(long, default_value_t = 1000)]
    pub completions: usize,
    /// The Job's parallelism.
    #[arg(long, default_value_t = 50)]
    pub parallelism: usize,
    /// The StatefulSets' replicas (and the small Deployment's).
    #[arg(long, default_value_t = 100)]
    pub replicas: usize,
    /// Simulated nodes (32 CPU, 110 pods each).
    #[arg(long, default_value_t = 20)]
    pub nodes: usize,
    /// Seconds a case may take before it is reported unfinished.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
}

/// One line on how the run was made, printed above the table.
pub fn describe(cfg: &Config) -> String {
    format!(
        "in process: embedded store in a temp dir, the API server, every controller and the \
         scheduler, {} heartbeating simulated nodes whose kubelet reports a bound pod at once \
         (a Job's pod Succeeded, others Running and Ready); job: {} completions, parallelism {}, \
         timed from the apply until Complete; deployment: {} replicas in a fresh store, timed \
         until all are Ready; statefulset-parallel, statefulset-ordered and deployment-small: {} \
         replicas, each in a fresh store, timed until all are Ready",
        cfg.nodes, cfg.completions, cfg.parallelism, cfg.completions, cfg.replicas
    )
}

fn job_json(completions: usize, parallelism: usize) -> anyhow::Result<String> {
    to_json(&json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "work", "namespace": "bench"},
        "spec": {"completions": completions, "parallelism": parallelism,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{
                "name": "work", "image": "registry.example.com/work:1.0",
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            }]}}},
    }))
}

fn stateful_set_json(replicas: usize, policy: &str) -> anyhow::Result<String> {
    to_json(&json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "bench"},
        "spec": {"replicas": replicas, "podManagementPolicy": policy, "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{
                "name": "db", "image": "registry.example.com/db:1.0",
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            }]}}},
    }))
}

fn deployment_json(replicas: usize) -> anyhow::Result<String> {
    to_json(&json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "bench"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{
                "name": "web", "image": "registry.example.com/web:1.0",
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            }]}}},
    }))
}

/// What the simulated kubelet reports for a bound pod: a Job's pod
/// finished with exit 0, any other running and ready.
fn reported(pod: &Pod) -> PodStatus {
    let now = Time::now();
    let job = pod
        .metadata
        .controller_ref()
        .is_some_and(|o| o.kind == "Job");
    let state = if job {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 0,
                reason: Some("Completed".into()),
                started_at: Some(now.clone()),
                finished_at: Some(now.clone()),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        }
    } else {
        ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(now.clone()),
            }),
            ..ContainerState::default()
        }
    };
    PodStatus {
        phase: Some(if job {
            PodPhase::Succeeded
        } else {
            PodPhase::Running
        }),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: if job {
                ConditionStatus::False
            } else {
                ConditionStatus::True
            },
            last_transition_time: Some(now.clone()),
            ..Condition::default()
        }],
        start_time: Some(now),
        container_statuses: pod
            .spec
            .containers
            .iter()
            .map(|c| ContainerStatus {
                name: c.name.clone(),
                ready: !job,
                image: c.image.clone(),
                state: Some(state.clone()),
                ..ContainerStatus::default()
            })
            .collect(),
        ..PodStatus::default()
    }
}

/// Reports every bound pod still Pending, once, until `stop`.
async fn kubelet(api: Api, pods: Informer<Pod>, mut stop: watch::Receiver<bool>) {
    let writers = Arc::new(Semaphore::new(STATUS_WRITERS));
    let done: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut rx = pods.subscribe();
    let mut sweep = tokio::time::interval(Duration::from_millis(500));
    loop {
        let due: Vec<Arc<Pod>> = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            change = next_change(&mut rx) => match change {
                Some(Change::Applied { new, .. }) => vec![new],
                Some(_) => continue,
                None => return,
            },
            // Writes lost to a conflict are retried from the cache.
            _ = sweep.tick() => pods.list(),
        };
        for pod in due {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let bound = pod.spec.node_name.as_deref().is_some_and(|n| !n.is_empty());
            let phase = pod.status.as_ref().and_then(|s| s.phase);
            if !bound || phase.is_some_and(|p| p != PodPhase::Pending) {
                continue;
            }
            if !done
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(uid.clone())
            {
                continue;
            }
            let Ok(permit) = Arc::clone(&writers).acquire_owned().await else {
                return;
            };
            let (api, done) = (api.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut p = Pod::clone(&pod);
                p.status = Some(reported(&p));
                let written = match serde_json::to_string(&Object::Pod(p)) {
                    Ok(json) => api.update_status(&json).await.is_ok(),
                    Err(_) => false,
                };
                if !written {
                    done.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&uid);
                }
                drop(permit);
            });
        }
    }
}

/// Waits until `done` holds, checking every 50 ms; the seconds since
/// `start`, or `None` after `timeout` or an interrupt.
async fn until(start: Instant, timeout: Duration, mut done: impl FnMut() -> bool) -> Option<f64> {
    while !done() {
        if start.elapsed() > timeout || signals::interrupted() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some(start.elapsed().as_secs_f64())
}

/// Whether at least `n` pods of the benchmark's namespace are Ready.
fn ready_in(pods: &Informer<Pod>, n: usize) -> bool {
    pods.list_in("bench")
        .iter()
        .filter(|p| jotasu_controlplane::runtime::status::is_ready(p))
        .count()
        >= n
}

async fn run_case(cfg: &Config, case: Case, report: &mut Report) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("making a temp dir")?;
    let (stop_tx, stop) = watch::channel(false);
    let api = server(&dir, &stop).await?;
    make_nodes(&api, cfg.nodes).await?;
    let beats = heartbeats(&api, cfg.nodes, &stop);
    let controllers = tokio::spawn(manager::run(
        api.clone(),
        manager::Config::default(),
        stop.clone(),
    ));
    let pods: Informer<Pod> = Informer::start(api.clone(), stop.clone());
    let jobs: Informer<Job> = Informer::start(api.clone(), stop.clone());
    pods.synced().await;
    jobs.synced().await;
    let sim = tokio::spawn(kubelet(api.clone(), pods.clone(), stop.clone()));
    let timeout = Duration::from_secs(cfg.timeout);
    let start = Instant::now();
    let (name, result) = match case {
        Case::Job => {
            api.apply(&[job_json(cfg.completions, cfg.parallelism)?], false)
                .await
                .context("applying the Job")?;
            let complete = || {
                jobs.get("bench", "work")
                    .is_some_and(|j| j.condition_true("Complete").is_some())
            };
            (
                format!(
                    "job: {} completions, parallelism {}",
                    cfg.completions, cfg.parallelism
                ),
                until(start, timeout, complete).await,
            )
        }
        Case::Deployment | Case::DeploymentSmall => {
            let n = if case == Case::Deployment {
                cfg.completions
            } else {
                cfg.replicas
            };
            api.apply(&[deployment_json(n)?], false)
                .await
                .context("applying the Deployment")?;
            (
                format!("deployment: {n} replicas"),
                until(start, timeout, || ready_in(&pods, n)).await,
            )
        }
        Case::StatefulsetParallel | Case::StatefulsetOrdered => {
            let policy = if case == Case::StatefulsetParallel {
                "Parallel"
            } else {
                "OrderedReady"
            };
            api.apply(&[stateful_set_json(cfg.replicas, policy)?], false)
                .await
                .context("applying the StatefulSet")?;
            (
                format!("statefulset {policy}: {} replicas", cfg.replicas),
                until(start, timeout, || ready_in(&pods, cfg.replicas)).await,
            )
        }
    };
    let _ = stop_tx.send(true);
    let _ = controllers.await;
    let _ = beats.await;
    let _ = sim.await;
    signals::check()?;
    let Some(seconds) = result else {
        bail!("{name}: not finished within {} s", cfg.timeout);
    };
    report.row(&name, "time", seconds, "s");
    let (metric, unit, n) = match case {
        Case::Job => ("completions", "completions/s", cfg.completions),
        Case::Deployment => ("pods Ready", "pods/s", cfg.completions),
        _ => ("pods Ready", "pods/s", cfg.replicas),
    };
    report.row(&name, metric, n as f64 / seconds, unit);
    Ok(())
}

/// Runs the benchmark.
pub fn run(cfg: &Config) -> anyhow::Result<Report> {
    ensure!(cfg.nodes >= 1, "--nodes must be at least 1");
    ensure!(
        cfg.completions >= 1 && cfg.parallelism >= 1 && cfg.replicas >= 1,
        "--completions, --parallelism and --replicas must be at least 1"
    );
    if cfg.cases.is_empty() {
        bail!("no case to run");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async {
        let mut report = Report::new(NAME);
        for case in &cfg.cases {
            run_case(cfg, *case, &mut report).await?;
        }
        let rows = report.rows.clone();
        let rate = |case: &str| {
            rows.iter()
                .find(|r| r.case.starts_with(case) && r.unit.ends_with("/s"))
                .map(|r| r.value)
        };
        let deploy = rate(&format!("deployment: {} ", cfg.completions));
        if let (Some(job), Some(deploy)) = (rate("job:"), deploy) {
            report.row(
                "job against deployment",
                "completions/s ÷ Ready pods/s",
                job / deploy,
                "ratio",
            );
        }
        let small = rate(&format!("deployment: {} ", cfg.replicas));
        for policy in ["Parallel", "OrderedReady"] {
            if let (Some(sts), Some(small)) = (rate(&format!("statefulset {policy}")), small) {
                report.row(
                    &format!("statefulset {policy} against deployment"),
                    "Ready pods/s ÷ Ready pods/s",
                    sts / small,
                    "ratio",
                );
            }
        }
        Ok(report)
    })
}
