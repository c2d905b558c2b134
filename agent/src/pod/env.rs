//! A container's environment as the kubelet resolves it: every key of the
//! `envFrom` ConfigMaps and Secrets (with their prefix; keys that are not
//! valid names skipped), then `env` over them — literal values with
//! `$(VAR)` expansion over the variables defined before them, and values
//! taken from ConfigMap and Secret keys.

use jotasu_api::kinds::pod::{EnvFromSource, KeySelector};
use jotasu_api::validate::names::env_var_name;
use jotasu_api::{ConfigMap, Container, Pod, Secret};
use tracing::warn;

use crate::pod::downward::{DownwardError, NodeFacts, field_value, resource_value};
use crate::pod::expand::expand;
use crate::pod::pod_namespace;

/// Where the agent finds the ConfigMaps and Secrets its pods reference (its
/// watch cache; a map in tests).
pub trait ConfigSource {
    /// The ConfigMap `name` in namespace `ns`, if known.
    fn config_map(&self, ns: &str, name: &str) -> Option<&ConfigMap>;
    /// The Secret `name` in namespace `ns`, if known.
    fn secret(&self, ns: &str, name: &str) -> Option<&Secret>;
    /// The volume of the pod's claim `name`, once resolved.
    fn claim_volume(&self, _name: &str) -> Option<&crate::pod::claims::ClaimVolume> {
        None
    }
}

/// Why a pod's configuration cannot be assembled. The messages are the
/// kubelet's: they become the container's `CreateContainerConfigError`
/// waiting message (env) or the pod's volume set-up message (volumes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A referenced ConfigMap does not exist.
    #[error("configmap {name:?} not found")]
    ConfigMapNotFound {
        /// Its name.
        name: String,
    },
    /// A referenced Secret does not exist.
    #[error("secret {name:?} not found")]
    SecretNotFound {
        /// Its name.
        name: String,
    },
    /// An env var references a key the ConfigMap lacks.
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        /// The key.
        key: String,
        /// The ConfigMap's namespace.
        namespace: String,
        /// The ConfigMap's name.
        name: String,
    },
    /// An env var references a key the Secret lacks.
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        /// The key.
        key: String,
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// A ConfigMap volume's items name a key the ConfigMap lacks.
    #[error("configmap references non-existent config key: {key}")]
    VolumeConfigMapKey {
        /// The key.
        key: String,
    },
    /// A Secret volume's items name a key the Secret lacks.
    #[error("secret references non-existent secret key: {key}")]
    VolumeSecretKey {
        /// The key.
        key: String,
    },
    /// A Secret value taken into an env var is not UTF-8.
    #[error("value of key {key} in Secret {namespace}/{name} is not valid UTF-8 text")]
    SecretNotText {
        /// The key.
        key: String,
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// A downward API reference the agent cannot resolve.
    #[error(transparent)]
    Downward(#[from] DownwardError),
    /// A hostPath volume's path is not what its `type` asks.
    #[error("hostPath type check failed: {path} {why}")]
    HostPathType {
        /// The path on the node.
        path: String,
        /// `is not a directory`, `does not exist`, ….
        why: String,
    },
    /// A volume names none of the sources the agent supports.
    #[error(
        "volume has no source this node supports (configMap, secret, emptyDir, downwardAPI, projected, hostPath or persistentVolumeClaim)"
    )]
    NoVolumeSource,
    /// A claim's volume is not known yet (the claim is not bound).
    #[error("waiting for persistentvolumeclaim {name:?} to be bound")]
    ClaimNotReady {
        /// The claim.
        name: String,
    },
    /// A volume would write outside its directory or has a bad file path.
    #[error("invalid path {path:?} in volume {volume:?}: {why}")]
    BadPath {
        /// The volume.
        volume: String,
        /// The path as given.
        path: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// The container's environment variables in order of first definition, each
/// with its final value: literal values expanded over the variables before
/// them, `valueFrom` values taken as they are. An optional reference to a
/// missing object or key leaves the variable out. The image's env is not
/// part of this (the runtime spec merges it underneath).
pub fn resolve_env(
    pod: &Pod,
    container: &Container,
    lookup: &impl ConfigSource,
) -> Result<Vec<(String, String)>, ConfigError> {
    resolve_env_with_services(pod, container, lookup, &[], &NodeFacts::default())
}

/// [`resolve_env`] with the Service variables of
/// [`crate::pod::service_env::service_env`] underneath, as the kubelet
/// does: `$(VAR)` may name them, the container's own variables win, and
/// the Service variables the container does not define follow its own.
pub fn resolve_env_with_services(
    pod: &Pod,
    container: &Container,
    lookup: &impl ConfigSource,
    service_env: &[(String, String)],
    node: &NodeFacts,
) -> Result<Vec<(String, String)>, ConfigError> {
    let ns = pod_namespace(pod);
    let mut env: Vec<(String, String)> = Vec::with_capacity(container.env.len());
    let mut invalid = Vec::new();
    for source in &container.env_from {
        for (name, value) in env_from(ns, source, lookup, &mut invalid)? {
            match env.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => env.push((name, value)),
            }
        }
    }
    if !invalid.is_empty() {
        invalid.sort();
        // The kubelet's event (InvalidEnvironmentVariableNames), as a log line.
        warn!(
            pod = %crate::pod::pod_display(pod),
            container = %container.name,
            "keys [{}] from the EnvFrom configMap or secret were skipped since they are considered invalid environment variable names",
            invalid.join(", ")
        );
    }
    for var in &container.env {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) if !v.is_empty() => expand(v, |name| {
                env.iter()
                    .rev()
                    .chain(service_env.iter().rev())
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.as_str())
            }),
            (_, Some(from)) => {
                let found = if let Some(sel) = &from.config_map_key_ref {
                    config_map_value(ns, sel, lookup)?
                } else if let Some(sel) = &from.secret_key_ref {
                    secret_value(ns, sel, lookup)?
                } else if let Some(sel) = &from.field_ref {
                    Some(field_value(pod, sel, node)?)
                } else if let Some(sel) = &from.resource_field_ref {
                    Some(resource_value(pod, container, sel, node)?)
                } else {
                    Some(String::new())
                };
                match found {
                    Some(v) => v,
                    None => continue,
                }
            }
            _ => String::new(),
        };
        match env.iter_mut().find(|(n, _)| *n == var.name) {
            Some(slot) => slot.1 = value,
            None => env.push((var.name.clone(), value)),
        }
    }
    for (name, value) in service_env {
        if !env.iter().any(|(n, _)| n == name) {
            env.push((name.clone(), value.clone()));
        }
    }
    Ok(env)
}

/// The variables one `envFrom` source gives, in key order: `prefix` + key
/// for each key that makes a valid name (the others are added to
/// `invalid`). A missing optional object gives none.
fn env_from(
    ns: &str,
    source: &EnvFromSource,
    lookup: &impl ConfigSource,
    invalid: &mut Vec<String>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let prefix = source.prefix.as_deref().unwrap_or("");
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(r) = &source.config_map_ref {
        match lookup.config_map(ns, &r.name) {
            Some(cm) => pairs.extend(cm.data.iter().map(|(k, v)| (k.clone(), v.clone()))),
            None if r.optional == Some(true) => {}
            None => {
                return Err(ConfigError::ConfigMapNotFound {
                    name: r.name.clone(),
                });
            }
        }
    } else if let Some(r) = &source.secret_ref {
        match lookup.secret(ns, &r.name) {
            Some(secret) => {
                let keys: std::collections::BTreeSet<&String> = secret
                    .data
                    .keys()
                    .chain(secret.string_data.keys())
                    .collect();
                for key in keys {
                    let bytes = secret_bytes(secret, key).unwrap_or_default();
                    let value = String::from_utf8(bytes.to_vec()).map_err(|_| {
                        ConfigError::SecretNotText {
                            key: key.clone(),
                            namespace: ns.to_owned(),
                            name: r.name.clone(),
                        }
                    })?;
                    pairs.push((key.clone(), value));
                }
            }
            None if r.optional == Some(true) => {}
            None => {
                return Err(ConfigError::SecretNotFound {
                    name: r.name.clone(),
                });
            }
        }
    }
    Ok(pairs
        .into_iter()
        .filter_map(|(k, v)| {
            let name = format!("{prefix}{k}");
            if env_var_name(&name).is_ok() {
                Some((name, v))
            } else {
                invalid.push(name);
                None
            }
        })
        .collect())
}

fn optional(sel: &KeySelector) -> bool {
    sel.optional == Some(true)
}

/// The value of a ConfigMap key (`data` only, as the kubelet reads it);
/// `None` when optional and missing.
fn config_map_value(
    ns: &str,
    sel: &KeySelector,
    lookup: &impl ConfigSource,
) -> Result<Option<String>, ConfigError> {
    let Some(cm) = lookup.config_map(ns, &sel.name) else {
        return if optional(sel) {
            Ok(None)
        } else {
            Err(ConfigError::ConfigMapNotFound {
                name: sel.name.clone(),
            })
        };
    };
    match cm.data.get(&sel.key) {
        Some(v) => Ok(Some(v.clone())),
        None if optional(sel) => Ok(None),
        None => Err(ConfigError::ConfigMapKeyNotFound {
            key: sel.key.clone(),
            namespace: ns.to_owned(),
            name: sel.name.clone(),
        }),
    }
}

/// The value of a Secret key as text; `None` when optional and missing.
fn secret_value(
    ns: &str,
    sel: &KeySelector,
    lookup: &impl ConfigSource,
) -> Result<Option<String>, ConfigError> {
    let Some(secret) = lookup.secret(ns, &sel.name) else {
        return if optional(sel) {
            Ok(None)
        } else {
            Err(ConfigError::SecretNotFound {
                name: sel.name.clone(),
            })
        };
    };
    match secret_bytes(secret, &sel.key) {
        Some(bytes) => {
            String::from_utf8(bytes.to_vec())
                .map(Some)
                .map_err(|_| ConfigError::SecretNotText {
                    key: sel.key.clone(),
                    namespace: ns.to_owned(),
                    name: sel.name.clone(),
                })
        }
        None if optional(sel) => Ok(None),
        None => Err(ConfigError::SecretKeyNotFound {
            key: sel.key.clone(),
            namespace: ns.to_owned(),
            name: sel.name.clone(),
        }),
    }
}

/// A Secret's value for `key`: `stringData` wins over `data`, as defaulting
/// merges them (stored Secrets have `stringData` folded in already).
pub fn secret_bytes<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
    secret
        .string_data
        .get(key)
        .map(String::as_bytes)
        .or_else(|| secret.data.get(key).map(|b| b.0.as_slice()))
}

#[cfg(test)]
#[path = "env_tests.rs"]
pub(crate) mod tests;
