//! ConfigMaps (`NAME DATA AGE`) and Secrets (`NAME TYPE DATA AGE`).

use jotasu_api::kinds::config::SECRET_TYPE_OPAQUE;
use jotasu_api::{ConfigMap, Secret};

pub(super) const CONFIGMAP_COLUMNS: &[&str] = &["DATA", "AGE"];
pub(super) const SECRET_COLUMNS: &[&str] = &["TYPE", "DATA", "AGE"];

pub(super) fn configmap_row(c: &ConfigMap, age: String) -> Vec<String> {
    vec![(c.data.len() + c.binary_data.len()).to_string(), age]
}

/// The Secret's type, `Opaque` when it names none.
pub fn secret_type(s: &Secret) -> &str {
    s.type_
        .as_deref()
        .filter(|t| !t.is_empty())
        .unwrap_or(SECRET_TYPE_OPAQUE)
}

pub(super) fn secret_row(s: &Secret, age: String) -> Vec<String> {
    let keys = s.data.len()
        + s.string_data
            .keys()
            .filter(|k| !s.data.contains_key(*k))
            .count();
    vec![secret_type(s).to_owned(), keys.to_string(), age]
}

#[cfg(test)]
mod tests {
    use super::super::tests::{CREATED, NOW, object};
    use super::super::{TableOptions, render};
    use jotasu_api::Kind;
    use serde_json::json;

    #[test]
    fn secret_columns() {
        let s = object(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "creationTimestamp": CREATED},
            "data": {"user": "YWRtaW4=", "pass": "c2VjcmV0"}
        }));
        let opts = TableOptions {
            now: NOW,
            ..TableOptions::default()
        };
        assert_eq!(
            render(Kind::Secret, &[s], &opts),
            "NAME   TYPE     DATA   AGE\ndb     Opaque   2      5s\n"
        );
    }

    #[test]
    fn configmap_counts_binary_data() {
        let c = object(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "creationTimestamp": CREATED},
            "data": {"a": "1"}, "binaryData": {"b": "AAE="}
        }));
        let opts = TableOptions {
            no_headers: true,
            now: NOW,
            ..TableOptions::default()
        };
        assert_eq!(render(Kind::ConfigMap, &[c], &opts), "c     2     5s\n");
    }
}
