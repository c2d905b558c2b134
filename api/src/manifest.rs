//! Manifest parsing: YAML (several `---` documents) or JSON (one value or a
//! stream), `kind: List` expanded into its items, then defaulting and
//! validation. One [`ManifestLoader`] gathers every problem of every file
//! before the caller writes anything.

use serde::Deserialize as _;
use serde_json::Value;

use crate::error::{ErrorKind, Location, ManifestError, ManifestErrors};
use crate::object::{Object, json_type, kind_of_value};
use crate::path::FieldPath;

/// How manifests are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// Unknown fields are errors (default). When false they are dropped and
    /// reported as warnings.
    pub strict: bool,
    /// The namespace for namespaced objects that name none (`kubectl -n`);
    /// an object naming another namespace is an error. `None`: `default`.
    pub namespace: Option<String>,
    /// Keep `status` (the system's writes). When false (manifests users
    /// write, or export with `get -o yaml`) it is dropped, as Kubernetes
    /// ignores a status sent with an object.
    pub keep_status: bool,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            strict: true,
            namespace: None,
            keep_status: true,
        }
    }
}

impl ParseOptions {
    /// Options that drop unknown fields with a warning instead of failing.
    pub fn lenient() -> Self {
        Self {
            strict: false,
            ..Self::default()
        }
    }

    /// Options for manifests users write: strict, `status` dropped.
    pub fn user(namespace: Option<String>) -> Self {
        Self {
            namespace,
            keep_status: false,
            ..Self::default()
        }
    }
}

/// An object read from a manifest and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestObject {
    /// File, document and item.
    pub location: Location,
    /// The object, defaulted and valid.
    pub object: Object,
}

/// The result of loading manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The objects, in file and document order.
    pub objects: Vec<ManifestObject>,
    /// Non-fatal problems: Kubernetes fields jotasu ignores (see
    /// [`crate::support`]), unknown fields dropped in lenient mode.
    pub warnings: Vec<ManifestError>,
}

impl Loaded {
    /// Just the objects.
    pub fn into_objects(self) -> Vec<Object> {
        self.objects.into_iter().map(|o| o.object).collect()
    }
}

/// Reads any number of manifest files, then reports every problem at once.
#[derive(Debug, Default)]
pub struct ManifestLoader {
    options: ParseOptions,
    loaded: Loaded,
    errors: Vec<ManifestError>,
}

impl ManifestLoader {
    /// A loader with these options.
    pub fn new(options: ParseOptions) -> Self {
        Self {
            options,
            ..Self::default()
        }
    }

    /// Parses, defaults and validates one file's text; `source` names it in messages.
    pub fn add(&mut self, source: &str, text: &str) {
        for (location, value) in self.documents(source, text) {
            let Some(value) = value else { continue };
            if let Some(object) = self.decode(&location, &value) {
                self.finish_object(location, object);
            }
        }
    }

    /// All objects, or every problem found in any file.
    pub fn finish(self) -> Result<Loaded, ManifestErrors> {
        if self.errors.is_empty() {
            Ok(self.loaded)
        } else {
            Err(ManifestErrors(self.errors))
        }
    }

    /// Splits the text into documents (expanding Lists); `None` values are
    /// documents that failed to parse (already reported).
    fn documents(&mut self, source: &str, text: &str) -> Vec<(Location, Option<Value>)> {
        let mut out = Vec::new();
        for (index, parsed) in split_documents(text).into_iter().enumerate() {
            let location = Location {
                source: source.to_owned(),
                document: index + 1,
                ..Location::default()
            };
            match parsed {
                Err(message) => {
                    self.errors.push(ManifestError::document(
                        &location,
                        ErrorKind::Syntax,
                        message,
                    ));
                }
                Ok(Value::Null) => {}
                Ok(value) if is_list(&value) => self.expand_list(location, value, &mut out),
                Ok(value) => out.push((describe(location, &value), Some(value))),
            }
        }
        out
    }

    fn expand_list(
        &mut self,
        location: Location,
        mut value: Value,
        out: &mut Vec<(Location, Option<Value>)>,
    ) {
        let list_location = Location {
            kind: Some("List".into()),
            ..location.clone()
        };
        let items = match value.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items,
            Some(Value::Null) | None => Vec::new(),
            Some(other) => {
                let msg = format!(
                    "items: invalid type: {}, expected a sequence",
                    json_type(&other)
                );
                self.errors.push(ManifestError::document(
                    &list_location,
                    ErrorKind::Decode,
                    msg,
                ));
                return;
            }
        };
        if let Some(fields) = value.as_object() {
            for key in fields
                .keys()
                .filter(|k| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "items"))
            {
                self.unknown_field(&list_location, &FieldPath::new(key), key);
            }
        }
        for (i, item) in items.into_iter().enumerate() {
            let item_location = Location {
                item: Some(i + 1),
                ..location.clone()
            };
            out.push((describe(item_location, &item), Some(item)));
        }
    }

    /// Decodes one document into an object, reporting unknown fields (all of
    /// them, not just the first) and the first type error.
    fn decode(&mut self, location: &Location, value: &Value) -> Option<Object> {
        let kind = match kind_of_value(value) {
            Ok(kind) => kind,
            Err(message) => {
                // kubectl names the object and file its mapping failed for.
                let message = if message.starts_with("no matches for kind") {
                    let ns = value.pointer("/metadata/namespace").and_then(Value::as_str);
                    format!(
                        "resource mapping not found for name: {:?} namespace: {:?} from {:?}: {message}",
                        location.name.as_deref().unwrap_or_default(),
                        ns.or(self.options.namespace.as_deref()).unwrap_or_default(),
                        location.source,
                    )
                } else {
                    message
                };
                self.errors.push(ManifestError::document(
                    location,
                    ErrorKind::UnsupportedKind,
                    message,
                ));
                return None;
            }
        };
        let mut value = value.clone();
        if let Err(e) = crate::convert::to_stored(&mut value) {
            let message = e.inner().to_string();
            let kind = if message.starts_with("unknown field `") {
                ErrorKind::UnknownField
            } else {
                ErrorKind::Decode
            };
            self.errors.push(ManifestError {
                location: location.clone(),
                kind,
                path: FieldPath::from_serde(e.path()),
                message,
            });
            return None;
        }
        if !self.options.keep_status
            && let Some(fields) = value.as_object_mut()
        {
            fields.remove("status");
        }
        let screened = crate::support::screen(kind, &mut value);
        let refused = !screened.refused.is_empty();
        for (found, kind, into_errors) in [
            (screened.refused, ErrorKind::Unsupported, true),
            (screened.warnings, ErrorKind::Ignored, false),
        ] {
            for e in found {
                let error = ManifestError {
                    location: location.clone(),
                    kind,
                    path: e.path,
                    message: e.message,
                };
                if into_errors {
                    self.errors.push(error);
                } else {
                    self.loaded.warnings.push(error);
                }
            }
        }
        let mut unknown = 0;
        loop {
            let err = match Object::decode_as(kind, &value) {
                Ok(object) => {
                    return (!refused && (!self.options.strict || unknown == 0)).then_some(object);
                }
                Err(err) => err,
            };
            let path = err.path().clone();
            let message = err.into_inner().to_string();
            if message.starts_with("unknown field `")
                && unknown < 1000
                && remove_at(&mut value, &path)
            {
                unknown += 1;
                let field = path
                    .iter()
                    .next_back()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                self.unknown_field(location, &FieldPath::from_serde(&path), &field);
                continue;
            }
            self.errors.push(ManifestError {
                location: location.clone(),
                kind: ErrorKind::Decode,
                path: FieldPath::from_serde(&path),
                message,
            });
            return None;
        }
    }

    fn unknown_field(&mut self, location: &Location, path: &FieldPath, field: &str) {
        let message = if self.options.strict {
            format!("unknown field `{field}`")
        } else {
            format!("unknown field `{field}` ignored")
        };
        let kind = ErrorKind::UnknownField;
        let error = ManifestError {
            location: location.clone(),
            kind,
            path: path.clone(),
            message,
        };
        if self.options.strict {
            self.errors.push(error)
        } else {
            self.loaded.warnings.push(error)
        }
    }

    fn finish_object(&mut self, location: Location, mut object: Object) {
        let wanted = self.options.namespace.as_deref();
        if let (Some(wanted), Some(given)) = (wanted, object.namespace())
            && object.kind().namespaced()
            && wanted != given
        {
            let msg = format!(
                "Invalid value: \"{given}\": the namespace of the object does not match the namespace \"{wanted}\" given"
            );
            let path = FieldPath::new("metadata").field("namespace");
            self.errors.push(ManifestError {
                location,
                kind: ErrorKind::Invalid,
                path,
                message: msg,
            });
            return;
        }
        if let (Some(wanted), true) = (wanted, object.kind().namespaced()) {
            object
                .metadata_mut()
                .namespace
                .get_or_insert_with(|| wanted.to_owned());
        }
        object.apply_defaults();
        let errors = crate::validate::validate(&object);
        if errors.is_empty() {
            self.loaded
                .objects
                .push(ManifestObject { location, object });
        } else {
            self.errors.extend(
                errors
                    .into_iter()
                    .map(|e| ManifestError::invalid(&location, e)),
            );
        }
    }
}

/// Loads one file: parse, default and validate every document.
pub fn load_manifest(
    source: &str,
    text: &str,
    options: ParseOptions,
) -> Result<Loaded, ManifestErrors> {
    let mut loader = ManifestLoader::new(options);
    loader.add(source, text);
    loader.finish()
}

/// True for `kind: List` and `kind: <Something>List` documents with items.
fn is_list(value: &Value) -> bool {
    match value.get("kind").and_then(Value::as_str) {
        Some("List") => true,
        Some(k) => k.ends_with("List") && value.get("items").is_some(),
        None => false,
    }
}

/// Fills in kind and name from a raw document, for messages.
fn describe(location: Location, value: &Value) -> Location {
    let kind = value.get("kind").and_then(Value::as_str).map(str::to_owned);
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Location {
        kind,
        name,
        ..location
    }
}

/// Removes the map entry `path` points at; false if there is none.
fn remove_at(value: &mut Value, path: &serde_path_to_error::Path) -> bool {
    use serde_path_to_error::Segment;
    let segments: Vec<&Segment> = path.iter().collect();
    let Some((Segment::Map { key: last }, parents)) = segments.split_last() else {
        return false;
    };
    let mut cur = value;
    for seg in parents {
        let next = match seg {
            Segment::Map { key } => cur.get_mut(key.as_str()),
            Segment::Seq { index } => cur.get_mut(*index),
            Segment::Enum { .. } | Segment::Unknown => None,
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    cur.as_object_mut()
        .and_then(|m| m.remove(last.as_str()))
        .is_some()
}

/// Splits text into JSON values, one per document. JSON (text starting with
/// `{` or `[`) may be one value or a stream; anything else is read as YAML.
/// A document that fails to parse ends the file (the parser cannot resync).
pub fn split_documents(text: &str) -> Vec<Result<Value, String>> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let mut out = Vec::new();
        for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            match value {
                Ok(Value::Array(items)) => out.push(Ok(array_as_list(items))),
                Ok(v) => out.push(Ok(v)),
                Err(e) => {
                    out.push(Err(format!("invalid JSON: {e}")));
                    break;
                }
            }
        }
        return out;
    }
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        match yaml_to_json(document) {
            Ok(v) => out.push(Ok(v)),
            Err(e) => {
                out.push(Err(format!("invalid YAML: {e}")));
                break;
            }
        }
    }
    out
}

/// A top-level JSON array is treated like a List of its elements.
fn array_as_list(items: Vec<Value>) -> Value {
    serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items })
}

fn yaml_to_json(document: serde_yaml_ng::Deserializer<'_>) -> Result<Value, String> {
    let mut yaml = serde_yaml_ng::Value::deserialize(document).map_err(|e| e.to_string())?;
    yaml.apply_merge().map_err(|e| e.to_string())?;
    serde_json::to_value(&yaml).map_err(|e| format!("cannot be represented as JSON: {e}"))
}
