//! The cluster's PKI, created on first start in `<data-dir>/pki/` (like
//! k3s's): a CA, the API server's certificate for the TCP listener (its
//! names from `--tls-san` plus localhost), an admin client certificate
//! (`system:masters`) and the control plane's own client certificate
//! toward agents (`system:jotasu-controlplane`) — see [`ensure`]. The
//! [`Signer`] issues node certificates from agents' CSRs and user
//! certificates. The TCP listener requires client certificates signed by
//! the CA (mutual TLS); the unix socket relies on its file mode (0600).

mod ensure;
mod signer;
mod subject;

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use jotasu_api::client::identity::CertError;
use time::OffsetDateTime;

pub use ensure::{ServerTls, ensure};
pub use signer::{IssuedNode, Signer};

/// A PKI problem.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file.
    #[error("PKI file {path}: {source}; check the data dir's permissions")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Generating or parsing a key or certificate.
    #[error("PKI: {what}: {source}; remove {dir} to start over with a new CA")]
    Cert {
        /// What was being done.
        what: &'static str,
        /// The directory.
        dir: PathBuf,
        /// The error.
        source: rcgen::Error,
    },
    /// A certificate of the PKI cannot be read.
    #[error("PKI: {0}")]
    Identity(#[from] CertError),
    /// A node's certificate signing request is not a valid, self-signed PKCS#10 CSR.
    #[error(
        "the certificate signing request for node {node:?} is invalid: {reason}; send a PEM PKCS#10 CSR signed by the node's key"
    )]
    BadCsr {
        /// The node.
        node: String,
        /// Why.
        reason: String,
    },
    /// A name cannot go into a certificate.
    #[error("cannot issue a certificate for {what} {name:?}: {reason}")]
    BadName {
        /// `node` or `user`.
        what: &'static str,
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// Paths of the PKI files.
#[derive(Debug, Clone)]
pub struct PkiPaths {
    /// The directory.
    pub dir: PathBuf,
}

impl PkiPaths {
    /// The PKI under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("pki"),
        }
    }

    /// A file in it.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.file("ca.crt")
    }

    /// The CA key.
    pub fn ca_key(&self) -> PathBuf {
        self.file("ca.key")
    }

    /// The API server's certificate (the leaf alone).
    pub fn server_cert(&self) -> PathBuf {
        self.file("server.crt")
    }

    /// The API server's key.
    pub fn server_key(&self) -> PathBuf {
        self.file("server.key")
    }

    /// The admin client certificate (`system:masters`).
    pub fn admin_cert(&self) -> PathBuf {
        self.file("admin.crt")
    }

    /// The admin client key.
    pub fn admin_key(&self) -> PathBuf {
        self.file("admin.key")
    }

    /// The control plane's client certificate toward agents
    /// (`system:jotasu-controlplane`).
    pub fn controlplane_client_cert(&self) -> PathBuf {
        self.file("controlplane-client.crt")
    }

    /// The control plane's client key toward agents.
    pub fn controlplane_client_key(&self) -> PathBuf {
        self.file("controlplane-client.key")
    }
}

/// kubeadm's `--discovery-token-ca-cert-hash` of a PEM CA certificate:
/// `sha256:<hex>` of its SubjectPublicKeyInfo (what `jotasu-agent
/// --ca-cert-hash` expects).
pub fn ca_cert_hash(ca_pem: &str) -> Result<String, PkiError> {
    Ok(jotasu_api::client::identity::ca_cert_hash(ca_pem)?)
}

/// A Unix time as a certificate time (second precision; out of range
/// clamps to the Unix epoch, which no caller reaches).
fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A random positive 128-bit serial number.
fn serial() -> rcgen::SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] &= 0x7f;
    rcgen::SerialNumber::from_slice(&bytes)
}

/// Writes `path` atomically with `mode`.
fn write(path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_owned(),
        source,
    })
}
