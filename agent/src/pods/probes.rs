//! Running a pod's due probes: HTTP and TCP from the node straight to the
//! pod's address (the node routes to every local pod), exec through
//! containerd; their outcomes go to each container's probe state, and a
//! failed liveness or startup probe kills the container (its restart
//! policy decides what follows).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use futures::future::join_all;
use tracing::{info, warn};

use super::containers::PodRun;
use crate::containerd::Containerd;
use crate::pod::probe::{ProbeEvent, ProbeOutcome};
use crate::pod::probe_run::{ProbeExec, exec_outcome, run_probe};

/// Exec probes (and exec hooks) through containerd, in one container.
pub(super) struct ContainerdExec {
    /// containerd.
    pub(super) containerd: Containerd,
    /// The container's id.
    pub(super) id: String,
}

impl ProbeExec for ContainerdExec {
    fn exec(
        &self,
        command: Vec<String>,
        timeout: Duration,
    ) -> impl Future<Output = ProbeOutcome> + Send {
        let (cd, id) = (self.containerd.clone(), self.id.clone());
        async move {
            match crate::exec::collect(&cd, &id, command.clone(), timeout).await {
                Ok(Some((code, output))) => {
                    exec_outcome(&command, Some(i32::try_from(code).unwrap_or(255)), &output)
                }
                Ok(None) => exec_outcome(&command, None, ""),
                Err(e) => ProbeOutcome::Unknown(e),
            }
        }
    }
}

/// Runs every due probe of the pod; returns when the next one is due.
pub async fn run_due(run: &mut PodRun) -> Option<Instant> {
    let ip: Ipv4Addr = run.sandbox.as_ref()?.ip;
    let now = Instant::now();
    let mut started = false;
    let mut jobs = Vec::new();
    for (i, c) in run.ctrs.iter_mut().enumerate() {
        for ticket in c.probes.take_due(now) {
            let Some(w) = c.probes.worker(ticket.kind) else {
                continue;
            };
            jobs.push((i, ticket, w.probe().clone(), w.settings().timeout));
        }
    }
    if !jobs.is_empty() {
        let specs: Vec<_> = (0..run.ctrs.len())
            .map(|i| run.spec_of(i).cloned().unwrap_or_default())
            .collect();
        let outcomes = join_all(jobs.iter().map(|(i, _, probe, timeout)| {
            let exec = ContainerdExec {
                containerd: run.ctx.containerd.clone(),
                id: run.ctrs[*i].id.clone(),
            };
            let spec = specs.get(*i).cloned().unwrap_or_default();
            let probe = probe.clone();
            let timeout = *timeout;
            async move { run_probe(&probe, ip, &spec, timeout, &exec).await }
        }))
        .await;
        for ((i, ticket, _, _), outcome) in jobs.into_iter().zip(outcomes) {
            let c = &mut run.ctrs[i];
            match c.probes.record(ticket, &outcome) {
                Some(ProbeEvent::LivenessFailed(msg) | ProbeEvent::StartupFailed(msg)) => {
                    info!(pod = %run.id, container = %c.name, reason = %msg, "probe failed; killing the container");
                    if let Err(e) = run.ctx.containerd.kill(&c.id, libc::SIGKILL, true).await {
                        warn!(container = %c.id, error = %e, "killing after a failed probe");
                    }
                }
                Some(ProbeEvent::ReadyChanged(ready)) => {
                    info!(pod = %run.id, container = %c.name, ready, "readiness changed");
                }
                Some(ProbeEvent::Started) => started = true,
                None => {}
            }
        }
    }
    // A container that just started (its startup probe passed) may let
    // the next init container, or the app containers, start: sync now.
    let next = run.ctrs.iter().filter_map(|c| c.probes.next_due()).min();
    if started { Some(now) } else { next }
}
