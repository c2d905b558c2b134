//! ServiceAccount (`v1`): the identity a pod runs as. jotasu mounts no
//! token into pods yet (see docs/api.md): the field is accepted and kept.

use serde::{Deserialize, Serialize};

use crate::meta::{ObjectMeta, ObjectReference};
use crate::resource::{ApiVersionTag, KindTag, resource};

/// The service account every namespace has, and pods run as unless they name another.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// An identity for processes in pods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceAccount {
    /// Always `v1`.
    #[serde(default)]
    pub api_version: ApiVersionTag<ServiceAccount>,
    /// Always `ServiceAccount`.
    #[serde(default)]
    pub kind: KindTag<ServiceAccount>,
    /// Name, namespace, labels.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Secrets pods running as this account may use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<ObjectReference>,
    /// Secrets used to pull the images of pods running as this account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Whether pods running as this account get an API token mounted
    /// (accepted and kept; jotasu mounts none yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
}
resource!(ServiceAccount, "v1", "ServiceAccount", namespaced = true);

/// A reference by name to an object in the same namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LocalObjectReference {
    /// The referent's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_kubernetes_does() {
        let json = r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"build","namespace":"ci"},"secrets":[{"name":"build-token"}],"imagePullSecrets":[{"name":"registry"}],"automountServiceAccountToken":false}"#;
        let sa: ServiceAccount = serde_json::from_str(json).unwrap();
        assert_eq!(sa.image_pull_secrets[0].name, "registry");
        assert_eq!(sa.automount_service_account_token, Some(false));
        assert_eq!(serde_json::to_string(&sa).unwrap(), json);
        assert!(
            serde_json::from_str::<ServiceAccount>(
                r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"a"},"token":"x"}"#
            )
            .is_err()
        );
    }
}
