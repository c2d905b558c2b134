//! [`DevError`]: what went wrong building, running or removing a local
//! cluster, naming the object and, where there is one, what to do.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jotasu_api::client::ClientError;

use crate::plan::PlanError;

/// A local-cluster failure.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// A file, directory, socket or process-table operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("creating", "reading", …).
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A program could not be started.
    #[error("spawning {program}: {source}{hint}")]
    Spawn {
        /// The program (or its command line).
        program: String,
        /// Why.
        source: io::Error,
        /// What to do, with a leading separator (or empty).
        hint: &'static str,
    },
    /// A program ran and failed.
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        /// Its command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it said.
        stderr: String,
    },
    /// A part did not come up.
    #[error("{what} did not become ready: {why}")]
    NotReady {
        /// The part (`jotasu-controlplane`, `node jt1x0n0`, …).
        what: String,
        /// What was seen instead.
        why: String,
    },
    /// A part did not come up in time.
    #[error("{what} not done within {within:?}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        within: Duration,
    },
    /// The control plane refused or failed a request.
    #[error("{action}: {source}")]
    Api {
        /// The request.
        action: String,
        /// The client's error.
        source: ClientError,
    },
    /// containerd refused or failed a request.
    #[error("{action}: {source}")]
    Containerd {
        /// The request.
        action: String,
        /// The containerd module's error.
        source: jotasu_agent::containerd::ContainerdError,
    },
    /// A cluster's state file that does not parse (or serialize).
    #[error("{}: not a cluster state: {source}", path.display())]
    StateFile {
        /// The file.
        path: PathBuf,
        /// serde_json's complaint.
        source: serde_json::Error,
    },
    /// A dev cluster's supervisor answered with an error.
    #[error("cluster {cluster}: {message}")]
    Supervisor {
        /// The cluster.
        cluster: String,
        /// What it said.
        message: String,
    },
    /// A call that does not fit the object's state (starting what runs, …).
    #[error("{0}")]
    State(String),
    /// Input that cannot be used (a cluster name, a request line, …).
    #[error("{0}")]
    Invalid(String),
    /// A cluster's plan cannot hold a node.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The run was interrupted by a signal.
    #[error("interrupted")]
    Interrupted,
}

/// A result with [`DevError`].
pub type Result<T> = std::result::Result<T, DevError>;

impl DevError {
    /// An [`DevError::Io`] on `path`, for `map_err`.
    pub fn io(action: &'static str, path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> Self {
        let path = path.as_ref().to_owned();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }

    /// A [`DevError::Spawn`] of `program`, for `map_err`.
    pub fn spawn(program: impl std::fmt::Display) -> impl FnOnce(io::Error) -> Self {
        let program = program.to_string();
        move |source| Self::Spawn {
            program,
            source,
            hint: "",
        }
    }

    /// A [`DevError::Containerd`] for `action`, for `map_err`.
    pub fn containerd(
        action: impl std::fmt::Display,
    ) -> impl FnOnce(jotasu_agent::containerd::ContainerdError) -> Self {
        let action = action.to_string();
        move |source| Self::Containerd { action, source }
    }

    /// A [`DevError::Api`] for `action`, for `map_err`.
    pub fn api(action: impl std::fmt::Display) -> impl FnOnce(ClientError) -> Self {
        let action = action.to_string();
        move |source| Self::Api { action, source }
    }
}
