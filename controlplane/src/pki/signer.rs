//! Issuing certificates with the cluster CA: a node's from the CSR its
//! agent sent (only the key is taken from it; the identity is the
//! control plane's to decide), and users' with a fresh key.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use jotasu_api::client::identity::{NODES_GROUP, cert_to_pem, hex, node_user};
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData as _,
};
use sha2::{Digest as _, Sha256};

use super::{PkiError, PkiPaths, at, read, serial, subject};

/// How far back an issued certificate is valid from, for clocks a little behind.
const BACKDATE_SECONDS: i64 = 300;

/// A node certificate just issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedNode {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Lower-case hex SHA-256 of the certified SubjectPublicKeyInfo (DER).
    pub public_key_sha256: String,
}

/// Signs with the cluster CA. Load it once; it holds the CA key.
pub struct Signer {
    dir: PathBuf,
    ca_pem: String,
    ca_key: KeyPair,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Loads the CA that [`super::ensure`] created.
    pub fn load(paths: &PkiPaths) -> Result<Self, PkiError> {
        let cert_err = |what: &'static str| {
            let dir = paths.dir.clone();
            move |source| PkiError::Cert { what, dir, source }
        };
        let ca_pem = read(&paths.ca_cert())?;
        let ca_key =
            KeyPair::from_pem(&read(&paths.ca_key())?).map_err(cert_err("reading the CA key"))?;
        Issuer::from_ca_cert_pem(&ca_pem, &ca_key)
            .map_err(cert_err("reading the CA certificate"))?;
        Ok(Self {
            dir: paths.dir.clone(),
            ca_pem,
            ca_key,
        })
    }

    fn issuer(&self) -> Result<Issuer<'static, &KeyPair>, PkiError> {
        Issuer::from_ca_cert_pem(&self.ca_pem, &self.ca_key)
            .map_err(self.cert_err("reading the CA certificate"))
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    fn cert_err(&self, what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
        let dir = self.dir.clone();
        move |source| PkiError::Cert { what, dir, source }
    }

    /// Signs the key of `csr_pem` (a PKCS#10 CSR, PEM, whose self-signature
    /// must verify) as node `node`'s certificate for `lifetime`. What the
    /// CSR asks for is ignored: the certificate is for CN
    /// `system:node:<node>`, O `system:nodes`, DNS name `<node>`, client
    /// and server authentication, valid from five minutes ago.
    pub fn sign_node_csr(
        &self,
        node: &str,
        csr_pem: &str,
        lifetime: Duration,
    ) -> Result<IssuedNode, PkiError> {
        jotasu_api::validate::names::dns1123_subdomain(node).map_err(|reason| {
            PkiError::BadName {
                what: "node",
                name: node.to_owned(),
                reason,
            }
        })?;
        let csr =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| PkiError::BadCsr {
                node: node.to_owned(),
                reason: e.to_string(),
            })?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, node_user(node));
        dn.push(DnType::OrganizationName, NODES_GROUP);
        let params = self
            .leaf(
                dn,
                vec![node.to_owned()],
                vec![
                    ExtendedKeyUsagePurpose::ClientAuth,
                    ExtendedKeyUsagePurpose::ServerAuth,
                ],
                lifetime,
            )
            .map_err(self.cert_err("node certificate parameters"))?;
        let cert = params
            .signed_by(&csr.public_key, &self.issuer()?)
            .map_err(self.cert_err("signing a node certificate"))?;
        Ok(IssuedNode {
            cert_pem: cert.pem(),
            public_key_sha256: hex(&Sha256::digest(csr.public_key.subject_public_key_info())),
        })
    }

    /// A new key and a client certificate for `user` in `groups` (its O
    /// values), valid for `lifetime`: `(certificate PEM, key PEM)`.
    pub fn issue_client(
        &self,
        user: &str,
        groups: &[String],
        lifetime: Duration,
    ) -> Result<(String, String), PkiError> {
        let bad = |reason: &str| PkiError::BadName {
            what: "user",
            name: user.to_owned(),
            reason: reason.to_owned(),
        };
        if user.is_empty() {
            return Err(bad("a user name may not be empty"));
        }
        if user.chars().any(char::is_control)
            || groups.iter().any(|g| g.chars().any(char::is_control))
        {
            return Err(bad("names and groups may not hold control characters"));
        }
        // rcgen holds one O value at most: the subject is set afterwards.
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, user);
        let params = self
            .leaf(
                dn,
                Vec::new(),
                vec![ExtendedKeyUsagePurpose::ClientAuth],
                lifetime,
            )
            .map_err(self.cert_err("client certificate parameters"))?;
        let key = KeyPair::generate().map_err(self.cert_err("generating a client key"))?;
        let cert = params
            .signed_by(&key, &self.issuer()?)
            .map_err(self.cert_err("signing a client certificate"))?;
        let der = subject::replace_subject(cert.der(), &subject::name(user, groups), &self.ca_key)
            .map_err(self.cert_err("signing a client certificate"))?;
        Ok((cert_to_pem(&der), key.serialize_pem()))
    }

    /// A leaf's parameters: valid from [`BACKDATE_SECONDS`] ago until
    /// `lifetime` from now, to the second.
    fn leaf(
        &self,
        dn: DistinguishedName,
        names: Vec<String>,
        usages: Vec<ExtendedKeyUsagePurpose>,
        lifetime: Duration,
    ) -> Result<CertificateParams, rcgen::Error> {
        let now = jotasu_api::meta::unix_now();
        let mut p = CertificateParams::new(names)?;
        p.distinguished_name = dn;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = usages;
        p.use_authority_key_identifier_extension = true;
        p.serial_number = Some(serial());
        p.not_before = at(now - BACKDATE_SECONDS);
        let seconds = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        p.not_after = at(now.saturating_add(seconds));
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::pki::{ca_cert_hash, ensure};
    use jotasu_api::client::identity::{CertInfo, first_cert, verify_issued_by};

    fn signer() -> (tempfile::TempDir, Signer) {
        let dir = tempfile::tempdir().unwrap();
        let paths = PkiPaths::new(dir.path());
        ensure(&paths, &[]).unwrap();
        let signer = Signer::load(&paths).unwrap();
        (dir, signer)
    }

    /// A CSR as an agent (or an attacker) would send it.
    fn csr(cn: &str, groups: &[&str], sans: &[&str]) -> (String, KeyPair) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        for g in groups {
            p.distinguished_name.push(DnType::OrganizationName, *g);
        }
        (p.serialize_request(&key).unwrap().pem().unwrap(), key)
    }

    fn chains(signer: &Signer, pem: &str) {
        let ca = first_cert("ca", signer.ca_pem()).unwrap();
        verify_issued_by("issued", &first_cert("issued", pem).unwrap(), &ca).unwrap();
    }

    #[test]
    fn a_node_certificate_has_the_forced_identity_and_chains_to_the_ca() {
        let (_dir, signer) = signer();
        let (request, key) = csr("system:node:n1", &[NODES_GROUP], &[]);
        let issued = signer
            .sign_node_csr("n1", &request, Duration::from_secs(3600))
            .unwrap();
        chains(&signer, &issued.cert_pem);
        let info = CertInfo::from_pem("node", &issued.cert_pem).unwrap();
        assert_eq!(info.common_name, "system:node:n1");
        assert_eq!(info.organizations, [NODES_GROUP]);
        assert_eq!(info.dns_names, ["n1"]);
        assert_eq!(
            issued.public_key_sha256,
            hex(&Sha256::digest(key.subject_public_key_info()))
        );
        // The certified key is the CSR's: it serves with the node's key.
        jotasu_api::client::Credentials::from_pem(
            signer.ca_pem(),
            &issued.cert_pem,
            &key.serialize_pem(),
        )
        .unwrap();
    }

    #[test]
    fn what_the_csr_asks_for_is_overridden() {
        let (_dir, signer) = signer();
        let (request, _) = csr(
            "system:jotasu-controlplane",
            &["system:masters"],
            &["evil.example"],
        );
        let issued = signer
            .sign_node_csr("n2", &request, Duration::from_secs(60))
            .unwrap();
        let info = CertInfo::from_pem("node", &issued.cert_pem).unwrap();
        assert_eq!(info.common_name, "system:node:n2");
        assert_eq!(info.organizations, [NODES_GROUP]);
        assert_eq!(info.dns_names, ["n2"]);
        assert!(!info.is_ca);
    }

    #[test]
    fn garbage_and_bad_names_are_refused() {
        let (_dir, signer) = signer();
        let e = signer
            .sign_node_csr("n1", "not a csr", Duration::from_secs(60))
            .unwrap_err();
        assert!(matches!(e, PkiError::BadCsr { .. }), "{e}");
        // A certificate is no CSR.
        let e = signer
            .sign_node_csr("n1", signer.ca_pem(), Duration::from_secs(60))
            .unwrap_err();
        assert!(matches!(e, PkiError::BadCsr { .. }), "{e}");
        let (request, _) = csr("x", &[], &[]);
        let e = signer
            .sign_node_csr("Bad_Name", &request, Duration::from_secs(60))
            .unwrap_err();
        assert!(matches!(e, PkiError::BadName { .. }), "{e}");
    }

    #[test]
    fn a_tampered_csr_is_refused() {
        let (_dir, signer) = signer();
        let (request, _) = csr("system:node:n1", &[], &[]);
        // Flip a byte inside the signed body: the self-signature fails.
        let der = pem_body(&request);
        let mut tampered = der.clone();
        let i = tampered.len() / 3;
        tampered[i] ^= 0x01;
        let pem = pem_wrap("CERTIFICATE REQUEST", &tampered);
        assert!(
            signer
                .sign_node_csr("n1", &pem, Duration::from_secs(60))
                .is_err()
        );
    }

    fn pem_body(pem: &str) -> Vec<u8> {
        use base64::Engine as _;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap()
    }

    fn pem_wrap(label: &str, der: &[u8]) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n")
    }

    #[test]
    fn a_short_lifetime_is_honoured_to_the_second() {
        let (_dir, signer) = signer();
        let (request, _) = csr("n", &[], &[]);
        let before = jotasu_api::meta::unix_now();
        let issued = signer
            .sign_node_csr("n1", &request, Duration::from_secs(37))
            .unwrap();
        let after = jotasu_api::meta::unix_now();
        let info = CertInfo::from_pem("node", &issued.cert_pem).unwrap();
        assert!(
            (before + 37..=after + 37).contains(&info.not_after),
            "{} not in {}..={}",
            info.not_after,
            before + 37,
            after + 37
        );
        assert!((before - 300..=after - 300).contains(&info.not_before));
    }

    #[test]
    fn users_get_their_name_and_groups() {
        let (_dir, signer) = signer();
        let (cert, key) = signer
            .issue_client(
                "jane",
                &["dev".to_owned(), "ops".to_owned()],
                Duration::from_secs(3600),
            )
            .unwrap();
        chains(&signer, &cert);
        let info = CertInfo::from_pem("user", &cert).unwrap();
        assert_eq!(info.common_name, "jane");
        assert_eq!(info.organizations, ["dev", "ops"]);
        jotasu_api::client::Credentials::from_pem(signer.ca_pem(), &cert, &key).unwrap();
        assert!(
            signer
                .issue_client("", &[], Duration::from_secs(1))
                .is_err()
        );
        for groups in [vec![], vec!["system:masters".to_owned()]] {
            let (cert, _) = signer
                .issue_client("joe", &groups, Duration::from_secs(60))
                .unwrap();
            chains(&signer, &cert);
            let info = CertInfo::from_pem("user", &cert).unwrap();
            assert_eq!(
                (info.common_name.as_str(), info.organizations),
                ("joe", groups)
            );
        }
    }

    #[test]
    fn the_ca_hash_is_stable() {
        let (dir, signer) = signer();
        let h = ca_cert_hash(signer.ca_pem()).unwrap();
        assert_eq!(h, ca_cert_hash(signer.ca_pem()).unwrap());
        // A restart keeps the CA, so the hash printed for joins stays valid.
        let again = ensure(&PkiPaths::new(dir.path()), &["x".into()]).unwrap();
        assert_eq!(ca_cert_hash(&again.ca_pem).unwrap(), h);
        assert!(h.starts_with("sha256:"));
    }
}
