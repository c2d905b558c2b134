//! Manifests named by `-f`: files, directories (`*.yaml`, `*.yml`,
//! `*.json`, sorted; `-R` descends) and `-` (stdin). [`load`] parses,
//! defaults and validates every object of every file before anything is
//! sent; [`refs`] only reads which objects they name (for delete and scale).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jotasu_api::manifest::split_documents;
use jotasu_api::meta::DEFAULT_NAMESPACE;
use jotasu_api::{
    ErrorKind, FieldPath, Kind, Location, ManifestError, ManifestErrors, ManifestLoader,
    ManifestObject, ObjectRef, ParseOptions,
};
use serde_json::Value;

use crate::cli::FileArgs;

/// A manifest file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The path does not exist.
    #[error("the path \"{}\" does not exist", .0.display())]
    Missing(PathBuf),
    /// Reading failed.
    #[error("cannot read {}: {reason}", path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The text of one manifest file and the name messages use for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The path as given (or found in a directory), `STDIN` for `-`.
    pub name: String,
    /// The file's text.
    pub text: String,
}

/// Reads every file `-f` names, in order.
pub fn read_sources(args: &FileArgs) -> Result<Vec<Source>, SourceError> {
    let mut sources = Vec::new();
    for path in &args.files {
        if path.as_os_str() == "-" {
            let text =
                std::io::read_to_string(std::io::stdin()).map_err(|e| SourceError::Read {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            sources.push(Source {
                name: "STDIN".to_owned(),
                text,
            });
            continue;
        }
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SourceError::Missing(path.clone()),
            _ => read_error(path, &e),
        })?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(path, args.recursive, &mut files)?;
            for file in files {
                sources.push(read_file(&file)?);
            }
        } else {
            sources.push(read_file(path)?);
        }
    }
    Ok(sources)
}

fn read_error(path: &Path, e: &std::io::Error) -> SourceError {
    SourceError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

fn read_file(path: &Path) -> Result<Source, SourceError> {
    let text = std::fs::read_to_string(path).map_err(|e| read_error(path, &e))?;
    Ok(Source {
        name: path.display().to_string(),
        text,
    })
}

/// Whether a file in a directory is a manifest.
fn is_manifest(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
}

/// The manifests of `dir` in lexical order (subdirectories in place when
/// `recursive`).
fn walk(dir: &Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<(), SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|e| read_error(dir, &e))?;
    let mut paths = entries
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(dir, &e))?;
    paths.sort();
    for path in paths {
        if path.is_dir() {
            if recursive {
                walk(&path, recursive, out)?;
            }
        } else if is_manifest(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// kubectl's words for an object in another namespace than `-n` names.
fn namespace_mismatch(given: &str, wanted: &str) -> String {
    format!(
        "the namespace from the provided object \"{given}\" does not match the namespace \"{wanted}\". You must pass '--namespace={given}' to perform this operation."
    )
}

/// Parses, defaults and validates every object; `namespace` is an explicit
/// `-n` (objects naming none land there; naming another is an error).
/// Duplicates are refused (the server applies each object once per call).
/// Kubernetes fields jotasu ignores are printed as warnings (`status` is
/// dropped silently, as the API server ignores it).
pub fn load(
    sources: &[Source],
    namespace: Option<&str>,
) -> Result<Vec<ManifestObject>, ManifestErrors> {
    let mut loader = ManifestLoader::new(ParseOptions::user(namespace.map(str::to_owned)));
    for source in sources {
        loader.add(&source.name, &source.text);
    }
    match loader.finish() {
        Ok(loaded) => {
            for w in &loaded.warnings {
                crate::report::note(&format!("Warning: {w}"));
            }
            refuse_duplicates(loaded.objects)
        }
        Err(ManifestErrors(errors)) => Err(ManifestErrors(
            errors
                .into_iter()
                .map(|e| kubectl_namespace_error(e, namespace))
                .collect(),
        )),
    }
}

/// Reports every object defined twice, at its second place.
fn refuse_duplicates(objects: Vec<ManifestObject>) -> Result<Vec<ManifestObject>, ManifestErrors> {
    let mut first: HashMap<ObjectRef, &Location> = HashMap::new();
    let mut errors = Vec::new();
    for o in &objects {
        let r = o.object.object_ref();
        if r.name.is_empty() {
            continue; // generateName: a new object each time
        }
        match first.get(&r) {
            Some(at) => errors.push(ManifestError::document(
                &o.location,
                ErrorKind::Invalid,
                format!("{r} is also defined at {at}; each object may appear once"),
            )),
            None => {
                first.insert(r, &o.location);
            }
        }
    }
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(ManifestErrors(errors))
    }
}

/// Rewrites the loader's namespace mismatch in kubectl's words.
fn kubectl_namespace_error(error: ManifestError, namespace: Option<&str>) -> ManifestError {
    let Some(wanted) = namespace else {
        return error;
    };
    let is_mismatch = error.kind == ErrorKind::Invalid
        && error.path.as_str() == "metadata.namespace"
        && error.message.contains("does not match the namespace");
    let given = error
        .message
        .strip_prefix("Invalid value: \"")
        .and_then(|rest| rest.split_once('"'))
        .map(|(given, _)| given.to_owned());
    match given {
        Some(given) if is_mismatch => ManifestError {
            path: FieldPath::root(),
            message: namespace_mismatch(&given, wanted),
            ..error
        },
        _ => error,
    }
}

/// The objects the manifests name (kind, namespace, name), without
/// validating the rest, so an object can be deleted by the file that made
/// it even if the file no longer passes validation.
pub fn refs(sources: &[Source], namespace: Option<&str>) -> Result<Vec<ObjectRef>, ManifestErrors> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for source in sources {
        for (index, parsed) in split_documents(&source.text).into_iter().enumerate() {
            let location = Location {
                source: source.name.clone(),
                document: index + 1,
                ..Location::default()
            };
            let fail = |kind, message: String| ManifestError::document(&location, kind, message);
            match parsed {
                Err(message) => errors.push(fail(ErrorKind::Syntax, message)),
                Ok(Value::Null) => {}
                Ok(value) => {
                    let listed = is_list(&value);
                    let items = if listed {
                        let items = value.get("items").and_then(Value::as_array);
                        items.cloned().unwrap_or_default()
                    } else {
                        vec![value]
                    };
                    for (i, item) in items.iter().enumerate() {
                        let location = Location {
                            item: listed.then_some(i + 1),
                            ..location.clone()
                        };
                        match ref_of(item, namespace) {
                            Ok(r) => found.push(r),
                            Err((kind, message)) => {
                                errors.push(ManifestError::document(&location, kind, message));
                            }
                        }
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(ManifestErrors(errors))
    }
}

fn is_list(value: &Value) -> bool {
    value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
}

/// Kind, namespace and name of one document.
fn ref_of(value: &Value, namespace: Option<&str>) -> Result<ObjectRef, (ErrorKind, String)> {
    let text = |pointer: &str| value.pointer(pointer).and_then(Value::as_str);
    let (Some(api_version), Some(kind)) = (text("/apiVersion"), text("/kind")) else {
        return Err((
            ErrorKind::UnsupportedKind,
            "an object needs apiVersion and kind".to_owned(),
        ));
    };
    let kind =
        Kind::lookup(api_version, kind).map_err(|e| (ErrorKind::UnsupportedKind, e.to_string()))?;
    let name = text("/metadata/name").filter(|n| !n.is_empty()).ok_or((
        ErrorKind::Invalid,
        "resource name may not be empty".to_owned(),
    ))?;
    let given = text("/metadata/namespace").filter(|n| !n.is_empty());
    if let (Some(given), Some(wanted), true) = (given, namespace, kind.namespaced())
        && given != wanted
    {
        return Err((ErrorKind::Invalid, namespace_mismatch(given, wanted)));
    }
    let ns = given.or(namespace).unwrap_or(DEFAULT_NAMESPACE);
    Ok(ObjectRef {
        kind,
        namespace: kind.namespaced().then(|| ns.to_owned()),
        name: name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(name: &str, text: &str) -> Source {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }

    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n";
    const CM_IN_X: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: x\n";

    #[test]
    fn every_error_of_every_file() {
        let bad1 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\nbogus: 1\n";
        let bad2 = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: three\n";
        let e = load(
            &[src("ok.yaml", CM), src("a.yaml", bad1), src("b.yaml", bad2)],
            None,
        )
        .unwrap_err();
        let lines: Vec<String> = e.0.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].starts_with("a.yaml: document 1 (ConfigMap c): bogus: unknown field"),
            "{lines:?}"
        );
        assert!(
            lines[1].starts_with("b.yaml: document 1 (Deployment web): spec.replicas: "),
            "{lines:?}"
        );
    }

    #[test]
    fn namespace_flag() {
        let ns = |objs: Vec<ManifestObject>| -> Vec<String> {
            objs.iter()
                .map(|o| o.object.namespace().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(
            ns(load(&[src("a.yaml", CM)], Some("team")).unwrap()),
            ["team"]
        );
        assert_eq!(
            ns(load(&[src("a.yaml", CM), src("b.yaml", CM_IN_X)], None).unwrap()),
            ["default", "x"]
        );
        let e = load(&[src("b.yaml", CM_IN_X)], Some("team")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "b.yaml: document 1 (ConfigMap b): the namespace from the provided object \"x\" does not match the namespace \"team\". You must pass '--namespace=x' to perform this operation."
        );
        assert_eq!(
            ns(load(&[src("b.yaml", CM_IN_X)], Some("x")).unwrap()),
            ["x"]
        );
    }

    #[test]
    fn duplicates_refused() {
        let e = load(&[src("a.yaml", CM), src("b.yaml", CM)], None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "b.yaml: document 1 (ConfigMap a): ConfigMap default/a is also defined at a.yaml: document 1 (ConfigMap a); each object may appear once"
        );
        let in_team = CM.replace("name: a", "name: a\n  namespace: team");
        assert_eq!(
            load(&[src("a.yaml", CM), src("b.yaml", &in_team)], None)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn refs_only_need_identity() {
        let text = format!(
            "{CM}---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: three\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Node\n  metadata:\n    name: n1\n    namespace: ignored\n"
        );
        let found = refs(&[src("a.yaml", &text)], None).unwrap();
        let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["ConfigMap default/a", "Deployment default/web", "Node n1"]
        );
        let e = refs(&[src("b.yaml", CM_IN_X)], Some("team")).unwrap_err();
        assert!(
            e.to_string().contains("You must pass '--namespace=x'"),
            "{e}"
        );
        let e = refs(&[src("c.yaml", "kind: ConfigMap\n")], None).unwrap_err();
        assert!(e.to_string().starts_with("c.yaml: document 1: "), "{e}");
        let e = refs(
            &[src(
                "d.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
            )],
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.yaml: document 1: resource name may not be empty"
        );
    }

    #[test]
    fn directories_sorted_and_recursive() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).unwrap();
        for (name, text) in [
            ("b.yaml", CM),
            ("a.json", "{}"),
            ("c.yml", CM),
            ("notes.txt", "x"),
            ("sub/d.yaml", CM),
        ] {
            std::fs::write(d.join(name), text).unwrap();
        }
        let names = |recursive| {
            read_sources(&FileArgs {
                files: vec![d.to_owned()],
                recursive,
            })
            .unwrap()
            .into_iter()
            .map(|s| {
                Path::new(&s.name)
                    .strip_prefix(d)
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect::<Vec<_>>()
        };
        assert_eq!(names(false), ["a.json", "b.yaml", "c.yml"]);
        assert_eq!(names(true), ["a.json", "b.yaml", "c.yml", "sub/d.yaml"]);
        let missing = read_sources(&FileArgs {
            files: vec![d.join("nope.yaml")],
            recursive: false,
        })
        .unwrap_err();
        assert_eq!(
            missing.to_string(),
            format!(
                "the path \"{}\" does not exist",
                d.join("nope.yaml").display()
            )
        );
    }
}
