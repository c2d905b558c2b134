//! Namespace lifecycle and ServiceAccount admission, as Kubernetes'
//! NamespaceLifecycle and ServiceAccount admission plugins decide, for
//! every object an apply creates — a user's or a controller's, so this is
//! the one place these rules live:
//! - a namespaced object is created only in a namespace that exists (in
//!   the store or in the same apply) and is not terminating; updates of
//!   existing objects stay allowed, so controllers can finish;
//! - a Pod is created only if its ServiceAccount exists;
//! - a new Namespace is `Active` and gets its `default` ServiceAccount in
//!   the same transaction (Kubernetes' controller makes it a moment later;
//!   here a Pod applied right after its Namespace never races it);
//! - `default`, `kube-system` and `kube-public` cannot be deleted; deleting
//!   another namespace marks it `Terminating` for the namespace controller
//!   ([`crate::controllers::namespace`]), which empties it and then
//!   removes the `kubernetes` finalizer ([`ApiServer::finalize_namespace`]).
//!
//! The decisions are plain functions over what the apply prepared and what
//! the store holds; [`ApiServer`] does the reads and the writes.

use std::collections::{BTreeSet, HashMap, HashSet};

use jotasu_api::kinds::namespace::{FINALIZER_KUBERNETES, IMMORTAL, NAME_LABEL};
use jotasu_api::kinds::service_account::DEFAULT_SERVICE_ACCOUNT;
use jotasu_api::{
    Kind, Namespace, NamespacePhase, Object, ObjectMeta, ObjectRef, ServiceAccount, Time,
};
use tracing::info;

use super::admit::{Identity, Outcome, Prepared, merge};
use super::error::{ApiResult, ApiServerError};
use super::keys::object_key;
use super::{ApiServer, WRITE_ATTEMPTS, encode};
use crate::store::{Revision, Store, StoreError};

/// What the store holds of the namespaces and service accounts an apply's
/// creations need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Known {
    /// Stored namespaces: name → whether it is terminating.
    pub namespaces: HashMap<String, bool>,
    /// Stored service accounts: (namespace, name).
    pub service_accounts: HashSet<(String, String)>,
}

/// A namespace's name as an object reference.
pub fn namespace_ref(name: &str) -> ObjectRef {
    ObjectRef {
        kind: Kind::Namespace,
        namespace: None,
        name: name.to_owned(),
    }
}

fn service_account_ref(namespace: &str, name: &str) -> ObjectRef {
    ObjectRef {
        kind: Kind::ServiceAccount,
        namespace: Some(namespace.to_owned()),
        name: name.to_owned(),
    }
}

/// The ServiceAccount a pod runs as (`default` if it names none).
fn pod_service_account(object: &Object) -> Option<&str> {
    match object {
        Object::Pod(p) => Some(
            p.spec
                .service_account_name
                .as_deref()
                .filter(|s| !s.is_empty())
                .unwrap_or(DEFAULT_SERVICE_ACCOUNT),
        ),
        _ => None,
    }
}

/// The namespace in the request named `name`, if any.
fn in_request<'a>(prepared: &'a [Prepared], name: &str) -> Option<&'a Prepared> {
    prepared
        .iter()
        .find(|p| p.object.kind() == Kind::Namespace && p.object.name() == name)
}

/// Whether the request has the ServiceAccount `namespace/name`, or creates
/// the Namespace that gets it (only `default`).
fn account_in_request(prepared: &[Prepared], namespace: &str, name: &str) -> bool {
    prepared.iter().any(|p| {
        let o = &p.object;
        (o.kind() == Kind::ServiceAccount && o.namespace() == Some(namespace) && o.name() == name)
            || (name == DEFAULT_SERVICE_ACCOUNT
                && o.kind() == Kind::Namespace
                && o.name() == namespace
                && p.outcome == Outcome::Created)
    })
}

/// The creations of namespaced objects: (object, its namespace).
fn creations(prepared: &[Prepared]) -> impl Iterator<Item = (&Object, &str)> {
    prepared.iter().filter_map(|p| {
        let ns = p.object.namespace()?;
        (p.outcome == Outcome::Created && p.object.kind().namespaced()).then_some((&p.object, ns))
    })
}

/// What [`admit_creations`] needs read from the store: namespaces and
/// service accounts the request itself does not bring.
pub fn lookups(prepared: &[Prepared]) -> (BTreeSet<String>, BTreeSet<(String, String)>) {
    let mut namespaces = BTreeSet::new();
    let mut accounts = BTreeSet::new();
    for (object, ns) in creations(prepared) {
        if !IMMORTAL.contains(&ns) && in_request(prepared, ns).is_none() {
            namespaces.insert(ns.to_owned());
        }
        if let Some(sa) = pod_service_account(object)
            && !account_in_request(prepared, ns, sa)
        {
            accounts.insert((ns.to_owned(), sa.to_owned()));
        }
    }
    (namespaces, accounts)
}

/// Refuses the first creation the namespace lifecycle or the pods'
/// service accounts forbid, in Kubernetes' words.
pub fn admit_creations(prepared: &[Prepared], known: &Known) -> ApiResult<()> {
    for (object, ns) in creations(prepared) {
        let terminating = if IMMORTAL.contains(&ns) {
            false
        } else if let Some(p) = in_request(prepared, ns) {
            matches!(&p.object, Object::Namespace(n) if n.is_terminating())
        } else {
            match known.namespaces.get(ns) {
                None => return Err(ApiServerError::NotFound(namespace_ref(ns))),
                Some(terminating) => *terminating,
            }
        };
        if terminating {
            return Err(ApiServerError::Refused {
                object: object.object_ref(),
                reason: format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            });
        }
        if let Some(sa) = pod_service_account(object)
            && !account_in_request(prepared, ns, sa)
            && !known
                .service_accounts
                .contains(&(ns.to_owned(), sa.to_owned()))
        {
            return Err(ApiServerError::Refused {
                object: object.object_ref(),
                reason: format!(
                    "error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found"
                ),
            });
        }
    }
    Ok(())
}

/// A new namespace starts `Active`, labelled with its (maybe generated) name.
pub fn activate_new_namespaces(prepared: &mut [Prepared]) {
    for p in prepared
        .iter_mut()
        .filter(|p| p.outcome == Outcome::Created)
    {
        if let Object::Namespace(ns) = &mut p.object {
            let name = ns.metadata.name().to_owned();
            ns.metadata.labels.insert(NAME_LABEL.to_owned(), name);
            ns.status = Some(jotasu_api::kinds::namespace::NamespaceStatus {
                phase: Some(NamespacePhase::Active),
                conditions: Vec::new(),
            });
        }
    }
}

/// The `default` ServiceAccount of every namespace the request creates
/// (unless it brings its own).
pub fn default_accounts(prepared: &[Prepared]) -> Vec<ObjectRef> {
    prepared
        .iter()
        .filter(|p| p.outcome == Outcome::Created && p.object.kind() == Kind::Namespace)
        .map(|p| p.object.name())
        .filter(|ns| {
            !prepared.iter().any(|q| {
                q.object.kind() == Kind::ServiceAccount
                    && q.object.namespace() == Some(*ns)
                    && q.object.name() == DEFAULT_SERVICE_ACCOUNT
            })
        })
        .map(|ns| service_account_ref(ns, DEFAULT_SERVICE_ACCOUNT))
        .collect()
}

/// A ServiceAccount with just a name (defaulted, ready to merge).
pub fn service_account(namespace: &str, name: &str) -> Object {
    Object::ServiceAccount(ServiceAccount {
        metadata: ObjectMeta {
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::named(name)
        },
        ..ServiceAccount::default()
    })
}

/// Refuses deleting the namespaces a cluster cannot do without.
pub fn refuse_deletion(r: &ObjectRef) -> ApiResult<()> {
    if r.kind == Kind::Namespace && IMMORTAL.contains(&r.name.as_str()) {
        return Err(ApiServerError::Refused {
            object: r.clone(),
            reason: "this namespace may not be deleted".into(),
        });
    }
    Ok(())
}

/// Marks a namespace deleted: `deletionTimestamp` and phase `Terminating`.
/// Returns whether anything changed (a second delete changes nothing).
pub fn mark_terminating(ns: &mut Namespace, now: &Time) -> bool {
    let status = ns.status.get_or_insert_with(Default::default);
    if ns.metadata.deletion_timestamp.is_some() && status.phase == Some(NamespacePhase::Terminating)
    {
        return false;
    }
    ns.metadata
        .deletion_timestamp
        .get_or_insert_with(|| now.clone());
    ns.metadata.deletion_grace_period_seconds = Some(0);
    status.phase = Some(NamespacePhase::Terminating);
    true
}

/// What finalizing a namespace leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finalized {
    /// Not being deleted: nothing to finalize.
    NotTerminating,
    /// Other finalizers remain: the namespace stays until they are removed.
    Waiting,
    /// No finalizer left: the namespace is removed.
    Gone,
}

/// Removes the `kubernetes` finalizer of a terminating namespace.
pub fn finalize(ns: &mut Namespace) -> Finalized {
    if ns.metadata.deletion_timestamp.is_none() {
        return Finalized::NotTerminating;
    }
    ns.spec.finalizers.retain(|f| f != FINALIZER_KUBERNETES);
    if ns.spec.finalizers.is_empty() {
        Finalized::Gone
    } else {
        Finalized::Waiting
    }
}

impl<S: Store> ApiServer<S> {
    /// Admits an apply's creations ([`admit_creations`]), activates its new
    /// namespaces and appends their `default` ServiceAccounts (to be written
    /// in the same transaction; the caller reports only the objects asked
    /// for). Returns the keys it read with their mod revisions: the commit
    /// holds them unchanged, so a namespace deleted meanwhile cannot gain
    /// new content.
    pub(super) async fn admit_lifecycle(
        &self,
        prepared: &mut Vec<Prepared>,
    ) -> ApiResult<Vec<(Vec<u8>, Revision)>> {
        let (namespaces, accounts) = lookups(prepared);
        let mut known = Known::default();
        let mut read = Vec::new();
        for name in namespaces {
            let r = namespace_ref(&name);
            if let Some((Object::Namespace(ns), rev)) = self.read(&r).await? {
                known.namespaces.insert(name, ns.is_terminating());
                read.push((object_key(&r), rev));
            }
        }
        for (ns, sa) in accounts {
            let r = service_account_ref(&ns, &sa);
            if let Some((_, rev)) = self.read(&r).await? {
                known.service_accounts.insert((ns, sa));
                read.push((object_key(&r), rev));
            }
        }
        admit_creations(prepared, &known)?;
        activate_new_namespaces(prepared);
        for r in default_accounts(prepared) {
            let ns = r.namespace.as_deref().unwrap_or_default();
            if self.read(&r).await?.is_none() {
                let mut sa = service_account(ns, &r.name);
                sa.apply_defaults();
                prepared.push(merge(sa, None, &Identity::fresh())?);
            }
        }
        Ok(read)
    }

    /// Deletes a namespace as Kubernetes does: marks it `Terminating` for
    /// the namespace controller, or removes it at once if it has no
    /// finalizer. The immortal ones are refused.
    pub(super) async fn delete_namespace(
        &self,
        r: &ObjectRef,
        precondition: Option<u64>,
    ) -> ApiResult<Vec<ObjectRef>> {
        refuse_deletion(r)?;
        let key = object_key(r);
        for _ in 0..WRITE_ATTEMPTS {
            let (object, rev) = self
                .read(r)
                .await?
                .ok_or_else(|| ApiServerError::NotFound(r.clone()))?;
            if precondition.is_some_and(|p| p != rev) {
                return Err(ApiServerError::Conflict(r.clone()));
            }
            let Object::Namespace(mut ns) = object else {
                return Err(ApiServerError::NotFound(r.clone()));
            };
            let result = if ns.spec.finalizers.is_empty() {
                self.store.delete_if(&key, rev).await.map(|_| ())
            } else if mark_terminating(&mut ns, &Time::now()) {
                let bytes = encode(&Object::Namespace(ns))?;
                self.store.update_if(&key, &bytes, rev).await.map(|_| ())
            } else {
                Ok(())
            };
            match result {
                Ok(()) => {
                    info!(namespace = %r.name, "namespace deleted: terminating until it is empty");
                    return Ok(vec![r.clone()]);
                }
                Err(StoreError::Conflict { .. }) if precondition.is_none() => {}
                Err(StoreError::Conflict { .. }) => {
                    return Err(ApiServerError::Conflict(r.clone()));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiServerError::Conflict(r.clone()))
    }

    /// Removes the `kubernetes` finalizer of the terminating namespace
    /// `name` (Kubernetes' `namespaces/finalize`), and the namespace itself
    /// once no finalizer is left. The namespace controller calls this when
    /// the namespace is empty.
    pub async fn finalize_namespace(&self, name: &str) -> ApiResult<Finalized> {
        let r = namespace_ref(name);
        let key = object_key(&r);
        for _ in 0..WRITE_ATTEMPTS {
            let Some((Object::Namespace(mut ns), rev)) = self.read(&r).await? else {
                return Err(ApiServerError::NotFound(r));
            };
            let outcome = finalize(&mut ns);
            let result = match outcome {
                Finalized::NotTerminating => return Ok(outcome),
                Finalized::Gone => self.store.delete_if(&key, rev).await.map(|_| ()),
                Finalized::Waiting => {
                    let bytes = encode(&Object::Namespace(ns))?;
                    self.store.update_if(&key, &bytes, rev).await.map(|_| ())
                }
            };
            match result {
                Ok(()) => return Ok(outcome),
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiServerError::Conflict(r))
    }
}

#[cfg(test)]
mod tests;
