//! Bootstrap tokens (`[a-z0-9]{6}.[a-z0-9]{16}`), stored as Kubernetes
//! stores them: a Secret `kube-system/bootstrap-token-<id>` of type
//! `bootstrap.kubernetes.io/token` with `token-id`, `token-secret`,
//! `expiration` (RFC 3339), `usage-bootstrap-authentication` and
//! `description`. A valid token authenticates its holder as
//! `system:bootstrap:<id>` in `system:bootstrappers`, which may only ask
//! for a node certificate (the join).

use std::collections::BTreeMap;
use std::fmt;

use jotasu_api::meta::Time;
use jotasu_api::{Bytes, ObjectMeta, Secret};

use super::attributes::{BOOTSTRAP_USER_PREFIX, BOOTSTRAPPERS, UserInfo};

/// The namespace bootstrap tokens live in.
pub const TOKEN_NAMESPACE: &str = "kube-system";
/// The Secret type of a bootstrap token.
pub const TOKEN_SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The prefix of a token Secret's name.
pub const TOKEN_SECRET_PREFIX: &str = "bootstrap-token-";

const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A token's two parts.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    /// The public part (names the Secret).
    pub id: String,
    /// The secret part.
    pub secret: String,
}

impl fmt::Debug for BootstrapToken {
    /// Never prints the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({}.****)", self.id)
    }
}

impl fmt::Display for BootstrapToken {
    /// `id.secret`, as a join command takes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

/// Why a token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not of the form `[a-z0-9]{6}.[a-z0-9]{16}`.
    #[error(
        "a bootstrap token has the form [a-z0-9]{{6}}.[a-z0-9]{{16}} (e.g. abcdef.0123456789abcdef)"
    )]
    Malformed,
    /// No Secret for its id.
    #[error(
        "bootstrap token {id:?} is unknown (deleted, or never created): create one with `jotasu-controlplane token create`"
    )]
    Unknown {
        /// Its id.
        id: String,
    },
    /// The secret part does not match.
    #[error("bootstrap token {id:?} is invalid: its secret does not match")]
    Mismatch {
        /// Its id.
        id: String,
    },
    /// Past its expiration.
    #[error(
        "bootstrap token {id:?} expired at {expired}: create a new one with `jotasu-controlplane token create`"
    )]
    Expired {
        /// Its id.
        id: String,
        /// When.
        expired: String,
    },
    /// Its Secret does not allow authentication.
    #[error(
        "bootstrap token {id:?} is not for authentication (usage-bootstrap-authentication is not \"true\")"
    )]
    NotForAuthentication {
        /// Its id.
        id: String,
    },
}

fn well_formed(part: &str, len: usize) -> bool {
    part.len() == len && part.bytes().all(|b| ALPHABET.contains(&b))
}

impl BootstrapToken {
    /// Parses `id.secret`.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let (id, secret) = text.trim().split_once('.').ok_or(TokenError::Malformed)?;
        if !well_formed(id, ID_LEN) || !well_formed(secret, SECRET_LEN) {
            return Err(TokenError::Malformed);
        }
        Ok(Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// A fresh random token (from the OS's random source).
    pub fn generate() -> Self {
        let mut chars = Vec::with_capacity(ID_LEN + SECRET_LEN);
        while chars.len() < ID_LEN + SECRET_LEN {
            for b in uuid::Uuid::new_v4().into_bytes() {
                // 252 = 7 × 36: no bias toward the first letters.
                if b < 252 && chars.len() < ID_LEN + SECRET_LEN {
                    chars.push(ALPHABET[usize::from(b % 36)]);
                }
            }
        }
        let text = String::from_utf8_lossy(&chars).into_owned();
        Self {
            id: text[..ID_LEN].to_owned(),
            secret: text[ID_LEN..].to_owned(),
        }
    }

    /// The name of the Secret that stores a token of this id.
    pub fn secret_name(id: &str) -> String {
        format!("{TOKEN_SECRET_PREFIX}{id}")
    }

    /// The Secret storing this token, expiring at `expires` (unix seconds).
    pub fn to_secret(&self, expires: Option<i64>, description: &str) -> Secret {
        let mut data: BTreeMap<String, Bytes> = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            data.insert(k.to_owned(), Bytes(v.as_bytes().to_vec()));
        };
        put("token-id", &self.id);
        put("token-secret", &self.secret);
        put("usage-bootstrap-authentication", "true");
        if let Some(at) = expires {
            put("expiration", &Time::from_unix_seconds(at).0);
        }
        if !description.is_empty() {
            put("description", description);
        }
        Secret {
            metadata: ObjectMeta {
                name: Some(Self::secret_name(&self.id)),
                namespace: Some(TOKEN_NAMESPACE.to_owned()),
                ..ObjectMeta::default()
            },
            type_: Some(TOKEN_SECRET_TYPE.to_owned()),
            data,
            ..Secret::default()
        }
    }
}

/// What `token list` shows of a stored token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The token's id.
    pub id: String,
    /// Expiry (unix seconds), if any.
    pub expires: Option<i64>,
    /// Its description.
    pub description: String,
    /// Its extra groups.
    pub extra_groups: Vec<String>,
}

fn field<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    secret
        .data
        .get(key)
        .and_then(|v| std::str::from_utf8(&v.0).ok())
        .or_else(|| secret.string_data.get(key).map(String::as_str))
}

/// The token a Secret stores, if it is a bootstrap token Secret.
pub fn info(secret: &Secret) -> Option<TokenInfo> {
    if secret.type_.as_deref() != Some(TOKEN_SECRET_TYPE) {
        return None;
    }
    let id = field(secret, "token-id")?.to_owned();
    Some(TokenInfo {
        expires: field(secret, "expiration").and_then(|t| Time(t.to_owned()).unix_seconds()),
        description: field(secret, "description").unwrap_or_default().to_owned(),
        extra_groups: field(secret, "auth-extra-groups")
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| g.starts_with("system:bootstrappers:"))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        id,
    })
}

/// Constant-time comparison (the secret must not leak through timing).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks `presented` against its stored Secret (`None`: none stored) at
/// `now` (unix seconds): the identity it authenticates.
pub fn authenticate(
    presented: &BootstrapToken,
    stored: Option<&Secret>,
    now: i64,
) -> Result<UserInfo, TokenError> {
    let id = || presented.id.clone();
    let secret = stored.ok_or_else(|| TokenError::Unknown { id: id() })?;
    let stored_info = info(secret).ok_or_else(|| TokenError::Unknown { id: id() })?;
    if stored_info.id != presented.id {
        return Err(TokenError::Unknown { id: id() });
    }
    let expected = field(secret, "token-secret").unwrap_or_default();
    if !same(expected.as_bytes(), presented.secret.as_bytes()) {
        return Err(TokenError::Mismatch { id: id() });
    }
    if let Some(at) = stored_info.expires.filter(|at| *at <= now) {
        return Err(TokenError::Expired {
            id: id(),
            expired: Time::from_unix_seconds(at).0,
        });
    }
    if field(secret, "usage-bootstrap-authentication") != Some("true") {
        return Err(TokenError::NotForAuthentication { id: id() });
    }
    let mut groups = vec![BOOTSTRAPPERS.to_owned()];
    groups.extend(stored_info.extra_groups);
    Ok(UserInfo::new(
        format!("{BOOTSTRAP_USER_PREFIX}{}", presented.id),
        groups,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_generate() {
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        assert_eq!(t.id, "abcdef");
        assert_eq!(t.to_string(), "abcdef.0123456789abcdef");
        assert!(
            !format!("{t:?}").contains("0123456789"),
            "Debug hides the secret"
        );
        for bad in [
            "",
            "abcdef",
            "abcdef.",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdef",
            "abcdef.0123456789abcdef0",
            "abcdef-0123456789abcdef",
        ] {
            assert_eq!(
                BootstrapToken::parse(bad),
                Err(TokenError::Malformed),
                "{bad:?}"
            );
        }
        let a = BootstrapToken::generate();
        let b = BootstrapToken::generate();
        assert_ne!(a, b);
        assert_eq!(BootstrapToken::parse(&a.to_string()).unwrap(), a);
    }

    #[test]
    fn stored_tokens_authenticate_until_they_expire() {
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").unwrap();
        let s = t.to_secret(Some(1_000), "join n1");
        assert_eq!(s.metadata.name.as_deref(), Some("bootstrap-token-abcdef"));
        let user = authenticate(&t, Some(&s), 999).unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert!(user.in_group(BOOTSTRAPPERS));
        assert!(matches!(
            authenticate(&t, Some(&s), 1_000),
            Err(TokenError::Expired { .. })
        ));
        assert!(matches!(
            authenticate(&t, None, 0),
            Err(TokenError::Unknown { .. })
        ));
        let wrong = BootstrapToken::parse("abcdef.ffffffffffffffff").unwrap();
        assert!(matches!(
            authenticate(&wrong, Some(&s), 0),
            Err(TokenError::Mismatch { .. })
        ));
        let forever = t.to_secret(None, "");
        assert!(authenticate(&t, Some(&forever), i64::MAX).is_ok());
        let mut no_auth = forever.clone();
        no_auth.data.remove("usage-bootstrap-authentication");
        assert!(matches!(
            authenticate(&t, Some(&no_auth), 0),
            Err(TokenError::NotForAuthentication { .. })
        ));
        let mut opaque = forever;
        opaque.type_ = None;
        assert!(matches!(
            authenticate(&t, Some(&opaque), 0),
            Err(TokenError::Unknown { .. })
        ));
        let i = info(&s).unwrap();
        assert_eq!(
            (i.id.as_str(), i.expires, i.description.as_str()),
            ("abcdef", Some(1_000), "join n1")
        );
    }
}
