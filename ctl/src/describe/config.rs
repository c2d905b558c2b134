//! ConfigMaps (keys and values) and Secrets (keys and sizes, never values).

use jotasu_api::{ConfigMap, Secret};

use super::writer::Writer;
use crate::table::secret_type;

/// A ConfigMap: every key and its value; binary values by size.
pub fn configmap(c: &ConfigMap) -> String {
    let mut w = Writer::default();
    w.name(&c.metadata);
    w.labels_annotations(&c.metadata);
    let mut text = w.finish();
    text.push_str("\nData\n====\n");
    for (k, v) in &c.data {
        text.push_str(&format!("{k}:\n----\n{v}\n"));
        if !v.ends_with('\n') {
            text.push('\n');
        }
    }
    text.push_str("\nBinaryData\n====\n");
    for (k, v) in &c.binary_data {
        text.push_str(&format!("{k}: {} bytes\n", v.0.len()));
    }
    text
}

/// A Secret: its type and every key with the size of its value.
pub fn secret(s: &Secret) -> String {
    let mut w = Writer::default();
    w.name(&s.metadata);
    w.labels_annotations(&s.metadata);
    w.blank();
    w.field(0, "Type", secret_type(s));
    w.blank();
    w.line(0, "Data");
    w.line(0, "====");
    let mut sizes: Vec<(&str, usize)> = s
        .data
        .iter()
        .map(|(k, v)| (k.as_str(), v.0.len()))
        .collect();
    sizes.extend(
        s.string_data
            .iter()
            .filter(|(k, _)| !s.data.contains_key(*k))
            .map(|(k, v)| (k.as_str(), v.len())),
    );
    sizes.sort();
    for (k, size) in sizes {
        w.field(0, k, format!("{size} bytes"));
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_values_never_shown() {
        let s: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "default"},
            "data": {"username": "YWRtaW4=", "password": "czNjcjN0IQ=="}
        }))
        .unwrap();
        let text = secret(&s);
        assert!(text.contains("Type:  Opaque\n"), "{text}");
        assert!(
            text.contains("Data\n====\npassword:  7 bytes\nusername:  5 bytes\n"),
            "{text}"
        );
        assert!(
            !text.contains("admin") && !text.contains("s3cr3t"),
            "{text}"
        );
    }

    #[test]
    fn configmap_data() {
        let c: ConfigMap = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "game", "namespace": "default"},
            "data": {"lives": "3", "ui.properties": "color=blue\n"},
            "binaryData": {"logo": "AAEC"}
        }))
        .unwrap();
        assert_eq!(
            configmap(&c),
            "Name:         game\nNamespace:    default\nLabels:       <none>\nAnnotations:  <none>\n\
             \nData\n====\nlives:\n----\n3\n\nui.properties:\n----\ncolor=blue\n\n\
             \nBinaryData\n====\nlogo: 3 bytes\n"
        );
    }
}
