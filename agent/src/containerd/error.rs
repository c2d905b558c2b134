//! containerd errors: what failed, on which object, and the gRPC status.

use std::path::PathBuf;

/// A containerd call failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    /// The socket did not answer.
    #[error("connecting to containerd at {socket}: {source}; is containerd running?")]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// Why.
        source: tonic::transport::Error,
    },
    /// A call was refused or failed.
    #[error("containerd {what} {object}: {}", .status.message())]
    Rpc {
        /// The call.
        what: &'static str,
        /// On what (a container id, an image, a digest).
        object: String,
        /// containerd's answer.
        status: tonic::Status,
    },
    /// An image archive or image content is not what it should be.
    #[error("image {object}: {reason}")]
    Image {
        /// The archive or image.
        object: String,
        /// What is wrong.
        reason: String,
    },
    /// Pulling from a registry failed.
    #[error(
        "pulling {reference}: {reason}; check the reference and that the registry is reachable from the node, or import the image with `jotactl image import ARCHIVE`"
    )]
    Pull {
        /// The reference.
        reference: String,
        /// What went wrong.
        reason: String,
    },
    /// A local file (archive, FIFO, log).
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl ContainerdError {
    /// Whether containerd said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Rpc { status, .. } if status.code() == tonic::Code::NotFound)
    }

    /// Whether containerd said the object exists already.
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Self::Rpc { status, .. } if status.code() == tonic::Code::AlreadyExists)
    }
}

/// A closure turning a status into [`ContainerdError::Rpc`].
pub(super) fn rpc(
    what: &'static str,
    object: impl Into<String>,
) -> impl FnOnce(tonic::Status) -> ContainerdError {
    let object = object.into();
    move |status| ContainerdError::Rpc {
        what,
        object,
        status,
    }
}
