//! `jotactl kustomize DIR` against `kubectl kustomize DIR` (kubectl v1.35,
//! kustomize v5.7.1, from `target/k8s-clients/`, put there by
//! scripts/k8s-clients.sh): the fixtures under tests/fixtures/kustomize
//! render to the same objects (compared as JSON values, not text); and
//! the errors jotactl gives for kustomizations it must refuse.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize as _;
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kustomize")
}

/// The real kubectl, or None after saying why (a panic in CI), as
/// jotasu_tests::k8s_clients::require does.
fn kubectl(test: &str) -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("k8s-clients/kubectl");
    if path.is_file() {
        return Some(path);
    }
    let problem = format!("{} is missing (run scripts/k8s-clients.sh)", path.display());
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: cannot run in CI: {problem}");
    }
    eprintln!("\n!!!!!!!! SKIPPED {test}: {problem} !!!!!!!!\n");
    None
}

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()))
}

fn jotactl(args: &[&str]) -> Output {
    run(Path::new(env!("CARGO_BIN_EXE_jotactl")), args)
}

/// The objects of multi-document YAML, by kind, namespace and name.
fn objects(yaml: &[u8]) -> BTreeMap<String, Value> {
    let text = std::str::from_utf8(yaml).expect("UTF-8 output");
    let mut out = BTreeMap::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).expect("YAML output");
        if value.is_null() {
            continue;
        }
        let text = |p: &str| {
            value
                .pointer(p)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let key = format!(
            "{} {}/{}",
            text("/kind"),
            text("/metadata/namespace"),
            text("/metadata/name")
        );
        assert!(out.insert(key.clone(), value).is_none(), "{key} twice");
    }
    out
}

fn same_as_kubectl(overlay: &str) {
    let test = format!("kustomize_{overlay}_as_kubectl");
    let Some(kubectl) = kubectl(&test) else {
        return;
    };
    let dir = fixtures().join(overlay);
    let dir = dir.to_str().expect("UTF-8 path");
    let theirs = run(&kubectl, &["kustomize", dir]);
    assert!(
        theirs.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&theirs.stderr)
    );
    let ours = jotactl(&["kustomize", dir]);
    assert!(
        ours.status.success(),
        "jotactl kustomize {dir}: {}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let (theirs, ours) = (objects(&theirs.stdout), objects(&ours.stdout));
    assert!(theirs.len() >= 8, "{:?}", theirs.keys());
    assert_eq!(
        theirs.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>(),
        "the same objects"
    );
    for (key, value) in &theirs {
        assert_eq!(
            serde_json::to_string_pretty(value).ok(),
            serde_json::to_string_pretty(&ours[key]).ok(),
            "{key}"
        );
        assert_eq!(value, &ours[key], "{key}");
    }
}

#[test]
fn base_as_kubectl() {
    same_as_kubectl("base");
}

#[test]
fn prod_overlay_as_kubectl() {
    same_as_kubectl("prod");
}

#[test]
fn dev_overlay_as_kubectl() {
    same_as_kubectl("dev");
}

#[test]
fn init_containers_and_projected_volumes_as_kubectl() {
    same_as_kubectl("extras");
}

#[test]
fn hashed_names_and_references() {
    // What kubectl gave for the prod overlay, checked without kubectl too.
    let dir = fixtures().join("prod");
    let out = jotactl(&["kustomize", dir.to_str().expect("UTF-8 path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects = objects(&out.stdout);
    let deployment = &objects["Deployment prod/prod-web"];
    let spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        spec["volumes"][1]["configMap"]["name"],
        "prod-app-config-b4tm6m8ktd"
    );
    assert_eq!(spec["serviceAccountName"], "prod-web");
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert!(objects.contains_key("Secret prod/prod-app-secret-4k8f5mftm6"));
    assert!(objects.contains_key("Secret prod/prod-prod-only"));
    assert_eq!(
        objects["HorizontalPodAutoscaler prod/prod-web"]["spec"]["scaleTargetRef"]["name"],
        "prod-web"
    );
}

/// A kustomization tree in a temporary directory.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, text) in files {
        let path = dir.path().join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, text).expect("write");
    }
    dir
}

/// jotactl's stderr for a kustomization it must refuse (exit 1, no output).
fn refused(dir: &Path, verb: &[&str]) -> String {
    let mut args = verb.to_vec();
    let dir = dir.to_str().expect("UTF-8 path");
    args.push(dir);
    let out = jotactl(&args);
    assert_eq!(out.status.code(), Some(1), "{args:?}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n";

#[test]
fn remote_resources_refused() {
    let dir = tree(&[
        (
            "kustomization.yaml",
            "resources:\n- cm.yaml\n- https://github.com/example/repo//deploy?ref=v1\n",
        ),
        ("cm.yaml", CM),
    ]);
    let err = refused(dir.path(), &["kustomize"]);
    assert!(
        err.contains("kustomization.yaml: resources[1]: \"https://github.com/example/repo//deploy?ref=v1\" is remote; jotactl renders local kustomizations only"),
        "{err}"
    );
    // apply -k refuses it before reaching for a server.
    let err = refused(
        dir.path(),
        &["--server", "unix:///nonexistent.sock", "apply", "-k"],
    );
    assert!(err.contains("is remote"), "{err}");
}

#[test]
fn missing_files_named() {
    let dir = tree(&[
        ("kustomization.yaml", "resources:\n- cm.yaml\n- nope.yaml\n"),
        ("cm.yaml", CM),
    ]);
    let err = refused(dir.path(), &["kustomize"]);
    assert!(
        err.contains("kustomization.yaml: resources[1]: \""),
        "{err}"
    );
    assert!(err.contains("nope.yaml\" does not exist"), "{err}");
    let empty = tempfile::tempdir().expect("temp dir");
    let err = refused(empty.path(), &["kustomize"]);
    assert!(err.contains("no kustomization file in"), "{err}");
    let generator = tree(&[(
        "kustomization.yaml",
        "configMapGenerator:\n- name: g\n  files: [missing.txt]\n",
    )]);
    let err = refused(generator.path(), &["kustomize"]);
    assert!(err.contains("configMapGenerator[0].files[0]: \""), "{err}");
}

#[test]
fn bad_patch_targets() {
    let no_such = tree(&[
        (
            "kustomization.yaml",
            "resources: [cm.yaml]\npatches:\n- patch: |\n    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: other\n    data:\n      k: v\n",
        ),
        ("cm.yaml", CM),
    ]);
    let err = refused(no_such.path(), &["kustomize"]);
    assert!(
        err.contains("kustomization.yaml: patches[0]: no ConfigMap \"other\" to patch"),
        "{err}"
    );
    let bad_regex = tree(&[
        (
            "kustomization.yaml",
            "resources: [cm.yaml]\npatches:\n- target:\n    name: \"c(\"\n  patch: |\n    - op: add\n      path: /data\n      value: {}\n",
        ),
        ("cm.yaml", CM),
    ]);
    let err = refused(bad_regex.path(), &["kustomize"]);
    assert!(
        err.contains("kustomization.yaml: patches[0].target.name: "),
        "{err}"
    );
    let failing_op = tree(&[
        (
            "kustomization.yaml",
            "resources: [cm.yaml]\npatchesJson6902:\n- target: {version: v1, kind: ConfigMap, name: c}\n  patch: '[{\"op\": \"remove\", \"path\": \"/data/nothing\"}]'\n",
        ),
        ("cm.yaml", CM),
    ]);
    let err = refused(failing_op.path(), &["kustomize"]);
    assert!(
        err.contains("patchesJson6902[0]: cannot apply to ConfigMap c"),
        "{err}"
    );
}

#[test]
fn cycles_of_bases_refused() {
    let dir = tree(&[
        ("a/kustomization.yaml", "resources: [../b]\n"),
        ("b/kustomization.yaml", "resources: [../a]\n"),
    ]);
    let err = refused(&dir.path().join("a"), &["kustomize"]);
    assert!(err.contains("kustomizations include each other: "), "{err}");
    assert!(err.contains("/a -> "), "{err}");
}

#[test]
fn files_outside_the_kustomization_refused() {
    let dir = tree(&[
        ("k/kustomization.yaml", "resources: [../cm.yaml]\n"),
        ("cm.yaml", CM),
    ]);
    let err = refused(&dir.path().join("k"), &["kustomize"]);
    assert!(err.contains("is not in or below"), "{err}");
}
