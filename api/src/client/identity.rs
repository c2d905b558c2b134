//! Who a certificate says its holder is (the CN is the user, the O values
//! its groups, as Kubernetes reads client certificates), whether it was
//! issued by a CA, and the CA's pin in kubeadm's `sha256:<hex>` form.
//! Shared by the control plane and the agents, so both read certificates
//! the same way.

use base64::Engine as _;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use sha2::{Digest as _, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// The control plane's own client identity toward agents (the only
/// caller a node's agent serves).
pub const CONTROLPLANE_USER: &str = "system:jotasu-controlplane";
/// The prefix of a node's user name: `system:node:<name>`.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The group of nodes' agents.
pub const NODES_GROUP: &str = "system:nodes";

/// The prefix of a CA pin (`--ca-cert-hash sha256:<hex>`).
const HASH_PREFIX: &str = "sha256:";

/// A certificate could not be read or is not what it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The PEM text holds no certificate (or no key).
    #[error("the {what} holds no PEM {expected}: {reason}")]
    Pem {
        /// What the text is, e.g. `node certificate`.
        what: &'static str,
        /// What was looked for (`CERTIFICATE`, `PRIVATE KEY`).
        expected: &'static str,
        /// Why nothing was found.
        reason: String,
    },
    /// The DER is not an X.509 certificate.
    #[error("the {what} is not a valid X.509 certificate: {reason}")]
    Parse {
        /// What the certificate is.
        what: &'static str,
        /// The parser's reason.
        reason: String,
    },
    /// A certificate was not issued by the CA it should chain to.
    #[error("the {what} was not issued by the cluster CA: {reason}")]
    NotIssuedBy {
        /// What the certificate is.
        what: &'static str,
        /// Why it does not chain.
        reason: String,
    },
    /// A CA pin is not `sha256:` and 64 hex digits.
    #[error(
        "invalid CA certificate hash {given:?}: expected sha256:<64 hex digits>, as `jotasu-controlplane token create` prints it"
    )]
    BadHash {
        /// The pin as given.
        given: String,
    },
    /// A private key or certificate chain was refused by the TLS library.
    #[error("the {what} cannot be used for TLS: {reason}")]
    Tls {
        /// What was being loaded.
        what: &'static str,
        /// The TLS library's reason.
        reason: String,
    },
}

/// What a certificate says about its holder, and when it is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject's CN (empty when it has none): the user name.
    pub common_name: String,
    /// The subject's O values: the user's groups.
    pub organizations: Vec<String>,
    /// Its DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// Valid from (Unix seconds).
    pub not_before: i64,
    /// Valid until (Unix seconds).
    pub not_after: i64,
    /// Whether it is a CA certificate (basicConstraints CA:TRUE).
    pub is_ca: bool,
}

fn parse<'a>(what: &'static str, der: &'a [u8]) -> Result<X509Certificate<'a>, CertError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| CertError::Parse {
        what,
        reason: e.to_string(),
    })?;
    Ok(cert)
}

impl CertInfo {
    /// Reads a DER certificate (`what` names it in errors).
    pub fn from_der(what: &'static str, der: &[u8]) -> Result<Self, CertError> {
        let cert = parse(what, der)?;
        let values = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| {
            it.filter_map(|a| a.as_str().ok().map(str::to_owned))
                .collect::<Vec<_>>()
        };
        let common_name = values(&mut cert.subject().iter_common_name())
            .into_iter()
            .next()
            .unwrap_or_default();
        let organizations = values(&mut cert.subject().iter_organization());
        let dns_names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::DNSName(d) => Some((*d).to_owned()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            common_name,
            organizations,
            dns_names,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            is_ca: cert.is_ca(),
        })
    }

    /// Reads the first certificate of a PEM text.
    pub fn from_pem(what: &'static str, pem: &str) -> Result<Self, CertError> {
        let first = first_cert(what, pem)?;
        Self::from_der(what, &first)
    }

    /// The node this certificate is for, if its CN is `system:node:<name>`.
    pub fn node_name(&self) -> Option<&str> {
        self.common_name
            .strip_prefix(NODE_USER_PREFIX)
            .filter(|n| !n.is_empty())
    }

    /// Whether `unix` lies within its validity.
    pub fn valid_at(&self, unix: i64) -> bool {
        self.not_before <= unix && unix < self.not_after
    }
}

/// `system:node:<node>`.
pub fn node_user(node: &str) -> String {
    format!("{NODE_USER_PREFIX}{node}")
}

/// Every certificate of a PEM text, in order (`what` names it in errors).
pub fn certs_from_pem(
    what: &'static str,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::Pem {
            what,
            expected: "CERTIFICATE",
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(CertError::Pem {
            what,
            expected: "CERTIFICATE",
            reason: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// The first certificate of a PEM text.
pub fn first_cert(what: &'static str, pem: &str) -> Result<CertificateDer<'static>, CertError> {
    certs_from_pem(what, pem)?
        .into_iter()
        .next()
        .ok_or_else(|| CertError::Pem {
            what,
            expected: "CERTIFICATE",
            reason: "no CERTIFICATE block".into(),
        })
}

/// A DER certificate as PEM.
pub fn cert_to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// kubeadm's `--discovery-token-ca-cert-hash` of a DER CA certificate:
/// `sha256:` and the hex SHA-256 of its SubjectPublicKeyInfo.
pub fn ca_cert_hash_der(der: &[u8]) -> Result<String, CertError> {
    let cert = parse("CA certificate", der)?;
    let digest = Sha256::digest(cert.public_key().raw);
    Ok(format!("{HASH_PREFIX}{}", hex(&digest)))
}

/// [`ca_cert_hash_der`] of the first certificate of a PEM text.
pub fn ca_cert_hash(ca_pem: &str) -> Result<String, CertError> {
    ca_cert_hash_der(&first_cert("CA certificate", ca_pem)?)
}

/// A CA pin as given (`sha256:<hex>`, any case), normalized to lower case.
pub fn parse_ca_cert_hash(given: &str) -> Result<String, CertError> {
    let bad = || CertError::BadHash {
        given: given.to_owned(),
    };
    let hex_part = given
        .trim()
        .strip_prefix(HASH_PREFIX)
        .or_else(|| given.trim().strip_prefix("SHA256:"))
        .ok_or_else(bad)?;
    if hex_part.len() != 64 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    Ok(format!("{HASH_PREFIX}{}", hex_part.to_ascii_lowercase()))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Checks that `cert_der` was signed by the CA `ca_der` (its issuer is the
/// CA's subject and the CA's key verifies its signature) and that the CA
/// is a CA. Validity dates are the caller's to check ([`CertInfo`]).
pub fn verify_issued_by(
    what: &'static str,
    cert_der: &[u8],
    ca_der: &[u8],
) -> Result<(), CertError> {
    let ca = parse("CA certificate", ca_der)?;
    let cert = parse(what, cert_der)?;
    let refused = |reason: String| CertError::NotIssuedBy { what, reason };
    if !ca.is_ca() {
        return Err(refused("the CA certificate is not a CA".into()));
    }
    if cert.issuer().as_raw() != ca.subject().as_raw() {
        return Err(refused(format!(
            "its issuer is {:?}, the CA is {:?}",
            cert.issuer().to_string(),
            ca.subject().to_string()
        )));
    }
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|e| refused(format!("the CA's key does not verify its signature ({e})")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };

    fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = p.self_signed(&key).unwrap().pem();
        (pem, Issuer::new(p, key))
    }

    fn leaf(issuer: &Issuer<'_, KeyPair>, cn: &str, groups: &[&str]) -> String {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["n1".to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        for g in groups {
            p.distinguished_name.push(DnType::OrganizationName, *g);
        }
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.signed_by(&key, issuer).unwrap().pem()
    }

    #[test]
    fn reads_the_identity() {
        let (_, issuer) = ca("test-ca");
        let pem = leaf(&issuer, "system:node:n1", &[NODES_GROUP]);
        let info = CertInfo::from_pem("node certificate", &pem).unwrap();
        assert_eq!(info.common_name, "system:node:n1");
        assert_eq!(info.organizations, [NODES_GROUP]);
        assert_eq!(info.dns_names, ["n1"]);
        assert_eq!(info.node_name(), Some("n1"));
        assert!(!info.is_ca);
        assert!(info.valid_at(info.not_before));
        assert!(!info.valid_at(info.not_after));
        let cp = CertInfo::from_pem("c", &leaf(&issuer, CONTROLPLANE_USER, &[])).unwrap();
        assert_eq!(cp.node_name(), None);
        assert!(cp.organizations.is_empty());
        assert_eq!(node_user("n1"), "system:node:n1");
    }

    #[test]
    fn chains_only_to_its_ca() {
        let (ca_pem, issuer) = ca("test-ca");
        let (other_pem, other) = ca("test-ca");
        let pem = leaf(&issuer, "u", &[]);
        let der = first_cert("c", &pem).unwrap();
        let ca_der = first_cert("ca", &ca_pem).unwrap();
        verify_issued_by("user certificate", &der, &ca_der).unwrap();
        // Same subject, another key: the signature gives it away.
        let e = verify_issued_by(
            "user certificate",
            &der,
            &first_cert("ca", &other_pem).unwrap(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("does not verify"), "{e}");
        let forged = first_cert("c", &leaf(&other, "u", &[])).unwrap();
        assert!(verify_issued_by("c", &forged, &ca_der).is_err());
        // A leaf is no CA.
        assert!(verify_issued_by("c", &der, &der).is_err());
    }

    #[test]
    fn hashes_and_pins() {
        let (ca_pem, _) = ca("test-ca");
        let (other_pem, _) = ca("test-ca");
        let h = ca_cert_hash(&ca_pem).unwrap();
        assert!(h.starts_with("sha256:") && h.len() == 7 + 64, "{h}");
        assert_eq!(h, ca_cert_hash(&ca_pem).unwrap());
        assert_ne!(h, ca_cert_hash(&other_pem).unwrap());
        assert_eq!(
            parse_ca_cert_hash(&h.to_ascii_uppercase().replace("SHA256", "sha256")).unwrap(),
            h
        );
        for bad in ["", "sha256:", "md5:00", &h[..70], &format!("{h}0"), &h[7..]] {
            assert!(parse_ca_cert_hash(bad).is_err(), "{bad}");
        }
        // PEM out, PEM in.
        let der = first_cert("ca", &ca_pem).unwrap();
        assert_eq!(first_cert("ca", &cert_to_pem(&der)).unwrap(), der);
        assert!(certs_from_pem("ca", "garbage").is_err());
        assert!(CertInfo::from_der("ca", b"garbage").is_err());
    }
}
