//! Why a call proxied to a node's agent failed, in kubectl's words where
//! kubectl has them (`pod web does not have a host assigned`).

use std::net::SocketAddr;

use tonic::{Code, Status};

use crate::apiserver::error::ApiServerError;

/// Why a logs, exec or image import call failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Reading the pod or node failed (`pods "web" not found`, the store).
    #[error(transparent)]
    Api(#[from] ApiServerError),
    /// The request itself is wrong.
    #[error("{0}")]
    BadRequest(String),
    /// The pod is not bound to a node yet.
    #[error("pod {pod} does not have a host assigned")]
    Unscheduled {
        /// The pod's name.
        pod: String,
    },
    /// The container named is not one of the pod's.
    #[error("container {container} is not valid for pod {pod}")]
    NoSuchContainer {
        /// The container asked for.
        container: String,
        /// The pod's name.
        pod: String,
    },
    /// The pod has several containers and none was named.
    #[error("a container name must be specified for pod {pod}, choose one of: [{choices}]")]
    ChooseContainer {
        /// The pod's name.
        pod: String,
        /// Its containers, space-separated.
        choices: String,
    },
    /// The node's status does not say where its agent listens.
    #[error(
        "node {node} has no agent endpoint (no {missing} in its status): is its agent running?"
    )]
    NoEndpoint {
        /// The node.
        node: String,
        /// What is missing.
        missing: &'static str,
    },
    /// The agent could not be reached.
    #[error("cannot reach the agent of node {node} at {address}: {detail}")]
    Unreachable {
        /// The node.
        node: String,
        /// The agent's address.
        address: SocketAddr,
        /// The transport's reason.
        detail: String,
    },
    /// The agent answered with an error (passed on as it is).
    #[error("{}", .0.message())]
    Agent(Status),
    /// The caller's request stream failed.
    #[error("{}", .0.message())]
    Caller(Status),
    /// No node is Ready to import an image onto.
    #[error("no Ready node to import the image onto (name nodes to import onto NotReady ones)")]
    NoReadyNode,
    /// The image archive is over the limit.
    #[error(
        "the image archive is larger than {max_gib} GiB, the most one import takes: import the images in smaller archives"
    )]
    TooLarge {
        /// The limit in GiB.
        max_gib: u64,
    },
    /// The control plane could not keep the archive while sending it on.
    #[error("keeping the image archive in {path} failed: {source}")]
    Spool {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The import failed on some nodes (every node was tried).
    #[error("{message}")]
    ImportFailed {
        /// The code of the first failure.
        code: Code,
        /// Each failed node with its reason, and the nodes that succeeded.
        message: String,
    },
}

impl ProxyError {
    /// An error status from `node`'s agent at `address`: the transport's
    /// failures are `Unreachable`, the agent's own answers pass on.
    pub fn from_agent(node: &str, address: SocketAddr, status: Status) -> Self {
        match std::error::Error::source(&status) {
            Some(source) => ProxyError::Unreachable {
                node: node.to_owned(),
                address,
                detail: chain(source),
            },
            None if status.code() == Code::Unavailable || status.code() == Code::Unknown => {
                ProxyError::Unreachable {
                    node: node.to_owned(),
                    address,
                    detail: status.message().to_owned(),
                }
            }
            None => ProxyError::Agent(status),
        }
    }
}

/// An error and its sources, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        next = s.source();
    }
    text
}

impl From<ProxyError> for Status {
    fn from(e: ProxyError) -> Self {
        match e {
            ProxyError::Api(api) => api.into(),
            other => Status::new(other.code(), other.to_string()),
        }
    }
}

impl ProxyError {
    /// The gRPC code: FAILED_PRECONDITION for what kubectl calls BadRequest.
    pub fn code(&self) -> Code {
        match self {
            ProxyError::Api(_) | ProxyError::Spool { .. } => Code::Internal,
            ProxyError::Agent(s) | ProxyError::Caller(s) => s.code(),
            ProxyError::BadRequest(_) | ProxyError::TooLarge { .. } => Code::InvalidArgument,
            ProxyError::Unscheduled { .. }
            | ProxyError::NoSuchContainer { .. }
            | ProxyError::ChooseContainer { .. }
            | ProxyError::NoEndpoint { .. }
            | ProxyError::NoReadyNode => Code::FailedPrecondition,
            ProxyError::Unreachable { .. } => Code::Unavailable,
            ProxyError::ImportFailed { code, .. } => *code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        let s = Status::from(ProxyError::Unscheduled { pod: "web".into() });
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(s.message(), "pod web does not have a host assigned");
        let s = Status::from(ProxyError::Agent(Status::not_found(
            "container c is not running",
        )));
        assert_eq!(
            (s.code(), s.message()),
            (Code::NotFound, "container c is not running")
        );
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("address");
        let e = ProxyError::from_agent("n1", addr, Status::unavailable("tcp connect error"));
        assert_eq!(
            e.to_string(),
            "cannot reach the agent of node n1 at 127.0.0.1:1: tcp connect error"
        );
        assert_eq!(Status::from(e).code(), Code::Unavailable);
    }
}
