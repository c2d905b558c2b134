//! A kustomization with a base and an overlay, applied to a real
//! `jotasu-controlplane` with `jotactl apply -k`: the objects stored are
//! the objects the real `kubectl kustomize` (v1.35) renders from the same
//! directory — every field it gives is stored with its value — and
//! `delete -k` removes them. The rendering alone is compared in
//! `ctl/tests/kustomize.rs`. Needs `cargo build --workspace --bins` and
//! `scripts/k8s-clients.sh`.
use std::collections::BTreeMap;
use std::path::PathBuf;

use jotasu_tests::controlplane::{ControlPlane, Options};
use jotasu_tests::jotactl::Ctl;
use jotasu_tests::k8s_clients;
use serde::Deserialize as _;
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ctl/tests/fixtures/kustomize")
}

/// kubectl's rendering of `dir`: (kind, namespace, name) → object.
fn rendered(kubectl: &std::path::Path, dir: &str) -> BTreeMap<(String, String, String), Value> {
    let out = std::process::Command::new(kubectl)
        .args(["kustomize", dir])
        .output()
        .expect("running kubectl");
    assert!(
        out.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 output");
    let mut objects = BTreeMap::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc).expect("kubectl's YAML");
        if value.is_null() {
            continue;
        }
        let field = |p: &str| {
            value
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let key = (
            field("/kind"),
            field("/metadata/namespace"),
            field("/metadata/name"),
        );
        objects.insert(key, value);
    }
    objects
}

/// The paths where `stored` lacks or differs from what `given` states.
fn differences(path: &str, given: &Value, stored: Option<&Value>, out: &mut Vec<String>) {
    match (given, stored) {
        (Value::Object(g), Some(Value::Object(s))) => {
            for (k, v) in g {
                differences(&format!("{path}/{k}"), v, s.get(k), out);
            }
        }
        (Value::Array(g), Some(Value::Array(s))) if g.len() == s.len() => {
            for (i, (v, w)) in g.iter().zip(s).enumerate() {
                differences(&format!("{path}/{i}"), v, Some(w), out);
            }
        }
        (g, Some(s)) if g == s => {}
        (g, s) => out.push(format!(
            "{path}: rendered {g}, stored {}",
            s.map_or("nothing".into(), Value::to_string)
        )),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overlay_applied_with_apply_k_stores_what_kubectl_renders() {
    let test = "an_overlay_applied_with_apply_k_stores_what_kubectl_renders";
    let Some(kubectl) = k8s_clients::require("kubectl", test) else {
        return;
    };
    // The API alone: controllers would add replicas' pods and statuses.
    let cp = ControlPlane::start(Options {
        args: vec!["--no-controllers".into()],
        ..Options::default()
    })
    .await
    .expect("control plane");
    let ctl = Ctl::new();
    let url = cp.url();
    let dir = fixtures().join("prod");
    let dir = dir.to_str().expect("a UTF-8 path");
    let expected = rendered(&kubectl, dir);
    assert!(
        expected.len() >= 8,
        "the prod overlay renders {} objects",
        expected.len()
    );

    // The overlay's namespace must exist first, as in Kubernetes.
    let refused = ctl.at(&url, &["apply", "-k", dir]);
    assert!(
        refused.failed().contains(r#"namespaces "prod" not found"#),
        "{refused:#?}"
    );
    ctl.pipe(
        &url,
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod\n",
    )
    .ok();

    let run = ctl.at(&url, &["apply", "-k", dir]);
    let lines: Vec<&str> = run.ok().lines().collect();
    assert_eq!(lines.len(), expected.len(), "{lines:?}");
    assert!(lines.iter().all(|l| l.ends_with(" created")), "{lines:?}");

    for ((kind, ns, name), given) in &expected {
        let mut args = vec!["get", kind.as_str(), name.as_str(), "-o", "json"];
        if !ns.is_empty() {
            args.extend(["-n", ns.as_str()]);
        }
        let lower = kind.to_lowercase();
        args[1] = &lower;
        let stored: Value = serde_json::from_str(ctl.at(&url, &args).ok()).expect("get -o json");
        let mut diffs = Vec::new();
        differences("", given, Some(&stored), &mut diffs);
        assert!(
            diffs.is_empty(),
            "{kind} {ns}/{name} as stored differs from kubectl's rendering:\n{}",
            diffs.join("\n")
        );
    }

    // Again: nothing changes. Then delete -k removes every object.
    let again = ctl.at(&url, &["apply", "-k", dir]);
    assert!(
        again.ok().lines().all(|l| l.ends_with(" unchanged")),
        "{again:#?}"
    );
    let deleted = ctl.at(&url, &["delete", "-k", dir]);
    assert_eq!(
        deleted
            .ok()
            .lines()
            .filter(|l| l.ends_with(" deleted"))
            .count(),
        expected.len(),
        "{deleted:#?}"
    );
    for (kind, ns, name) in expected.keys() {
        let lower = kind.to_lowercase();
        let mut args = vec!["get", lower.as_str(), name.as_str()];
        if !ns.is_empty() {
            args.extend(["-n", ns.as_str()]);
        }
        let gone = ctl.at(&url, &args);
        assert!(gone.failed().contains("not found"), "{gone:#?}");
    }
}
