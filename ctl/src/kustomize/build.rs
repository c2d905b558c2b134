//! Building a kustomization: its resources (files, and directories holding
//! kustomizations, built first and recursively), its generators, then its
//! transformers in kustomize v5's order; at the top, content hashes and
//! name references.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::file::{self, Kustomization};
use super::resource::Resource;
use super::{KustomizeError, generators, hash, labels, nameref, patches, transformers};

/// Renders the kustomization in `dir`: the objects, in kustomize's
/// legacy order (namespaces, accounts and roles, config, services,
/// workloads, …).
pub fn render(dir: &Path) -> Result<Vec<Value>, KustomizeError> {
    let mut stack = Vec::new();
    let mut resources = accumulate(dir, &mut stack)?;
    hash::apply(&mut resources);
    let top = file::FILE_NAMES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .unwrap_or_else(|| dir.to_owned());
    nameref::fix(&mut resources, &top)?;
    resources.sort_by_cached_key(|r| {
        (
            rank(r.kind()),
            r.kind().to_owned(),
            r.group().to_owned(),
            r.namespace().to_owned(),
            r.name().to_owned(),
        )
    });
    Ok(resources.into_iter().map(|r| r.value).collect())
}

/// kustomize's legacy sort: these kinds first, in this order, webhooks last.
fn rank(kind: &str) -> usize {
    const FIRST: [&str; 22] = [
        "Namespace",
        "ResourceQuota",
        "StorageClass",
        "CustomResourceDefinition",
        "ServiceAccount",
        "PodSecurityPolicy",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "ConfigMap",
        "Secret",
        "Endpoints",
        "Service",
        "LimitRange",
        "PriorityClass",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Deployment",
        "StatefulSet",
        "CronJob",
        "PodDisruptionBudget",
    ];
    const LAST: [&str; 2] = [
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ];
    if let Some(i) = FIRST.iter().position(|k| *k == kind) {
        return i;
    }
    match LAST.iter().position(|k| *k == kind) {
        Some(i) => FIRST.len() + 1 + i,
        None => FIRST.len(),
    }
}

/// How deep bases may nest.
const MAX_DEPTH: usize = 64;

/// The objects of the kustomization in `dir`, transformed by it.
fn accumulate(dir: &Path, stack: &mut Vec<PathBuf>) -> Result<Vec<Resource>, KustomizeError> {
    if !dir.is_dir() {
        return Err(KustomizeError::NoDirectory(dir.to_owned()));
    }
    let real = std::fs::canonicalize(dir).map_err(|e| KustomizeError::Read {
        path: dir.to_owned(),
        reason: e.to_string(),
    })?;
    if let Some(at) = stack.iter().position(|d| *d == real) {
        let mut chain: Vec<String> = stack[at..]
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        chain.push(real.display().to_string());
        return Err(KustomizeError::Cycle {
            chain: chain.join(" -> "),
        });
    }
    if stack.len() >= MAX_DEPTH {
        return Err(KustomizeError::invalid(
            dir,
            "resources",
            format!("kustomizations nest more than {MAX_DEPTH} deep; flatten the bases"),
        ));
    }
    stack.push(real);
    let built = build_one(dir, stack);
    stack.pop();
    built
}

fn build_one(dir: &Path, stack: &mut Vec<PathBuf>) -> Result<Vec<Resource>, KustomizeError> {
    let (file, k) = file::load(dir)?;
    let mut resources = Vec::new();
    let entries = k.resources.iter().map(|e| ("resources", e));
    let bases = k.bases.iter().map(|e| ("bases", e));
    for (i, (list, entry)) in entries.chain(bases).enumerate() {
        let field = format!("{list}[{i}]");
        if file::is_remote(entry) {
            return Err(KustomizeError::Remote {
                file: file.clone(),
                field,
                url: entry.clone(),
            });
        }
        let path = dir.join(entry);
        let found = if path.is_dir() {
            accumulate(&path, stack)?
        } else {
            let real = file::local_file(dir, &file, &field, entry)?;
            read_objects(&real)?
        };
        for r in found {
            add(&mut resources, r, &file, &field)?;
        }
    }
    let cx = generators::Context {
        root: dir,
        file: &file,
    };
    generators::run(&k, cx, &mut resources)?;
    transform(&k, dir, &file, &mut resources)?;
    Ok(resources)
}

/// Adds an object unless one of the same kind, namespace and name is there.
fn add(
    resources: &mut Vec<Resource>,
    r: Resource,
    file: &Path,
    field: &str,
) -> Result<(), KustomizeError> {
    let id = r.id();
    if resources.iter().any(|o| o.id() == id) {
        return Err(KustomizeError::invalid(
            file,
            field,
            format!(
                "{} {} is defined twice; each object may appear once",
                r.kind(),
                r.name()
            ),
        ));
    }
    resources.push(r);
    Ok(())
}

/// The objects of a manifest file (`List`s opened).
fn read_objects(path: &Path) -> Result<Vec<Resource>, KustomizeError> {
    let text = file::read_text(path)?;
    let mut out = Vec::new();
    for (n, doc) in jotasu_api::manifest::split_documents(&text)
        .into_iter()
        .enumerate()
    {
        let field = format!("document {}", n + 1);
        let value = doc.map_err(|e| KustomizeError::invalid(path, &field, e))?;
        let items = match value {
            Value::Null => continue,
            Value::Object(ref m)
                if m.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List"))
                    && m.get("items").is_some_and(Value::is_array) =>
            {
                m.get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            }
            v => vec![v],
        };
        for item in items {
            let r = Resource::new(item);
            if !r.value.is_object() || r.kind().is_empty() || r.name().is_empty() {
                return Err(KustomizeError::invalid(
                    path,
                    field,
                    "every object needs apiVersion, kind and metadata.name",
                ));
            }
            out.push(r);
        }
    }
    Ok(out)
}

/// kustomize v5's transformers, in its order.
fn transform(
    k: &Kustomization,
    dir: &Path,
    file: &Path,
    resources: &mut Vec<Resource>,
) -> Result<(), KustomizeError> {
    let cx = patches::Context { root: dir, file };
    for (i, entry) in k.patches_strategic_merge.iter().enumerate() {
        patches::apply_strategic_entry(
            resources,
            entry,
            cx,
            &format!("patchesStrategicMerge[{i}]"),
        )?;
    }
    for (i, p) in k.patches.iter().enumerate() {
        patches::apply(resources, p, cx, &format!("patches[{i}]"), false)?;
    }
    if let Some(ns) = k.namespace.as_deref().filter(|n| !n.is_empty()) {
        transformers::namespace(resources, ns);
    }
    transformers::prefix_suffix(
        resources,
        k.name_prefix.as_deref().unwrap_or_default(),
        k.name_suffix.as_deref().unwrap_or_default(),
    );
    labels::apply(resources, &k.common_labels, &labels::common_label_specs());
    for set in &k.labels {
        labels::apply(resources, &set.pairs, &labels::label_set_specs(set));
    }
    labels::apply(
        resources,
        &k.common_annotations,
        &labels::annotation_specs(),
    );
    for (i, p) in k.patches_json6902.iter().enumerate() {
        patches::apply(resources, p, cx, &format!("patchesJson6902[{i}]"), true)?;
    }
    transformers::replicas(resources, &k.replicas, file)?;
    transformers::images(resources, &k.images);
    Ok(())
}
