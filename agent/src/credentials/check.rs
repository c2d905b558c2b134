//! Whether a node certificate can be used: it is for `system:node:<node>`,
//! was issued by the cluster CA, is valid now, and matches its key — as
//! pure functions of the PEM text and the time.

use std::fmt;

use jotasu_api::client::identity::{
    CertInfo, ca_cert_hash, first_cert, node_user, verify_issued_by,
};
use jotasu_api::client::{Credentials, Material};

use super::files::Stored;

/// Why a certificate cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// The PEM text is not a certificate (or key) jotasu can read.
    Unreadable(String),
    /// It names another user.
    OtherIdentity {
        /// Who it is for.
        found: String,
        /// Who it should be for.
        wanted: String,
    },
    /// The cluster CA did not issue it.
    NotIssuedByCa(String),
    /// Expired (or not valid yet).
    OutsideValidity {
        /// Valid from (Unix seconds).
        not_before: i64,
        /// Valid until (Unix seconds).
        not_after: i64,
    },
    /// The stored CA is not the one `--ca-cert-hash` pins.
    OtherCa {
        /// The stored CA's hash.
        stored: String,
        /// The pin.
        pinned: String,
    },
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::Unreadable(reason) => write!(f, "it cannot be read: {reason}"),
            Unusable::OtherIdentity { found, wanted } => {
                write!(f, "it is for {found:?}, not {wanted:?}")
            }
            Unusable::NotIssuedByCa(reason) => write!(f, "{reason}"),
            Unusable::OutsideValidity {
                not_before,
                not_after,
            } => write!(
                f,
                "it is valid only from {} to {}",
                jotasu_api::Time::from_unix_seconds(*not_before).0,
                jotasu_api::Time::from_unix_seconds(*not_after).0
            ),
            Unusable::OtherCa { stored, pinned } => write!(
                f,
                "its CA is {stored}, but --ca-cert-hash pins {pinned} (a new cluster?)"
            ),
        }
    }
}

/// Checks that `cert_pem` is node `node`'s certificate, issued by the CA
/// of `ca_pem` and valid at `now`; returns what it says.
pub fn check_certificate(
    node: &str,
    ca_pem: &str,
    cert_pem: &str,
    now: i64,
) -> Result<CertInfo, Unusable> {
    let unreadable =
        |e: jotasu_api::client::identity::CertError| Unusable::Unreadable(e.to_string());
    let info = CertInfo::from_pem("node certificate", cert_pem).map_err(unreadable)?;
    let wanted = node_user(node);
    if info.common_name != wanted {
        return Err(Unusable::OtherIdentity {
            found: info.common_name,
            wanted,
        });
    }
    let cert = first_cert("node certificate", cert_pem).map_err(unreadable)?;
    let ca = first_cert("CA certificate", ca_pem).map_err(unreadable)?;
    verify_issued_by("node certificate", &cert, &ca)
        .map_err(|e| Unusable::NotIssuedByCa(e.to_string()))?;
    if !info.valid_at(now) {
        return Err(Unusable::OutsideValidity {
            not_before: info.not_before,
            not_after: info.not_after,
        });
    }
    Ok(info)
}

/// Checks stored credentials: [`check_certificate`], the key matches the
/// certificate, and the CA is the pinned one (when a pin is given).
pub fn check_stored(
    stored: &Stored,
    node: &str,
    now: i64,
    pin: Option<&str>,
) -> Result<CertInfo, Unusable> {
    if let Some(pinned) = pin {
        let hash = ca_cert_hash(&stored.ca_pem).map_err(|e| Unusable::Unreadable(e.to_string()))?;
        if hash != pinned {
            return Err(Unusable::OtherCa {
                stored: hash,
                pinned: pinned.to_owned(),
            });
        }
    }
    let info = check_certificate(node, &stored.ca_pem, &stored.cert_pem, now)?;
    material(stored).map_err(|e| Unusable::Unreadable(e.to_string()))?;
    Ok(info)
}

/// The TLS material of stored credentials.
pub fn material(stored: &Stored) -> Result<Material, jotasu_api::client::identity::CertError> {
    Material::new(&stored.ca_pem, Some((&stored.cert_pem, &stored.key_pem)))
}

/// [`Credentials`] holding stored credentials.
pub fn credentials(
    stored: &Stored,
) -> Result<Credentials, jotasu_api::client::identity::CertError> {
    material(stored).map(Credentials::new)
}
