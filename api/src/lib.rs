//! jotasu's object model: one definition per kind (Pod, Deployment,
//! DaemonSet, Service, Endpoints, ConfigMap, Secret, ServiceAccount,
//! HorizontalPodAutoscaler, Node, Namespace, the RBAC kinds), serialised
//! exactly as Kubernetes spells it; manifest parsing (multi-document YAML,
//! JSON, `kind: List`), defaults, and validation with field paths.
//!
//! The pipeline for user manifests is [`ManifestLoader`]: parse (strict
//! about unknown fields by default) → [`Object::apply_defaults`] →
//! [`Object::validate`]; it gathers every problem of every file before the
//! caller writes anything. JSON (`serde_json`) is the storage and wire
//! encoding of [`Object`].

pub mod bytes;
pub mod change;
pub mod client;
pub mod convert;
pub mod cron;
pub mod defaults;
pub mod error;
pub mod grpc;
pub mod int_or_string;
pub mod kinds;
pub mod manifest;
pub mod meta;
pub mod object;
pub mod path;
pub mod quantity;
pub mod removed;
pub mod resource;
pub mod selector;
pub mod subresource;
pub mod support;
pub mod validate;

pub use bytes::Bytes;
pub use change::{EventType, Outcome};
pub use error::{ErrorKind, FieldError, Location, ManifestError, ManifestErrors, ValidationErrors};
pub use int_or_string::IntOrString;
pub use kinds::batch::{CronJob, Job};
pub use kinds::config::{ConfigMap, Secret};
pub use kinds::coordination::Lease;
pub use kinds::discovery::EndpointSlice;
pub use kinds::disruption::PodDisruptionBudget;
pub use kinds::hpa::HorizontalPodAutoscaler;
pub use kinds::limits::{LimitRange, ResourceQuota};
pub use kinds::namespace::{Namespace, NamespacePhase};
pub use kinds::node::Node;
pub use kinds::pod::{Container, Pod, PodSpec, PodTemplateSpec};
pub use kinds::pod_status::PodStatus;
pub use kinds::rbac::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
pub use kinds::scheduling::PriorityClass;
pub use kinds::service::{Endpoints, Service};
pub use kinds::service_account::ServiceAccount;
pub use kinds::statefulset::{ControllerRevision, StatefulSet};
pub use kinds::storage::{PersistentVolume, PersistentVolumeClaim, StorageClass};
pub use kinds::workloads::{DaemonSet, Deployment, ReplicaSet};
pub use manifest::{Loaded, ManifestLoader, ManifestObject, ParseOptions, load_manifest};
pub use meta::{Condition, ConditionStatus, Labels, ObjectMeta, OwnerReference, Time};
pub use object::{Kind, Object, ObjectRef, UnsupportedKind};
pub use path::FieldPath;
pub use quantity::{Quantity, QuantityError};
pub use resource::Resource;
pub use selector::{LabelSelector, LabelSelectorRequirement, SelectorOperator};
