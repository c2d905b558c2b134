//! The client's context file (like a kubeconfig, smaller): named contexts,
//! each a server URL and its TLS files, and the current one. `jotactl dev
//! up` and the control plane (`<data-dir>/admin.conf`) write them.
//!
//! ```yaml
//! current-context: dev
//! contexts:
//! - name: dev
//!   server: unix:///run/jotasu/dev/api.sock
//! - name: dev-tcp
//!   server: https://127.0.0.1:6443
//!   certificate-authority: /var/lib/jotasu/pki/ca.crt
//!   client-certificate: /var/lib/jotasu/pki/admin.crt
//!   client-key: /var/lib/jotasu/pki/admin.key
//! - name: ha
//!   server: https://10.0.0.1:6443
//!   servers: [https://10.0.0.2:6443, https://10.0.0.3:6443]
//!   certificate-authority: /var/lib/jotasu/pki/ca.crt
//! ```
//!
//! `servers:` (optional) lists more control planes after `server:`; a
//! client uses the first that answers and moves on when it stops.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::connect::{ServerUrl, TlsFiles};
use super::error::ClientError;

/// Environment variable naming the context file.
pub const CONFIG_ENV: &str = "JOTASU_CONFIG";

/// One named way to reach a control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Context {
    /// The context's name.
    pub name: String,
    /// `unix:///path` or `https://host:port` (may be empty when
    /// `servers` names them).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server: String,
    /// More control planes of the same cluster (same CA, same
    /// credentials), tried after `server` in this order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// PEM file of the cluster CA (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<PathBuf>,
    /// PEM file of the client certificate (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<PathBuf>,
    /// PEM file of the client key (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
}

impl Context {
    /// `server`, then `servers`, as one `URL,URL…` list.
    pub fn server_list(&self) -> String {
        std::iter::once(self.server.as_str())
            .chain(self.servers.iter().map(String::as_str))
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The TLS files this context names.
    pub fn tls(&self) -> TlsFiles {
        TlsFiles {
            certificate_authority: self.certificate_authority.clone(),
            client_certificate: self.client_certificate.clone(),
            client_key: self.client_key.clone(),
        }
    }
}

/// The whole context file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// The context used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_context: Option<String>,
    /// Every context.
    #[serde(default)]
    pub contexts: Vec<Context>,
}

impl Config {
    /// `$JOTASU_CONFIG`, else `$HOME/.jotasu/config`.
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
        PathBuf::from(home).join(".jotasu").join("config")
    }

    /// Reads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let err = |reason: String| ClientError::File {
            what: "context file",
            path: path.to_owned(),
            reason,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => serde_yaml_ng::from_str(&text).map_err(|e| err(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// Writes `path` atomically (mode 0600: it points at credentials).
    pub fn save(&self, path: &Path) -> Result<(), ClientError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let err = |reason: String| ClientError::File {
            what: "context file",
            path: path.to_owned(),
            reason,
        };
        let text = serde_yaml_ng::to_string(self).map_err(|e| err(e.to_string()))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| err(e.to_string()))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| err(e.to_string()))?;
        std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))
    }

    /// The context called `name`.
    pub fn context(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// The current context, if one is set and exists.
    pub fn current(&self) -> Option<&Context> {
        self.context(self.current_context.as_deref()?)
    }

    /// Adds or replaces the context of that name.
    pub fn upsert(&mut self, context: Context) {
        match self.contexts.iter_mut().find(|c| c.name == context.name) {
            Some(c) => *c = context,
            None => self.contexts.push(context),
        }
    }

    /// Removes the context `name` (and unsets it as current).
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.contexts.len();
        self.contexts.retain(|c| c.name != name);
        if self.current_context.as_deref() == Some(name) {
            self.current_context = None;
        }
        self.contexts.len() != before
    }
}

/// How a client was told to reach the server: flags and environment first,
/// then the context file.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--server` (or `JOTASU_SERVER`): `URL[,URL…]`.
    pub server: Option<String>,
    /// `--context`: a context other than the current one.
    pub context: Option<String>,
    /// The context file (default [`Config::default_path`]).
    pub config: Option<PathBuf>,
    /// TLS files given as flags; each overrides the context's.
    pub tls: TlsFiles,
}

impl ConnectOptions {
    /// The servers (in the order to try them) and TLS files to use.
    pub fn resolve(&self) -> Result<(Vec<ServerUrl>, TlsFiles), ClientError> {
        let path = self.config.clone().unwrap_or_else(Config::default_path);
        let context = if self.server.is_some() && self.context.is_none() {
            None
        } else {
            let config = Config::load(&path)?;
            match &self.context {
                Some(name) => {
                    Some(
                        config
                            .context(name)
                            .cloned()
                            .ok_or_else(|| ClientError::File {
                                what: "context file",
                                path: path.clone(),
                                reason: format!("no context named {name:?}"),
                            })?,
                    )
                }
                None => config.current().cloned(),
            }
        };
        let server = match (&self.server, &context) {
            (Some(s), _) => s.clone(),
            (None, Some(c)) if !c.server_list().is_empty() => c.server_list(),
            (None, _) => return Err(ClientError::NoServer { config: path }),
        };
        let mut tls = context.map(|c| c.tls()).unwrap_or_default();
        let flags = &self.tls;
        if flags.certificate_authority.is_some() {
            tls.certificate_authority = flags.certificate_authority.clone();
        }
        if flags.client_certificate.is_some() {
            tls.client_certificate = flags.client_certificate.clone();
        }
        if flags.client_key.is_some() {
            tls.client_key = flags.client_key.clone();
        }
        Ok((ServerUrl::parse_list(&server)?, tls))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_files_without_servers_still_load() {
        let c: Config = serde_yaml_ng::from_str(
            "current-context: x\ncontexts:\n- name: x\n  server: unix:///s.sock\n",
        )
        .unwrap();
        assert_eq!(c.current().unwrap().server_list(), "unix:///s.sock");
        let c: Config = serde_yaml_ng::from_str(
            "contexts:\n- name: y\n  servers: [https://a:1, https://b:2]\n",
        )
        .unwrap();
        assert_eq!(c.contexts[0].server_list(), "https://a:1,https://b:2");
        let text = serde_yaml_ng::to_string(&Config {
            current_context: None,
            contexts: vec![Context {
                name: "z".into(),
                server: "unix:///z".into(),
                servers: Vec::new(),
                certificate_authority: None,
                client_certificate: None,
                client_key: None,
            }],
        })
        .unwrap();
        assert!(!text.contains("servers"), "{text}");
    }

    #[test]
    fn round_trip_and_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config");
        let mut config = Config::default();
        config.upsert(Context {
            name: "a".into(),
            server: "unix:///run/a.sock".into(),
            servers: Vec::new(),
            certificate_authority: None,
            client_certificate: None,
            client_key: None,
        });
        config.upsert(Context {
            name: "b".into(),
            server: "https://127.0.0.1:6443".into(),
            servers: vec!["https://127.0.0.2:6443".into()],
            certificate_authority: Some("/pki/ca.crt".into()),
            client_certificate: Some("/pki/admin.crt".into()),
            client_key: Some("/pki/admin.key".into()),
        });
        config.current_context = Some("a".into());
        config.save(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap(), config);

        let opts = |server: Option<&str>, context: Option<&str>| ConnectOptions {
            server: server.map(Into::into),
            context: context.map(Into::into),
            config: Some(path.clone()),
            tls: TlsFiles::default(),
        };
        let (urls, _) = opts(None, None).resolve().unwrap();
        assert_eq!(urls, [ServerUrl::Unix("/run/a.sock".into())]);
        let (urls, tls) = opts(None, Some("b")).resolve().unwrap();
        let urls: Vec<_> = urls.iter().map(ToString::to_string).collect();
        assert_eq!(urls, ["https://127.0.0.1:6443", "https://127.0.0.2:6443"]);
        assert_eq!(tls.client_key.as_deref(), Some(Path::new("/pki/admin.key")));
        let (urls, _) = opts(Some("unix:///x.sock"), None).resolve().unwrap();
        assert_eq!(urls, [ServerUrl::Unix("/x.sock".into())]);
        let (urls, _) = opts(Some("https://h:1,https://h:2"), None)
            .resolve()
            .unwrap();
        assert_eq!(urls.len(), 2);
        assert!(opts(None, Some("nope")).resolve().is_err());

        assert!(config.remove("a"));
        assert_eq!(config.current_context, None);
        config.save(&path).unwrap();
        let e = opts(None, None).resolve().unwrap_err();
        assert!(matches!(e, ClientError::NoServer { .. }), "{e}");
    }
}
