//! The real Kubernetes clients the compatibility tests compare jotasu
//! with: kubectl v1.35 (and its kustomize) and helm v4, installed by
//! `scripts/k8s-clients.sh` into `target/k8s-clients/` (scripts/test.sh
//! runs it). A test that needs one and cannot find it fails in CI and
//! says SKIPPED elsewhere.

use std::path::PathBuf;

/// Where `scripts/k8s-clients.sh` puts them.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/k8s-clients")
}

/// The path of client `name` (`kubectl` or `helm`), or None after saying
/// why (a panic in CI).
pub fn require(name: &str, test: &str) -> Option<PathBuf> {
    let path = dir().join(name);
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

/// Runs `helm ARGS` in `dir`, its config, cache and data kept there; its
/// stdout (a failure panics with helm's stderr).
pub fn helm(helm: &std::path::Path, dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(helm)
        .args(args)
        .current_dir(dir)
        .env("HELM_CONFIG_HOME", dir.join("config"))
        .env("HELM_CACHE_HOME", dir.join("cache"))
        .env("HELM_DATA_HOME", dir.join("data"))
        .output()
        .expect("running helm");
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("helm prints UTF-8")
}
