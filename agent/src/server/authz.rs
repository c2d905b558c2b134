//! Who may call a node's agent: only the control plane (the identity
//! `system:jotasu-controlplane` in a client certificate of the cluster
//! CA), for every call — logs, exec and image import reach into pods, so
//! neither pods nor users nor other nodes may call the agent directly.

use jotasu_api::client::identity::{CONTROLPLANE_USER, CertInfo};
use tonic::{Request, Status};
use tracing::debug;

use super::tls::PeerInfo;

/// Whether `identity` (the caller's verified client certificate) may call
/// the Node service.
pub fn check(identity: Option<&CertInfo>) -> Result<(), Status> {
    match identity {
        None => Err(Status::unauthenticated(
            "a client certificate signed by the cluster CA is required",
        )),
        Some(id) if id.common_name == CONTROLPLANE_USER => Ok(()),
        Some(id) => Err(Status::permission_denied(format!(
            "only the control plane may call a node's agent; {:?} may not",
            id.common_name
        ))),
    }
}

/// The Node service's interceptor: every call passes [`check`] with the
/// identity the TLS handshake verified.
pub fn authorize(request: Request<()>) -> Result<Request<()>, Status> {
    let peer = request.extensions().get::<PeerInfo>();
    let result = check(peer.and_then(|p| p.identity.as_ref()));
    if let Err(status) = &result {
        debug!(peer = ?peer.map(|p| p.remote), reason = %status.message(), "Node service call refused");
    }
    result.map(|()| request)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(cn: &str) -> CertInfo {
        CertInfo {
            common_name: cn.into(),
            organizations: Vec::new(),
            dns_names: Vec::new(),
            not_before: 0,
            not_after: i64::MAX,
            is_ca: false,
        }
    }

    #[test]
    fn only_the_control_plane() {
        assert!(check(Some(&identity(CONTROLPLANE_USER))).is_ok());
        let denied = check(Some(&identity("system:node:n2"))).unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            denied.message(),
            "only the control plane may call a node's agent; \"system:node:n2\" may not"
        );
        let admin = check(Some(&identity("jotasu-admin"))).unwrap_err();
        assert_eq!(admin.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            check(None).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
        // No peer information at all (not served over TLS): refused.
        assert_eq!(
            authorize(Request::new(())).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }
}
