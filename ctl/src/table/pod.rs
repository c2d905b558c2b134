//! Pods: `NAME READY STATUS RESTARTS AGE` (wide: `IP NODE NOMINATED NODE
//! READINESS GATES`, the last two `<none>` as jotasu has neither), STATUS as
//! kubectl derives it from the phase, the pod's reason and the containers'
//! states.

use jotasu_api::Pod;
use jotasu_api::kinds::pod_status::PodPhase;
use jotasu_api::meta::ConditionStatus;

use super::NONE;

pub(super) const COLUMNS: &[&str] = &["READY", "STATUS", "RESTARTS", "AGE"];
pub(super) const WIDE: &[&str] = &["IP", "NODE", "NOMINATED NODE", "READINESS GATES"];

/// What kubectl's STATUS column says, the ready containers and the restarts.
pub fn status(pod: &Pod) -> (String, usize, i64) {
    let status = pod.status.clone().unwrap_or_default();
    let mut reason = phase_name(status.phase.unwrap_or_default()).to_owned();
    if let Some(r) = status.reason.as_deref().filter(|r| !r.is_empty()) {
        reason = r.to_owned();
    }
    let mut ready = 0;
    let mut restarts = 0;
    let mut running = false;
    for c in status.container_statuses.iter().rev() {
        restarts += i64::from(c.restart_count);
        let state = c.state.clone().unwrap_or_default();
        let waiting = state.waiting.as_ref().and_then(|w| w.reason.clone());
        let terminated = state.terminated.as_ref();
        if let Some(w) = waiting.filter(|w| !w.is_empty()) {
            reason = w;
        } else if let Some(t) = terminated {
            reason = match (&t.reason, t.signal) {
                (Some(r), _) if !r.is_empty() => r.clone(),
                (_, Some(sig)) if sig != 0 => format!("Signal:{sig}"),
                _ => format!("ExitCode:{}", t.exit_code),
            };
        } else if c.ready && state.running.is_some() {
            running = true;
            ready += 1;
        }
    }
    if reason == "Completed" && running {
        let pod_ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True);
        reason = if pod_ready { "Running" } else { "NotReady" }.to_owned();
    }
    if pod.metadata.deletion_timestamp.is_some() {
        reason = if status.reason.as_deref() == Some("NodeLost") {
            "Unknown"
        } else {
            "Terminating"
        }
        .to_owned();
    }
    (reason, ready, restarts)
}

fn phase_name(phase: PodPhase) -> &'static str {
    match phase {
        PodPhase::Pending => "Pending",
        PodPhase::Running => "Running",
        PodPhase::Succeeded => "Succeeded",
        PodPhase::Failed => "Failed",
        PodPhase::Unknown => "Unknown",
    }
}

pub(super) fn row(pod: &Pod, age: String) -> Vec<String> {
    let (reason, ready, restarts) = status(pod);
    vec![
        format!("{ready}/{}", pod.spec.containers.len()),
        reason,
        restarts.to_string(),
        age,
    ]
}

pub(super) fn wide(pod: &Pod) -> Vec<String> {
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
    vec![
        ip.filter(|i| !i.is_empty()).unwrap_or_else(|| NONE.into()),
        pod.spec
            .node_name
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| NONE.into()),
        NONE.into(),
        NONE.into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{CREATED, NOW, object};
    use super::super::{TableOptions, render};
    use jotasu_api::Kind;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> jotasu_api::Object {
        object(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "creationTimestamp": CREATED},
            "spec": {"nodeName": "node-1", "containers": [
                {"name": "a", "image": "nginx"}, {"name": "b", "image": "busybox"}]},
            "status": status
        }))
    }

    fn table(status: serde_json::Value, wide: bool) -> String {
        let opts = TableOptions {
            wide,
            now: NOW,
            ..TableOptions::default()
        };
        render(Kind::Pod, &[pod(status)], &opts)
    }

    #[test]
    fn running_and_wide() {
        let status = json!({
            "phase": "Running", "podIP": "10.244.1.5",
            "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "image": "nginx", "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 1, "image": "busybox", "state": {"running": {}}}
            ]
        });
        assert_eq!(
            table(status, true),
            "NAME    READY   STATUS    RESTARTS   AGE   IP           NODE     NOMINATED NODE   READINESS GATES\n\
             web-1   1/2     Running   3          5s    10.244.1.5   node-1   <none>           <none>\n"
        );
    }

    #[test]
    fn status_column() {
        let cell = |status: serde_json::Value| {
            table(status, false)
                .lines()
                .nth(1)
                .unwrap()
                .split_whitespace()
                .nth(2)
                .unwrap()
                .to_owned()
        };
        assert_eq!(cell(json!(null)), "Pending");
        assert_eq!(
            cell(json!({"phase": "Pending", "containerStatuses": [
                {"name": "a", "image": "x", "state": {"waiting": {"reason": "ContainerCreating"}}}]})),
            "ContainerCreating"
        );
        assert_eq!(
            cell(json!({"phase": "Running", "containerStatuses": [
                {"name": "a", "image": "x", "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
                {"name": "b", "image": "x", "ready": true, "state": {"running": {}}}]})),
            "CrashLoopBackOff"
        );
        assert_eq!(
            cell(json!({"phase": "Failed", "containerStatuses": [
                {"name": "a", "image": "x", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]})),
            "Signal:9"
        );
        assert_eq!(
            cell(json!({"phase": "Failed", "containerStatuses": [
                {"name": "a", "image": "x", "state": {"terminated": {"exitCode": 3}}}]})),
            "ExitCode:3"
        );
        assert_eq!(
            cell(json!({"phase": "Failed", "reason": "Evicted"})),
            "Evicted"
        );
    }

    #[test]
    fn terminating() {
        let mut p = pod(json!({"phase": "Running"}));
        p.metadata_mut().deletion_timestamp = Some(jotasu_api::Time(CREATED.into()));
        let opts = TableOptions {
            no_headers: true,
            now: NOW,
            ..TableOptions::default()
        };
        assert!(render(Kind::Pod, &[p], &opts).contains("Terminating"));
    }
}
