//! Where objects live in the store: `/registry/<plural>/<namespace>/<name>`,
//! or `/registry/<plural>/<name>` for cluster-scoped kinds (Kubernetes'
//! own layout). Values are the object's JSON without `resourceVersion`,
//! which is the key's mod revision and is filled in on every read.

use jotasu_api::{Kind, ObjectRef};

/// The root of every key.
pub const ROOT: &str = "/registry/";

/// The key of one object.
pub fn object_key(r: &ObjectRef) -> Vec<u8> {
    match &r.namespace {
        Some(ns) if r.kind.namespaced() => format!("{ROOT}{}/{ns}/{}", r.kind.plural(), r.name),
        _ => format!("{ROOT}{}/{}", r.kind.plural(), r.name),
    }
    .into_bytes()
}

/// The prefix of a kind's objects, in one namespace or all.
pub fn kind_prefix(kind: Kind, namespace: Option<&str>) -> Vec<u8> {
    match namespace {
        Some(ns) if kind.namespaced() => format!("{ROOT}{}/{ns}/", kind.plural()),
        _ => format!("{ROOT}{}/", kind.plural()),
    }
    .into_bytes()
}

/// A key's kind, namespace (for namespaced kinds) and name.
pub fn split_key(key: &[u8]) -> Option<(Kind, Option<&str>, &str)> {
    let rest = std::str::from_utf8(key.strip_prefix(ROOT.as_bytes())?).ok()?;
    let mut parts = rest.splitn(3, '/');
    let plural = parts.next()?;
    let kind = Kind::ALL.iter().copied().find(|k| k.plural() == plural)?;
    if kind.namespaced() {
        let ns = parts.next()?;
        let name = parts.next()?;
        Some((kind, Some(ns), name))
    } else {
        let name = parts.next()?;
        (parts.next().is_none()).then_some((kind, None, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let r = ObjectRef {
            kind: Kind::Deployment,
            namespace: Some("ns".into()),
            name: "web".into(),
        };
        assert_eq!(object_key(&r), b"/registry/deployments/ns/web");
        let n = ObjectRef {
            kind: Kind::Node,
            namespace: None,
            name: "n1".into(),
        };
        assert_eq!(object_key(&n), b"/registry/nodes/n1");
        assert_eq!(kind_prefix(Kind::Pod, Some("a")), b"/registry/pods/a/");
        assert_eq!(kind_prefix(Kind::Node, Some("a")), b"/registry/nodes/");
    }

    #[test]
    fn split() {
        assert_eq!(
            split_key(b"/registry/pods/ns/p"),
            Some((Kind::Pod, Some("ns"), "p"))
        );
        assert_eq!(
            split_key(b"/registry/nodes/n1"),
            Some((Kind::Node, None, "n1"))
        );
        assert_eq!(split_key(b"/registry/nodes/n1/x"), None);
        assert_eq!(split_key(b"/registry/pods/ns"), None);
        assert_eq!(split_key(b"/elsewhere/pods/ns/p"), None);
    }
}
