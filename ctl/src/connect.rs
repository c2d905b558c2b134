//! Finding and reaching the server: `--server URL[,URL…]` (or
//! `JOTASU_SERVER`), else
//! the context file's current context (`--context` picks another; the file
//! is `--config`, `JOTASU_CONFIG` or `~/.jotasu/config`); TLS flags
//! override the context's files.

use jotasu_api::client::{Client, ClientError, ConnectOptions, ServerUrl, TlsFiles};
use jotasu_api::meta::DEFAULT_NAMESPACE;

use crate::cli::GlobalArgs;

/// The connection options the global flags give.
pub fn options(global: &GlobalArgs) -> ConnectOptions {
    ConnectOptions {
        server: global.server.clone().filter(|s| !s.is_empty()),
        context: global.context.clone(),
        config: global.config.clone().filter(|p| !p.as_os_str().is_empty()),
        tls: TlsFiles {
            certificate_authority: global.certificate_authority.clone(),
            client_certificate: global.client_certificate.clone(),
            client_key: global.client_key.clone(),
        },
    }
}

/// Connects as the global flags say.
pub async fn connect(global: &GlobalArgs) -> Result<Client, ClientError> {
    Client::connect(&options(global)).await
}

/// A hint for a connection that broke during the TLS handshake: an https
/// server that was given no client certificate (the control plane wants one).
pub fn transport_hint(global: &GlobalArgs) -> Option<&'static str> {
    match options(global).resolve() {
        Ok((servers, tls))
            if tls.client_certificate.is_none()
                && servers.iter().any(|s| matches!(s, ServerUrl::Https { .. })) =>
        {
            Some(
                "the server requires a client certificate signed by the cluster CA: pass --client-certificate and --client-key, or use a context that names them",
            )
        }
        _ => None,
    }
}

/// The namespace commands work in: `-n`, else `default`.
pub fn namespace(global: &GlobalArgs) -> &str {
    global
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
}

/// The namespace only if `-n` was given.
pub fn explicit_namespace(global: &GlobalArgs) -> Option<&str> {
    global.namespace.as_deref().filter(|n| !n.is_empty())
}
