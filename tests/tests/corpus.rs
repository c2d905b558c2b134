//! Real manifests, as users have them, through jotactl's reading
//! (parse, the rules for Kubernetes fields jotasu does not implement,
//! defaults, validation): the 251 manifests of kubernetes/examples
//! (`tests/corpus/`, see its SOURCES.md) and the chart `helm create`
//! generates, rendered by the real helm.
//!
//! Each corpus file lands in one category, kept in
//! `tests/corpus/expected.tsv` (`JOTASU_UPDATE_CORPUS=1` rewrites it, so a
//! change in what jotasu accepts shows in review):
//! - `accepted`: every object read, defaulted and valid;
//! - `kind-not-served`: a kind jotasu does not serve, refused in kubectl's
//!   words (nothing of the file is applied);
//! - `field-refused`: only refusals of fields jotasu does not support,
//!   each naming its field;
//! - `invalid`: refused for another reason — allowed only for the files
//!   listed in [`INVALID_UPSTREAM`], which Kubernetes refuses too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jotasu_api::{ErrorKind, ManifestLoader, ParseOptions};
use jotasu_tests::k8s_clients;

/// Files Kubernetes itself refuses, and why.
const INVALID_UPSTREAM: &[(&str, &str)] = &[
    (
        "_archived/openshift-origin/etcd-controller.yaml",
        "duplicate key `selector` (kubectl: mapping key already defined)",
    ),
    (
        "_archived/openshift-origin/etcd-discovery-controller.yaml",
        "duplicate key `selector`",
    ),
    (
        "_archived/openshift-origin/openshift-controller.yaml",
        "duplicate key `selector`",
    ),
    (
        "_archived/persistent-volume-provisioning/quobyte/quobyte-admin-secret.yaml",
        "duplicate key `type`",
    ),
    (
        "_archived/volumes/aws_ebs/aws-ebs-web.yaml",
        "protocol `tcp` (Kubernetes: Unsupported value, supported TCP, UDP, SCTP)",
    ),
    ("_archived/volumes/cinder/cinder-web.yaml", "protocol `tcp`"),
    (
        "_archived/volumes/scaleio/sc-pvc.yaml",
        "duplicate key `storageClassName`",
    ),
];

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the corpus directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else if matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(p);
        }
    }
}

/// The category of one file and its first problem.
fn classify(name: &str, text: &str) -> (&'static str, String) {
    let mut loader = ManifestLoader::new(ParseOptions::user(None));
    loader.add(name, text);
    match loader.finish() {
        Ok(loaded) if loaded.objects.is_empty() => ("invalid", "no objects".into()),
        Ok(_) => ("accepted", String::new()),
        Err(errors) => {
            let first = errors.0[0].to_string();
            let kinds: Vec<ErrorKind> = errors.0.iter().map(|e| e.kind).collect();
            if kinds.contains(&ErrorKind::UnsupportedKind) {
                for e in &errors.0 {
                    if e.kind == ErrorKind::UnsupportedKind {
                        assert!(
                            e.message
                                .starts_with("resource mapping not found for name: "),
                            "{name}: not kubectl's words: {e}"
                        );
                    }
                }
                // Without the list of served kinds, which grows.
                let first = first
                    .split_once(": jotasu does not serve this kind")
                    .map_or(first.as_str(), |(head, _)| head)
                    .to_owned();
                ("kind-not-served", first)
            } else if kinds.iter().all(|k| *k == ErrorKind::Unsupported) {
                for e in &errors.0 {
                    assert!(
                        e.message.contains("jotasu does not support this field"),
                        "{name}: a refusal that does not name its field's support: {e}"
                    );
                }
                ("field-refused", first)
            } else {
                ("invalid", first)
            }
        }
    }
}

#[test]
fn the_kubernetes_examples_are_read_as_kubernetes_reads_them() {
    let root = corpus().join("kubernetes-examples");
    let mut paths = Vec::new();
    files(&root, &mut paths);
    assert_eq!(
        paths.len(),
        251,
        "the corpus holds 251 manifests (see SOURCES.md)"
    );
    let mut table = String::new();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unexpected = Vec::new();
    for path in &paths {
        let rel = path.strip_prefix(&root).expect("inside the corpus");
        let name = rel.display().to_string();
        let text = std::fs::read_to_string(path).expect("a corpus file");
        let (category, detail) = classify(&name, &text);
        *counts.entry(category).or_default() += 1;
        let upstream = INVALID_UPSTREAM.iter().any(|(f, _)| *f == name);
        if (category == "invalid") != upstream {
            unexpected.push(format!("{name}: {category}: {detail}"));
        }
        let detail = detail.replace(['\t', '\n'], " ");
        table.push_str(&format!("{name}\t{category}\t{detail}\n"));
    }
    for (file, why) in INVALID_UPSTREAM {
        assert!(
            paths
                .iter()
                .any(|p| p.strip_prefix(&root).is_ok_and(|r| r == Path::new(file))),
            "{file} (listed as invalid upstream: {why}) is not in the corpus"
        );
    }
    let expected_path = corpus().join("expected.tsv");
    if std::env::var_os("JOTASU_UPDATE_CORPUS").is_some() {
        std::fs::write(&expected_path, &table).expect("writing expected.tsv");
    }
    eprintln!("corpus: {counts:?}");
    assert!(
        unexpected.is_empty(),
        "files refused for a reason other than an unsupported kind or field (or an upstream file Kubernetes refuses, accepted):\n{}",
        unexpected.join("\n")
    );
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    if expected != table {
        let old: BTreeMap<&str, &str> = expected
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .collect();
        let diff: Vec<String> = table
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .filter(|(f, rest)| old.get(f) != Some(rest))
            .map(|(f, rest)| format!("{f}: now {rest}, was {}", old.get(f).unwrap_or(&"absent")))
            .collect();
        panic!(
            "the corpus reads differently than tests/corpus/expected.tsv says (JOTASU_UPDATE_CORPUS=1 rewrites it):\n{}",
            diff.join("\n")
        );
    }
}

/// `helm template` of the chart `helm create` makes, with `values`.
fn helm_chart(helm: &Path, dir: &Path, values: &[&str]) -> String {
    if !dir.join("mychart").exists() {
        k8s_clients::helm(helm, dir, &["create", "mychart"]);
    }
    let mut args = vec!["template", "web", "mychart"];
    for v in values {
        args.extend(["--set", v]);
    }
    k8s_clients::helm(helm, dir, &args)
}

#[test]
fn the_chart_helm_create_makes_is_accepted() {
    let Some(helm) = k8s_clients::require("helm", "the_chart_helm_create_makes_is_accepted") else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let text = helm_chart(&helm, dir.path(), &[]);
    let mut loader = ManifestLoader::new(ParseOptions::user(None));
    loader.add("helm template", &text);
    let loaded = loader
        .finish()
        .unwrap_or_else(|e| panic!("the default chart is refused:\n{e}"));
    let kinds: Vec<String> = loaded
        .objects
        .iter()
        .map(|o| o.object.kind().to_string())
        .collect();
    for kind in ["ServiceAccount", "Service", "Deployment", "Pod"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} missing from {kinds:?}"
        );
    }
    // Autoscaling on: its HPA is accepted too. Ingress on: refused in
    // kubectl's words (jotasu serves no Ingress), nothing else wrong.
    let text = helm_chart(
        &helm,
        dir.path(),
        &["autoscaling.enabled=true", "ingress.enabled=true"],
    );
    let mut loader = ManifestLoader::new(ParseOptions::user(None));
    loader.add("helm template", &text);
    let errors = loader.finish().expect_err("an Ingress is refused").0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].kind, ErrorKind::UnsupportedKind);
    assert!(
        errors[0].message.starts_with(
            "resource mapping not found for name: \"web-mychart\" namespace: \"\" from \"helm template\": no matches for kind \"Ingress\" in version \"networking.k8s.io/v1\""
        ),
        "{}",
        errors[0]
    );
    let text = helm_chart(&helm, dir.path(), &["autoscaling.enabled=true"]);
    let mut loader = ManifestLoader::new(ParseOptions::user(None));
    loader.add("helm template", &text);
    let loaded = loader
        .finish()
        .unwrap_or_else(|e| panic!("the chart with autoscaling is refused:\n{e}"));
    assert!(
        loaded
            .objects
            .iter()
            .any(|o| o.object.kind() == jotasu_api::Kind::HorizontalPodAutoscaler)
    );
}
