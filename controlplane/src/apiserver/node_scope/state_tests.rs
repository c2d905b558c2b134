//! The node scope's step function, event by event.

use serde_json::json;

use super::*;
use crate::apiserver::watch::EventType;

const NODE: &str = "n1";

fn kv(key: &str, value: serde_json::Value, rev: Revision) -> KeyValue {
    KeyValue {
        key: key.as_bytes().to_vec(),
        value: serde_json::to_vec(&value).expect("json"),
        create_revision: rev,
        mod_revision: rev,
        version: 1,
    }
}

/// A pod in `default` on `node` using ConfigMaps `cms` (env) and Secrets `secrets` (volumes).
fn pod(name: &str, node: Option<&str>, cms: &[&str], secrets: &[&str], rev: Revision) -> KeyValue {
    let env: Vec<_> = cms
        .iter()
        .map(|c| json!({"name": "E", "valueFrom": {"configMapKeyRef": {"name": c, "key": "k"}}}))
        .collect();
    let volumes: Vec<_> = secrets
        .iter()
        .map(|s| json!({"name": s, "secret": {"secretName": s}}))
        .collect();
    let mut spec =
        json!({"containers": [{"name": "c", "image": "i", "env": env}], "volumes": volumes});
    if let Some(node) = node {
        spec["nodeName"] = json!(node);
    }
    kv(
        &format!("/registry/pods/default/{name}"),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": spec}),
        rev,
    )
}

fn cm(name: &str, rev: Revision) -> KeyValue {
    kv(
        &format!("/registry/configmaps/default/{name}"),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}, "data": {"k": rev.to_string()}}),
        rev,
    )
}

fn cm_key(name: &str) -> Vec<u8> {
    format!("/registry/configmaps/default/{name}").into_bytes()
}

fn secret_key(name: &str) -> Vec<u8> {
    format!("/registry/secrets/default/{name}").into_bytes()
}

fn put(kv: KeyValue, prev: Option<KeyValue>) -> WatchEvent {
    WatchEvent {
        kind: EventKind::Put,
        revision: kv.mod_revision,
        kv,
        prev_kv: prev,
    }
}

fn delete(prev: KeyValue, rev: Revision) -> WatchEvent {
    WatchEvent {
        kind: EventKind::Delete,
        kv: KeyValue {
            key: prev.key.clone(),
            value: Vec::new(),
            create_revision: 0,
            mod_revision: rev,
            version: 0,
        },
        prev_kv: Some(prev),
        revision: rev,
    }
}

fn spec(kinds: &[Kind]) -> WatchSpec {
    WatchSpec {
        kinds: kinds.to_vec(),
        node: Some(NODE.into()),
        ..WatchSpec::default()
    }
}

fn agent_spec() -> WatchSpec {
    spec(&[Kind::Pod, Kind::Service, Kind::ConfigMap, Kind::Secret])
}

/// A compact view of steps: `+key` (Add), `-key` (Remove), `ADDED name` …
fn show(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|s| match s {
            Step::Add { key, .. } => format!("+{}", String::from_utf8_lossy(key)),
            Step::Remove { key, .. } => format!("-{}", String::from_utf8_lossy(key)),
            Step::Send(e) => {
                let v: serde_json::Value = serde_json::from_str(&e.json).expect("json");
                let kind = match e.kind {
                    EventType::Added => "ADDED",
                    EventType::Modified => "MODIFIED",
                    EventType::Deleted => "DELETED",
                };
                format!(
                    "{kind} {} {}",
                    v["kind"].as_str().unwrap_or("?"),
                    v["metadata"]["name"].as_str().unwrap_or("?")
                )
            }
        })
        .collect()
}

/// A scope started at `listed_at` with `pods`, every referenced object
/// present and unchanged.
fn started(spec: &WatchSpec, pods: &[KeyValue], listed_at: Revision) -> NodeScope {
    let mut scope = NodeScope::new(spec, NODE);
    scope.listed(pods, listed_at).expect("listed");
    for key in scope.referenced() {
        let name = String::from_utf8_lossy(&key)
            .rsplit('/')
            .next()
            .unwrap_or("")
            .to_owned();
        let current = if key.starts_with(b"/registry/configmaps/") {
            cm(&name, 1)
        } else {
            kv(
                &String::from_utf8_lossy(&key),
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "default"}}),
                1,
            )
        };
        scope.known(spec, &key, Some(&current)).expect("known");
    }
    scope
}

#[test]
fn pods_of_other_nodes_are_invisible_and_a_binding_is_added() {
    let spec = agent_spec();
    let mut scope = started(&spec, &[], 10);
    let elsewhere = pod("a", Some("n2"), &["cfg"], &[], 11);
    assert!(
        scope
            .step(&spec, &put(elsewhere, None))
            .expect("step")
            .is_empty()
    );
    let pending = pod("b", None, &["cfg"], &["tls"], 12);
    assert!(
        scope
            .step(&spec, &put(pending.clone(), None))
            .expect("step")
            .is_empty()
    );
    // Bound here: its ConfigMap and Secret come first, then the pod.
    let bound = pod("b", Some(NODE), &["cfg"], &["tls"], 13);
    let steps = scope
        .step(&spec, &put(bound.clone(), Some(pending)))
        .expect("step");
    assert_eq!(
        show(&steps),
        [
            "+/registry/configmaps/default/cfg",
            "+/registry/secrets/default/tls",
            "ADDED Pod b"
        ]
    );
    assert!(steps.iter().all(|s| match s {
        Step::Add { revision, .. } => *revision == 13,
        Step::Send(e) => e.revision == 13,
        Step::Remove { .. } => false,
    }));
    // Deleted: the pod, then what only it referenced.
    let steps = scope.step(&spec, &delete(bound, 14)).expect("step");
    // Nothing was shown yet (the pump did not report the reads): nothing to delete.
    assert_eq!(show(&steps), ["DELETED Pod b"]);
}

#[test]
fn references_come_and_go_with_the_last_pod() {
    let spec = agent_spec();
    let mut scope = started(&spec, &[], 10);
    let a = pod("a", Some(NODE), &["cfg"], &[], 11);
    let steps = scope.step(&spec, &put(a.clone(), None)).expect("step");
    assert_eq!(
        show(&steps),
        ["+/registry/configmaps/default/cfg", "ADDED Pod a"]
    );
    // The pump read it at revision 12 (written after the pod).
    scope.shown(&cm_key("cfg"), 12);
    // Its events up to what was sent are skipped; later ones pass.
    assert!(
        scope
            .step(&spec, &put(cm("cfg", 12), Some(cm("cfg", 5))))
            .expect("step")
            .is_empty()
    );
    let steps = scope
        .step(&spec, &put(cm("cfg", 15), Some(cm("cfg", 12))))
        .expect("step");
    assert_eq!(show(&steps), ["MODIFIED ConfigMap cfg"]);
    // A second pod referencing it: no second ADDED.
    let b = pod("b", Some(NODE), &["cfg"], &[], 16);
    assert_eq!(
        show(&scope.step(&spec, &put(b.clone(), None)).expect("step")),
        ["ADDED Pod b"]
    );
    // The first goes: still referenced.
    assert_eq!(
        show(&scope.step(&spec, &delete(a, 17)).expect("step")),
        ["DELETED Pod a"]
    );
    // The last goes: DELETED after the pod.
    assert_eq!(
        show(&scope.step(&spec, &delete(b, 18)).expect("step")),
        ["DELETED Pod b", "-/registry/configmaps/default/cfg"]
    );
    // Unreferenced now: its events are not this watcher's.
    assert!(
        scope
            .step(&spec, &put(cm("cfg", 19), Some(cm("cfg", 15))))
            .expect("step")
            .is_empty()
    );
}

#[test]
fn a_missing_reference_arrives_when_created() {
    let spec = agent_spec();
    let mut scope = started(&spec, &[], 10);
    let a = pod("a", Some(NODE), &["later"], &[], 11);
    assert_eq!(
        show(&scope.step(&spec, &put(a, None)).expect("step")),
        ["+/registry/configmaps/default/later", "ADDED Pod a"]
    );
    // The read found nothing (no shown()); its creation is ADDED.
    assert_eq!(
        show(
            &scope
                .step(&spec, &put(cm("later", 12), None))
                .expect("step")
        ),
        ["ADDED ConfigMap later"]
    );
    assert_eq!(
        show(
            &scope
                .step(&spec, &delete(cm("later", 12), 13))
                .expect("step")
        ),
        ["DELETED ConfigMap later"]
    );
    // Unreferenced ConfigMaps never show.
    assert!(
        scope
            .step(&spec, &put(cm("other", 14), None))
            .expect("step")
            .is_empty()
    );
}

#[test]
fn references_held_at_the_start() {
    let spec = agent_spec();
    let a = pod("a", Some(NODE), &["cfg"], &["tls"], 5);
    let mut scope = started(&spec, std::slice::from_ref(&a), 10);
    assert_eq!(scope.referenced(), [cm_key("cfg"), secret_key("tls")]);
    // A change after the start passes as MODIFIED (the watcher holds it).
    assert_eq!(
        show(
            &scope
                .step(&spec, &put(cm("cfg", 11), Some(cm("cfg", 1))))
                .expect("step")
        ),
        ["MODIFIED ConfigMap cfg"]
    );
    // The pod changes its references: one dropped, one added.
    let changed = pod("a", Some(NODE), &["cfg2"], &["tls"], 12);
    assert_eq!(
        show(&scope.step(&spec, &put(changed, Some(a))).expect("step")),
        [
            "+/registry/configmaps/default/cfg2",
            "MODIFIED Pod a",
            "-/registry/configmaps/default/cfg"
        ]
    );
}

#[test]
fn an_unknown_state_at_the_start_is_settled_by_the_next_event() {
    let spec = agent_spec();
    let a = pod("a", Some(NODE), &["cfg", "gone"], &[], 5);
    let mut scope = NodeScope::new(&spec, NODE);
    scope.listed(&[a], 10).expect("listed");
    // cfg changed after the list (revision 11), gone was deleted.
    scope
        .known(&spec, &cm_key("cfg"), Some(&cm("cfg", 11)))
        .expect("known");
    scope.known(&spec, &cm_key("gone"), None).expect("known");
    // Their events after the list say what the watcher held at the start.
    assert_eq!(
        show(
            &scope
                .step(&spec, &put(cm("cfg", 11), Some(cm("cfg", 3))))
                .expect("step")
        ),
        ["MODIFIED ConfigMap cfg"]
    );
    assert_eq!(
        show(&scope.step(&spec, &delete(cm("gone", 4), 12)).expect("step")),
        ["DELETED ConfigMap gone"]
    );
    assert_eq!(
        show(&scope.step(&spec, &put(cm("gone", 13), None)).expect("step")),
        ["ADDED ConfigMap gone"]
    );
}

#[test]
fn replay_before_the_start_uses_the_references_of_the_start() {
    let spec = agent_spec();
    // At the start (revision 10) pod a references cfg; before it, a
    // referenced old.
    let a_now = pod("a", Some(NODE), &["cfg"], &[], 8);
    let mut scope = started(&spec, std::slice::from_ref(&a_now), 10);
    let a_before = pod("a", Some(NODE), &["old"], &[], 4);
    // Replayed: the change at 8 adds cfg (held at the start) and drops old (not held).
    assert_eq!(
        show(
            &scope
                .step(&spec, &put(a_now.clone(), Some(a_before)))
                .expect("step")
        ),
        [
            "+/registry/configmaps/default/cfg",
            "MODIFIED Pod a",
            "-/registry/configmaps/default/old"
        ]
    );
    scope.shown(&cm_key("cfg"), 1);
    // A ConfigMap event in the replay counts as visible if referenced at the start.
    assert_eq!(
        show(
            &scope
                .step(&spec, &put(cm("cfg", 9), Some(cm("cfg", 1))))
                .expect("step")
        ),
        ["MODIFIED ConfigMap cfg"]
    );
    assert!(
        scope
            .step(&spec, &put(cm("old", 9), Some(cm("old", 2))))
            .expect("step")
            .is_empty()
    );
    // After the start, exact again.
    assert_eq!(
        show(&scope.step(&spec, &delete(a_now, 11)).expect("step")),
        ["DELETED Pod a", "-/registry/configmaps/default/cfg"]
    );
}

#[test]
fn kinds_and_namespaces_not_watched_are_not_tracked() {
    // Pods and ConfigMaps only: Secret references are not followed.
    let spec = spec(&[Kind::Pod, Kind::ConfigMap]);
    let mut scope = started(&spec, &[], 10);
    let a = pod("a", Some(NODE), &["cfg"], &["tls"], 11);
    assert_eq!(
        show(&scope.step(&spec, &put(a, None)).expect("step")),
        ["+/registry/configmaps/default/cfg", "ADDED Pod a"]
    );
    // Pods only: nothing tracked, pods filtered by node.
    let pods_only = self::spec(&[Kind::Pod]);
    let mut scope = NodeScope::new(&pods_only, NODE);
    assert!(!scope.tracks_references());
    let b = pod("b", Some(NODE), &["cfg"], &[], 12);
    assert_eq!(
        show(&scope.step(&pods_only, &put(b, None)).expect("step")),
        ["ADDED Pod b"]
    );
    // A namespace-scoped watch ignores pods of other namespaces.
    let mut in_other = self::spec(&[Kind::Pod, Kind::ConfigMap]);
    in_other.namespace = Some("other".into());
    let mut scope = started(&in_other, &[], 10);
    let c = pod("c", Some(NODE), &["cfg"], &[], 13);
    assert!(
        scope
            .step(&in_other, &put(c, None))
            .expect("step")
            .is_empty()
    );
}
