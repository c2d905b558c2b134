//! Stopping a pod's containers gracefully ([`PodRun::stop_all`]): first
//! out of every node's data plane, then preStop hooks, then SIGTERM; the
//! app containers first, then the sidecars one by one in reverse order, as
//! the kubelet does, all within the pod's grace period; and the sidecars
//! of a pod whose app containers are done ([`PodRun::stop_sidecars`]).
//!
//! Out of the data planes, cluster-wide: the endpoints controller marks
//! the pod's endpoints `terminating` in its slices (agents then send it no
//! new flows; the flows it has run to their end). The pod's worker waits
//! until its own view shows that in every slice that listed the pod, takes
//! the revision of that view, and asks the control plane to wait until
//! every live node's data plane is programmed from a view covering it
//! (`WaitEndpointsProgrammed`), all within [`LEAVE_ENDPOINTS_TIMEOUT`] and
//! the grace period. Meanwhile its readiness probes keep running (the
//! liveness and startup probes stop), so `serving` stays what the app says.
//! Without the control plane, it waits until this node's data plane no
//! longer balances to the pod, within the same bound.

use std::future::Future;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use std::sync::{Arc, PoisonError};

use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use futures::future::join_all;

use super::NodeContext;
use super::containers::{Exited, PodRun, Role};
use super::probes::ContainerdExec;
use crate::pod::lifecycle::{Hook, run_hook};
use crate::pod::status::ObservedState;

/// The least time between the end of preStop hooks and SIGKILL (the kubelet's).
const MIN_GRACE_AFTER_PRE_STOP: Duration = Duration::from_secs(2);
/// How long the worker waits for a container's exit after SIGKILL.
const AFTER_KILL: Duration = Duration::from_secs(10);
/// The longest a stopping pod waits, before its preStop hooks and SIGTERM,
/// for every node to stop sending it new flows (the grace period bounds it
/// too: the wait is part of it).
pub const LEAVE_ENDPOINTS_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the worker looks at its view (or its node's data plane) while it waits.
const POLL: Duration = Duration::from_millis(25);

/// How a stopping pod left the endpoints (what the worker logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Left {
    /// No slice listed the pod: nothing sent it flows.
    NeverListed,
    /// Every live node's data plane covers the view at this revision.
    Everywhere(i64),
    /// The bound ended before this node's view showed the pod terminating
    /// (the control plane unreachable, or the endpoints controller behind).
    NotShown,
    /// The bound ended before these nodes' data planes caught up.
    TimedOut(Vec<String>),
    /// The control plane could not be asked (the reason); this node's data
    /// plane no longer balances to the pod (or the bound ended).
    LocallyOnly(String),
}

impl PodRun {
    /// The pod's grace period: the deletion's, else the spec's, else 30 s.
    pub(super) fn grace_period(&self) -> Duration {
        let grace = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or(self.pod.spec.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0);
        Duration::from_secs(u64::try_from(grace).unwrap_or(30))
    }

    /// Stops every container gracefully: out of every node's data plane
    /// first (see the module's documentation; readiness keeps following
    /// its probe meanwhile), then preStop hooks and SIGTERM to the app (and
    /// any running init) containers, then to each sidecar in reverse order
    /// once they are gone, SIGKILL when the grace period ends; then
    /// removes them.
    pub async fn stop_all(&mut self, exits: &mut mpsc::UnboundedReceiver<Exited>) {
        let grace = self.grace_period();
        let deadline = tokio::time::Instant::now() + grace;
        for c in &mut self.ctrs {
            c.probes.pod_terminating();
        }
        self.report().await;
        let bound = grace.min(LEAVE_ENDPOINTS_TIMEOUT);
        // Grace 0 (a forced deletion) waits for nothing.
        if let Some(ip) = self
            .sandbox
            .as_ref()
            .map(|s| s.ip)
            .filter(|_| !bound.is_zero())
        {
            let leaving = leave_endpoints(
                Arc::clone(&self.ctx),
                ip,
                self.id.uid.clone(),
                Instant::now() + bound,
            );
            match self.while_probing(leaving).await {
                Left::NeverListed => {}
                Left::Everywhere(revision) => {
                    info!(pod = %self.id, revision, "out of every node's data plane");
                }
                Left::NotShown => {
                    warn!(pod = %self.id, bound = ?bound, "this node's view never showed the pod's endpoints terminating (is the control plane reachable?): stopping anyway");
                }
                Left::TimedOut(lagging) => {
                    warn!(pod = %self.id, ?lagging, bound = ?bound, "nodes may still send the pod new flows: stopping anyway");
                }
                Left::LocallyOnly(why) => {
                    warn!(pod = %self.id, reason = %why, "cannot ask the control plane whether every node stopped sending the pod new flows: waited for this node's data plane only");
                }
            }
        }
        let running =
            |run: &Self, i: usize| matches!(run.ctrs[i].state, ObservedState::Running { .. });
        let first: Vec<usize> = (0..self.ctrs.len())
            .filter(|i| self.ctrs[*i].role != Role::Sidecar && running(self, *i))
            .collect();
        self.stop_group(first, deadline, exits).await;
        let sidecars: Vec<usize> = (0..self.ctrs.len())
            .rev()
            .filter(|i| self.ctrs[*i].role == Role::Sidecar)
            .collect();
        for i in sidecars {
            if running(self, i) {
                self.stop_group(vec![i], deadline, exits).await;
            }
        }
        for c in &self.ctrs {
            if let Err(e) = self.ctx.containerd.remove(&c.id).await {
                warn!(container = %c.id, error = %e, "removing the container");
            }
        }
    }

    /// Runs `work` while the due probes keep running (and their changes
    /// are reported), as the kubelet keeps probing a terminating pod.
    async fn while_probing<T>(&mut self, work: impl Future<Output = T>) -> T {
        let mut work = std::pin::pin!(work);
        loop {
            let next = self.ctrs.iter().filter_map(|c| c.probes.next_due()).min();
            let sleep = async {
                match next {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                out = &mut work => return out,
                () = sleep => {
                    super::probes::run_due(self).await;
                    self.report().await;
                }
            }
        }
    }

    /// SIGTERM to containers `group`, SIGKILL to those left at `deadline`;
    /// returns when all exited (or a while after the SIGKILL).
    async fn stop_group(
        &mut self,
        group: Vec<usize>,
        deadline: tokio::time::Instant,
        exits: &mut mpsc::UnboundedReceiver<Exited>,
    ) {
        let deadline = self.pre_stop(&group, deadline).await;
        for &i in &group {
            let id = self.ctrs[i].id.clone();
            if let Err(e) = self.ctx.containerd.kill(&id, libc::SIGTERM, true).await {
                debug!(container = %id, error = %e, "SIGTERM");
            }
        }
        let mut pending = group;
        let mut killed = tokio::time::Instant::now() >= deadline;
        if killed {
            self.kill_now(&pending).await;
        }
        let give_up = deadline.max(tokio::time::Instant::now()) + AFTER_KILL;
        while !pending.is_empty() {
            tokio::select! {
                Some(exit) = exits.recv() => {
                    pending.retain(|i| *i != exit.index);
                    self.on_exit(exit).await;
                }
                () = tokio::time::sleep_until(deadline), if !killed => {
                    killed = true;
                    self.kill_now(&pending).await;
                }
                () = tokio::time::sleep_until(give_up) => break,
            }
        }
    }

    /// Runs the preStop hooks of `group` side by side, within the grace
    /// period; returns the deadline of SIGKILL (at least
    /// [`MIN_GRACE_AFTER_PRE_STOP`] after the hooks, as the kubelet).
    async fn pre_stop(
        &self,
        group: &[usize],
        deadline: tokio::time::Instant,
    ) -> tokio::time::Instant {
        let Some(ip) = self.sandbox.as_ref().map(|s| s.ip) else {
            return deadline;
        };
        let pod = crate::pod::pod_display(&self.pod);
        let hooks: Vec<_> = group
            .iter()
            .filter_map(|&i| {
                let spec = self.spec_of(i)?.clone();
                let handler = Hook::PreStop.handler(&spec)?.clone();
                Some((i, spec, handler))
            })
            .collect();
        if hooks.is_empty() {
            return deadline;
        }
        let timeout = deadline.saturating_duration_since(tokio::time::Instant::now());
        let runs = hooks.iter().map(|(i, spec, handler)| {
            let exec = ContainerdExec {
                containerd: self.ctx.containerd.clone(),
                id: self.ctrs[*i].id.clone(),
            };
            let pod = pod.clone();
            async move {
                info!(pod = %self.id, container = %spec.name, "running the preStop hook");
                let run = run_hook(Hook::PreStop, handler, spec, &pod, ip, timeout, &exec);
                match tokio::time::timeout_at(deadline, run).await {
                    Ok(Ok(())) => {}
                    Ok(Err(msg)) => warn!(pod = %self.id, container = %spec.name, error = %msg, "preStop hook failed"),
                    Err(_) => warn!(pod = %self.id, container = %spec.name, "preStop hook did not finish within the grace period"),
                }
            }
        });
        join_all(runs).await;
        deadline.max(tokio::time::Instant::now() + MIN_GRACE_AFTER_PRE_STOP)
    }

    async fn kill_now(&self, which: &[usize]) {
        for &i in which {
            let c = &self.ctrs[i];
            warn!(pod = %self.id, container = %c.name, "grace period over: SIGKILL");
            let _ = self.ctx.containerd.kill(&c.id, libc::SIGKILL, true).await;
        }
    }

    /// The app containers are done for good: the sidecars are stopped (in
    /// reverse order, SIGTERM, SIGKILL after the grace period), as the
    /// kubelet stops them so the pod can complete. Returns when to check
    /// again while one still runs.
    pub(super) async fn stop_sidecars(&mut self) -> Option<Instant> {
        let running: Vec<usize> = (0..self.ctrs.len())
            .rev()
            .filter(|i| {
                self.ctrs[*i].role == Role::Sidecar
                    && matches!(self.ctrs[*i].state, ObservedState::Running { .. })
            })
            .collect();
        let Some(&last) = running.first() else {
            self.sidecars_stopping = None;
            return None;
        };
        let now = Instant::now();
        match self.sidecars_stopping {
            None => {
                info!(pod = %self.id, "app containers done: stopping the sidecars");
                let c = &self.ctrs[last];
                if let Err(e) = self.ctx.containerd.kill(&c.id, libc::SIGTERM, true).await {
                    debug!(container = %c.id, error = %e, "SIGTERM");
                }
                let at = now + self.grace_period();
                self.sidecars_stopping = Some((last, at));
                Some(at)
            }
            Some((i, at)) if i != last => {
                // The previous one exited: the next, with a grace period of its own.
                let _ = at;
                self.sidecars_stopping = None;
                Box::pin(self.stop_sidecars()).await
            }
            Some((_, at)) if now >= at => {
                self.kill_now(&[last]).await;
                Some(now + AFTER_KILL)
            }
            Some((_, at)) => Some(at),
        }
    }
}

/// Takes pod `uid` (address `ip`) out of every node's data plane, by
/// `until` at the latest (see the module's documentation).
async fn leave_endpoints(ctx: Arc<NodeContext>, ip: Ipv4Addr, uid: String, until: Instant) -> Left {
    let address = ip.to_string();
    let read = || ctx.view.read().unwrap_or_else(PoisonError::into_inner);
    if !read().lists(&address, &uid) {
        return Left::NeverListed;
    }
    // This node's view first: every slice shows the pod terminating (or gone).
    let revision = loop {
        {
            let v = read();
            if !v.offers(&address, &uid) {
                break v.services_revision;
            }
        }
        if Instant::now() >= until {
            return Left::NotShown;
        }
        tokio::time::sleep(POLL).await;
    };
    let left = until.saturating_duration_since(Instant::now());
    match ctx.client.wait_endpoints_programmed(revision, left).await {
        Ok(answer) if answer.programmed => Left::Everywhere(revision),
        Ok(answer) => Left::TimedOut(answer.lagging),
        Err(e) => {
            while crate::datapath::is_backend(&ctx.datapath, ip) && Instant::now() < until {
                tokio::time::sleep(POLL).await;
            }
            Left::LocallyOnly(e.to_string())
        }
    }
}
