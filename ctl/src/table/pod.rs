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
    let mut initializing = false;
    let inits = &pod.spec.init_containers;
    for (i, c) in status.init_container_statuses.iter().enumerate() {
        restarts += i64::from(c.restart_count);
        let sidecar = inits.iter().any(|s| s.name == c.name && s.is_sidecar());
        if sidecar && c.started == Some(true) {
            if c.ready {
                ready += 1;
            }
            continue;
        }
        let state = c.state.clone().unwrap_or_default();
        let waiting = state.waiting.as_ref().and_then(|w| w.reason.clone());
        match (&state.terminated, waiting) {
            (Some(t), _) if t.exit_code == 0 => continue,
            (Some(t), _) => {
                reason = match (&t.reason, t.signal) {
                    (Some(r), _) if !r.is_empty() => format!("Init:{r}"),
                    (_, Some(sig)) if sig != 0 => format!("Init:Signal:{sig}"),
                    _ => format!("Init:ExitCode:{}", t.exit_code),
                };
            }
            (None, Some(w)) if !w.is_empty() && w != "PodInitializing" => {
                reason = format!("Init:{w}");
            }
            _ => reason = format!("Init:{i}/{}", inits.len()),
        }
        initializing = true;
        break;
    }
    let initialized = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Initialized" && c.status == ConditionStatus::True);
    let app_statuses = if initializing && !initialized {
        &[][..]
    } else {
        // Only the sidecars' restarts count once the pod is initialized.
        restarts = status
            .init_container_statuses
            .iter()
            .filter(|c| inits.iter().any(|s| s.name == c.name && s.is_sidecar()))
            .map(|c| i64::from(c.restart_count))
            .sum();
        &status.container_statuses[..]
    };
    for c in app_statuses.iter().rev() {
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
    let sidecars = pod.spec.init_containers.iter().filter(|c| c.is_sidecar());
    vec![
        format!("{ready}/{}", pod.spec.containers.len() + sidecars.count()),
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

    fn init_pod(status: serde_json::Value) -> String {
        let o = object(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "creationTimestamp": CREATED},
            "spec": {"initContainers": [
                {"name": "setup", "image": "x"},
                {"name": "proxy", "image": "x", "restartPolicy": "Always"}],
                "containers": [{"name": "a", "image": "nginx"}]},
            "status": status
        }));
        let opts = TableOptions {
            now: NOW,
            ..TableOptions::default()
        };
        let table = render(Kind::Pod, &[o], &opts);
        let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
        format!("{} {} {}", row[1], row[2], row[3])
    }

    #[test]
    fn init_containers_in_the_status_column() {
        let waiting = |r: &str| json!({"waiting": {"reason": r}});
        let app = json!([{"name": "a", "image": "x", "state": waiting("PodInitializing")}]);
        assert_eq!(
            init_pod(json!({"phase": "Pending",
                "initContainerStatuses": [
                    {"name": "setup", "image": "x", "state": {"running": {}}},
                    {"name": "proxy", "image": "x", "state": waiting("PodInitializing")}],
                "containerStatuses": app})),
            "0/2 Init:0/2 0"
        );
        assert_eq!(
            init_pod(json!({"phase": "Pending",
                "initContainerStatuses": [
                    {"name": "setup", "image": "x", "restartCount": 3, "state": waiting("CrashLoopBackOff"),
                     "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}},
                    {"name": "proxy", "image": "x", "state": waiting("PodInitializing")}],
                "containerStatuses": app})),
            "0/2 Init:CrashLoopBackOff 3"
        );
        assert_eq!(
            init_pod(json!({"phase": "Failed",
                "initContainerStatuses": [
                    {"name": "setup", "image": "x", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}},
                    {"name": "proxy", "image": "x", "state": waiting("PodInitializing")}],
                "containerStatuses": app})),
            "0/2 Init:Error 0"
        );
        assert_eq!(
            init_pod(json!({"phase": "Pending",
                "initContainerStatuses": [
                    {"name": "setup", "image": "x", "ready": true, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "proxy", "image": "x", "started": false, "state": {"running": {}}}],
                "containerStatuses": app})),
            "0/2 Init:1/2 0"
        );
        assert_eq!(
            init_pod(json!({"phase": "Running",
                "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                "initContainerStatuses": [
                    {"name": "setup", "image": "x", "ready": true, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "proxy", "image": "x", "ready": true, "started": true, "restartCount": 1, "state": {"running": {}}}],
                "containerStatuses": [{"name": "a", "image": "x", "ready": true, "state": {"running": {}}}]})),
            "2/2 Running 1"
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
