//! Init containers as the kubelet runs them (`computeInitContainerActions`):
//! in spec order, each regular one to completion before the next; a sidecar
//! (`restartPolicy: Always`) started, and waited for only until it counts
//! as started (running, its startup probe passed), before the next. The
//! app containers start once every one is done. A regular init container
//! that fails is restarted unless the pod's policy is `Never`, when the
//! pod fails.

use jotasu_api::kinds::pod::RestartPolicy;

/// What the worker knows of one init container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitState {
    /// Never started (or its start failed).
    NotStarted,
    /// Running; `started` once its startup probe (if any) passed.
    Running {
        /// Whether it counts as started.
        started: bool,
    },
    /// Exited with this code (and not restarted yet).
    Exited {
        /// The exit code.
        code: i32,
    },
}

/// One init container: a sidecar or not, and its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitContainer {
    /// `restartPolicy: Always`.
    pub sidecar: bool,
    /// Its state.
    pub state: InitState,
}

/// What to do next for the pod's initialization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitStep {
    /// Start (or restart, after its back-off) init container `index`.
    Start(usize),
    /// Wait for init container `index` (running, or a sidecar not started yet).
    Wait(usize),
    /// Init container `index` failed and the pod's policy is `Never`: the pod fails.
    Failed(usize),
    /// Every init container is done: the app containers may start.
    Done,
}

/// The next step, from the init containers in spec order.
pub fn next_init_step(policy: RestartPolicy, inits: &[InitContainer]) -> InitStep {
    for (i, c) in inits.iter().enumerate() {
        match (c.sidecar, c.state) {
            (true, InitState::Running { started: true }) => {}
            (true, InitState::Running { started: false }) | (false, InitState::Running { .. }) => {
                return InitStep::Wait(i);
            }
            (true, InitState::NotStarted | InitState::Exited { .. }) => return InitStep::Start(i),
            (false, InitState::Exited { code: 0 }) => {}
            (false, InitState::Exited { .. }) if policy == RestartPolicy::Never => {
                return InitStep::Failed(i);
            }
            (false, InitState::Exited { .. } | InitState::NotStarted) => {
                return InitStep::Start(i);
            }
        }
    }
    InitStep::Done
}

#[cfg(test)]
mod tests {
    use super::*;
    use InitState::*;

    fn regular(state: InitState) -> InitContainer {
        InitContainer {
            sidecar: false,
            state,
        }
    }

    fn sidecar(state: InitState) -> InitContainer {
        InitContainer {
            sidecar: true,
            state,
        }
    }

    #[test]
    fn regular_init_containers_run_one_after_the_other() {
        let p = RestartPolicy::Always;
        let mut inits = vec![regular(NotStarted), regular(NotStarted)];
        assert_eq!(next_init_step(p, &inits), InitStep::Start(0));
        inits[0].state = Running { started: true };
        assert_eq!(next_init_step(p, &inits), InitStep::Wait(0));
        inits[0].state = Exited { code: 0 };
        assert_eq!(next_init_step(p, &inits), InitStep::Start(1));
        inits[1].state = Exited { code: 0 };
        assert_eq!(next_init_step(p, &inits), InitStep::Done);
        assert_eq!(next_init_step(p, &[]), InitStep::Done);
    }

    #[test]
    fn a_failed_init_container_restarts_unless_the_policy_is_never() {
        let inits = [regular(Exited { code: 0 }), regular(Exited { code: 2 })];
        assert_eq!(
            next_init_step(RestartPolicy::Always, &inits),
            InitStep::Start(1)
        );
        assert_eq!(
            next_init_step(RestartPolicy::OnFailure, &inits),
            InitStep::Start(1)
        );
        assert_eq!(
            next_init_step(RestartPolicy::Never, &inits),
            InitStep::Failed(1)
        );
    }

    #[test]
    fn sidecars_are_waited_for_until_started_only() {
        let p = RestartPolicy::Never;
        let mut inits = vec![sidecar(NotStarted), regular(NotStarted)];
        assert_eq!(next_init_step(p, &inits), InitStep::Start(0));
        inits[0].state = Running { started: false };
        assert_eq!(next_init_step(p, &inits), InitStep::Wait(0));
        inits[0].state = Running { started: true };
        assert_eq!(next_init_step(p, &inits), InitStep::Start(1));
        inits[1].state = Exited { code: 0 };
        assert_eq!(next_init_step(p, &inits), InitStep::Done);
        // A sidecar that exits during initialization is restarted, whatever the policy.
        inits[0].state = Exited { code: 1 };
        assert_eq!(next_init_step(p, &inits), InitStep::Start(0));
    }
}
