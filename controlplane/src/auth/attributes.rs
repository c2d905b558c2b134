//! Who is asking and what for: the user an authenticator found, and a
//! request's authorization attributes as Kubernetes names them (verb, API
//! group, resource, subresource, namespace, name). Denials read as
//! kube-apiserver's.

use std::fmt;

use jotasu_api::Kind;
/// The group of nodes' agents, the prefix of a node's user name
/// (`system:node:<name>`), and the control plane's own identity toward agents.
pub use jotasu_api::client::identity::{CONTROLPLANE_USER, NODE_USER_PREFIX, NODES_GROUP as NODES};

/// The group every authenticated caller is in.
pub const AUTHENTICATED: &str = "system:authenticated";
/// The group that may do anything (the local socket's admin is in it).
pub const MASTERS: &str = "system:masters";
/// The group of callers holding a bootstrap token.
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";
/// The prefix of a bootstrap token's user: `system:bootstrap:<token-id>`.
pub const BOOTSTRAP_USER_PREFIX: &str = "system:bootstrap:";
/// The user of the local unix socket.
pub const LOCAL_ADMIN: &str = "system:admin";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserInfo {
    /// The user name (a client certificate's CN).
    pub name: String,
    /// Its groups (the certificate's O values), `system:authenticated` included.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A user in `groups` (and `system:authenticated`).
    pub fn new(
        name: impl Into<String>,
        groups: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let mut groups: Vec<String> = groups.into_iter().map(Into::into).collect();
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.to_owned());
        }
        Self {
            name: name.into(),
            groups,
        }
    }

    /// The local socket's administrator (`system:masters`).
    pub fn local_admin() -> Self {
        Self::new(LOCAL_ADMIN, [MASTERS])
    }

    /// Whether the caller is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The node this caller is the agent of (`system:node:<name>` in
    /// `system:nodes`), if it is one.
    pub fn node(&self) -> Option<&str> {
        self.name
            .strip_prefix(NODE_USER_PREFIX)
            .filter(|n| !n.is_empty() && self.in_group(NODES))
    }
}

/// The verbs of the resource API.
pub mod verbs {
    /// Read one object.
    pub const GET: &str = "get";
    /// Read every object of a kind.
    pub const LIST: &str = "list";
    /// Follow changes.
    pub const WATCH: &str = "watch";
    /// Make an object.
    pub const CREATE: &str = "create";
    /// Replace an object (or its status).
    pub const UPDATE: &str = "update";
    /// Change part of an object (server-side apply of an existing one).
    pub const PATCH: &str = "patch";
    /// Remove an object.
    pub const DELETE: &str = "delete";
}

/// What a request does, in RBAC's terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, …
    pub verb: String,
    /// The API group (`""` for the core group).
    pub api_group: String,
    /// The lower-case plural (`pods`).
    pub resource: String,
    /// `log`, `exec`, `status`, `scale`, … (`""`: the resource itself).
    pub subresource: String,
    /// `None`: cluster-scoped, or every namespace.
    pub namespace: Option<String>,
    /// `None`: no particular object (list, watch, create with generateName).
    pub name: Option<String>,
}

impl Attributes {
    /// `verb` on objects of `kind` (its group and plural), in `namespace`, named `name`.
    pub fn of_kind(verb: &str, kind: Kind, namespace: Option<&str>, name: Option<&str>) -> Self {
        Self {
            verb: verb.to_owned(),
            api_group: kind.group().to_owned(),
            resource: kind.plural().to_owned(),
            subresource: String::new(),
            namespace: match kind {
                // As kube-apiserver: a request on one Namespace is in that
                // namespace, so a RoleBinding there can grant reading it.
                Kind::Namespace => name,
                _ => namespace.filter(|_| kind.namespaced()),
            }
            .filter(|n| !n.is_empty())
            .map(str::to_owned),
            name: name.filter(|n| !n.is_empty()).map(str::to_owned),
        }
    }

    /// The same on a subresource (`status`, `log`, `exec`, `scale`).
    pub fn on_subresource(mut self, subresource: &str) -> Self {
        self.subresource = subresource.to_owned();
        self
    }

    /// `resource` or `resource/subresource`, as rules name it.
    pub fn resource_path(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// The answer of an authorizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, and by what (a binding, `system:masters`, the node authorizer).
    Allow(String),
    /// Not allowed by this authorizer (another may still allow it); why.
    NoOpinion(String),
    /// Refused outright, whatever other authorizers say; why.
    Deny(String),
}

impl Decision {
    /// Whether the request may go on.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// A refused request, worded as kube-apiserver words it:
/// `pods is forbidden: User "alice" cannot list resource "pods" in API
/// group "" in the namespace "default"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forbidden {
    /// Who asked.
    pub user: String,
    /// What for.
    pub attributes: Attributes,
    /// Why, when an authorizer said more than "no rule allows it".
    pub reason: Option<String>,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.attributes;
        let what = if a.api_group.is_empty() {
            a.resource_path()
        } else if a.subresource.is_empty() {
            format!("{}.{}", a.resource, a.api_group)
        } else {
            format!("{}.{}/{}", a.resource, a.api_group, a.subresource)
        };
        match &a.name {
            Some(name) => write!(f, "{what} {name:?} is forbidden: ")?,
            None => write!(f, "{what} is forbidden: ")?,
        }
        write!(
            f,
            "User {:?} cannot {} resource {:?} in API group {:?}",
            self.user,
            a.verb,
            a.resource_path(),
            a.api_group
        )?;
        match &a.namespace {
            Some(ns) => write!(f, " in the namespace {ns:?}")?,
            None => f.write_str(" at the cluster scope")?,
        }
        if let Some(reason) = &self.reason {
            write!(f, ": {reason}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_read_as_kubernetes_writes_them() {
        let list = Forbidden {
            user: "alice".into(),
            attributes: Attributes::of_kind(verbs::LIST, Kind::Pod, Some("default"), None),
            reason: None,
        };
        assert_eq!(
            list.to_string(),
            r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#
        );
        let get = Forbidden {
            user: "bob".into(),
            attributes: Attributes::of_kind(verbs::GET, Kind::Deployment, Some("dev"), Some("web")),
            reason: None,
        };
        assert_eq!(
            get.to_string(),
            r#"deployments.apps "web" is forbidden: User "bob" cannot get resource "deployments" in API group "apps" in the namespace "dev""#
        );
        let logs = Forbidden {
            user: "bob".into(),
            attributes: Attributes::of_kind(verbs::GET, Kind::Pod, Some("dev"), Some("p"))
                .on_subresource("log"),
            reason: None,
        };
        assert_eq!(
            logs.to_string(),
            r#"pods/log "p" is forbidden: User "bob" cannot get resource "pods/log" in API group "" in the namespace "dev""#
        );
        let nodes = Forbidden {
            user: "system:node:n1".into(),
            attributes: Attributes::of_kind(verbs::UPDATE, Kind::Node, None, Some("n2")),
            reason: Some("a node may only change its own Node".into()),
        };
        assert_eq!(
            nodes.to_string(),
            r#"nodes "n2" is forbidden: User "system:node:n1" cannot update resource "nodes" in API group "" at the cluster scope: a node may only change its own Node"#
        );
    }

    #[test]
    fn users_and_nodes() {
        let n = UserInfo::new("system:node:n1", [NODES]);
        assert_eq!(n.node(), Some("n1"));
        assert!(n.in_group(AUTHENTICATED));
        assert_eq!(UserInfo::new("system:node:n1", ["devs"]).node(), None);
        assert!(UserInfo::local_admin().in_group(MASTERS));
        assert_eq!(Kind::RoleBinding.group(), "rbac.authorization.k8s.io");
    }
}
