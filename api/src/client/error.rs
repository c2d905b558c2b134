//! Errors of the API client: connecting, and what the server answered.

use std::path::PathBuf;

/// What went wrong talking to the control plane.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL is neither `unix:///path` nor `https://host:port`.
    #[error(
        "invalid server URL {url:?}: {reason} (use unix:///path/to/api.sock or https://host:port)"
    )]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No server was named anywhere.
    #[error(
        "no server given: pass --server URL, set JOTASU_SERVER, or create a context in {config} (jotactl dev up writes one)"
    )]
    NoServer {
        /// The context file that was looked at.
        config: PathBuf,
    },
    /// A file (context, certificate, key) could not be read or parsed.
    #[error("cannot use {what} {path}: {reason}")]
    File {
        /// What the file is, e.g. `certificate authority`.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// An https server needs TLS material that was not given.
    #[error("server {server} is https: {missing} is needed (flag, or the context file)")]
    MissingTls {
        /// The server URL.
        server: String,
        /// Which file is missing.
        missing: &'static str,
    },
    /// The server could not be reached.
    #[error(
        "the connection to the server {server} was refused - is the control plane running? ({detail})"
    )]
    Connect {
        /// The server URL.
        server: String,
        /// The transport's reason.
        detail: String,
    },
    /// The connection broke or the TLS handshake failed mid-call.
    #[error("the connection to the server failed: {0}")]
    Transport(String),
    /// A bootstrap token cannot be sent.
    #[error(
        "invalid bootstrap token: {reason} (expected <id>.<secret>, as `jotasu-controlplane token create` prints it)"
    )]
    BadToken {
        /// What is wrong with it.
        reason: String,
    },
    /// The server answered with an error.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The server sent an object this client cannot decode (version skew).
    #[error("cannot decode an object from the server: {0}")]
    Decode(String),
}

impl ClientError {
    /// The server's error, if this is one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the server said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.api()
            .is_some_and(|e| e.code() == tonic::Code::NotFound)
    }

    /// Whether the server said "not now" (an eviction a disruption budget
    /// does not allow yet): retry later.
    pub fn is_too_many_requests(&self) -> bool {
        self.api()
            .is_some_and(|e| e.code() == tonic::Code::ResourceExhausted)
    }

    /// Whether the server refused a write because the object changed
    /// (resourceVersion mismatch): read again and retry.
    pub fn is_conflict(&self) -> bool {
        self.api().is_some_and(|e| e.code() == tonic::Code::Aborted)
    }

    /// Whether a watch fell behind the store's compaction: list again and
    /// watch from the list's revision.
    pub fn is_resync(&self) -> bool {
        self.api()
            .is_some_and(|e| e.code() == tonic::Code::OutOfRange)
    }
}

/// An error status from the server, with kubectl's name for its reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.message())]
pub struct ApiError(pub tonic::Status);

impl ApiError {
    /// The gRPC code.
    pub fn code(&self) -> tonic::Code {
        self.0.code()
    }

    /// The server's message.
    pub fn message(&self) -> &str {
        self.0.message()
    }

    /// The reason as kubectl prints it in `Error from server (<reason>): …`.
    pub fn reason(&self) -> &'static str {
        use tonic::Code;
        match self.code() {
            Code::NotFound => "NotFound",
            Code::AlreadyExists => "AlreadyExists",
            Code::InvalidArgument => "Invalid",
            Code::Aborted => "Conflict",
            // The server's "pod web does not have a host assigned" and the like.
            Code::FailedPrecondition => "BadRequest",
            Code::OutOfRange => "Expired",
            Code::Unauthenticated => "Unauthorized",
            Code::PermissionDenied => "Forbidden",
            Code::Unavailable => "ServiceUnavailable",
            Code::DeadlineExceeded => "Timeout",
            Code::ResourceExhausted => "TooManyRequests",
            _ => "InternalError",
        }
    }
}

impl From<tonic::Status> for ClientError {
    fn from(s: tonic::Status) -> Self {
        // A status with a source came from the transport, not the server.
        match std::error::Error::source(&s) {
            Some(source) => ClientError::Transport(error_chain(source)),
            None => ClientError::Api(ApiError(s)),
        }
    }
}

/// An error and its sources, `a: b: c`, leaving out a source whose text
/// its outer error already shows.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut detail = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !detail.contains(&text) {
            detail = format!("{detail}: {text}");
        }
        next = s.source();
    }
    detail
}
