//! Stored objects on the read path without a typed decode: list and watch
//! hand the stored JSON to clients with `metadata.resourceVersion` spliced
//! in, and read labels only when a selector needs them. (Decoding and
//! re-encoding every object for every watcher would cost more than
//! everything else a watch does.)

use jotasu_api::{LabelSelector, Labels};
use serde::Deserialize;

use super::error::{ApiResult, ApiServerError};
use crate::store::Revision;

/// The opening every stored object has: `{"apiVersion":…,"kind":…,"metadata":{`
/// (field order of the typed model), after which resourceVersion is spliced.
const METADATA: &[u8] = b"\"metadata\":{";

fn corrupt(key: &[u8], reason: impl Into<String>) -> ApiServerError {
    ApiServerError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.into(),
    }
}

/// The stored JSON with `"resourceVersion":"<revision>"` as the first field
/// of `metadata` (stored values never carry one).
pub fn stamp(key: &[u8], value: &[u8], revision: Revision) -> ApiResult<String> {
    let top_level = |at: &usize| !value[..*at].iter().skip(1).any(|b| *b == b'{');
    let Some(at) = value
        .windows(METADATA.len())
        .position(|w| w == METADATA)
        .filter(top_level)
    else {
        return stamp_slow(key, value, revision);
    };
    let at = at + METADATA.len();
    let field = format!("\"resourceVersion\":\"{revision}\"");
    let mut out = Vec::with_capacity(value.len() + field.len() + 1);
    out.extend_from_slice(&value[..at]);
    out.extend_from_slice(field.as_bytes());
    if value.get(at) != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(&value[at..]);
    String::from_utf8(out).map_err(|e| corrupt(key, e.to_string()))
}

/// [`stamp`] for JSON whose top-level `metadata` is not where the typed
/// model puts it.
fn stamp_slow(key: &[u8], value: &[u8], revision: Revision) -> ApiResult<String> {
    let mut v: serde_json::Value =
        serde_json::from_slice(value).map_err(|e| corrupt(key, e.to_string()))?;
    let meta = v
        .get_mut("metadata")
        .and_then(serde_json::Value::as_object_mut)
        .ok_or_else(|| corrupt(key, "no metadata object"))?;
    meta.insert("resourceVersion".into(), revision.to_string().into());
    Ok(v.to_string())
}

#[derive(Deserialize)]
struct LabelsOnly {
    #[serde(default)]
    metadata: MetaLabels,
}

#[derive(Default, Deserialize)]
struct MetaLabels {
    #[serde(default)]
    labels: Labels,
}

/// Whether the stored object's labels match (no parse for an empty selector).
pub fn matches(selector: &LabelSelector, key: &[u8], value: &[u8]) -> ApiResult<bool> {
    if selector.is_empty() {
        return Ok(true);
    }
    let o: LabelsOnly = serde_json::from_slice(value).map_err(|e| corrupt(key, e.to_string()))?;
    Ok(selector.matches(&o.metadata.labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jotasu_api::Object;

    #[test]
    fn stamps_what_a_decoder_reads_back() {
        let obj: Object = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "ns", "labels": {"a": "b"}},
            "data": {"metadata": "{\"metadata\":{"}
        }))
        .unwrap();
        let stored = serde_json::to_vec(&obj).unwrap();
        let json = stamp(b"k", &stored, 42).unwrap();
        let back: Object = serde_json::from_str(&json).unwrap();
        assert_eq!(back.metadata().resource_version.as_deref(), Some("42"));
        let mut expected = obj.clone();
        expected.metadata_mut().resource_version = Some("42".into());
        assert_eq!(back, expected);
        // Empty metadata.
        let bare = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#;
        let json = stamp(b"k", bare, 7).unwrap();
        assert_eq!(
            json,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"resourceVersion":"7"}}"#
        );
        assert!(stamp(b"k", b"{}", 1).is_err());
        // metadata after a nested object: found by the slow path, not inside `data`.
        let odd = br#"{"data":{"metadata":{"x":1}},"metadata":{"name":"n"}}"#;
        let v: serde_json::Value = serde_json::from_str(&stamp(b"k", odd, 3).unwrap()).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "3");
        assert_eq!(v["data"]["metadata"], serde_json::json!({"x": 1}));

        let sel = LabelSelector::parse("a=b").unwrap();
        assert!(matches(&sel, b"k", &stored).unwrap());
        assert!(!matches(&LabelSelector::parse("a=c").unwrap(), b"k", &stored).unwrap());
        assert!(matches(&LabelSelector::default(), b"k", b"garbage").unwrap());
    }
}
