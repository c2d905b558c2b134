//! The API server's errors, each mapped to the gRPC code and the message
//! kubectl users know (`deployments.apps "web" not found`).

use jotasu_api::{Kind, ObjectRef};

use crate::store::StoreError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// The request is malformed or an object is invalid; one line per problem.
    #[error("{0}")]
    Invalid(String),
    /// The object does not exist.
    #[error("{} \"{}\" not found", .0.kind.resource_name(), .0.name)]
    NotFound(ObjectRef),
    /// The object changed since the client read it (resourceVersion mismatch).
    #[error(
        "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
        .0.kind.resource_name(), .0.name
    )]
    Conflict(ObjectRef),
    /// The caller may not do this (RBAC, the node authorizer or NodeRestriction).
    #[error("{0}")]
    Forbidden(Box<crate::auth::Forbidden>),
    /// Admission refuses this write of this object, whoever asks
    /// (`namespaces "default" is forbidden: this namespace may not be deleted`).
    #[error("{} \"{}\" is forbidden: {reason}", .object.kind.resource_name(), .object.name)]
    Refused {
        /// The object written.
        object: ObjectRef,
        /// Why, and what to do.
        reason: String,
    },
    /// The caller could not be authenticated.
    #[error("{0}")]
    Unauthenticated(String),
    /// The request may succeed later (an eviction a disruption budget
    /// does not allow now).
    #[error("{0}")]
    TooManyRequests(String),
    /// The control plane is stopping.
    #[error("the control plane is shutting down; reconnect and resume from revision {resume_from}")]
    ShuttingDown {
        /// Where a watcher should resume.
        resume_from: u64,
    },
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A stored object could not be decoded (corruption or version skew).
    #[error("stored object {key} cannot be decoded: {reason}")]
    Corrupt {
        /// Its key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl ApiServerError {
    /// `Invalid` for an unknown kind name, in kubectl's words.
    pub fn unknown_kind(name: &str) -> Self {
        Self::Invalid(format!("the server doesn't have a resource type {name:?}"))
    }

    /// `Invalid` for a kind without replicas.
    pub fn not_scalable(kind: Kind) -> Self {
        Self::Invalid(format!(
            "{} cannot be scaled: only Deployments, ReplicaSets and StatefulSets have replicas",
            kind.resource_name()
        ))
    }
}

impl From<ApiServerError> for tonic::Status {
    fn from(e: ApiServerError) -> Self {
        use tonic::Code;
        let code = match &e {
            ApiServerError::Invalid(_) => Code::InvalidArgument,
            ApiServerError::NotFound(_) => Code::NotFound,
            ApiServerError::Conflict(_) => Code::Aborted,
            ApiServerError::ShuttingDown { .. } => Code::Unavailable,
            ApiServerError::TooManyRequests(_) => Code::ResourceExhausted,
            ApiServerError::Forbidden(_) | ApiServerError::Refused { .. } => Code::PermissionDenied,
            ApiServerError::Unauthenticated(_) => Code::Unauthenticated,
            ApiServerError::Store(s) => match s {
                StoreError::Compacted { .. } => Code::OutOfRange,
                StoreError::InvalidArgument(_) => Code::InvalidArgument,
                // A watcher too slow for the watch cache: watch again from
                // the revision the message names.
                StoreError::Etcd { .. }
                | StoreError::WatchClosed { .. }
                | StoreError::Lagged { .. } => Code::Unavailable,
                _ => Code::Internal,
            },
            ApiServerError::Corrupt { .. } => Code::DataLoss,
        };
        let message = match &e {
            // Watchers key on this word: list again, then watch from the list.
            ApiServerError::Store(StoreError::Compacted { .. }) => format!("resync: {e}"),
            _ => e.to_string(),
        };
        tonic::Status::new(code, message)
    }
}

/// Results of the API server.
pub type ApiResult<T> = Result<T, ApiServerError>;
