//! The node's identity: the certificate `system:node:<name>` it holds in
//! `<state-dir>/pki`, obtained by joining with a bootstrap token
//! ([`join`]), kept fresh ([`renew`]), and used both to call the control
//! plane and to serve the node's port. [`establish`] decides at start-up:
//! stored credentials that still fit, else a join, else a clear error.
//! With stored credentials no control plane needs to answer at start-up:
//! the client connects at its first call (to the first of the servers that
//! answers), so a node started during an outage keeps its pods and waits.

pub mod check;
pub mod files;
pub mod join;
pub mod renew;
#[cfg(test)]
pub(crate) mod testing;

use std::path::PathBuf;
use std::sync::Arc;

use jotasu_api::client::identity::{CertError, parse_ca_cert_hash};
use jotasu_api::client::{Client, ClientError, Credentials, ServerUrl, TlsFiles};
use tracing::{info, warn};

use files::NodePki;

/// Why the node has no identity to run with.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// No usable certificate, and no token to join with.
    #[error(
        "node {node} has no usable certificate in {dir}: create a bootstrap token on the control plane with `jotasu-controlplane token create` and start the agent with --server https://HOST:PORT --token <token> --ca-cert-hash sha256:<hash>"
    )]
    NeedJoin {
        /// The node.
        node: String,
        /// Where certificates are kept.
        dir: PathBuf,
    },
    /// `--token` without `--ca-cert-hash`.
    #[error(
        "--token needs --ca-cert-hash sha256:<hash> (printed by `jotasu-controlplane token create`): without it the agent cannot know it talks to the right control plane, and refuses to join"
    )]
    HashRequired,
    /// The token is not `<id>.<secret>`.
    #[error(
        "invalid --token: {0} (expected <id>.<secret>, as `jotasu-controlplane token create` prints it)"
    )]
    BadToken(String),
    /// `--ca-cert-hash` is malformed.
    #[error(transparent)]
    BadHash(CertError),
    /// A join needs TLS.
    #[error(
        "joining with --token needs --server https://HOST:PORT, not {server} (a unix socket carries no certificates)"
    )]
    JoinNeedsHttps {
        /// The server given.
        server: String,
    },
    /// The control plane's CA is not the pinned one. Nothing was written.
    #[error(
        "the control plane at {server} presents CA {presented}, but --ca-cert-hash is {pinned}: not joining (nothing was written). Check the hash `jotasu-controlplane token create` printed, and that --server is the right control plane"
    )]
    CaMismatch {
        /// The server.
        server: String,
        /// The pin given.
        pinned: String,
        /// The hashes of what the server presented.
        presented: String,
    },
    /// The control plane refused to issue the certificate.
    #[error("the control plane at {server} refused to issue node {node}'s certificate: {message}")]
    Refused {
        /// The server.
        server: String,
        /// The node.
        node: String,
        /// The gRPC code.
        code: tonic::Code,
        /// The server's message (unknown or expired token, name taken, …).
        message: String,
    },
    /// The control plane closed a join's connection without an answer.
    #[error(
        "the control plane at {server} closed the connection before answering the join (does it accept clients without a certificate, i.e. serve joins?): {detail}"
    )]
    JoinClosed {
        /// The server.
        server: String,
        /// The transport's reason.
        detail: String,
    },
    /// The control plane could not be reached or the call failed in transit.
    #[error("{what}: {source}")]
    Connect {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: ClientError,
    },
    /// The control plane answered with a certificate this node cannot use.
    #[error("the control plane at {server} issued a certificate this node cannot use: {reason}")]
    BadIssued {
        /// The server.
        server: String,
        /// Why.
        reason: String,
    },
    /// Certificate material could not be loaded.
    #[error("{what} cannot be used: {source}")]
    Certificate {
        /// What it is.
        what: &'static str,
        /// Why.
        source: CertError,
    },
    /// Making the key or CSR failed.
    #[error("making the node's key and certificate signing request failed: {0}")]
    Csr(String),
    /// Reading or writing the credentials' files.
    #[error("node credentials file {path}: {source}; check the state dir's permissions")]
    Files {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl CredentialsError {
    /// The error of a failed `RequestNodeCertificate` to `server` for
    /// `node` (`joining`: sent with a token and no client certificate).
    pub fn from_request(server: &str, node: &str, joining: bool, e: ClientError) -> Self {
        match e {
            ClientError::Api(api) => CredentialsError::Refused {
                server: server.to_owned(),
                node: node.to_owned(),
                code: api.code(),
                message: api.message().to_owned(),
            },
            ClientError::Transport(detail) if joining => CredentialsError::JoinClosed {
                server: server.to_owned(),
                detail,
            },
            e => CredentialsError::Connect {
                what: "requesting the node certificate",
                source: e,
            },
        }
    }
}

/// How the agent was told to reach the control plane and prove who it is.
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    /// The node's name.
    pub node: String,
    /// `--server`: `https://HOST:PORT` or `unix:///path`, several as
    /// `URL,URL…` (control planes of one cluster, tried in order).
    pub server: String,
    /// `--state-dir` (credentials go to its `pki/`).
    pub state_dir: PathBuf,
    /// `--token <id>.<secret>`.
    pub token: Option<String>,
    /// `--ca-cert-hash sha256:<hex>`.
    pub ca_cert_hash: Option<String>,
    /// Credentials given as files (`--certificate-authority`,
    /// `--client-certificate`, `--client-key`): used as they are, not renewed.
    pub files: TlsFiles,
}

/// The node's connection to the control plane and its credentials.
#[derive(Debug)]
pub struct NodeIdentity {
    /// The control plane (presenting the node certificate, if any).
    pub client: Client,
    /// The node's certificate, also for serving its port (None: no
    /// certificate, on a unix socket).
    pub credentials: Option<Arc<Credentials>>,
    /// Whether the agent renews them (not files given by the operator).
    pub renewable: bool,
    /// Where they are stored.
    pub pki: NodePki,
}

fn check_token(token: &str) -> Result<(), CredentialsError> {
    let bad = |why: &str| Err(CredentialsError::BadToken(why.to_owned()));
    match token.split_once('.') {
        None => bad("it has no '.'"),
        Some((id, secret)) if id.is_empty() || secret.is_empty() => bad("a part is empty"),
        Some(_) if !token.bytes().all(|b| b.is_ascii_graphic()) => {
            bad("it may hold only visible ASCII characters")
        }
        Some(_) => Ok(()),
    }
}

/// Finds or obtains the node's credentials and connects (see the module
/// documentation for the order).
pub async fn establish(b: &Bootstrap) -> Result<NodeIdentity, CredentialsError> {
    let servers = ServerUrl::parse_list(&b.server).map_err(|source| CredentialsError::Connect {
        what: "--server",
        source,
    })?;
    let https = servers.iter().find_map(|s| match s {
        ServerUrl::Https { url, .. } => Some(url.clone()),
        ServerUrl::Unix(_) => None,
    });
    let pin = b
        .ca_cert_hash
        .as_deref()
        .map(parse_ca_cert_hash)
        .transpose()
        .map_err(CredentialsError::BadHash)?;
    if let Some(token) = &b.token {
        check_token(token)?;
        if pin.is_none() {
            return Err(CredentialsError::HashRequired);
        }
        if https.is_none() {
            return Err(CredentialsError::JoinNeedsHttps {
                server: b.server.clone(),
            });
        }
    }
    let pki = NodePki::new(&b.state_dir);
    let now = jotasu_api::meta::unix_now();
    let stored = pki.load()?.filter(|s| {
        match check::check_stored(s, &b.node, now, pin.as_deref()) {
            Ok(_) => true,
            Err(why) => {
                warn!(node = %b.node, dir = %pki.dir().display(), reason = %why, "the stored node certificate cannot be used");
                false
            }
        }
    });
    let certificate = |what, e| CredentialsError::Certificate { what, source: e };
    let connect = |source| CredentialsError::Connect {
        what: "connecting to the control plane",
        source,
    };
    let (credentials, renewable) = match (&https, stored) {
        (Some(url), _) if b.files.client_certificate.is_some() || b.files.client_key.is_some() => {
            info!("using the node credentials given as files (not renewed)");
            let creds =
                jotasu_api::client::credentials_from_files(url, &b.files).map_err(connect)?;
            (Some(creds), false)
        }
        (_, Some(s)) => {
            if b.token.is_some() {
                info!(node = %b.node, "the stored node certificate is valid: --token is not needed");
            }
            let creds = check::credentials(&s)
                .map_err(|e| certificate("the stored node certificate", e))?;
            (Some(creds), true)
        }
        (Some(_), None) => match (&b.token, &pin) {
            (Some(token), Some(pin)) => {
                let joined = join::join_any(&servers, &b.node, token, pin).await?;
                pki.save(&joined)?;
                info!(dir = %pki.dir().display(), "node credentials saved");
                let creds = check::credentials(&joined)
                    .map_err(|e| certificate("the issued node certificate", e))?;
                (Some(creds), true)
            }
            _ => {
                return Err(CredentialsError::NeedJoin {
                    node: b.node.clone(),
                    dir: pki.dir().to_owned(),
                });
            }
        },
        (None, None) => (None, false),
    };
    let credentials = credentials.map(Arc::new);
    // Connects at the first call: with its credentials in hand the node
    // needs no control plane to start (it keeps trying).
    let client = Client::lazy(&servers, credentials.clone()).map_err(connect)?;
    Ok(NodeIdentity {
        client,
        credentials,
        renewable,
        pki,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bootstrap(server: &str) -> Bootstrap {
        Bootstrap {
            node: "n1".into(),
            server: server.into(),
            state_dir: std::env::temp_dir().join("jotasu-no-such-dir"),
            ..Bootstrap::default()
        }
    }

    #[tokio::test]
    async fn refuses_to_join_without_a_pin_or_over_a_socket() {
        let b = Bootstrap {
            token: Some("abcdef.0123456789abcdef".into()),
            ..bootstrap("https://127.0.0.1:1")
        };
        let e = establish(&b).await.unwrap_err();
        assert!(matches!(e, CredentialsError::HashRequired), "{e}");
        let b = Bootstrap {
            ca_cert_hash: Some(format!("sha256:{}", "a".repeat(64))),
            ..b
        };
        let unix = Bootstrap {
            server: "unix:///run/x.sock".into(),
            ..b.clone()
        };
        let e = establish(&unix).await.unwrap_err();
        assert!(matches!(e, CredentialsError::JoinNeedsHttps { .. }), "{e}");
        let bad = Bootstrap {
            token: Some("no-dot".into()),
            ..b.clone()
        };
        assert!(matches!(
            establish(&bad).await.unwrap_err(),
            CredentialsError::BadToken(_)
        ));
        let bad = Bootstrap {
            ca_cert_hash: Some("sha256:xyz".into()),
            ..b
        };
        assert!(matches!(
            establish(&bad).await.unwrap_err(),
            CredentialsError::BadHash(_)
        ));
    }

    #[tokio::test]
    async fn without_a_certificate_or_token_says_how_to_join() {
        let e = establish(&bootstrap("https://127.0.0.1:1"))
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, CredentialsError::NeedJoin { .. }), "{text}");
        assert!(text.contains("jotasu-controlplane token create"), "{text}");
        assert!(text.contains("--ca-cert-hash"), "{text}");
    }

    #[test]
    fn tokens() {
        check_token("abcdef.0123456789abcdef").unwrap();
        for bad in ["", "abc", ".x", "x.", "a b.c"] {
            assert!(check_token(bad).is_err(), "{bad}");
        }
    }
}
