//! TLS toward agents: the control plane trusts only the cluster CA, checks
//! that the agent's certificate is for the node it means to call (the
//! TLS server name is the node's name, which its certificate carries as a
//! DNS name), and presents its own client certificate
//! (`system:jotasu-controlplane`, the only caller an agent serves).

use std::net::SocketAddr;
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::pki::{PkiError, PkiPaths};

/// The control plane's TLS material toward agents.
#[derive(Debug, Clone)]
pub struct AgentTls {
    ca: Certificate,
    identity: Identity,
}

impl AgentTls {
    /// From PEM text: the cluster CA, the control plane's client
    /// certificate and key.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Self {
        Self {
            ca: Certificate::from_pem(ca_pem),
            identity: Identity::from_pem(cert_pem, key_pem),
        }
    }

    /// From the PKI that [`crate::pki::ensure`] created.
    pub fn load(paths: &PkiPaths) -> Result<Self, PkiError> {
        let read = |path: std::path::PathBuf| {
            std::fs::read_to_string(&path).map_err(|source| PkiError::Io { path, source })
        };
        Ok(Self::from_pem(
            &read(paths.ca_cert())?,
            &read(paths.controlplane_client_cert())?,
            &read(paths.controlplane_client_key())?,
        ))
    }

    /// An endpoint for the agent of `node` at `address`: its certificate
    /// must be the cluster CA's, for the DNS name `node`.
    pub fn endpoint(
        &self,
        node: &str,
        address: SocketAddr,
    ) -> Result<Endpoint, tonic::transport::Error> {
        let config = ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
            .domain_name(node);
        Endpoint::from_shared(format!("https://{address}"))?
            .tls_config(config)
            .map(|e| e.connect_timeout(Duration::from_secs(5)))
    }
}
