//! The node's credentials on disk: `<state-dir>/pki/{ca.crt,node.crt,node.key}`,
//! the directory 0700, the key 0600, each file written atomically (a
//! temporary file, fsync, rename; the certificate last, so a crash between
//! files leaves a pair that does not match and is not used).

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::CredentialsError;

/// A CA, a node certificate and its key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct Stored {
    /// The cluster CA.
    pub ca_pem: String,
    /// The node's certificate.
    pub cert_pem: String,
    /// The node's private key.
    pub key_pem: String,
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored").finish_non_exhaustive()
    }
}

/// Where the node's credentials live.
#[derive(Debug, Clone)]
pub struct NodePki {
    dir: PathBuf,
}

impl NodePki {
    /// `<state_dir>/pki`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("pki"),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cluster CA.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The node's certificate.
    pub fn cert(&self) -> PathBuf {
        self.dir.join("node.crt")
    }

    /// The node's key.
    pub fn key(&self) -> PathBuf {
        self.dir.join("node.key")
    }

    /// What is stored (None when any of the three files is missing).
    pub fn load(&self) -> Result<Option<Stored>, CredentialsError> {
        let read = |path: PathBuf| match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CredentialsError::Files { path, source }),
        };
        let (Some(ca_pem), Some(cert_pem), Some(key_pem)) =
            (read(self.ca())?, read(self.cert())?, read(self.key())?)
        else {
            return Ok(None);
        };
        Ok(Some(Stored {
            ca_pem,
            cert_pem,
            key_pem,
        }))
    }

    /// Stores `stored`, replacing what was there.
    pub fn save(&self, stored: &Stored) -> Result<(), CredentialsError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| CredentialsError::Files { path, source }
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io(&self.dir))?;
        // An existing directory keeps its mode unless told.
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io(&self.dir))?;
        let files = [
            (self.ca(), &stored.ca_pem, 0o644),
            (self.key(), &stored.key_pem, 0o600),
            (self.cert(), &stored.cert_pem, 0o644),
        ];
        let mut written = Vec::with_capacity(files.len());
        for (path, text, mode) in &files {
            let mut tmp = path.clone().into_os_string();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(*mode)
                .open(&tmp)
                .map_err(io(&tmp))?;
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io(&tmp))?;
            written.push((tmp, path));
        }
        for (tmp, path) in written {
            std::fs::rename(&tmp, path).map_err(io(path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn saves_atomically_with_private_modes() {
        let dir = tempfile::tempdir().unwrap();
        let pki = NodePki::new(dir.path());
        assert!(pki.load().unwrap().is_none());
        let stored = Stored {
            ca_pem: "ca".into(),
            cert_pem: "cert".into(),
            key_pem: "key".into(),
        };
        pki.save(&stored).unwrap();
        assert_eq!(pki.load().unwrap(), Some(stored.clone()));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(pki.dir()), 0o700);
        assert_eq!(mode(&pki.key()), 0o600);
        assert_eq!(mode(&pki.cert()), 0o644);
        let renewed = Stored {
            cert_pem: "cert2".into(),
            ..stored
        };
        pki.save(&renewed).unwrap();
        assert_eq!(pki.load().unwrap(), Some(renewed));
        let leftovers: Vec<_> = std::fs::read_dir(pki.dir())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "tmp"))
            .collect();
        assert!(leftovers.is_empty());
        std::fs::remove_file(pki.key()).unwrap();
        assert!(
            pki.load().unwrap().is_none(),
            "a missing key: nothing usable"
        );
    }
}
