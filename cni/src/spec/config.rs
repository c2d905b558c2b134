//! Network configuration: the single-plugin config a plugin reads on stdin
//! ([`NetConf`]) and the conflist a runtime loads ([`NetConfList`]).
//! Both keep the raw JSON object, since every plugin adds its own keys and
//! a runtime must pass them on untouched.
use serde_json::{Map, Value};

use super::{CniError, CniResult, Code, Version};

/// A plugin's network configuration (stdin of one invocation).
#[derive(Clone, Debug, PartialEq)]
pub struct NetConf {
    /// `cniVersion`.
    pub version: Version,
    /// `name`: the network's name.
    pub name: String,
    /// `type`: the plugin binary.
    pub plugin_type: String,
    /// The whole object, plugin-specific keys included.
    pub raw: Map<String, Value>,
}

fn decode(bytes: &[u8], what: &str) -> Result<Map<String, Value>, CniError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| {
        CniError::new(Code::Decode, format!("{what} is not valid JSON")).with_details(e)
    })?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(CniError::new(
            Code::Decode,
            format!("{what} is not a JSON object"),
        )),
    }
}

fn string_field(m: &Map<String, Value>, key: &str, what: &str) -> Result<String, CniError> {
    match m.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) | None => Err(CniError::new(
            Code::InvalidConfig,
            format!("{what}: \"{key}\" is required"),
        )),
        Some(other) => Err(CniError::new(
            Code::InvalidConfig,
            format!("{what}: \"{key}\" must be a string, not {other}"),
        )),
    }
}

impl NetConf {
    /// Parses and checks the common keys: valid JSON object (else code 6),
    /// `cniVersion` supported (else 1), `name` and `type` present (else 7).
    pub fn parse(bytes: &[u8]) -> Result<Self, CniError> {
        let raw = decode(bytes, "the network configuration on stdin")?;
        let version = Version::parse(&string_field(&raw, "cniVersion", "network configuration")?)?;
        let name = string_field(&raw, "name", "network configuration")?;
        let plugin_type = string_field(&raw, "type", "network configuration")?;
        Ok(Self {
            version,
            name,
            plugin_type,
            raw,
        })
    }

    /// `prevResult`, if given (chained ADD, CHECK, DEL).
    pub fn prev_result(&self) -> Result<Option<CniResult>, CniError> {
        self.raw
            .get("prevResult")
            .filter(|v| !v.is_null())
            .map(CniResult::from_value)
            .transpose()
    }

    /// `runtimeConfig.<key>`, if given.
    pub fn runtime_config(&self, key: &str) -> Option<&Value> {
        self.raw.get("runtimeConfig").and_then(|rc| rc.get(key))
    }

    /// Deserializes the whole object into a plugin's own config type.
    pub fn typed<T: serde::de::DeserializeOwned>(&self) -> Result<T, CniError> {
        serde_json::from_value(Value::Object(self.raw.clone())).map_err(|e| {
            CniError::new(
                Code::InvalidConfig,
                format!("network {:?}: invalid configuration: {e}", self.name),
            )
        })
    }
}

/// A network configuration list (`.conflist`): plugins run in order.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConfList {
    /// The version negotiated: the highest of `cniVersions` this crate
    /// supports, else `cniVersion`.
    pub version: Version,
    /// `name`.
    pub name: String,
    /// `disableCheck`.
    pub disable_check: bool,
    /// `disableGC` (1.1).
    pub disable_gc: bool,
    /// `plugins`, each a raw object with at least `type`.
    pub plugins: Vec<Map<String, Value>>,
}

impl NetConfList {
    /// Parses a conflist, checking version, name and every plugin's `type`.
    pub fn parse(bytes: &[u8]) -> Result<Self, CniError> {
        let raw = decode(bytes, "the network configuration list")?;
        let name = string_field(&raw, "name", "network configuration list")?;
        let offered: Vec<&str> = raw
            .get("cniVersions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let version = match Version::negotiate(offered.iter().copied()) {
            Some(v) => v,
            None if !offered.is_empty() => {
                return Err(CniError::new(
                    Code::IncompatibleVersion,
                    format!(
                        "network {name:?}: none of cniVersions {offered:?} is supported; jotasu supports {}",
                        super::SUPPORTED_VERSIONS.join(", ")
                    ),
                ));
            }
            None => Version::parse(&string_field(
                &raw,
                "cniVersion",
                "network configuration list",
            )?)?,
        };
        let flag = |k: &str| raw.get(k).and_then(Value::as_bool).unwrap_or(false);
        let plugins: Vec<Map<String, Value>> = match raw.get("plugins") {
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .enumerate()
                .map(|(i, p)| match p {
                    Value::Object(m) => {
                        string_field(m, "type", &format!("network {name:?}, plugin {i}"))?;
                        Ok(m.clone())
                    }
                    _ => Err(CniError::new(
                        Code::InvalidConfig,
                        format!("network {name:?}: plugin {i} is not an object"),
                    )),
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(CniError::new(
                    Code::InvalidConfig,
                    format!("network {name:?}: \"plugins\" must be a non-empty list"),
                ));
            }
        };
        Ok(Self {
            version,
            name,
            disable_check: flag("disableCheck"),
            disable_gc: flag("disableGC"),
            plugins,
        })
    }

    /// The stdin of plugin `i`: its object with the list's `name` and
    /// negotiated `cniVersion`, `runtimeConfig` holding those of
    /// `capability_args` the plugin declares in `capabilities`, and
    /// `prevResult` if given. `extra` keys (such as GC's
    /// `cni.dev/valid-attachments`) are added last.
    pub fn plugin_config(
        &self,
        i: usize,
        capability_args: &Map<String, Value>,
        prev_result: Option<&CniResult>,
        extra: &Map<String, Value>,
    ) -> Value {
        let mut conf = self.plugins.get(i).cloned().unwrap_or_default();
        conf.insert("name".into(), Value::from(self.name.clone()));
        conf.insert("cniVersion".into(), Value::from(self.version.as_str()));
        let wanted: Map<String, Value> = conf
            .get("capabilities")
            .and_then(Value::as_object)
            .map(|caps| {
                caps.iter()
                    .filter(|(_, on)| on.as_bool() == Some(true))
                    .filter_map(|(k, _)| capability_args.get(k).map(|v| (k.clone(), v.clone())))
                    .collect()
            })
            .unwrap_or_default();
        if !wanted.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(wanted));
        }
        if let Some(prev) = prev_result {
            conf.insert("prevResult".into(), prev.to_value(self.version));
        }
        conf.extend(extra.clone());
        Value::Object(conf)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_plugin_config_needs_version_name_and_type() {
        let ok = br#"{"cniVersion":"1.0.0","name":"n","type":"jotasu-cni","mtu":1400}"#;
        let c = NetConf::parse(ok).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.raw["mtu"], 1400);
        let code = |b: &[u8]| NetConf::parse(b).err().map(|e| e.code);
        assert_eq!(code(b"{not json"), Some(Code::Decode));
        assert_eq!(code(b"[1]"), Some(Code::Decode));
        assert_eq!(
            code(br#"{"cniVersion":"0.3.1","name":"n","type":"t"}"#),
            Some(Code::IncompatibleVersion)
        );
        assert_eq!(
            code(br#"{"cniVersion":"1.0.0","type":"t"}"#),
            Some(Code::InvalidConfig)
        );
        assert_eq!(
            code(br#"{"cniVersion":"1.0.0","name":"n","type":5}"#),
            Some(Code::InvalidConfig)
        );
    }

    #[test]
    fn a_list_negotiates_and_builds_each_plugins_stdin() {
        let list = json!({
            "cniVersion": "1.0.0",
            "cniVersions": ["0.4.0", "1.1.0", "2.0.0"],
            "name": "pods",
            "plugins": [
                {"type": "jotasu-cni", "capabilities": {"dns": true}},
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        });
        let l = NetConfList::parse(list.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.version, Version::V1_1_0);
        let caps =
            json!({"portMappings": [{"hostPort": 8080}], "dns": {"servers": ["10.96.0.10"]}});
        let caps = caps.as_object().cloned().unwrap_or_default();
        let p0 = l.plugin_config(0, &caps, None, &Map::new());
        assert_eq!(p0["name"], "pods");
        assert_eq!(p0["cniVersion"], "1.1.0");
        assert!(p0["runtimeConfig"].get("portMappings").is_none());
        assert_eq!(p0["runtimeConfig"]["dns"]["servers"][0], "10.96.0.10");
        let prev = CniResult::default();
        let p1 = l.plugin_config(1, &caps, Some(&prev), &Map::new());
        assert_eq!(p1["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        assert_eq!(p1["prevResult"]["cniVersion"], "1.1.0");
    }

    #[test]
    fn a_bad_list_is_refused_with_the_right_code() {
        let code = |v: Value| {
            NetConfList::parse(v.to_string().as_bytes())
                .err()
                .map(|e| e.code)
        };
        assert_eq!(
            code(json!({"cniVersion":"1.0.0","name":"n","plugins":[]})),
            Some(Code::InvalidConfig)
        );
        assert_eq!(
            code(json!({"cniVersion":"1.0.0","name":"n","plugins":[{"x":1}]})),
            Some(Code::InvalidConfig)
        );
        assert_eq!(
            code(json!({"cniVersions":["0.1.0"],"name":"n","plugins":[{"type":"t"}]})),
            Some(Code::IncompatibleVersion)
        );
    }
}
