//! `FieldPath`: where in an object a problem is, written the way users read
//! it: `spec.template.spec.containers[0].resources.limits.cpu`, with map keys
//! that are not plain words in brackets (`data[tls.crt]`).

use std::fmt;

/// A path to a field, built up while walking an object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(String);

impl FieldPath {
    /// The empty path (the object itself).
    pub fn root() -> Self {
        Self(String::new())
    }

    /// A path of one field.
    pub fn new(field: &str) -> Self {
        Self::root().field(field)
    }

    /// This path extended by a struct field.
    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_owned())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    /// This path extended by a list index.
    pub fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    /// This path extended by a map key.
    pub fn key(&self, key: &str) -> Self {
        let plain = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if plain {
            self.field(key)
        } else {
            Self(format!("{}[{key}]", self.0))
        }
    }

    /// The path as text (empty for the root).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the root path.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// Converts a path recorded by `serde_path_to_error`.
    pub(crate) fn from_serde(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment;
        path.iter().fold(Self::root(), |p, seg| match seg {
            Segment::Seq { index } => p.index(*index),
            Segment::Map { key } => p.key(key),
            Segment::Enum { variant } => p.field(variant),
            Segment::Unknown => p.field("?"),
        })
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders() {
        let p = FieldPath::new("spec")
            .field("containers")
            .index(0)
            .field("resources")
            .key("cpu");
        assert_eq!(p.to_string(), "spec.containers[0].resources.cpu");
        assert_eq!(
            FieldPath::new("data").key("tls.crt").as_str(),
            "data[tls.crt]"
        );
        assert_eq!(FieldPath::root().index(2).as_str(), "[2]");
        assert!(FieldPath::root().is_root());
    }
}
