//! `jotasu-controlplane token create|list|delete`: bootstrap tokens for
//! joining nodes, written through the local socket as Secrets (see
//! [`crate::auth::token`]), and the join command that uses one.

use std::time::Duration;

use jotasu_api::client::{Client, ClientError};
use jotasu_api::{Kind, Object, ObjectRef, Secret};

use crate::auth::token::{self, BootstrapToken, TOKEN_NAMESPACE, TokenInfo};

/// A token command failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenCommandError {
    /// The control plane refused or could not be reached.
    #[error("{0}")]
    Api(#[from] ClientError),
    /// A token or id given on the command line is not one.
    #[error("{0:?} is neither a token id ([a-z0-9]{{6}}) nor a token (id.secret)")]
    BadId(String),
    /// No token with that id.
    #[error("bootstrap token {0:?} not found")]
    NotFound(String),
}

/// How to reach the control plane for a join: its https URL and the CA hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinTarget {
    /// `https://HOST:PORT`.
    pub server: String,
    /// `sha256:<hex>` of the cluster CA's public key.
    pub ca_cert_hash: String,
}

/// The command a new node runs to join with `token`.
pub fn join_command(target: &JoinTarget, token: &BootstrapToken) -> String {
    format!(
        "jotasu-agent --server {} --token {token} --ca-cert-hash {} --node-name <NODE-NAME>",
        target.server, target.ca_cert_hash
    )
}

/// Creates a token valid for `ttl` (zero: until deleted).
pub async fn create(
    client: &Client,
    ttl: Duration,
    description: &str,
) -> Result<BootstrapToken, TokenCommandError> {
    let token = BootstrapToken::generate();
    let expires = (!ttl.is_zero()).then(|| {
        jotasu_api::meta::unix_now() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2)
    });
    let secret = token.to_secret(expires, description);
    client.apply(&[Object::Secret(secret)], false).await?;
    Ok(token)
}

/// Every stored bootstrap token.
pub async fn list(client: &Client) -> Result<Vec<TokenInfo>, TokenCommandError> {
    let secrets = client.list(Kind::Secret, Some(TOKEN_NAMESPACE), "").await?;
    let mut tokens: Vec<TokenInfo> = secrets
        .items
        .into_iter()
        .filter_map(|o| Secret::try_from(o).ok())
        .filter_map(|s| token::info(&s))
        .collect();
    tokens.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(tokens)
}

/// Deletes the token `id_or_token` names.
pub async fn delete(client: &Client, id_or_token: &str) -> Result<String, TokenCommandError> {
    let id = match id_or_token.split_once('.') {
        Some(_) => {
            BootstrapToken::parse(id_or_token)
                .map_err(|_| TokenCommandError::BadId(id_or_token.to_owned()))?
                .id
        }
        None if id_or_token.len() == 6
            && id_or_token
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) =>
        {
            id_or_token.to_owned()
        }
        None => return Err(TokenCommandError::BadId(id_or_token.to_owned())),
    };
    let r = ObjectRef {
        kind: Kind::Secret,
        namespace: Some(TOKEN_NAMESPACE.to_owned()),
        name: BootstrapToken::secret_name(&id),
    };
    match client.delete(&r, None).await {
        Ok(_) => Ok(id),
        Err(e) if e.is_not_found() => Err(TokenCommandError::NotFound(id)),
        Err(e) => Err(e.into()),
    }
}

/// `token list` as a table: `TOKEN-ID TTL EXPIRES DESCRIPTION` (secrets
/// are never shown).
pub fn table(tokens: &[TokenInfo], now: i64) -> String {
    let mut out = String::from("TOKEN-ID\tTTL\tEXPIRES\tDESCRIPTION\n");
    for t in tokens {
        let (ttl, expires) = match t.expires {
            None => ("<forever>".to_owned(), "<never>".to_owned()),
            Some(at) if at <= now => (
                "<expired>".to_owned(),
                jotasu_api::meta::Time::from_unix_seconds(at).0,
            ),
            Some(at) => (
                super::duration::format(Duration::from_secs(u64::try_from(at - now).unwrap_or(0))),
                jotasu_api::meta::Time::from_unix_seconds(at).0,
            ),
        };
        out.push_str(&format!("{}\t{ttl}\t{expires}\t{}\n", t.id, t.description));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_ids_and_lifetimes_never_secrets() {
        let tokens = [
            TokenInfo {
                id: "abcdef".into(),
                expires: Some(1_000 + 5_400),
                description: "node n1".into(),
                extra_groups: vec![],
            },
            TokenInfo {
                id: "zzzzzz".into(),
                expires: Some(10),
                description: String::new(),
                extra_groups: vec![],
            },
        ];
        let t = table(&tokens, 1_000);
        assert!(t.contains("abcdef\t1h30m0s\t"), "{t}");
        assert!(t.contains("zzzzzz\t<expired>"), "{t}");
        let target = JoinTarget {
            server: "https://192.168.77.1:6443".into(),
            ca_cert_hash: "sha256:00".into(),
        };
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        assert_eq!(
            join_command(&target, &token),
            "jotasu-agent --server https://192.168.77.1:6443 --token abcdef.0123456789abcdef --ca-cert-hash sha256:00 --node-name <NODE-NAME>"
        );
    }
}
