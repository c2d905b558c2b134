//! Joining a cluster with a bootstrap token, as `kubeadm join` does:
//! capture the CA the control plane presents, compare it with the pin
//! (`--ca-cert-hash`), connect again trusting only that CA, and have the
//! control plane sign a CSR for a key made here (the key never leaves the
//! node). [`obtain`] is the CSR round trip, shared with renewal.

use std::future::Future;
use std::sync::Arc;

use jotasu_api::client::identity::{CertInfo, ca_cert_hash};
use jotasu_api::client::{
    Client, ClientError, Credentials, NodeCertificate, ServerUrl, fetch_ca_from_handshake,
};
use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use tracing::info;

use super::CredentialsError;
use super::check::check_certificate;
use super::files::Stored;
use jotasu_api::client::identity::{NODES_GROUP, node_user};

/// Whoever signs node certificates (the control plane's
/// `RequestNodeCertificate`; a fake in tests).
pub trait CertificateSource: Send + Sync {
    /// Asks for `csr_pem` to be signed as `node`'s certificate,
    /// authenticated by `token` (a join) or by the connection's
    /// certificate (a renewal).
    fn request(
        &self,
        node: &str,
        csr_pem: &str,
        token: Option<&str>,
    ) -> impl Future<Output = Result<NodeCertificate, ClientError>> + Send;
}

impl CertificateSource for Client {
    async fn request(
        &self,
        node: &str,
        csr_pem: &str,
        token: Option<&str>,
    ) -> Result<NodeCertificate, ClientError> {
        self.request_node_certificate(node, csr_pem, token).await
    }
}

/// A new ECDSA P-256 key and a CSR for it naming `system:node:<node>` in
/// `system:nodes` (the control plane decides the identity anyway):
/// `(key PEM, CSR PEM)`.
pub fn new_key_and_csr(node: &str) -> Result<(String, String), CredentialsError> {
    let failed = |e: rcgen::Error| CredentialsError::Csr(e.to_string());
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let mut params = CertificateParams::new(vec![node.to_owned()]).map_err(failed)?;
    params
        .distinguished_name
        .push(DnType::CommonName, node_user(node));
    params
        .distinguished_name
        .push(DnType::OrganizationName, NODES_GROUP);
    let csr = params
        .serialize_request(&key)
        .and_then(|c| c.pem())
        .map_err(failed)?;
    Ok((key.serialize_pem(), csr))
}

/// A new key, its CSR signed by `source` as `node`'s certificate, and the
/// answer checked: for this node, issued by the CA of `ca_pem`, valid now.
pub async fn obtain(
    source: &impl CertificateSource,
    server: &str,
    node: &str,
    ca_pem: &str,
    token: Option<&str>,
) -> Result<Stored, CredentialsError> {
    let (key_pem, csr_pem) = new_key_and_csr(node)?;
    let answer = source
        .request(node, &csr_pem, token)
        .await
        .map_err(|e| CredentialsError::from_request(server, node, token.is_some(), e))?;
    let now = jotasu_api::meta::unix_now();
    check_certificate(node, ca_pem, &answer.certificate_pem, now).map_err(|why| {
        CredentialsError::BadIssued {
            server: server.to_owned(),
            reason: why.to_string(),
        }
    })?;
    Ok(Stored {
        ca_pem: ca_pem.to_owned(),
        cert_pem: answer.certificate_pem,
        key_pem,
    })
}

/// The certificate of `chain` (PEM, as a handshake presented it) whose
/// hash is `pin`; it must be a CA. Errors name the pin and every hash seen.
pub fn pin_ca(server: &str, chain: &[String], pin: &str) -> Result<String, CredentialsError> {
    let mut seen = Vec::with_capacity(chain.len());
    for pem in chain {
        let Ok(hash) = ca_cert_hash(pem) else {
            continue;
        };
        if hash == pin {
            let is_ca = CertInfo::from_pem("CA certificate", pem).is_ok_and(|i| i.is_ca);
            if !is_ca {
                return Err(CredentialsError::CaMismatch {
                    server: server.to_owned(),
                    pinned: pin.to_owned(),
                    presented: format!("{hash} (not a CA certificate)"),
                });
            }
            return Ok(pem.clone());
        }
        seen.push(hash);
    }
    Err(CredentialsError::CaMismatch {
        server: server.to_owned(),
        pinned: pin.to_owned(),
        presented: if seen.is_empty() {
            "no certificate jotasu can read".into()
        } else {
            seen.join(", ")
        },
    })
}

/// Joins through the first of `servers` (its https ones) that answers;
/// a refusal or a CA mismatch is final, an unreachable server is skipped.
pub async fn join_any(
    servers: &[ServerUrl],
    node: &str,
    token: &str,
    pin: &str,
) -> Result<Stored, CredentialsError> {
    let mut last = None;
    for server in servers
        .iter()
        .filter(|s| matches!(s, ServerUrl::Https { .. }))
    {
        match join(server, node, token, pin).await {
            Err(e @ CredentialsError::Connect { .. }) => {
                tracing::warn!(server = %server, error = %e, "cannot join through this control plane; trying the next");
                last = Some(e);
            }
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| CredentialsError::JoinNeedsHttps {
        server: servers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }))
}

/// Joins through the https control plane `server` with `token`, trusting
/// the CA whose hash is `pin`. Nothing is written here: the caller stores
/// the result.
pub async fn join(
    server: &ServerUrl,
    node: &str,
    token: &str,
    pin: &str,
) -> Result<Stored, CredentialsError> {
    let ServerUrl::Https { url, .. } = server else {
        return Err(CredentialsError::JoinNeedsHttps {
            server: server.to_string(),
        });
    };
    let chain = fetch_ca_from_handshake(url)
        .await
        .map_err(|source| CredentialsError::Connect {
            what: "fetching the cluster CA",
            source,
        })?;
    let ca_pem = pin_ca(url, &chain, pin)?;
    info!(server = %url, ca = %pin, "the control plane's CA matches --ca-cert-hash");
    let creds = Credentials::ca_only(&ca_pem).map_err(|e| CredentialsError::Certificate {
        what: "the cluster CA",
        source: e,
    })?;
    let client = Client::connect_with_credentials(server, Arc::new(creds))
        .await
        .map_err(|source| CredentialsError::Connect {
            what: "connecting with the pinned CA",
            source,
        })?;
    let stored = obtain(&client, url, node, &ca_pem, Some(token)).await?;
    info!(%node, server = %url, "joined: the control plane issued this node's certificate");
    Ok(stored)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::credentials::testing::FakeSource;
    use jotasu_controlplane::pki::{Signer, ensure};
    use std::time::Duration;

    #[tokio::test]
    async fn obtains_a_checked_certificate() {
        let f = FakeSource::new();
        let ca = f.ca_pem();
        let stored = obtain(&f, "https://cp:6443", "n1", &ca, Some("abc.def"))
            .await
            .unwrap();
        let info = super::super::check::check_stored(
            &stored,
            "n1",
            jotasu_api::meta::unix_now(),
            Some(&ca_cert_hash(&ca).unwrap()),
        )
        .unwrap();
        assert_eq!(info.node_name(), Some("n1"));
    }

    #[tokio::test]
    async fn a_certificate_for_another_node_or_ca_is_refused() {
        let mut f = FakeSource::new();
        let ca = f.ca_pem();
        f.sign_as = Some("n2".into());
        let e = obtain(&f, "https://cp:6443", "n1", &ca, None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("system:node:n2"), "{e}");
        let other_ca = FakeSource::new().ca_pem();
        f.sign_as = None;
        let e = obtain(&f, "https://cp:6443", "n1", &other_ca, None)
            .await
            .unwrap_err();
        assert!(matches!(e, CredentialsError::BadIssued { .. }), "{e}");
    }

    #[tokio::test]
    async fn the_servers_refusal_is_reported_with_its_message() {
        let mut f = FakeSource::new();
        let ca = f.ca_pem();
        f.refuse = Some(tonic::Status::unauthenticated(
            "bootstrap token \"abcdef\" has expired",
        ));
        let e = obtain(&f, "https://cp:6443", "n1", &ca, Some("abcdef.x"))
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, CredentialsError::Refused { .. }), "{text}");
        assert!(
            text.contains("bootstrap token \"abcdef\" has expired"),
            "{text}"
        );
        f.refuse = Some(tonic::Status::permission_denied("node name n1 is taken"));
        let e = obtain(&f, "https://cp:6443", "n1", &ca, Some("abcdef.x"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("node name n1 is taken"), "{e}");
    }

    #[test]
    fn pins_the_ca_of_the_chain() {
        let f = FakeSource::new();
        let tls = ensure(&f.paths, &[]).unwrap();
        let chain: Vec<String> = jotasu_api::client::identity::certs_from_pem("c", &tls.cert_pem)
            .unwrap()
            .iter()
            .map(|c| jotasu_api::client::identity::cert_to_pem(c))
            .collect();
        let pin = ca_cert_hash(&tls.ca_pem).unwrap();
        let ca = pin_ca("https://cp:6443", &chain, &pin).unwrap();
        assert_eq!(ca_cert_hash(&ca).unwrap(), pin);
        // The leaf's hash pins no CA.
        let leaf_pin = ca_cert_hash(&chain[0]).unwrap();
        let e = pin_ca("https://cp:6443", &chain, &leaf_pin).unwrap_err();
        assert!(e.to_string().contains("not a CA"), "{e}");
        let wrong = format!("sha256:{}", "0".repeat(64));
        let e = pin_ca("https://cp:6443", &chain, &wrong).unwrap_err();
        let text = e.to_string();
        assert!(text.contains(&wrong) && text.contains(&pin), "{text}");
    }

    #[test]
    fn the_csr_is_for_the_node() {
        let f = FakeSource::new();
        let (key, csr) = new_key_and_csr("n1").unwrap();
        let issued = Signer::load(&f.paths)
            .unwrap()
            .sign_node_csr("n1", &csr, Duration::from_secs(60))
            .unwrap();
        Credentials::from_pem(&f.ca_pem(), &issued.cert_pem, &key).unwrap();
    }
}
