//! The cluster's PKI, created on first start in `<data-dir>/pki/` (like
//! k3s's): a CA, the API server's certificate for the TCP listener (its
//! names from `--tls-san` plus localhost), and an admin client
//! certificate. The TCP listener requires client certificates signed by
//! the CA (mutual TLS); the unix socket relies on its file mode (0600).
//! Leaf certificates are re-issued when the names change or within 30
//! days of expiry; the CA lasts ten years.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, date_time_ymd,
};
use serde::{Deserialize, Serialize};

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
}

/// The PEM material the TLS listener needs.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The CA certificate (clients' certificates must chain to it).
    pub ca_pem: String,
    /// The server certificate.
    pub cert_pem: String,
    /// The server key.
    pub key_pem: String,
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

    /// The admin client certificate.
    pub fn admin_cert(&self) -> PathBuf {
        self.file("admin.crt")
    }

    /// The admin client key.
    pub fn admin_key(&self) -> PathBuf {
        self.file("admin.key")
    }
}

/// What was issued, to decide when to re-issue.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    server_names: Vec<String>,
    leaf_not_after_unix: i64,
}

const DAY: i64 = 86_400;
const CA_YEARS: i32 = 10;
const LEAF_DAYS: i64 = 365;
const RENEW_BEFORE_DAYS: i64 = 30;

/// (year, month, day) of a Unix time, UTC.
fn ymd(unix: i64) -> (i32, u8, u8) {
    let t = jotasu_api::Time::from_unix_seconds(unix).0;
    let n = |r: std::ops::Range<usize>| t.get(r).and_then(|s| s.parse::<i32>().ok()).unwrap_or(1);
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    (
        y,
        u8::try_from(m).unwrap_or(1),
        u8::try_from(d).unwrap_or(1),
    )
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name.push(DnType::CommonName, "jotasu-ca");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(p)
}

fn leaf_params(
    common_name: &str,
    names: &[String],
    usage: ExtendedKeyUsagePurpose,
    now: i64,
) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(names.to_vec())?;
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![usage];
    p.use_authority_key_identifier_extension = true;
    let (y, m, d) = ymd(now - DAY);
    p.not_before = date_time_ymd(y, m, d);
    let (y, m, d) = ymd(now + LEAF_DAYS * DAY);
    p.not_after = date_time_ymd(y, m, d);
    Ok(p)
}

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

/// Creates what is missing or stale and returns the listener's material.
/// `server_names` are the DNS names and IPs the server certificate carries
/// (localhost and 127.0.0.1 are always added).
pub fn ensure(paths: &PkiPaths, server_names: &[String]) -> Result<ServerTls, PkiError> {
    let dir = &paths.dir;
    let cert_err = |what: &'static str| {
        let dir = dir.clone();
        move |source| PkiError::Cert { what, dir, source }
    };
    std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.clone(),
        source,
    })?;
    let now = jotasu_api::meta::unix_now();
    let ca_key_path = paths.file("ca.key");
    if !ca_key_path.exists() || !paths.ca_cert().exists() {
        let key = KeyPair::generate().map_err(cert_err("generating the CA key"))?;
        let mut params = ca_params().map_err(cert_err("CA parameters"))?;
        let (y, m, d) = ymd(now - DAY);
        params.not_before = date_time_ymd(y, m, d);
        params.not_after = date_time_ymd(y + CA_YEARS, m, d);
        let cert = params
            .self_signed(&key)
            .map_err(cert_err("self-signing the CA"))?;
        write(&ca_key_path, &key.serialize_pem(), 0o600)?;
        write(&paths.ca_cert(), &cert.pem(), 0o644)?;
        // A new CA invalidates every leaf.
        let _ = std::fs::remove_file(paths.file("state.json"));
    }
    let ca_pem = read(&paths.ca_cert())?;
    let ca_key = KeyPair::from_pem(&read(&ca_key_path)?).map_err(cert_err("reading the CA key"))?;
    let issuer = Issuer::new(ca_params().map_err(cert_err("CA parameters"))?, ca_key);

    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
    for n in server_names {
        if !names.contains(n) {
            names.push(n.clone());
        }
    }
    let state_path = paths.file("state.json");
    let state: State = std::fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let leaves = ["server.crt", "server.key", "admin.crt", "admin.key"];
    let fresh = state.server_names == names
        && state.leaf_not_after_unix - RENEW_BEFORE_DAYS * DAY > now
        && leaves.iter().all(|f| paths.file(f).exists());
    if !fresh {
        for (name, cn, sans, usage) in [
            (
                "server",
                "jotasu-apiserver",
                names.clone(),
                ExtendedKeyUsagePurpose::ServerAuth,
            ),
            (
                "admin",
                "jotasu-admin",
                Vec::new(),
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
        ] {
            let key = KeyPair::generate().map_err(cert_err("generating a key"))?;
            let params =
                leaf_params(cn, &sans, usage, now).map_err(cert_err("certificate parameters"))?;
            let cert = params
                .signed_by(&key, &issuer)
                .map_err(cert_err("signing a certificate"))?;
            write(
                &paths.file(&format!("{name}.key")),
                &key.serialize_pem(),
                0o600,
            )?;
            write(&paths.file(&format!("{name}.crt")), &cert.pem(), 0o644)?;
        }
        let state = State {
            server_names: names,
            leaf_not_after_unix: now + LEAF_DAYS * DAY,
        };
        let json = serde_json::to_string_pretty(&state).unwrap_or_default();
        write(&state_path, &json, 0o644)?;
    }
    Ok(ServerTls {
        ca_pem,
        cert_pem: read(&paths.file("server.crt"))?,
        key_pem: read(&paths.file("server.key"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_and_reissues_on_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let paths = PkiPaths::new(dir.path());
        let a = ensure(&paths, &[]).unwrap();
        let b = ensure(&paths, &[]).unwrap();
        assert_eq!(a.cert_pem, b.cert_pem, "nothing changed: nothing re-issued");
        let c = ensure(&paths, &["cp.example".into()]).unwrap();
        assert_ne!(
            a.cert_pem, c.cert_pem,
            "a new name re-issues the server certificate"
        );
        assert_eq!(a.ca_pem, c.ca_pem, "the CA stays");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(paths.file("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(ymd(0), (1970, 1, 1));
    }
}
