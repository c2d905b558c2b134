//! Name and key syntax rules (DNS-1123, DNS-1035, IANA service names, label
//! keys and values, ConfigMap keys, IP addresses). Each returns the rule's message.

/// Maximum length of a DNS-1123 label.
pub const DNS1123_LABEL_MAX: usize = 63;
/// Maximum length of a DNS-1123 subdomain.
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn too_long(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// A DNS-1123 label: lower-case alphanumerics and `-`, alphanumeric at both ends, ≤ 63.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    if s.len() > DNS1123_LABEL_MAX {
        return Err(too_long(DNS1123_LABEL_MAX));
    }
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.iter().all(|c| is_lower_alnum(*c) || *c == b'-')
        && is_lower_alnum(b[0])
        && is_lower_alnum(b[b.len() - 1]);
    if ok {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character (e.g. 'my-name', or '123-abc')"
            .into())
    }
}

/// A DNS-1123 subdomain: dot-separated DNS-1123 labels, ≤ 253.
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(too_long(DNS1123_SUBDOMAIN_MAX));
    }
    let ok = !s.is_empty()
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.iter().all(|c| is_lower_alnum(*c) || *c == b'-')
                && is_lower_alnum(b[0])
                && is_lower_alnum(b[b.len() - 1])
        });
    if ok {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', \
             and must start and end with an alphanumeric character (e.g. 'example.com')"
            .into())
    }
}

/// A path segment (RBAC names such as `system:node`): not `.` or `..`,
/// no `/` or `%`, ≤ 253.
pub fn path_segment(s: &str) -> Result<(), String> {
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(too_long(DNS1123_SUBDOMAIN_MAX));
    }
    match s {
        "" => Err("may not be empty".into()),
        "." | ".." => Err(format!("may not be '{s}'")),
        _ if s.contains('/') => Err("may not contain '/'".into()),
        _ if s.contains('%') => Err("may not contain '%'".into()),
        _ if s.chars().any(char::is_control) => Err("may not contain control characters".into()),
        _ => Ok(()),
    }
}

/// A DNS-1035 label (Service names): like a DNS-1123 label but starting with a letter.
pub fn dns1035_label(s: &str) -> Result<(), String> {
    if s.len() > DNS1123_LABEL_MAX {
        return Err(too_long(DNS1123_LABEL_MAX));
    }
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_lowercase()
        && b.iter().all(|c| is_lower_alnum(*c) || *c == b'-')
        && is_lower_alnum(b[b.len() - 1]);
    if ok {
        Ok(())
    } else {
        Err("a DNS-1035 label must consist of lower case alphanumeric characters or '-', \
             start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123')"
            .into())
    }
}

/// An IANA service name (container port names): ≤ 15 lower-case alphanumerics
/// and `-`, at least one letter, no `--`, no `-` at either end.
pub fn iana_svc_name(s: &str) -> Result<(), String> {
    if s.len() > 15 {
        return Err(too_long(15));
    }
    let b = s.as_bytes();
    if b.is_empty() || !b.iter().all(|c| is_lower_alnum(*c) || *c == b'-') {
        return Err(
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into(),
        );
    }
    if s.contains("--") {
        return Err("must not contain consecutive hyphens".into());
    }
    if !b.iter().any(u8::is_ascii_lowercase) {
        return Err("must contain at least one letter (a-z)".into());
    }
    if b[0] == b'-' || b[b.len() - 1] == b'-' {
        return Err("must not begin or end with a hyphen".into());
    }
    Ok(())
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.')
}

/// The name part of a qualified name / a non-empty label value: ≤ 63
/// alphanumerics, `-`, `_`, `.`, alphanumeric at both ends.
fn qualified_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| is_name_char(*c))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A qualified name (label and annotation keys): `[prefix/]name`, prefix a
/// DNS-1123 subdomain, name ≤ 63 of `[-A-Za-z0-9_.]` starting and ending alphanumeric.
pub fn qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return Err("prefix part must be non-empty".into());
        }
        dns1123_subdomain(p).map_err(|e| format!("prefix part {e}"))?;
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    if qualified_name_part(name) {
        Ok(())
    } else {
        Err("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end \
             with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc'), with an optional \
             DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            .into())
    }
}

/// A label value: empty, or ≤ 63 of `[-A-Za-z0-9_.]` starting and ending alphanumeric.
pub fn label_value(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    if s.is_empty() || qualified_name_part(s) {
        Ok(())
    } else {
        Err("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', \
             and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or '12345')"
            .into())
    }
}

/// A ConfigMap or Secret key: `[-._a-zA-Z0-9]+`, ≤ 253, not `.` or `..`.
pub fn config_key(s: &str) -> Result<(), String> {
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(too_long(DNS1123_SUBDOMAIN_MAX));
    }
    if s == "." || s == ".." {
        return Err("must not be '.' or '..'".into());
    }
    if !s.is_empty() && s.bytes().all(is_name_char) {
        Ok(())
    } else {
        Err(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
             (e.g. 'key.name', or 'KEY_NAME', or 'key-name')"
                .into(),
        )
    }
}

/// An environment variable name: `[-._a-zA-Z][-._a-zA-Z0-9]*`.
pub fn env_var_name(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && (b[0].is_ascii_alphabetic() || matches!(b[0], b'-' | b'_' | b'.'))
        && b.iter().all(|c| is_name_char(*c));
    if ok {
        Ok(())
    } else {
        Err("a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', \
             and must not start with a digit (e.g. 'my.env-name', or 'MY_ENV.NAME', or 'MyEnvName1')"
            .into())
    }
}

/// A dotted-quad IPv4 address.
pub fn ipv4(s: &str) -> Result<(), String> {
    s.parse::<std::net::Ipv4Addr>()
        .map(|_| ())
        .map_err(|_| "must be a valid IPv4 address".into())
}

/// An IPv4 or IPv6 address.
pub fn ip(s: &str) -> Result<(), String> {
    s.parse::<std::net::IpAddr>()
        .map(|_| ())
        .map_err(|_| "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into())
}

/// An IPv4 CIDR such as `10.244.1.0/24`, with no host bits set.
pub fn ipv4_cidr(s: &str) -> Result<(), String> {
    let bad = || "must be a valid IPv4 CIDR (e.g. 10.244.1.0/24)".to_owned();
    let (addr, len) = s.split_once('/').ok_or_else(bad)?;
    let addr: std::net::Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let len: u32 = len.parse().map_err(|_| bad())?;
    if len > 32 {
        return Err(bad());
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    if u32::from(addr) & !mask != 0 {
        return Err(format!(
            "host bits must be zero (network is {}/{len})",
            std::net::Ipv4Addr::from(u32::from(addr) & mask)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(dns1123_label("web-1").is_ok());
        assert!(dns1123_label("Web").is_err());
        assert!(dns1123_label("-web").is_err());
        assert!(dns1123_label("web-").is_err());
        assert!(dns1123_label("a.b").is_err());
        assert!(dns1123_label(&"a".repeat(63)).is_ok());
        assert_eq!(
            dns1123_label(&"a".repeat(64)),
            Err("must be no more than 63 characters".into())
        );
        assert!(dns1123_subdomain("redis.leader-1").is_ok());
        assert!(dns1123_subdomain("a..b").is_err());
        assert!(dns1123_subdomain("web_1").is_err());
        assert!(dns1123_subdomain(&format!("{}.a", "a".repeat(252))).is_err());
        assert!(dns1035_label("1web").is_err());
        assert!(dns1035_label("web1").is_ok());
        assert!(iana_svc_name("http").is_ok());
        assert!(iana_svc_name("http--x").is_err());
        assert!(iana_svc_name("8080").is_err());
        assert!(iana_svc_name("a-very-long-port-name").is_err());
    }

    #[test]
    fn keys_and_values() {
        assert!(qualified_name("app").is_ok());
        assert!(qualified_name("app.kubernetes.io/name").is_ok());
        assert!(qualified_name("App_Name.x").is_ok());
        assert!(qualified_name("/name").is_err());
        assert!(qualified_name("Example.com/name").is_err());
        assert!(qualified_name("a/b/c").is_err());
        assert!(qualified_name("-app").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_x").is_ok());
        assert!(label_value("has space").is_err());
        assert!(label_value(&"a".repeat(64)).is_err());
        assert!(config_key("game.properties").is_ok());
        assert!(config_key("..").is_err());
        assert!(config_key("a/b").is_err());
        assert!(env_var_name("REDIS_HOST").is_ok());
        assert!(env_var_name("1X").is_err());
        assert!(env_var_name("A=B").is_err());
        assert!(ipv4("10.96.0.10").is_ok());
        assert!(ipv4("10.96.0").is_err());
        assert!(ipv4_cidr("10.244.1.0/24").is_ok());
        assert!(
            ipv4_cidr("10.244.1.1/24")
                .unwrap_err()
                .contains("10.244.1.0/24")
        );
        assert!(ipv4_cidr("10.244.1.0/33").is_err());
        assert!(ipv4_cidr("0.0.0.0/0").is_ok());
    }
}
