//! The API's gate: every gRPC call is authenticated ([`crate::auth::authenticate`])
//! and authorized before it runs — `system:masters` may do anything, a
//! node what the node authorizer allows it ([`crate::auth::node`]), anyone
//! what RBAC grants — and a node's writes of its Node pass NodeRestriction.
//! The facts those decisions need (a pod's node, a node's pods'
//! references, the other Nodes) are read from the store here.

use std::sync::Arc;
use std::time::Duration;

use jotasu_api::{Kind, Object, ObjectRef, Pod};
use tokio::sync::watch;

use super::certificates::NodeSigner;
use super::error::{ApiResult, ApiServerError};
use super::keys::kind_prefix;
use super::node_scope::{bound_to, references};
use super::{ApiServer, WriteCheck, WriteKind, decode};
use crate::auth::attributes::{Attributes, Decision, Forbidden, MASTERS, UserInfo, verbs};
use crate::auth::authenticate::Presented;
use crate::auth::node::{self, Facts, Need, NodeRanges};
use crate::auth::rbac::RbacCache;
use crate::auth::token::{self, BootstrapToken, TOKEN_NAMESPACE};
use crate::store::Store;

/// How calls are authorized (`--authorization-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationMode {
    /// The node authorizer, then RBAC (the default).
    NodeRbac,
    /// Every authenticated caller may do anything (benchmarks' baseline).
    AlwaysAllow,
}

/// How a [`Guard`] decides and what it signs with.
#[derive(Debug, Clone)]
pub struct GuardOptions {
    /// How calls are authorized.
    pub mode: AuthorizationMode,
    /// The CA that signs node certificates, and their lifetime (none: no
    /// node can join over the network).
    pub signer: Option<(Arc<dyn NodeSigner>, Duration)>,
}

impl Default for GuardOptions {
    fn default() -> Self {
        Self {
            mode: AuthorizationMode::NodeRbac,
            signer: None,
        }
    }
}

/// Authentication and authorization of API calls.
#[derive(Debug)]
pub struct Guard<S> {
    server: ApiServer<S>,
    rbac: RbacCache<S>,
    mode: AuthorizationMode,
    signer: Option<(Arc<dyn NodeSigner>, Duration)>,
}

impl<S: Store> Guard<S> {
    /// A guard over `server`'s store; its RBAC cache follows the store
    /// until `shutdown`.
    pub async fn start(
        server: ApiServer<S>,
        options: GuardOptions,
        shutdown: watch::Receiver<bool>,
    ) -> ApiResult<Arc<Self>> {
        let rbac = RbacCache::start(Arc::clone(&server.store), shutdown).await?;
        Ok(Arc::new(Self {
            server,
            rbac,
            mode: options.mode,
            signer: options.signer,
        }))
    }

    /// The node certificate signer and lifetime, if this server signs.
    pub(super) fn signer(&self) -> Option<(&dyn NodeSigner, Duration)> {
        self.signer.as_ref().map(|(s, d)| (s.as_ref(), *d))
    }

    /// The store.
    pub(super) fn store(&self) -> &S {
        &self.server.store
    }

    /// Who presented `presented`.
    pub async fn authenticate(&self, presented: Presented) -> ApiResult<UserInfo> {
        match presented {
            Presented::LocalSocket => Ok(UserInfo::local_admin()),
            Presented::Certificate(user) => Ok(user),
            Presented::Token(t) => self.token_user(&t).await,
            Presented::Invalid(why) => Err(ApiServerError::Unauthenticated(why)),
            Presented::Anonymous => Err(ApiServerError::Unauthenticated(
                "no credentials: present a client certificate signed by the cluster CA \
                 (a context from `jotasu-controlplane user add`) or a bootstrap token"
                    .into(),
            )),
        }
    }

    async fn token_user(&self, t: &BootstrapToken) -> ApiResult<UserInfo> {
        let r = ObjectRef {
            kind: Kind::Secret,
            namespace: Some(TOKEN_NAMESPACE.to_owned()),
            name: BootstrapToken::secret_name(&t.id),
        };
        let stored = match self.server.read(&r).await? {
            Some((Object::Secret(s), _)) => Some(s),
            _ => None,
        };
        token::authenticate(t, stored.as_ref(), jotasu_api::meta::unix_now())
            .map_err(|e| ApiServerError::Unauthenticated(e.to_string()))
    }

    /// Whether `user` may do `attributes` (`scope`: the node scope a list
    /// or watch asked for).
    pub async fn decide(
        &self,
        user: &UserInfo,
        attributes: &Attributes,
        scope: Option<&str>,
    ) -> ApiResult<Decision> {
        if self.mode == AuthorizationMode::AlwaysAllow {
            return Ok(Decision::Allow("--authorization-mode AlwaysAllow".into()));
        }
        if user.in_group(MASTERS) {
            return Ok(Decision::Allow(format!("{MASTERS} may do anything")));
        }
        if let Some(node) = user.node() {
            let facts = self.facts(node, attributes).await?;
            let decision = node::decide(node, attributes, scope, &facts);
            if !matches!(decision, Decision::NoOpinion(_)) {
                return Ok(decision);
            }
        }
        Ok(self.rbac.authorize(user, attributes).await?)
    }

    /// `Ok` if `user` may do `attributes`, else Forbidden.
    pub async fn check(
        &self,
        user: &UserInfo,
        attributes: Attributes,
        scope: Option<&str>,
    ) -> ApiResult<()> {
        match self.decide(user, &attributes, scope).await? {
            Decision::Allow(_) => Ok(()),
            Decision::Deny(why) => Err(forbidden(user, attributes, Some(why))),
            Decision::NoOpinion(_) => Err(forbidden(user, attributes, None)),
        }
    }

    /// What the node authorizer needs to know about `attributes`' object.
    async fn facts(&self, node: &str, attributes: &Attributes) -> ApiResult<Facts> {
        match node::needs(attributes) {
            Need::Nothing => Ok(Facts::default()),
            Need::PodNode { namespace, name } => {
                let r = ObjectRef {
                    kind: Kind::Pod,
                    namespace: Some(namespace),
                    name,
                };
                let pod_node = match self.server.read(&r).await? {
                    Some((Object::Pod(p), _)) => p.spec.node_name.filter(|n| !n.is_empty()),
                    _ => None,
                };
                Ok(Facts {
                    pod_node,
                    ..Facts::default()
                })
            }
            Need::Referenced => {
                let namespace = attributes.namespace.as_deref();
                let name = attributes.name.as_deref().unwrap_or_default();
                let referenced = self
                    .node_references(node, namespace, &attributes.resource, name)
                    .await?;
                Ok(Facts {
                    referenced,
                    ..Facts::default()
                })
            }
            Need::Volume { name } => {
                let r = ObjectRef {
                    kind: Kind::PersistentVolume,
                    namespace: None,
                    name,
                };
                let Some((Object::PersistentVolume(pv), _)) = self.server.read(&r).await? else {
                    return Ok(Facts::default());
                };
                let pinned = crate::controllers::volumes::matching::pinned_node(&pv) == Some(node);
                let referenced = match (&pv.spec.claim_ref, pinned) {
                    (_, true) => true,
                    (Some(c), false) => {
                        let claim = c.name.as_deref().unwrap_or_default();
                        self.node_references(
                            node,
                            c.namespace.as_deref(),
                            "persistentvolumeclaims",
                            claim,
                        )
                        .await?
                    }
                    (None, false) => false,
                };
                Ok(Facts {
                    referenced,
                    ..Facts::default()
                })
            }
        }
    }

    /// Whether a Pod bound to `node` (in `namespace`) references the
    /// `resource` (configmaps, secrets, persistentvolumeclaims) `name`.
    async fn node_references(
        &self,
        node: &str,
        namespace: Option<&str>,
        resource: &str,
        name: &str,
    ) -> ApiResult<bool> {
        if namespace.is_none() || name.is_empty() {
            return Ok(false);
        }
        let pods = self
            .server
            .store
            .range(&kind_prefix(Kind::Pod, namespace), None)
            .await?;
        for kv in &pods.kvs {
            if !bound_to(node, &kv.key, &kv.value)? {
                continue;
            }
            let Ok(pod) = Pod::try_from(decode(kv)?) else {
                continue;
            };
            let found = match resource {
                "persistentvolumeclaims" => pod
                    .spec
                    .volumes
                    .iter()
                    .filter_map(|v| v.persistent_volume_claim.as_ref())
                    .any(|c| c.claim_name == name),
                "secrets" => references(&pod).secrets.contains(name),
                _ => references(&pod).config_maps.contains(name),
            };
            if found {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The check of `user`'s applies and status updates.
    pub fn writes<'a>(&'a self, user: &'a UserInfo) -> UserWrites<'a, S> {
        UserWrites { guard: self, user }
    }

    /// Every Node but `name`.
    async fn other_nodes(&self, name: &str) -> ApiResult<Vec<jotasu_api::Node>> {
        let range = self
            .server
            .store
            .range(&kind_prefix(Kind::Node, None), None)
            .await?;
        let mut nodes = Vec::new();
        for kv in &range.kvs {
            if let Ok(n) = jotasu_api::Node::try_from(decode(kv)?)
                && n.metadata.name() != name
            {
                nodes.push(n);
            }
        }
        Ok(nodes)
    }

    fn node_ranges(&self) -> NodeRanges {
        NodeRanges {
            cluster_cidr: self.server.ranges.cluster_cidr,
            service_cidr: self.server.ranges.service_cidr,
        }
    }
}

/// A Forbidden error in kube-apiserver's words.
pub fn forbidden(
    user: &UserInfo,
    attributes: Attributes,
    reason: Option<String>,
) -> ApiServerError {
    ApiServerError::Forbidden(Box::new(Forbidden {
        user: user.name.clone(),
        attributes,
        reason,
    }))
}

/// One caller's writes, checked object by object.
#[derive(Debug)]
pub struct UserWrites<'a, S> {
    guard: &'a Guard<S>,
    user: &'a UserInfo,
}

impl<S: Store> UserWrites<'_, S> {
    async fn run(
        &self,
        write: WriteKind,
        object: &Object,
        existing: Option<&Object>,
    ) -> ApiResult<()> {
        let r = object.object_ref();
        let name = Some(r.name.as_str()).filter(|n| !n.is_empty());
        let attributes = match write {
            WriteKind::Apply if existing.is_none() => {
                Attributes::of_kind(verbs::CREATE, r.kind, r.namespace.as_deref(), name)
            }
            WriteKind::Apply => {
                Attributes::of_kind(verbs::PATCH, r.kind, r.namespace.as_deref(), name)
            }
            WriteKind::Status => {
                Attributes::of_kind(verbs::UPDATE, r.kind, r.namespace.as_deref(), name)
                    .on_subresource("status")
            }
        };
        self.guard
            .check(self.user, attributes.clone(), None)
            .await?;
        if self.guard.mode == AuthorizationMode::NodeRbac
            && self.user.node().is_some()
            && let Some(given) = node::as_node(object)
        {
            let others = self.guard.other_nodes(given.metadata.name()).await?;
            let others: Vec<&jotasu_api::Node> = others.iter().collect();
            node::restrict_node_write(
                given,
                existing.and_then(node::as_node),
                &others,
                &self.guard.node_ranges(),
            )
            .map_err(|why| forbidden(self.user, attributes, Some(why)))?;
        }
        Ok(())
    }
}

impl<S: Store> WriteCheck for UserWrites<'_, S> {
    fn check<'a>(
        &'a self,
        write: WriteKind,
        object: &'a Object,
        existing: Option<&'a Object>,
    ) -> futures::future::BoxFuture<'a, ApiResult<()>> {
        Box::pin(self.run(write, object, existing))
    }
}
