//! One object being rendered: its JSON value and what kustomize tracks
//! beside it (the names and namespaces it had, whether a generator asked
//! for a content-hash suffix).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// How a generator's object combines with one of the same name from a base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    /// A new object (an existing one is an error).
    Create,
    /// Data, labels and annotations merged into the existing one.
    Merge,
    /// The existing one replaced.
    Replace,
}

/// An object and its rendering history.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// The object.
    pub value: Value,
    /// Earlier (namespace, name) pairs, oldest first.
    pub history: Vec<(String, String)>,
    /// A generator's object whose name gets the content hash.
    pub needs_hash: bool,
}

/// Group and version of an apiVersion (`apps/v1` → `apps`, `v1`; `v1` → ``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

impl Resource {
    /// An object read from a file or made by a generator.
    pub fn new(value: Value) -> Self {
        Self {
            value,
            history: Vec::new(),
            needs_hash: false,
        }
    }

    fn text(&self, pointer: &str) -> &str {
        self.value
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `kind`.
    pub fn kind(&self) -> &str {
        self.text("/kind")
    }

    /// The API group (empty for the core group).
    pub fn group(&self) -> &str {
        split_api_version(self.text("/apiVersion")).0
    }

    /// The API version without the group.
    pub fn version(&self) -> &str {
        split_api_version(self.text("/apiVersion")).1
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.text("/metadata/name")
    }

    /// `metadata.namespace` (empty when unset).
    pub fn namespace(&self) -> &str {
        self.text("/metadata/namespace")
    }

    /// The namespace it was first given.
    pub fn original_namespace(&self) -> &str {
        self.history.first().map_or(self.namespace(), |(ns, _)| ns)
    }

    /// Whether it is or was called `name`.
    pub fn answers_to(&self, name: &str) -> bool {
        self.name() == name || self.history.iter().any(|(_, n)| n == name)
    }

    /// `metadata`, created when missing (None if the object is no map).
    pub fn metadata_mut(&mut self) -> Option<&mut Map<String, Value>> {
        let object = self.value.as_object_mut()?;
        let metadata = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !metadata.is_object() {
            *metadata = Value::Object(Map::new());
        }
        metadata.as_object_mut()
    }

    /// Renames it, remembering the old name.
    pub fn set_name(&mut self, name: String) {
        let old = (self.namespace().to_owned(), self.name().to_owned());
        if old.1 == name {
            return;
        }
        if let Some(metadata) = self.metadata_mut() {
            metadata.insert("name".into(), Value::String(name));
            self.history.push(old);
        }
    }

    /// Moves it to `namespace`, remembering the old one.
    pub fn set_namespace(&mut self, namespace: String) {
        let old = (self.namespace().to_owned(), self.name().to_owned());
        if old.0 == namespace {
            return;
        }
        if let Some(metadata) = self.metadata_mut() {
            metadata.insert("namespace".into(), Value::String(namespace));
            self.history.push(old);
        }
    }

    /// `metadata.labels`.
    pub fn labels(&self) -> BTreeMap<String, String> {
        string_map(self.value.pointer("/metadata/labels"))
    }

    /// `metadata.annotations`.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        string_map(self.value.pointer("/metadata/annotations"))
    }

    /// Group, kind, namespace and name: what must be unique.
    pub fn id(&self) -> String {
        let namespace = match self.namespace() {
            "" => "default",
            ns => ns,
        };
        format!(
            "{}.{}/{}/{}",
            self.kind(),
            self.group(),
            namespace,
            self.name()
        )
    }
}

/// A map of strings (other values skipped).
pub fn string_map(value: Option<&Value>) -> BTreeMap<String, String> {
    value
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}
