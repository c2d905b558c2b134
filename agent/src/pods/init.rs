//! A pod's initialization as its worker does it ([`PodRun::sync_init`]):
//! the steps come from [`crate::pod::init::next_init_step`]; this starts
//! the init containers it names, with the crash-loop back-off.

use std::time::Instant;

use tracing::{info, warn};

use super::containers::{PodRun, Role};
use crate::pod::init::{InitContainer, InitState, InitStep, next_init_step};
use crate::pod::status::ObservedState;
use crate::pod::volumes::MaterializedVolume;

impl PodRun {
    /// The init containers as the pure logic sees them (they come first in
    /// [`PodRun::ctrs`], so their indexes are the same).
    fn init_view(&self) -> Vec<InitContainer> {
        self.ctrs
            .iter()
            .take_while(|c| c.role != Role::App)
            .map(|c| InitContainer {
                sidecar: c.role == Role::Sidecar,
                state: match &c.state {
                    ObservedState::Running { .. } => InitState::Running {
                        started: c.probes.started(),
                    },
                    ObservedState::Terminated(t) => InitState::Exited { code: t.exit_code },
                    ObservedState::Waiting { .. } => match &c.last_terminated {
                        Some(t) if c.ever_started => InitState::Exited { code: t.exit_code },
                        _ => InitState::NotStarted,
                    },
                },
            })
            .collect()
    }

    /// Runs the pod's initialization as far as it can go now: `None` once
    /// every init container did its part, else when to come back (`None`
    /// inside: at the next exit or probe result).
    pub(super) async fn sync_init(
        &mut self,
        volumes: &[MaterializedVolume],
    ) -> Option<Option<Instant>> {
        let policy = self.pod.spec.restart_policy.unwrap_or_default();
        loop {
            match next_init_step(policy, &self.init_view()) {
                InitStep::Done => return None,
                InitStep::Wait(_) => return Some(None),
                InitStep::Failed(i) => {
                    if !self.init_failed {
                        warn!(pod = %self.id, container = %self.ctrs[i].name, "init container failed and the restart policy is Never: the pod failed");
                        self.init_failed = true;
                    }
                    return Some(None);
                }
                InitStep::Start(i) => {
                    info!(pod = %self.id, container = %self.ctrs[i].name, "starting init container");
                    if let Err(wake) = self.start_after_backoff(i, volumes).await {
                        return Some(wake);
                    }
                }
            }
        }
    }
}
