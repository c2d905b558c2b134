//! Which pods of a node `drain` evicts, as kubectl's drain filters decide:
//! pods that have finished go without question; DaemonSet pods are left
//! (their controller would put them back) only with `--ignore-daemonsets`;
//! pods with local data (`emptyDir`) need `--delete-emptydir-data`; pods
//! no controller would replace need `--force`. Anything not allowed stops
//! the drain before any pod is evicted, with kubectl's words.

use jotasu_api::Pod;
use jotasu_api::kinds::pod_status::PodPhase;

/// The flags that widen what drain may evict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// `--ignore-daemonsets`.
    pub ignore_daemonsets: bool,
    /// `--delete-emptydir-data`.
    pub delete_emptydir_data: bool,
    /// `--force`.
    pub force: bool,
}

/// kubectl's messages.
pub const DAEMONSET_FATAL: &str =
    "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)";
/// Printed for DaemonSet pods left alone.
pub const DAEMONSET_WARNING: &str = "ignoring DaemonSet-managed Pods";
/// Pods with emptyDir volumes, without the flag.
pub const LOCAL_STORAGE_FATAL: &str =
    "cannot delete Pods with local storage (use --delete-emptydir-data to override)";
/// Pods with emptyDir volumes, with the flag.
pub const LOCAL_STORAGE_WARNING: &str = "deleting Pods with local storage";
/// Pods without a controller, without `--force`.
pub const UNMANAGED_FATAL: &str =
    "cannot delete Pods that declare no controller (use --force to override)";
/// Pods without a controller, with `--force`.
pub const UNMANAGED_WARNING: &str = "deleting Pods that declare no controller";

/// What drain does with a node's pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Pods to evict, as `namespace/name`.
    pub evict: Vec<(String, String)>,
    /// Warnings: (message, pods).
    pub warnings: Vec<(&'static str, Vec<String>)>,
    /// Refusals: (message, pods); any stops the drain.
    pub errors: Vec<(&'static str, Vec<String>)>,
}

fn push(list: &mut Vec<(&'static str, Vec<String>)>, message: &'static str, pod: String) {
    match list.iter_mut().find(|(m, _)| *m == message) {
        Some((_, pods)) => pods.push(pod),
        None => list.push((message, vec![pod])),
    }
}

/// Sorts `pods` (those bound to the node) by the flags.
pub fn select(pods: &[Pod], flags: Flags) -> Selection {
    let mut s = Selection::default();
    for p in pods {
        let ns = p.metadata.namespace.clone().unwrap_or_default();
        let name = p.metadata.name().to_owned();
        let id = format!("{ns}/{name}");
        let finished = matches!(
            p.status.as_ref().and_then(|s| s.phase),
            Some(PodPhase::Succeeded | PodPhase::Failed)
        );
        let controller = p.metadata.controller_ref();
        if controller.is_some_and(|c| c.kind == "DaemonSet") {
            if flags.ignore_daemonsets {
                push(&mut s.warnings, DAEMONSET_WARNING, id);
            } else {
                push(&mut s.errors, DAEMONSET_FATAL, id);
            }
            continue;
        }
        if !finished {
            if controller.is_none() {
                if flags.force {
                    push(&mut s.warnings, UNMANAGED_WARNING, id.clone());
                } else {
                    push(&mut s.errors, UNMANAGED_FATAL, id.clone());
                    continue;
                }
            }
            if p.spec.volumes.iter().any(|v| v.empty_dir.is_some()) {
                if flags.delete_emptydir_data {
                    push(&mut s.warnings, LOCAL_STORAGE_WARNING, id.clone());
                } else {
                    push(&mut s.errors, LOCAL_STORAGE_FATAL, id.clone());
                    continue;
                }
            }
        }
        s.evict.push((ns, name));
    }
    s
}

/// `message: ns/a, ns/b` lines, as kubectl joins them.
pub fn lines(list: &[(&'static str, Vec<String>)]) -> Vec<String> {
    list.iter()
        .map(|(m, pods)| format!("{m}: {}", pods.join(", ")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, owner: Option<&str>, empty_dir: bool, phase: &str) -> Pod {
        let owners = owner.map_or(json!([]), |k| {
            json!([{"apiVersion": "apps/v1", "kind": k, "name": "o", "uid": "u", "controller": true}])
        });
        let volumes = if empty_dir {
            json!([{"name": "scratch", "emptyDir": {}}])
        } else {
            json!([])
        };
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "d", "ownerReferences": owners},
            "spec": {"containers": [{"name": "c", "image": "x"}], "volumes": volumes},
            "status": {"phase": phase}
        }))
        .unwrap()
    }

    fn pods() -> Vec<Pod> {
        vec![
            pod("web", Some("ReplicaSet"), false, "Running"),
            pod("ds", Some("DaemonSet"), false, "Running"),
            pod("bare", None, false, "Running"),
            pod("cache", Some("ReplicaSet"), true, "Running"),
            pod("done", None, true, "Succeeded"),
        ]
    }

    #[test]
    fn without_flags_only_replaceable_pods_without_local_data_go() {
        let s = select(&pods(), Flags::default());
        assert_eq!(
            lines(&s.errors),
            [
                "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): d/ds",
                "cannot delete Pods that declare no controller (use --force to override): d/bare",
                "cannot delete Pods with local storage (use --delete-emptydir-data to override): d/cache",
            ]
        );
        let names: Vec<&str> = s.evict.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["web", "done"]);
    }

    #[test]
    fn the_flags_turn_refusals_into_warnings() {
        let s = select(
            &pods(),
            Flags {
                ignore_daemonsets: true,
                delete_emptydir_data: true,
                force: true,
            },
        );
        assert!(s.errors.is_empty());
        assert_eq!(
            lines(&s.warnings),
            [
                "ignoring DaemonSet-managed Pods: d/ds",
                "deleting Pods that declare no controller: d/bare",
                "deleting Pods with local storage: d/cache",
            ]
        );
        let names: Vec<&str> = s.evict.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["web", "bare", "cache", "done"]);
    }
}
