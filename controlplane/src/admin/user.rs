//! `jotasu-controlplane user add NAME [--group G]…`: a client certificate
//! for a user signed by the cluster CA (CN = NAME, O = the groups, as
//! Kubernetes reads them), written with a context file that jotactl uses
//! (`JOTASU_CONFIG=NAME.conf jotactl get pods`). What the user may do is
//! then up to RBAC bindings. Nodes never get credentials this way: they
//! join with a bootstrap token.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jotasu_api::client::{Config, Context};

use crate::auth::attributes::{NODE_USER_PREFIX, NODES};
use crate::pki::{PkiPaths, Signer};

/// A user's credentials could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The name or a group is one users cannot have.
    #[error("{0}")]
    Refused(String),
    /// Signing failed.
    #[error("{0}")]
    Pki(#[from] crate::pki::PkiError),
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The context file could not be written.
    #[error("{0}")]
    Context(#[from] jotasu_api::client::ClientError),
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The context file.
    pub config: PathBuf,
    /// The certificate.
    pub certificate: PathBuf,
    /// The key (mode 0600).
    pub key: PathBuf,
}

/// Refuses identities users must not hold.
pub fn check_identity(name: &str, groups: &[String]) -> Result<(), UserError> {
    if name.starts_with(NODE_USER_PREFIX) || groups.iter().any(|g| g == NODES) {
        return Err(UserError::Refused(format!(
            "{name:?}: node identities are not handed out as user credentials; a node joins with a \
             bootstrap token (`jotasu-controlplane token create`)"
        )));
    }
    if name.starts_with("system:") && !name.contains('@') {
        return Err(UserError::Refused(format!(
            "{name:?}: names starting with system: are reserved for the cluster's own identities"
        )));
    }
    if name.len() > 253 || name.contains('/') || name.trim().is_empty() {
        return Err(UserError::Refused(format!(
            "{name:?}: a user name is 1 to 253 characters without '/'"
        )));
    }
    Ok(())
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), UserError> {
    let io = |source| UserError::Io {
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)
}

/// Issues `name`'s certificate (in `groups`, valid for `lifetime`) with
/// the CA in `data_dir`, and writes `config` (a context `name` on
/// `server`) with the certificate, key and CA beside it.
pub fn add(
    data_dir: &Path,
    name: &str,
    groups: &[String],
    lifetime: Duration,
    server: &str,
    config: &Path,
) -> Result<Written, UserError> {
    check_identity(name, groups)?;
    let signer = Signer::load(&PkiPaths::new(data_dir))?;
    let (cert, key) = signer.issue_client(name, groups, lifetime)?;
    let dir = config
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| UserError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let stem = config
        .file_stem()
        .map_or_else(|| name.to_owned(), |s| s.to_string_lossy().into_owned());
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let written = Written {
        config: config.to_owned(),
        certificate: absolute(dir.join(format!("{stem}.crt"))),
        key: absolute(dir.join(format!("{stem}.key"))),
    };
    let ca = absolute(dir.join(format!("{stem}-ca.crt")));
    write(&written.key, &key, 0o600)?;
    write(&written.certificate, &cert, 0o644)?;
    write(&ca, signer.ca_pem(), 0o644)?;
    let mut file = Config::default();
    file.upsert(Context {
        name: name.to_owned(),
        server: server.to_owned(),
        servers: Vec::new(),
        certificate_authority: Some(ca),
        client_certificate: Some(written.certificate.clone()),
        client_key: Some(written.key.clone()),
    });
    file.current_context = Some(name.to_owned());
    file.save(config)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_system_identities_are_refused() {
        assert!(check_identity("alice", &["devs".into()]).is_ok());
        assert!(check_identity("system:node:n1", &[]).is_err());
        assert!(check_identity("mallory", &[NODES.into()]).is_err());
        assert!(check_identity("system:kube-scheduler", &[]).is_err());
        assert!(check_identity("a/b", &[]).is_err());
        assert!(check_identity("", &[]).is_err());
    }

    #[test]
    fn a_user_gets_a_working_context_file() {
        let dir = tempfile::tempdir().unwrap();
        crate::pki::ensure(&PkiPaths::new(dir.path()), &[]).unwrap();
        let out = dir.path().join("users/alice.conf");
        let w = add(
            dir.path(),
            "alice",
            &["devs".into()],
            Duration::from_secs(3600),
            "https://127.0.0.1:6443",
            &out,
        )
        .unwrap();
        let config = Config::load(&out).unwrap();
        let ctx = &config.contexts[0];
        assert_eq!(ctx.client_certificate.as_ref(), Some(&w.certificate));
        let info = jotasu_api::client::identity::CertInfo::from_pem(
            "c",
            &std::fs::read_to_string(&w.certificate).unwrap(),
        )
        .unwrap();
        assert_eq!(info.common_name, "alice");
        assert_eq!(info.organizations, ["devs"]);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&w.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
