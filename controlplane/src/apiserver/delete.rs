//! Deletion, cascading to dependents by `metadata.ownerReferences` (as
//! Kubernetes' garbage collector does in background mode: the owner goes
//! first, then everything that named it, recursively), and the startup
//! sweep that finishes a cascade a crash interrupted.

use std::collections::{HashMap, HashSet, VecDeque};

use jotasu_api::defaults::DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS;
use jotasu_api::{Kind, Object, ObjectRef, Time};
use serde::Deserialize;
use tracing::{info, warn};

use super::error::{ApiResult, ApiServerError};
use super::keys::{ROOT, kind_prefix, object_key, split_key};
use super::{ApiServer, WRITE_ATTEMPTS, decode, encode, parse_resource_version};
use crate::store::{KeyValue, Store, StoreError};

/// A dependent found by a cascade: its key-value, ref and own uid.
type Dependent<'a> = (&'a KeyValue, ObjectRef, Option<String>);

/// Just what the collector reads of an object (lenient: any kind's JSON).
#[derive(Deserialize)]
struct Owned {
    #[serde(default)]
    metadata: OwnedMeta,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnedMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    owner_references: Vec<OwnerUid>,
}

#[derive(Deserialize)]
struct OwnerUid {
    uid: String,
}

fn owned(kv: &KeyValue) -> Option<(ObjectRef, OwnedMeta)> {
    let (kind, ..) = split_key(&kv.key)?;
    let o: Owned = serde_json::from_slice(&kv.value).ok()?;
    let r = ObjectRef {
        kind,
        namespace: o.metadata.namespace.clone().filter(|_| kind.namespaced()),
        name: o.metadata.name.clone(),
    };
    Some((r, o.metadata))
}

/// What removing one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// Gone from the store.
    Deleted,
    /// A bound Pod, now marked terminating.
    Terminating,
    /// A bound Pod already terminating at least as soon.
    AlreadyTerminating,
}

/// How to remove the object in `kv`: `None` to delete it now, else the
/// bound Pod marked terminating (or `Some(None)`: it already is, as soon).
fn termination(kv: &KeyValue, grace_seconds: Option<i64>) -> ApiResult<Option<Option<Vec<u8>>>> {
    if !matches!(split_key(&kv.key), Some((Kind::Pod, ..))) {
        return Ok(None);
    }
    let Object::Pod(mut pod) = decode(kv)? else {
        return Ok(None);
    };
    if pod.spec.node_name.as_deref().is_none_or(str::is_empty) {
        return Ok(None);
    }
    let grace = grace_seconds
        .or(pod.spec.termination_grace_period_seconds)
        .unwrap_or(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
    if grace <= 0 {
        return Ok(None);
    }
    let meta = &mut pod.metadata;
    if meta.deletion_timestamp.is_some()
        && meta
            .deletion_grace_period_seconds
            .is_some_and(|g| g <= grace)
    {
        return Ok(Some(None));
    }
    let now = jotasu_api::meta::unix_now();
    meta.deletion_timestamp = Some(Time::from_unix_seconds(now.saturating_add(grace)));
    meta.deletion_grace_period_seconds = Some(grace);
    Ok(Some(Some(encode(&Object::Pod(pod))?)))
}

impl<S: Store> ApiServer<S> {
    /// Deletes the object in `kv` at its mod revision, or marks a bound Pod
    /// (or a claim a pod uses) terminating (see [`ApiServer::delete_graceful`]).
    async fn remove(
        &self,
        kv: &KeyValue,
        grace_seconds: Option<i64>,
    ) -> Result<Removal, StoreError> {
        let plan = match self.protect_claim(kv).await? {
            Some(protected) => Some(protected),
            None => {
                termination(kv, grace_seconds).map_err(|e| StoreError::Internal(e.to_string()))?
            }
        };
        match plan {
            None => {
                self.store.delete_if(&kv.key, kv.mod_revision).await?;
                Ok(Removal::Deleted)
            }
            Some(None) => Ok(Removal::AlreadyTerminating),
            Some(Some(marked)) => {
                self.store
                    .update_if(&kv.key, &marked, kv.mod_revision)
                    .await?;
                Ok(Removal::Terminating)
            }
        }
    }

    /// Deletes `r` (only at `resource_version`, if given), then its
    /// dependents. Returns what was deleted, the object first.
    pub async fn delete(
        &self,
        r: &ObjectRef,
        resource_version: Option<&str>,
    ) -> ApiResult<Vec<ObjectRef>> {
        self.delete_graceful(r, resource_version, None).await
    }

    /// [`ApiServer::delete`], where a Pod bound to a node is only marked
    /// terminating (`deletionTimestamp` = now + grace) for its node to stop
    /// and then remove, unless the grace (`grace_seconds`, else the pod's
    /// `terminationGracePeriodSeconds`) is 0. Dependents are treated alike.
    /// A Namespace is marked `Terminating` instead, for the namespace
    /// controller to empty ([`super::lifecycle`]).
    pub async fn delete_graceful(
        &self,
        r: &ObjectRef,
        resource_version: Option<&str>,
        grace_seconds: Option<i64>,
    ) -> ApiResult<Vec<ObjectRef>> {
        let precondition = match resource_version.filter(|v| !v.is_empty()) {
            Some(v) => Some(parse_resource_version(r, v)?),
            None => None,
        };
        if r.kind == Kind::Namespace {
            return self.delete_namespace(r, precondition).await;
        }
        let key = object_key(r);
        let mut attempt = 0;
        let uid = loop {
            attempt += 1;
            let kv = self
                .store
                .get(&key)
                .await?
                .ok_or_else(|| ApiServerError::NotFound(r.clone()))?;
            if precondition.is_some_and(|p| p != kv.mod_revision) {
                return Err(ApiServerError::Conflict(r.clone()));
            }
            match self.remove(&kv, grace_seconds).await {
                Ok(Removal::Deleted) => break owned(&kv).and_then(|(_, m)| m.uid),
                // Pods and claims own nothing: no cascade while one terminates.
                Ok(Removal::Terminating | Removal::AlreadyTerminating) => {
                    return Ok(vec![r.clone()]);
                }
                Err(StoreError::Conflict { .. })
                    if precondition.is_none() && attempt < WRITE_ATTEMPTS => {}
                Err(StoreError::Conflict { .. }) => {
                    return Err(ApiServerError::Conflict(r.clone()));
                }
                Err(e) => return Err(e.into()),
            }
        };
        let mut deleted = vec![r.clone()];
        if let Some(uid) = uid {
            let namespace = r.namespace.as_deref().filter(|_| r.kind.namespaced());
            deleted.extend(self.cascade(uid, namespace).await?);
        }
        Ok(deleted)
    }

    /// Deletes every object owned (transitively) by `uid`. Owners in a
    /// namespace own only objects of that namespace; cluster-scoped owners
    /// may own objects anywhere. One scan, then a walk over the owner graph.
    async fn cascade(&self, uid: String, namespace: Option<&str>) -> ApiResult<Vec<ObjectRef>> {
        let mut kvs = Vec::new();
        for kind in Kind::ALL.iter().copied() {
            kvs.extend(
                self.store
                    .range(&kind_prefix(kind, namespace), None)
                    .await?
                    .kvs,
            );
        }
        let mut children: HashMap<String, Vec<Dependent<'_>>> = HashMap::new();
        for kv in &kvs {
            let Some((r, meta)) = owned(kv) else { continue };
            for owner in &meta.owner_references {
                children.entry(owner.uid.clone()).or_default().push((
                    kv,
                    r.clone(),
                    meta.uid.clone(),
                ));
            }
        }
        let mut deleted = Vec::new();
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([uid]);
        while let Some(owner) = queue.pop_front() {
            for (kv, r, uid) in children.remove(&owner).unwrap_or_default() {
                if !seen.insert(kv.key.clone()) {
                    continue;
                }
                match self.remove(kv, None).await {
                    Ok(_) => {
                        queue.extend(uid);
                        deleted.push(r);
                    }
                    // Changed or gone meanwhile: the next sweep decides on its new self.
                    Err(StoreError::Conflict { .. }) => {
                        warn!(object = %r, "dependent changed during cascading delete; left for the next sweep");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(deleted)
    }

    /// Deletes objects whose every owner is gone (a cascade cut short by a
    /// crash). Run at startup. Returns what it deleted.
    pub async fn collect_garbage(&self) -> ApiResult<Vec<ObjectRef>> {
        let mut deleted = Vec::new();
        loop {
            let range = self.store.range(ROOT.as_bytes(), None).await?;
            let all: Vec<_> = range
                .kvs
                .iter()
                .filter_map(|kv| owned(kv).map(|o| (kv, o)))
                .collect();
            let uids: HashSet<&str> = all
                .iter()
                .filter_map(|(_, (_, m))| m.uid.as_deref())
                .collect();
            let mut round = 0;
            for (kv, (r, meta)) in &all {
                let orphan = !meta.owner_references.is_empty()
                    && meta
                        .owner_references
                        .iter()
                        .all(|o| !uids.contains(o.uid.as_str()));
                if orphan
                    && matches!(
                        self.remove(kv, None).await,
                        Ok(Removal::Deleted | Removal::Terminating)
                    )
                {
                    info!(object = %r, "deleted: its owners are gone");
                    deleted.push(r.clone());
                    round += 1;
                }
            }
            // Deleting an orphan may orphan its own dependents: sweep again.
            if round == 0 {
                return Ok(deleted);
            }
        }
    }
}
