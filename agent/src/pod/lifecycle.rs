//! Lifecycle hooks as the kubelet runs them (`handlerRunner`): `exec` in
//! the container, `httpGet` to the pod (as probes reach it), `sleep`; the
//! failure messages are the kubelet's events (`PostStartHookError`,
//! `FailedPreStopHook`).

use std::net::Ipv4Addr;
use std::time::Duration;

use jotasu_api::Container;
use jotasu_api::kinds::pod::{LifecycleHandler, Probe};

use crate::pod::probe::ProbeOutcome;
use crate::pod::probe_run::{ProbeExec, run_probe};

/// Which hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Right after the container started.
    PostStart,
    /// Before the container is sent SIGTERM.
    PreStop,
}

impl Hook {
    /// The container's handler for this hook, if it has one.
    pub fn handler(self, container: &Container) -> Option<&LifecycleHandler> {
        let l = container.lifecycle.as_ref()?;
        match self {
            Hook::PostStart => l.post_start.as_ref(),
            Hook::PreStop => l.pre_stop.as_ref(),
        }
    }
}

/// Runs `handler` of `container` (pod address `ip`), giving up after
/// `timeout`: `Err` carries the kubelet's message.
pub async fn run_hook(
    hook: Hook,
    handler: &LifecycleHandler,
    container: &Container,
    pod_name: &str,
    ip: Ipv4Addr,
    timeout: Duration,
    exec: &impl ProbeExec,
) -> Result<(), String> {
    if let Some(sleep) = &handler.sleep {
        let secs = u64::try_from(sleep.seconds).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(secs).min(timeout)).await;
        return Ok(());
    }
    let as_probe = Probe {
        exec: handler.exec.clone(),
        http_get: handler.http_get.clone(),
        ..Probe::default()
    };
    if as_probe.exec.is_none() && as_probe.http_get.is_none() {
        return Ok(());
    }
    let outcome = run_probe(&as_probe, ip, container, timeout, exec).await;
    let why = match outcome {
        ProbeOutcome::Success => return Ok(()),
        ProbeOutcome::Failure(m) | ProbeOutcome::Unknown(m) => m,
    };
    let kind = if handler.exec.is_some() {
        let cmd = handler
            .exec
            .as_ref()
            .map(|e| e.command.join(" "))
            .unwrap_or_default();
        format!("Exec lifecycle hook ([{cmd}])")
    } else {
        let path = handler
            .http_get
            .as_ref()
            .and_then(|h| h.path.clone())
            .unwrap_or_default();
        format!("HTTP lifecycle hook ({path})")
    };
    let name = match hook {
        Hook::PostStart => "PostStartHookError",
        Hook::PreStop => "FailedPreStopHook",
    };
    Err(format!(
        "{name}: {kind} for Container {:?} in Pod {pod_name:?} failed - error: {why}",
        container.name
    ))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use jotasu_api::kinds::pod::{ExecAction, Lifecycle, SleepAction};

    use super::*;

    /// Answers every exec with `code`, remembering the commands.
    struct FakeExec {
        code: i32,
        seen: Mutex<Vec<Vec<String>>>,
    }

    impl ProbeExec for FakeExec {
        fn exec(
            &self,
            command: Vec<String>,
            _timeout: Duration,
        ) -> impl Future<Output = ProbeOutcome> + Send {
            if let Ok(mut s) = self.seen.lock() {
                s.push(command.clone());
            }
            let out = crate::pod::probe_run::exec_outcome(&command, Some(self.code), "");
            async move { out }
        }
    }

    fn exec_handler(cmd: &[&str]) -> LifecycleHandler {
        LifecycleHandler {
            exec: Some(ExecAction {
                command: cmd.iter().map(|s| (*s).to_owned()).collect(),
            }),
            ..LifecycleHandler::default()
        }
    }

    fn container(handler: LifecycleHandler) -> Container {
        Container {
            name: "app".into(),
            lifecycle: Some(Lifecycle {
                post_start: Some(handler),
                ..Lifecycle::default()
            }),
            ..Container::default()
        }
    }

    #[tokio::test]
    async fn exec_hooks_pass_on_exit_zero_and_word_failures_as_the_kubelet() {
        let c = container(exec_handler(&["touch", "/tmp/x"]));
        let h = Hook::PostStart.handler(&c).cloned().expect("a hook");
        assert!(Hook::PreStop.handler(&c).is_none());
        let ok = FakeExec {
            code: 0,
            seen: Mutex::new(Vec::new()),
        };
        let ip = Ipv4Addr::LOCALHOST;
        let t = Duration::from_secs(1);
        assert_eq!(
            run_hook(Hook::PostStart, &h, &c, "web_default(u)", ip, t, &ok).await,
            Ok(())
        );
        assert_eq!(ok.seen.lock().map(|s| s.len()).unwrap_or(0), 1);
        let bad = FakeExec {
            code: 2,
            seen: Mutex::new(Vec::new()),
        };
        let err = run_hook(Hook::PostStart, &h, &c, "web_default(u)", ip, t, &bad)
            .await
            .expect_err("fails");
        assert_eq!(
            err,
            "PostStartHookError: Exec lifecycle hook ([touch /tmp/x]) for Container \"app\" in Pod \"web_default(u)\" failed - error: command \"touch /tmp/x\" exited with 2"
        );
    }

    #[tokio::test]
    async fn sleep_hooks_wait_within_the_timeout() {
        let h = LifecycleHandler {
            sleep: Some(SleepAction { seconds: 1 }),
            ..LifecycleHandler::default()
        };
        let c = container(h.clone());
        let fake = FakeExec {
            code: 0,
            seen: Mutex::new(Vec::new()),
        };
        let start = std::time::Instant::now();
        let ip = Ipv4Addr::LOCALHOST;
        run_hook(
            Hook::PreStop,
            &h,
            &c,
            "p",
            ip,
            Duration::from_millis(100),
            &fake,
        )
        .await
        .expect("sleeps");
        assert!(
            start.elapsed() < Duration::from_millis(900),
            "bounded by the timeout"
        );
        run_hook(
            Hook::PreStop,
            &h,
            &c,
            "p",
            ip,
            Duration::from_secs(60),
            &fake,
        )
        .await
        .expect("sleeps");
        assert!(
            start.elapsed() >= Duration::from_secs(1),
            "the whole second"
        );
    }
}
