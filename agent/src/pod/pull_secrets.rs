//! Registry credentials from a pod's `imagePullSecrets`, as the kubelet
//! reads them: Secrets of type `kubernetes.io/dockerconfigjson`
//! (`.dockerconfigjson`: `{"auths": {REGISTRY: {...}}}`) or
//! `kubernetes.io/dockercfg` (`.dockercfg`: `{REGISTRY: {...}}`), each entry
//! with `username` and `password` or `auth` (base64 of `user:password`).
//! The first Secret with an entry for the image's registry wins.

use jotasu_api::Secret;
use jotasu_api::bytes::decode_base64;
use serde_json::Value;

/// A user name and password for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user.
    pub username: String,
    /// The password (never logged).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, <password>)", self.username)
    }
}

/// `https://registry.example.test:5000/v1/` → `registry.example.test:5000`;
/// Docker Hub's names are one.
fn host(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = key.split('/').next().unwrap_or(key).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        _ => host,
    }
}

fn entry(v: &Value) -> Option<Credentials> {
    let user = v.get("username").and_then(Value::as_str);
    let pass = v.get("password").and_then(Value::as_str);
    if let (Some(u), Some(p)) = (user, pass) {
        return Some(Credentials {
            username: u.to_owned(),
            password: p.to_owned(),
        });
    }
    let auth = decode_base64(v.get("auth")?.as_str()?).ok()?;
    let auth = String::from_utf8(auth).ok()?;
    let (u, p) = auth.split_once(':')?;
    Some(Credentials {
        username: u.to_owned(),
        password: p.to_owned(),
    })
}

/// The credentials `secrets` hold for `registry` (e.g. `10.0.0.1:5000`,
/// `docker.io`), if any.
pub fn credentials(registry: &str, secrets: &[&Secret]) -> Option<Credentials> {
    let wanted = host(registry);
    for s in secrets {
        let (key, nested) = match s.type_.as_deref() {
            Some("kubernetes.io/dockerconfigjson") => (".dockerconfigjson", true),
            Some("kubernetes.io/dockercfg") => (".dockercfg", false),
            _ => continue,
        };
        let Some(raw) = s.data.get(key) else { continue };
        let Ok(doc) = serde_json::from_slice::<Value>(&raw.0) else {
            continue;
        };
        let auths = if nested { doc.get("auths") } else { Some(&doc) };
        let Some(auths) = auths.and_then(Value::as_object) else {
            continue;
        };
        for (k, v) in auths {
            if host(k) == wanted
                && let Some(c) = entry(v)
            {
                return Some(c);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(type_: &str, key: &str, doc: Value) -> Secret {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s"}, "type": type_,
            "data": {key: jotasu_api::bytes::encode_base64(doc.to_string().as_bytes())}}))
        .expect("a secret")
    }

    #[test]
    fn entries_by_registry_in_both_formats() {
        let json = secret(
            "kubernetes.io/dockerconfigjson",
            ".dockerconfigjson",
            json!({"auths": {"https://10.0.0.1:5000/v1/": {"username": "u", "password": "p"},
                             "https://index.docker.io/v1/": {"auth": jotasu_api::bytes::encode_base64(b"hub:secret")}}}),
        );
        let c = credentials("10.0.0.1:5000", &[&json]).expect("an entry");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        let hub = credentials("docker.io", &[&json]).expect("Docker Hub");
        assert_eq!(hub.password, "secret");
        assert!(credentials("other.test", &[&json]).is_none());
        assert!(!format!("{hub:?}").contains("secret"));
        let old = secret(
            "kubernetes.io/dockercfg",
            ".dockercfg",
            json!({"r.test": {"username": "a", "password": "b"}}),
        );
        assert_eq!(
            credentials("r.test", &[&old]).map(|c| c.username),
            Some("a".into())
        );
        let opaque = secret(
            "Opaque",
            ".dockerconfigjson",
            json!({"auths": {"r.test": {"username": "x", "password": "y"}}}),
        );
        assert!(credentials("r.test", &[&opaque]).is_none());
    }
}
