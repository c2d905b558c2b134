//! ConfigMap and Secret (`v1`): configuration handed to pods as environment
//! variables or files.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bytes::Bytes;
use crate::meta::ObjectMeta;
use crate::resource::{ApiVersionTag, KindTag, resource};

/// The Secret type given when none is.
pub const SECRET_TYPE_OPAQUE: &str = "Opaque";

/// Non-secret configuration: text values and binary values by key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMap {
    /// Always `v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<ConfigMap>,
    /// Always `ConfigMap`.
    #[serde(default)]
    pub kind: KindTag<ConfigMap>,
    /// Name, namespace, labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// UTF-8 values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Binary values (base64 in YAML/JSON).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub binary_data: BTreeMap<String, Bytes>,
    /// If true, the data cannot be changed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}
resource!(ConfigMap, "v1", "ConfigMap", namespaced = true);

/// Secret values by key. `stringData` is a write-only convenience: defaulting
/// merges it into `data` (its keys win) and clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secret {
    /// Always `v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<Secret>,
    /// Always `Secret`.
    #[serde(default)]
    pub kind: KindTag<Secret>,
    /// Name, namespace, labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `Opaque` (default), `kubernetes.io/tls`, …
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Values, base64 in YAML/JSON.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, Bytes>,
    /// Plain-text values, merged into `data` by defaulting.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub string_data: BTreeMap<String, String>,
    /// If true, the data cannot be changed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}
resource!(Secret, "v1", "Secret", namespaced = true);
