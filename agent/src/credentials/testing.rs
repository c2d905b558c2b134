//! A certificate source for tests: signs with a real cluster CA in a temp
//! dir (the control plane's own `Signer`), or refuses as a server would.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use jotasu_api::client::{ClientError, NodeCertificate};
use jotasu_controlplane::pki::{PkiPaths, Signer, ensure};

use super::join::CertificateSource;

/// Signs what it is sent (as `sign_as`, when set), or answers `refuse`.
pub(crate) struct FakeSource {
    pub signer: Signer,
    pub sign_as: Option<String>,
    pub refuse: Option<tonic::Status>,
    pub lifetime: Duration,
    pub _dir: tempfile::TempDir,
    pub paths: PkiPaths,
}

impl FakeSource {
    /// A new cluster CA.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let paths = PkiPaths::new(dir.path());
        ensure(&paths, &[]).unwrap();
        Self {
            signer: Signer::load(&paths).unwrap(),
            sign_as: None,
            refuse: None,
            lifetime: Duration::from_secs(60),
            _dir: dir,
            paths,
        }
    }

    /// The CA, PEM.
    pub fn ca_pem(&self) -> String {
        self.signer.ca_pem().to_owned()
    }
}

impl CertificateSource for FakeSource {
    async fn request(
        &self,
        node: &str,
        csr_pem: &str,
        _token: Option<&str>,
    ) -> Result<NodeCertificate, ClientError> {
        if let Some(status) = &self.refuse {
            return Err(status.clone().into());
        }
        let as_node = self.sign_as.as_deref().unwrap_or(node);
        let issued = self
            .signer
            .sign_node_csr(as_node, csr_pem, self.lifetime)
            .unwrap();
        Ok(NodeCertificate {
            certificate_pem: issued.cert_pem,
            ca_pem: self.signer.ca_pem().to_owned(),
        })
    }
}
