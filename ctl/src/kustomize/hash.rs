//! The content-hash name suffix of generated ConfigMaps and Secrets,
//! computed as kustomize's hasher does: the SHA-256 of Go's JSON encoding
//! (sorted keys, HTML characters escaped) of kind, an empty name, data (and
//! type, binaryData, stringData), its first ten hex digits with 0, 1, 3, a and e
//! swapped for letters (so a suffix is never all digits nor says a word).

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use super::resource::Resource;

/// The suffix of one object.
pub fn content_hash(object: &Value) -> String {
    let field = |key: &str| -> Value {
        match object.get(key) {
            None | Some(Value::Null) => Value::String(String::new()),
            Some(v) => v.clone(),
        }
    };
    // kustomize looks the name up as one field called "metadata/name",
    // finds none and hashes "": the suffix depends on the content alone
    // (so it is the same under any prefix, suffix or namespace).
    let name = Value::String(String::new());
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut m = Map::new();
    m.insert("kind".into(), Value::String(kind.to_owned()));
    m.insert("name".into(), name);
    m.insert("data".into(), field("data"));
    let optional = if kind == "Secret" {
        m.insert("type".into(), field("type"));
        "stringData"
    } else {
        "binaryData"
    };
    if let Some(extra @ Value::Object(_)) = object.get(optional) {
        m.insert(optional.into(), extra.clone());
    }
    let mut encoded = String::new();
    go_json(&Value::Object(m), &mut encoded);
    let hex = format!("{:x}", Sha256::digest(encoded.as_bytes()));
    hex.chars()
        .take(10)
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

/// Renames every object a generator marked with its content hash.
pub fn apply(resources: &mut [Resource]) {
    for r in resources.iter_mut().filter(|r| r.needs_hash) {
        let name = format!("{}-{}", r.name(), content_hash(&r.value));
        r.set_name(name);
        r.needs_hash = false;
    }
}

/// Go's `json.Marshal` of a decoded value: keys sorted bytewise, no spaces.
fn go_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => go_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_string(key, out);
                out.push(':');
                go_json(&map[key.as_str()], out);
            }
            out.push('}');
        }
    }
}

/// A string as Go's encoder writes it (HTML-safe escaping).
fn go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_encoding() {
        let mut s = String::new();
        go_json(&json!({"b": "<x>&\n", "a": {"z": "1", "y": ""}}), &mut s);
        assert_eq!(s, r#"{"a":{"y":"","z":"1"},"b":"\u003cx\u003e\u0026\n"}"#);
    }

    #[test]
    fn hashes_match_kubectl() {
        // Names kubectl kustomize (kustomize v5.7.1) gave these objects.
        let cm =
            |data: Value| json!({"kind": "ConfigMap", "metadata": {"name": "a"}, "data": data});
        assert_eq!(content_hash(&cm(json!({"x": "1"}))), "hmg6f82fh6");
        assert_eq!(content_hash(&cm(json!({"x": "<1>"}))), "c56db82h85");
        let mut renamed = cm(json!({"x": "1"}));
        renamed["metadata"]["name"] = json!("prod-a");
        assert_eq!(content_hash(&renamed), "hmg6f82fh6");
    }
}
