//! Errors of manifest parsing and validation. Each names the file, the
//! document (1-based), its kind and name when known, the field path and the
//! rule broken:
//! `deploy.yaml: document 2 (Deployment web): spec.replicas: invalid type: string "three", expected i32`.

use std::fmt;

use crate::path::FieldPath;

/// A rule broken by one field of an object (found by validation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", fmt_path_message(.path, .message))]
pub struct FieldError {
    /// Where: `spec.template.spec.containers[0].name`.
    pub path: FieldPath,
    /// What rule is broken, e.g. `Duplicate value: "web"`.
    pub message: String,
}

impl FieldError {
    /// A field error with a free-form message.
    pub fn new(path: &FieldPath, message: impl Into<String>) -> Self {
        Self {
            path: path.clone(),
            message: message.into(),
        }
    }

    /// `Required value`, with an optional explanation.
    pub fn required(path: &FieldPath, detail: &str) -> Self {
        Self::new(
            path,
            if detail.is_empty() {
                "Required value".to_owned()
            } else {
                format!("Required value: {detail}")
            },
        )
    }

    /// `Invalid value: "<value>": <rule>`.
    pub fn invalid(path: &FieldPath, value: impl fmt::Display, rule: impl fmt::Display) -> Self {
        Self::new(path, format!("Invalid value: \"{value}\": {rule}"))
    }

    /// `Invalid value: <number>: <rule>` (Kubernetes quotes strings, not numbers).
    pub fn invalid_number(path: &FieldPath, value: i64, rule: impl fmt::Display) -> Self {
        Self::new(path, format!("Invalid value: {value}: {rule}"))
    }

    /// `Duplicate value: "<value>"`.
    pub fn duplicate(path: &FieldPath, value: impl fmt::Display) -> Self {
        Self::new(path, format!("Duplicate value: \"{value}\""))
    }

    /// `Unsupported value: "<value>": supported values: ...`.
    pub fn not_supported(path: &FieldPath, value: impl fmt::Display, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Self::new(
            path,
            format!(
                "Unsupported value: \"{value}\": supported values: {}",
                list.join(", ")
            ),
        )
    }

    /// `Not found: "<value>": <why>`.
    pub fn not_found(path: &FieldPath, value: impl fmt::Display, why: impl fmt::Display) -> Self {
        Self::new(path, format!("Not found: \"{value}\": {why}"))
    }

    /// `Forbidden: <why>`.
    pub fn forbidden(path: &FieldPath, why: impl fmt::Display) -> Self {
        Self::new(path, format!("Forbidden: {why}"))
    }
}

fn fmt_path_message(path: &FieldPath, message: &str) -> String {
    if path.is_root() {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

/// Where in a set of manifests an object came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// The source name given by the caller, e.g. `deploy.yaml` or `-`.
    pub source: String,
    /// The document's position in the file, from 1 (empty documents count).
    pub document: usize,
    /// The position in a `kind: List`'s `items`, from 1.
    pub item: Option<usize>,
    /// The object's kind, if it could be read.
    pub kind: Option<String>,
    /// The object's name, if it could be read.
    pub name: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.source, self.document)?;
        if let Some(item) = self.item {
            write!(f, ", item {item}")?;
        }
        match (&self.kind, &self.name) {
            (Some(k), Some(n)) => write!(f, " ({k} {n})"),
            (Some(k), None) => write!(f, " ({k})"),
            (None, Some(n)) => write!(f, " ({n})"),
            (None, None) => Ok(()),
        }
    }
}

/// What sort of problem a [`ManifestError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Not well-formed YAML or JSON.
    Syntax,
    /// The document is not an object with a supported `apiVersion` and `kind`.
    UnsupportedKind,
    /// A field the kind does not have (a warning in lenient mode).
    UnknownField,
    /// A Kubernetes field jotasu refuses (see [`crate::support`]).
    Unsupported,
    /// A Kubernetes field jotasu accepts and ignores (a warning).
    Ignored,
    /// A field of the wrong type or format.
    Decode,
    /// A field that breaks a validation rule.
    Invalid,
}

/// One problem in one document of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {}", fmt_path_message(.path, .message))]
pub struct ManifestError {
    /// File, document, kind and name.
    pub location: Location,
    /// The sort of problem.
    pub kind: ErrorKind,
    /// The field path inside the object (root for whole-document problems).
    pub path: FieldPath,
    /// The rule broken.
    pub message: String,
}

impl ManifestError {
    /// A problem with a whole document.
    pub fn document(location: &Location, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            location: location.clone(),
            kind,
            path: FieldPath::root(),
            message: message.into(),
        }
    }

    /// A validation error of an object at `location`.
    pub fn invalid(location: &Location, error: FieldError) -> Self {
        Self {
            location: location.clone(),
            kind: ErrorKind::Invalid,
            path: error.path,
            message: error.message,
        }
    }
}

/// Every problem found in a set of manifests (never empty when returned as an error).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_lines(f, &self.0)
    }
}

impl std::error::Error for ManifestErrors {}

/// Every rule an object breaks (never empty when returned as an error).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    /// One problem per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_lines(f, &self.0)
    }
}

impl std::error::Error for ValidationErrors {}

/// Writes `items` one per line.
fn write_lines<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, e) in items.iter().enumerate() {
        if i > 0 {
            f.write_str("\n")?;
        }
        write!(f, "{e}")?;
    }
    Ok(())
}
