//! What a caller presents: the local unix socket (its file mode is the
//! access control: the local administrator), a client certificate the TLS
//! listener verified against the cluster CA (CN is the user, O values the
//! groups, as Kubernetes reads them), or a bearer token (a bootstrap
//! token, for the join). Nothing else authenticates.

use jotasu_api::client::identity::CertInfo;
use tonic::Request;
use tonic::transport::server::UdsConnectInfo;

use super::attributes::UserInfo;
use super::token::BootstrapToken;

/// Largest `authorization` header read.
const MAX_AUTHORIZATION: usize = 4096;

/// What a request carries to be authenticated by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// It came through the local unix socket.
    LocalSocket,
    /// A verified client certificate's identity.
    Certificate(UserInfo),
    /// A bootstrap token.
    Token(BootstrapToken),
    /// A certificate the server cannot read, or a malformed token: why.
    Invalid(String),
    /// Nothing.
    Anonymous,
}

/// The user a DER client certificate names: CN, and O values as groups.
pub fn certificate_user(der: &[u8]) -> Result<UserInfo, String> {
    let info = CertInfo::from_der("client certificate", der).map_err(|e| e.to_string())?;
    if info.common_name.is_empty() {
        return Err("the client certificate has no common name (CN): it names no user".into());
    }
    Ok(UserInfo::new(info.common_name, info.organizations))
}

/// What `request` presents.
pub fn presented<T>(request: &Request<T>) -> Presented {
    if request.extensions().get::<UdsConnectInfo>().is_some() {
        return Presented::LocalSocket;
    }
    if let Some(certs) = request.peer_certs()
        && let Some(leaf) = certs.first()
    {
        return match certificate_user(leaf) {
            Ok(user) => Presented::Certificate(user),
            Err(e) => Presented::Invalid(e),
        };
    }
    let Some(header) = request.metadata().get("authorization") else {
        return Presented::Anonymous;
    };
    let Ok(text) = header.to_str() else {
        return Presented::Invalid("the authorization header is not text".into());
    };
    if text.len() > MAX_AUTHORIZATION {
        return Presented::Invalid("the authorization header is too long".into());
    }
    let Some(token) = text.strip_prefix("Bearer ") else {
        return Presented::Invalid("the authorization header must be \"Bearer <token>\"".into());
    };
    match BootstrapToken::parse(token) {
        Ok(t) => Presented::Token(t),
        Err(e) => Presented::Invalid(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    #[test]
    fn a_certificate_names_its_user_and_groups() {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "alice");
        p.distinguished_name.push(DnType::OrganizationName, "devs");
        let cert = p.self_signed(&key).unwrap();
        let user = certificate_user(cert.der()).unwrap();
        assert_eq!(user.name, "alice");
        assert!(user.in_group("devs"));
        assert!(user.in_group(super::super::attributes::AUTHENTICATED));
        let mut anonymous = CertificateParams::new(Vec::<String>::new()).unwrap();
        anonymous.distinguished_name = rcgen::DistinguishedName::new();
        let cert = anonymous.self_signed(&key).unwrap();
        assert!(certificate_user(cert.der()).is_err());
        assert!(certificate_user(b"junk").is_err());
    }

    #[test]
    fn bearer_tokens_are_read_from_the_metadata() {
        let mut r = Request::new(());
        assert_eq!(presented(&r), Presented::Anonymous);
        r.metadata_mut().insert(
            "authorization",
            "Bearer abcdef.0123456789abcdef".parse().unwrap(),
        );
        assert!(matches!(presented(&r), Presented::Token(t) if t.id == "abcdef"));
        r.metadata_mut()
            .insert("authorization", "Basic eDp5".parse().unwrap());
        assert!(matches!(presented(&r), Presented::Invalid(_)));
        r.metadata_mut()
            .insert("authorization", "Bearer nope".parse().unwrap());
        assert!(matches!(presented(&r), Presented::Invalid(_)));
    }
}
