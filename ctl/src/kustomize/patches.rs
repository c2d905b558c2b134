//! `patches`, `patchesStrategicMerge` and `patchesJson6902`: each patch is
//! read (from its file or inline), recognised as a JSON 6902 operation
//! list or a strategic merge patch, and applied to its target — the
//! objects its `target` selects, or (a strategic merge patch without one)
//! the object its own apiVersion, kind, name and namespace name.

use std::path::Path;

use jotasu_api::LabelSelector;
use regex::Regex;
use serde::Deserialize as _;
use serde_json::Value;

use super::KustomizeError;
use super::file::{self, Patch, PatchOptions, Selector};
use super::resource::{Resource, split_api_version};
use super::smp::{self, Outcome};

/// A patch's content.
#[derive(Debug)]
pub enum Content {
    /// RFC 6902 operations.
    Json(json_patch::Patch),
    /// Strategic merge patches (one per YAML document).
    Strategic(Vec<Value>),
}

/// Where patches are read: the kustomization's directory and file.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The kustomization's directory.
    pub root: &'a Path,
    /// Its file.
    pub file: &'a Path,
}

/// The YAML (or JSON) documents of `text`.
fn documents(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| e.to_string())?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// Reads and recognises one patch (`path` or inline `patch`).
fn content(p: &Patch, cx: Context<'_>, field: &str) -> Result<Content, KustomizeError> {
    let (text, source) = match (&p.path, &p.patch) {
        (Some(path), None) => {
            let real = file::local_file(cx.root, cx.file, &format!("{field}.path"), path)?;
            (file::read_text(&real)?, real)
        }
        (None, Some(inline)) => (inline.clone(), cx.file.to_owned()),
        _ => {
            return Err(KustomizeError::invalid(
                cx.file,
                field,
                "give exactly one of path and patch",
            ));
        }
    };
    parse(&text, &source, field)
}

/// Recognises a patch's text.
pub fn parse(text: &str, source: &Path, field: &str) -> Result<Content, KustomizeError> {
    let docs = documents(text)
        .map_err(|e| KustomizeError::invalid(source, field, format!("not YAML: {e}")))?;
    match docs.as_slice() {
        [Value::Array(_)] => {
            let ops = docs.into_iter().next().unwrap_or_default();
            serde_json::from_value(ops).map(Content::Json).map_err(|e| {
                KustomizeError::invalid(source, field, format!("not a JSON 6902 patch: {e}"))
            })
        }
        [] => Err(KustomizeError::invalid(source, field, "the patch is empty")),
        _ => Ok(Content::Strategic(docs)),
    }
}

/// Whether `r` is one of the objects `s` selects.
fn selected(
    s: &Selector,
    r: &Resource,
    cx: Context<'_>,
    field: &str,
) -> Result<bool, KustomizeError> {
    let regex = |pattern: &str, key: &str| {
        Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
            KustomizeError::invalid(cx.file, format!("{field}.target.{key}"), e.to_string())
        })
    };
    let selector = |text: &str, key: &str| {
        LabelSelector::parse(text).map_err(|e| {
            KustomizeError::invalid(cx.file, format!("{field}.target.{key}"), e.to_string())
        })
    };
    let exact = |want: &Option<String>, have: &str| {
        want.as_deref().is_none_or(|w| w.is_empty() || w == have)
    };
    if !exact(&s.group, r.group()) || !exact(&s.version, r.version()) || !exact(&s.kind, r.kind()) {
        return Ok(false);
    }
    if let Some(name) = s.name.as_deref().filter(|n| !n.is_empty()) {
        let re = regex(name, "name")?;
        let any = re.is_match(r.name()) || r.history.iter().any(|(_, n)| re.is_match(n));
        if !any {
            return Ok(false);
        }
    }
    if let Some(ns) = s.namespace.as_deref().filter(|n| !n.is_empty()) {
        let re = regex(ns, "namespace")?;
        let effective = |n: &str| {
            if n.is_empty() {
                "default".to_owned()
            } else {
                n.to_owned()
            }
        };
        let any = re.is_match(&effective(r.namespace()))
            || re.is_match(&effective(r.original_namespace()));
        if !any {
            return Ok(false);
        }
    }
    if let Some(text) = s.label_selector.as_deref()
        && !selector(text, "labelSelector")?.matches(&r.labels())
    {
        return Ok(false);
    }
    if let Some(text) = s.annotation_selector.as_deref()
        && !selector(text, "annotationSelector")?.matches(&r.annotations())
    {
        return Ok(false);
    }
    Ok(true)
}

/// Applies one strategic merge patch without a target: to the object its
/// apiVersion, kind, name (first or current) and namespace name.
fn apply_by_identity(
    resources: &mut Vec<Resource>,
    patch: &Value,
    options: PatchOptions,
    cx: Context<'_>,
    field: &str,
) -> Result<(), KustomizeError> {
    let text = |p: &str| patch.pointer(p).and_then(Value::as_str).unwrap_or_default();
    let (kind, name, namespace) = (
        text("/kind"),
        text("/metadata/name"),
        text("/metadata/namespace"),
    );
    let group = split_api_version(text("/apiVersion")).0;
    if kind.is_empty() || name.is_empty() {
        return Err(KustomizeError::invalid(
            cx.file,
            field,
            "a strategic merge patch without a target needs kind and metadata.name (or give target)",
        ));
    }
    let effective = |n: &str| {
        if n.is_empty() {
            "default".to_owned()
        } else {
            n.to_owned()
        }
    };
    let found: Vec<usize> = (0..resources.len())
        .filter(|i| {
            let r = &resources[*i];
            r.kind() == kind
                && r.group() == group
                && r.answers_to(name)
                && (effective(r.namespace()) == effective(namespace)
                    || r.history
                        .iter()
                        .any(|(ns, _)| effective(ns) == effective(namespace)))
        })
        .collect();
    let at = match found.as_slice() {
        [one] => *one,
        [] => {
            return Err(KustomizeError::invalid(
                cx.file,
                field,
                format!(
                    "no {kind} \"{name}\"{} to patch; check the patch's apiVersion, kind, metadata.name and metadata.namespace",
                    if namespace.is_empty() {
                        String::new()
                    } else {
                        format!(" in namespace \"{namespace}\"")
                    }
                ),
            ));
        }
        _ => {
            return Err(KustomizeError::invalid(
                cx.file,
                field,
                format!("more than one {kind} is called \"{name}\"; give metadata.namespace"),
            ));
        }
    };
    if strategic(&mut resources[at], patch, options) == Outcome::Deleted {
        resources.remove(at);
    }
    Ok(())
}

/// Applies a strategic merge patch to one object; a new name (or kind)
/// stays only when the patch's options allow it (then it is tracked, so
/// references follow).
fn strategic(r: &mut Resource, patch: &Value, options: PatchOptions) -> Outcome {
    let (name, kind, api_version) = (
        r.name().to_owned(),
        r.kind().to_owned(),
        r.value.get("apiVersion").cloned(),
    );
    let outcome = smp::apply(&mut r.value, patch, &kind);
    if outcome == Outcome::Deleted {
        return outcome;
    }
    if r.kind() != kind
        && !options.allow_kind_change
        && let Some(object) = r.value.as_object_mut()
    {
        object.insert("kind".into(), Value::String(kind));
        match api_version {
            Some(v) => object.insert("apiVersion".into(), v),
            None => object.remove("apiVersion"),
        };
    }
    let new_name = r.name().to_owned();
    if new_name != name {
        if let Some(metadata) = r.metadata_mut() {
            metadata.insert("name".into(), Value::String(name));
        }
        if options.allow_name_change {
            r.set_name(new_name);
        }
    }
    outcome
}

/// A patch for a selected object: without the patch's own identity
/// (its name stays when the options allow renaming).
fn without_identity(patch: &Value, options: PatchOptions) -> Value {
    let mut patch = patch.clone();
    if let Some(map) = patch.as_object_mut() {
        if !options.allow_kind_change {
            map.remove("apiVersion");
            map.remove("kind");
        }
        if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
            if !options.allow_name_change {
                metadata.remove("name");
            }
            metadata.remove("namespace");
        }
    }
    patch
}

/// Applies one patch (of `patches` or `patchesJson6902`).
pub fn apply(
    resources: &mut Vec<Resource>,
    p: &Patch,
    cx: Context<'_>,
    field: &str,
    json_only: bool,
) -> Result<(), KustomizeError> {
    let content = content(p, cx, field)?;
    let options = p.options.unwrap_or_default();
    let target = match (&p.target, &content) {
        (Some(t), _) => Some(t),
        (None, Content::Strategic(_)) if !json_only => None,
        (None, _) => {
            return Err(KustomizeError::invalid(
                cx.file,
                field,
                "a JSON 6902 patch needs a target (kind, name, …)",
            ));
        }
    };
    if json_only && !matches!(content, Content::Json(_)) {
        return Err(KustomizeError::invalid(
            cx.file,
            field,
            "patchesJson6902 takes a list of JSON 6902 operations",
        ));
    }
    let Some(target) = target else {
        if let Content::Strategic(docs) = &content {
            for doc in docs {
                apply_by_identity(resources, doc, options, cx, field)?;
            }
        }
        return Ok(());
    };
    let mut chosen = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        if selected(target, r, cx, field)? {
            chosen.push(i);
        }
    }
    let mut deleted = Vec::new();
    for i in chosen {
        let r = &mut resources[i];
        match &content {
            Content::Json(ops) => json_patch::patch(&mut r.value, ops).map_err(|e| {
                KustomizeError::invalid(
                    cx.file,
                    field,
                    format!("cannot apply to {} {}: {e}", r.kind(), r.name()),
                )
            })?,
            Content::Strategic(docs) => {
                for doc in docs {
                    if strategic(r, &without_identity(doc, options), options) == Outcome::Deleted {
                        deleted.push(i);
                        break;
                    }
                }
            }
        }
    }
    for i in deleted.into_iter().rev() {
        resources.remove(i);
    }
    Ok(())
}

/// Applies one entry of `patchesStrategicMerge` (a file or inline YAML).
pub fn apply_strategic_entry(
    resources: &mut Vec<Resource>,
    entry: &str,
    cx: Context<'_>,
    field: &str,
) -> Result<(), KustomizeError> {
    let p = if entry.contains('\n') {
        Patch {
            patch: Some(entry.to_owned()),
            ..Patch::default()
        }
    } else {
        Patch {
            path: Some(entry.to_owned()),
            ..Patch::default()
        }
    };
    apply(resources, &p, cx, field, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cx() -> Context<'static> {
        Context {
            root: Path::new("/nonexistent"),
            file: Path::new("k.yaml"),
        }
    }

    fn resources() -> Vec<Resource> {
        vec![
            Resource::new(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "labels": {"app": "web"}}, "spec": {"replicas": 1}})),
            Resource::new(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "db"}, "spec": {"replicas": 1}})),
        ]
    }

    fn inline(text: &str, target: Option<Selector>) -> Patch {
        Patch {
            patch: Some(text.into()),
            target,
            ..Patch::default()
        }
    }

    #[test]
    fn json_patch_by_selector() {
        let mut rs = resources();
        let target = Selector {
            kind: Some("Deployment".into()),
            label_selector: Some("app=web".into()),
            ..Selector::default()
        };
        let p = inline(
            "- op: replace\n  path: /spec/replicas\n  value: 5\n",
            Some(target),
        );
        apply(&mut rs, &p, cx(), "patches[0]", false).unwrap();
        assert_eq!(rs[0].value["spec"]["replicas"], 5);
        assert_eq!(rs[1].value["spec"]["replicas"], 1);
        let regex = Selector {
            name: Some("w.*|d.".into()),
            ..Selector::default()
        };
        let p = inline(
            "[{\"op\": \"add\", \"path\": \"/spec/paused\", \"value\": true}]",
            Some(regex),
        );
        apply(&mut rs, &p, cx(), "patches[1]", false).unwrap();
        assert_eq!(rs[0].value["spec"]["paused"], true);
        assert_eq!(rs[1].value["spec"]["paused"], true);
    }

    #[test]
    fn strategic_by_identity_and_errors() {
        let mut rs = resources();
        let p = inline(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: db\nspec:\n  replicas: 2\n",
            None,
        );
        apply(&mut rs, &p, cx(), "patches[0]", false).unwrap();
        assert_eq!(rs[1].value["spec"]["replicas"], 2);
        let missing = inline(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: nope\n",
            None,
        );
        let e = apply(&mut rs, &missing, cx(), "patches[1]", false).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("k.yaml: patches[1]: no Deployment \"nope\" to patch"),
            "{e}"
        );
        let ops = inline(
            "- op: remove\n  path: /spec/nothing\n",
            Some(Selector::default()),
        );
        assert!(apply(&mut rs, &ops, cx(), "patches[2]", false).is_err());
        let bad = inline(
            "- op: add\n  path: /x\n  value: 1\n",
            Some(Selector {
                name: Some("(".into()),
                ..Selector::default()
            }),
        );
        let e = apply(&mut rs, &bad, cx(), "patches[3]", false).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("k.yaml: patches[3].target.name: "),
            "{e}"
        );
        let delete = inline(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: db\n$patch: delete\n",
            None,
        );
        apply(&mut rs, &delete, cx(), "patches[4]", false).unwrap();
        assert_eq!(rs.len(), 1);
    }
}
