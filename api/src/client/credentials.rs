//! TLS credentials that can change while they are in use: the cluster CA,
//! a certificate chain and its key, held behind one [`Credentials`] that
//! connections read at each handshake. When an agent renews its node
//! certificate it [`Credentials::replace`]s them: every new connection
//! (client or server) presents the new certificate, and client
//! connections opened with the old one are closed so they reconnect
//! with it (as the kubelet does after rotating its certificate).

use std::fmt;
use std::sync::{Arc, RwLock};

use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;

use super::identity::{CertError, CertInfo, certs_from_pem};

/// The crypto provider of every TLS connection jotasu makes (ring, as
/// tonic's `tls-ring`).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One set of PEM material, parsed once.
pub struct Material {
    ca_pem: String,
    cert_pem: Option<String>,
    key_pem: Option<String>,
    roots: Arc<RootCertStore>,
    server_verifier: Arc<WebPkiServerVerifier>,
    certified_key: Option<Arc<CertifiedKey>>,
    identity: Option<CertInfo>,
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Material")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Material {
    /// Parses `ca_pem` (one or more CA certificates) and, when given, a
    /// certificate chain (leaf first) with its PEM private key.
    pub fn new(ca_pem: &str, cert_and_key: Option<(&str, &str)>) -> Result<Self, CertError> {
        let provider = provider();
        let mut roots = RootCertStore::empty();
        for ca in certs_from_pem("CA certificate", ca_pem)? {
            roots.add(ca).map_err(|e| CertError::Tls {
                what: "CA certificate",
                reason: e.to_string(),
            })?;
        }
        let roots = Arc::new(roots);
        let server_verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(|e| CertError::Tls {
                    what: "CA certificate",
                    reason: e.to_string(),
                })?;
        let (certified_key, identity) = match cert_and_key {
            Some((cert_pem, key_pem)) => {
                let chain = certs_from_pem("certificate", cert_pem)?;
                let identity = chain
                    .first()
                    .map(|c| CertInfo::from_der("certificate", c))
                    .transpose()?;
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| {
                    CertError::Pem {
                        what: "private key",
                        expected: "PRIVATE KEY",
                        reason: e.to_string(),
                    }
                })?;
                let certified =
                    CertifiedKey::from_der(chain, key, &provider).map_err(|e| CertError::Tls {
                        what: "certificate and key",
                        reason: e.to_string(),
                    })?;
                (Some(Arc::new(certified)), identity)
            }
            None => (None, None),
        };
        Ok(Self {
            ca_pem: ca_pem.to_owned(),
            cert_pem: cert_and_key.map(|(c, _)| c.to_owned()),
            key_pem: cert_and_key.map(|(_, k)| k.to_owned()),
            roots,
            server_verifier,
            certified_key,
            identity,
        })
    }

    /// The CA certificate(s), PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The certificate chain, PEM (None: CA only).
    pub fn cert_pem(&self) -> Option<&str> {
        self.cert_pem.as_deref()
    }

    /// The private key, PEM.
    pub fn key_pem(&self) -> Option<&str> {
        self.key_pem.as_deref()
    }

    /// The CA certificates as trust roots.
    pub fn roots(&self) -> &Arc<RootCertStore> {
        &self.roots
    }

    /// Verifies servers against the CA.
    pub fn server_verifier(&self) -> &Arc<WebPkiServerVerifier> {
        &self.server_verifier
    }

    /// The chain and key for rustls (None: CA only).
    pub fn certified_key(&self) -> Option<&Arc<CertifiedKey>> {
        self.certified_key.as_ref()
    }

    /// What the certificate says (None: CA only).
    pub fn identity(&self) -> Option<&CertInfo> {
        self.identity.as_ref()
    }

    /// The leaf certificate, DER.
    pub fn leaf_der(&self) -> Option<&CertificateDer<'static>> {
        self.certified_key.as_ref().and_then(|k| k.cert.first())
    }
}

/// The current [`Material`], replaceable at run time. Share it as
/// `Arc<Credentials>`.
pub struct Credentials {
    current: RwLock<Arc<Material>>,
    generation: watch::Sender<u64>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("current", &self.current())
            .field("generation", &*self.generation.borrow())
            .finish()
    }
}

impl Credentials {
    /// Holds `material`.
    pub fn new(material: Material) -> Self {
        Self {
            current: RwLock::new(Arc::new(material)),
            generation: watch::Sender::new(0),
        }
    }

    /// A CA and a client (or serving) certificate with its key, all PEM.
    pub fn from_pem(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        Material::new(ca_pem, Some((cert_pem, key_pem))).map(Self::new)
    }

    /// Only a CA: the server is verified, no client certificate is sent.
    pub fn ca_only(ca_pem: &str) -> Result<Self, CertError> {
        Material::new(ca_pem, None).map(Self::new)
    }

    /// What is held now.
    pub fn current(&self) -> Arc<Material> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Holds `material` from now on: new connections use it, client
    /// connections made with the old material are closed.
    pub fn replace(&self, material: Material) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(material);
        self.generation.send_modify(|g| *g += 1);
    }

    /// How many times the material was replaced, and a way to wait for the
    /// next time.
    pub fn generation(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

/// Presents the held certificate as a TLS client.
#[derive(Debug)]
pub struct ClientCertResolver(pub Arc<Credentials>);

impl rustls::client::ResolvesClientCert for ClientCertResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.current().certified_key().cloned()
    }

    fn has_certs(&self) -> bool {
        self.0.current().certified_key().is_some()
    }
}

/// Presents the held certificate as a TLS server (None aborts the handshake).
#[derive(Debug)]
pub struct ServerCertResolver(pub Arc<Credentials>);

impl rustls::server::ResolvesServerCert for ServerCertResolver {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.current().certified_key().cloned()
    }
}

/// Verifies servers against the held CA (read at each handshake).
#[derive(Debug)]
pub struct HeldCaVerifier(pub Arc<Credentials>);

impl rustls::client::danger::ServerCertVerifier for HeldCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.0.current().server_verifier().verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0
            .current()
            .server_verifier()
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0
            .current()
            .server_verifier()
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0
            .current()
            .server_verifier()
            .supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    fn ca() -> (String, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, "ca");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = p.self_signed(&key).unwrap().pem();
        (pem, Issuer::new(p, key))
    }

    fn leaf(issuer: &Issuer<'_, KeyPair>, cn: &str) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["n1".to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        (
            p.signed_by(&key, issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    }

    #[test]
    fn replacing_bumps_the_generation_and_the_identity() {
        let (ca_pem, issuer) = ca();
        let (c1, k1) = leaf(&issuer, "one");
        let creds = Arc::new(Credentials::from_pem(&ca_pem, &c1, &k1).unwrap());
        let rx = creds.generation();
        assert_eq!(creds.current().identity().unwrap().common_name, "one");
        let (c2, k2) = leaf(&issuer, "two");
        creds.replace(Material::new(&ca_pem, Some((&c2, &k2))).unwrap());
        assert_eq!(*rx.borrow(), 1);
        assert_eq!(creds.current().identity().unwrap().common_name, "two");
        use rustls::client::ResolvesClientCert as _;
        let resolver = ClientCertResolver(Arc::clone(&creds));
        assert!(resolver.has_certs());
        let presented = resolver.resolve(&[], &[]).unwrap();
        assert_eq!(Some(&presented.cert[0]), creds.current().leaf_der());
        assert!(!ClientCertResolver(Arc::new(Credentials::ca_only(&ca_pem).unwrap())).has_certs());
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (ca_pem, issuer) = ca();
        let (c1, _) = leaf(&issuer, "one");
        let (_, k2) = leaf(&issuer, "two");
        let e = Credentials::from_pem(&ca_pem, &c1, &k2).unwrap_err();
        assert!(matches!(e, CertError::Tls { .. }), "{e}");
        assert!(Credentials::from_pem(&ca_pem, &c1, "nonsense").is_err());
        assert!(Credentials::ca_only("nonsense").is_err());
    }
}
