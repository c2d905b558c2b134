//! `Object`: any object of any kind, so the store and the API can handle them
//! generically; and `Kind`, the list of supported kinds.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::kinds::batch::{CronJob, Job};
use crate::kinds::config::{ConfigMap, Secret};
use crate::kinds::coordination::Lease;
use crate::kinds::discovery::EndpointSlice;
use crate::kinds::disruption::PodDisruptionBudget;
use crate::kinds::hpa::HorizontalPodAutoscaler;
use crate::kinds::limits::{LimitRange, ResourceQuota};
use crate::kinds::namespace::Namespace;
use crate::kinds::node::Node;
use crate::kinds::pod::Pod;
use crate::kinds::rbac::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use crate::kinds::scheduling::PriorityClass;
use crate::kinds::service::{Endpoints, Service};
use crate::kinds::service_account::ServiceAccount;
use crate::kinds::statefulset::{ControllerRevision, StatefulSet};
use crate::kinds::storage::{PersistentVolume, PersistentVolumeClaim, StorageClass};
use crate::kinds::workloads::{DaemonSet, Deployment, ReplicaSet};
use crate::meta::ObjectMeta;
use crate::resource::Resource;

macro_rules! kinds {
    ($($variant:ident => $short:literal, $plural:literal;)*) => {
        /// A supported kind.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Kind {
            $(
                #[doc = concat!("`", stringify!($variant), "`")]
                $variant,
            )*
        }

        impl Kind {
            /// Every supported kind.
            pub const ALL: &'static [Kind] = &[$(Kind::$variant),*];

            /// The kind's name as in manifests, e.g. `Deployment`.
            pub fn as_str(self) -> &'static str {
                match self { $(Kind::$variant => <$variant as Resource>::KIND),* }
            }

            /// The apiVersion it is served at, e.g. `apps/v1`.
            pub fn api_version(self) -> &'static str {
                match self { $(Kind::$variant => <$variant as Resource>::API_VERSION),* }
            }

            /// Whether objects of this kind live in a namespace.
            pub fn namespaced(self) -> bool {
                match self { $(Kind::$variant => <$variant as Resource>::NAMESPACED),* }
            }

            /// The kind for a name as kubectl accepts it: kind, plural or short
            /// name, any case (`Deployment`, `deployments`, `deploy`).
            pub fn from_name(name: &str) -> Option<Kind> {
                let lower = name.to_ascii_lowercase();
                Kind::ALL.iter().copied().find(|k| {
                    let (short, plural) = k.names();
                    lower == k.as_str().to_ascii_lowercase() || lower == plural || (!short.is_empty() && lower == short)
                })
            }

            /// The lower-case plural (`deployments`) used in store keys and URLs.
            pub fn plural(self) -> &'static str {
                self.names().1
            }

            fn names(self) -> (&'static str, &'static str) {
                match self { $(Kind::$variant => ($short, $plural)),* }
            }
        }

        /// An object of any supported kind.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Object {
            $(
                #[doc = concat!("A `", stringify!($variant), "`.")]
                $variant($variant),
            )*
        }

        impl Object {
            /// The object's kind.
            pub fn kind(&self) -> Kind {
                match self { $(Object::$variant(_) => Kind::$variant),* }
            }

            /// The object's metadata.
            pub fn metadata(&self) -> &ObjectMeta {
                match self { $(Object::$variant(o) => &o.metadata),* }
            }

            /// The object's metadata, mutably.
            pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
                match self { $(Object::$variant(o) => &mut o.metadata),* }
            }

            /// Decodes a JSON value whose `apiVersion`/`kind` name a supported kind.
            /// Strict: unknown fields are errors. (Manifests go through
            /// [`crate::manifest`] instead, which reports field paths.)
            pub fn from_value(value: serde_json::Value) -> Result<Object, serde_json::Error> {
                use serde::de::Error as _;
                let kind = kind_of_value(&value).map_err(serde_json::Error::custom)?;
                Ok(match kind {
                    $(Kind::$variant => Object::$variant(serde_json::from_value(value)?),)*
                })
            }

            /// Decodes `value` as an object of `kind`, recording the path of an error.
            pub(crate) fn decode_as(
                kind: Kind,
                value: &serde_json::Value,
            ) -> Result<Object, serde_path_to_error::Error<serde_json::Error>> {
                Ok(match kind {
                    $(Kind::$variant => Object::$variant(serde_path_to_error::deserialize(value)?),)*
                })
            }
        }

        impl Serialize for Object {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self { $(Object::$variant(o) => o.serialize(s)),* }
            }
        }

        $(
            impl From<$variant> for Object {
                fn from(o: $variant) -> Self {
                    Object::$variant(o)
                }
            }

            impl TryFrom<Object> for $variant {
                type Error = Object;
                /// Unwraps the object if it is of this kind; gives it back otherwise.
                fn try_from(o: Object) -> Result<Self, Object> {
                    match o {
                        Object::$variant(inner) => Ok(inner),
                        other => Err(other),
                    }
                }
            }
        )*
    };
}

kinds! {
    Pod => "po", "pods";
    Deployment => "deploy", "deployments";
    ReplicaSet => "rs", "replicasets";
    DaemonSet => "ds", "daemonsets";
    StatefulSet => "sts", "statefulsets";
    ControllerRevision => "", "controllerrevisions";
    Job => "", "jobs";
    CronJob => "cj", "cronjobs";
    Service => "svc", "services";
    Endpoints => "ep", "endpoints";
    EndpointSlice => "", "endpointslices";
    ConfigMap => "cm", "configmaps";
    Secret => "", "secrets";
    LimitRange => "limits", "limitranges";
    ResourceQuota => "quota", "resourcequotas";
    ServiceAccount => "sa", "serviceaccounts";
    HorizontalPodAutoscaler => "hpa", "horizontalpodautoscalers";
    PodDisruptionBudget => "pdb", "poddisruptionbudgets";
    Node => "no", "nodes";
    PriorityClass => "pc", "priorityclasses";
    PersistentVolume => "pv", "persistentvolumes";
    PersistentVolumeClaim => "pvc", "persistentvolumeclaims";
    StorageClass => "sc", "storageclasses";
    Namespace => "ns", "namespaces";
    Role => "", "roles";
    ClusterRole => "", "clusterroles";
    RoleBinding => "", "rolebindings";
    ClusterRoleBinding => "", "clusterrolebindings";
    Lease => "", "leases";
}

impl Kind {
    /// Finds the kind for an `apiVersion`/`kind` pair, with an error that names
    /// what is supported.
    pub fn lookup(api_version: &str, kind: &str) -> Result<Kind, UnsupportedKind> {
        let found = Kind::ALL.iter().copied().find(|k| k.as_str() == kind);
        match found {
            Some(k)
                if k.api_version() == api_version
                    || crate::convert::ALSO_SERVED.contains(&(api_version, kind)) =>
            {
                Ok(k)
            }
            _ => Err(UnsupportedKind {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
                known_kind_at: found.map(Kind::api_version),
            }),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `apiVersion`/`kind` pair jotasu does not serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct UnsupportedKind {
    /// The apiVersion given.
    pub api_version: String,
    /// The kind given.
    pub kind: String,
    /// Where the kind is served, if the kind is known but the apiVersion is not.
    pub known_kind_at: Option<&'static str>,
}

impl fmt::Display for UnsupportedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((release, instead)) = crate::removed::removed(&self.api_version, &self.kind) {
            // kubectl's words, then why and what to use.
            return write!(
                f,
                "no matches for kind {:?} in version {:?}: Kubernetes {release} removed it, use apiVersion: {instead}",
                self.kind, self.api_version
            );
        }
        // kubectl's words (its REST mapping fails the same way), then
        // what jotasu serves instead.
        write!(
            f,
            "no matches for kind {:?} in version {:?}: ",
            self.kind, self.api_version
        )?;
        match self.known_kind_at {
            Some(at) => write!(f, "use apiVersion: {at}"),
            None => {
                f.write_str("jotasu does not serve this kind; it serves ")?;
                let list: Vec<String> = Kind::ALL
                    .iter()
                    .map(|k| format!("{} {}", k.api_version(), k.as_str()))
                    .collect();
                f.write_str(&list.join(", "))
            }
        }
    }
}

/// Reads `apiVersion` and `kind` of a JSON object and looks the pair up.
pub(crate) fn kind_of_value(value: &serde_json::Value) -> Result<Kind, String> {
    let field = |name: &str| -> Result<&str, String> {
        match value.get(name) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s),
            Some(serde_json::Value::String(_)) | None | Some(serde_json::Value::Null) => {
                Err(format!("missing field `{name}`"))
            }
            Some(other) => Err(format!(
                "{name}: invalid type: {}, expected a string",
                json_type(other)
            )),
        }
    };
    if !value.is_object() {
        return Err(format!(
            "invalid type: {}, expected an object with apiVersion and kind",
            json_type(value)
        ));
    }
    let api_version = field("apiVersion")?;
    let kind = field("kind")?;
    Kind::lookup(api_version, kind).map_err(|e| e.to_string())
}

/// How serde names JSON value types in messages.
pub(crate) fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "sequence",
        serde_json::Value::Object(_) => "map",
    }
}

impl Object {
    /// The object's name (`""` if it has none yet).
    pub fn name(&self) -> &str {
        self.metadata().name()
    }

    /// The object's namespace (`None` for cluster-scoped kinds, or before defaulting).
    pub fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    /// The object's identity: kind, namespace and name.
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            kind: self.kind(),
            namespace: self.namespace().map(str::to_owned),
            name: self.name().to_owned(),
        }
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Object::from_value(value).map_err(serde::de::Error::custom)
    }
}

/// Identifies an object: kind, namespace (for namespaced kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// The kind.
    pub kind: Kind,
    /// The namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    /// `Deployment default/web`, or `Node n1` for cluster-scoped kinds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_names() {
        assert_eq!(Kind::lookup("apps/v1", "Deployment"), Ok(Kind::Deployment));
        let e = Kind::lookup("apps/v1beta1", "Deployment").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no matches for kind \"Deployment\" in version \"apps/v1beta1\": Kubernetes 1.16 removed it, use apiVersion: apps/v1"
        );
        let e = Kind::lookup("apps/v2", "Deployment").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no matches for kind \"Deployment\" in version \"apps/v2\": use apiVersion: apps/v1"
        );
        let e = Kind::lookup("networking.k8s.io/v1", "Ingress")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("no matches for kind \"Ingress\" in version \"networking.k8s.io/v1\": jotasu does not serve this kind; it serves v1 Pod, apps/v1 Deployment"), "{e}");
        assert_eq!(Kind::lookup("batch/v1", "Job"), Ok(Kind::Job));
        assert_eq!(Kind::from_name("cj"), Some(Kind::CronJob));
        assert_eq!(Kind::from_name("jobs"), Some(Kind::Job));
        assert_eq!(Kind::from_name("deploy"), Some(Kind::Deployment));
        assert_eq!(Kind::from_name("Services"), Some(Kind::Service));
        assert_eq!(Kind::from_name("secret"), Some(Kind::Secret));
        assert_eq!(Kind::from_name(""), None);
        assert!(!Kind::Node.namespaced());
        assert_eq!(Kind::from_name("ns"), Some(Kind::Namespace));
        assert_eq!(Kind::from_name("namespaces"), Some(Kind::Namespace));
        assert!(!Kind::Namespace.namespaced());
        assert_eq!(Kind::from_name("sa"), Some(Kind::ServiceAccount));
        assert_eq!(
            Kind::from_name("serviceaccount"),
            Some(Kind::ServiceAccount)
        );
        assert!(Kind::ServiceAccount.namespaced());
        assert_eq!(
            Kind::HorizontalPodAutoscaler.plural(),
            "horizontalpodautoscalers"
        );
    }

    #[test]
    fn object_serde() {
        let json = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"ns"},"data":{"k":"v"}}"#;
        let obj: Object = serde_json::from_str(json).unwrap();
        assert_eq!(obj.kind(), Kind::ConfigMap);
        assert_eq!(obj.object_ref().to_string(), "ConfigMap ns/c");
        assert_eq!(serde_json::to_string(&obj).unwrap(), json);
        let cm = ConfigMap::try_from(obj.clone()).unwrap();
        assert_eq!(cm.data["k"], "v");
        assert!(Pod::try_from(obj).is_err());
        assert!(serde_json::from_str::<Object>(r#"{"apiVersion":"v1","kind":"Nope"}"#).is_err());
        assert!(serde_json::from_str::<Object>(r#"{"kind":"Pod"}"#).is_err());
    }
}
