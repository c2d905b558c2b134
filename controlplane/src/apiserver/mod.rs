//! The API server's logic over any [`Store`]: server-side apply, get, list,
//! cascading delete, status updates, scale and resumable watches. The gRPC
//! surface ([`grpc`]) only translates messages; everything here is testable
//! with an embedded store in a temp dir.

pub mod admit;
pub mod allocate;
pub mod bind;
pub mod bootstrap;
pub mod certificates;
pub mod datapath;
mod delete;
pub mod error;
pub mod eviction;
pub mod grpc;
pub mod guard;
pub mod heartbeat;
pub mod keys;
pub mod lease;
pub mod lifecycle;
pub mod limits;
pub mod node_lease;
pub mod node_scope;
pub mod priority;
pub mod proxy;
pub mod quota;
mod raw;
pub mod storage;
mod watch;
pub mod watch_cache;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jotasu_api::{Kind, LabelSelector, Object, ObjectRef};
use tokio::sync::watch as signal;
use tracing::debug;

use crate::store::{Compare, KeyValue, Revision, Store, StoreError, Txn};
use admit::{Identity, Outcome, Prepared, admit, assign_name, merge};
use allocate::{Ranges, range_key};
pub use bind::{BindOutcome, Binding, Refusal};
pub use error::{ApiResult, ApiServerError};
pub use heartbeat::{Heartbeats, Usage};
use keys::object_key;
pub use watch::{Event, EventType, WatchSpec};

/// How many times a write retries after losing a race with another writer
/// (only when the caller gave no resourceVersion of its own).
const WRITE_ATTEMPTS: usize = 8;

/// How many times an apply picks addresses again after other applies
/// allocated first (one of them wins every round).
const ALLOCATION_ROUNDS: usize = 1_000;

/// How many names `generateName` tries before giving up.
const GENERATE_NAME_ATTEMPTS: usize = 16;

/// The result of applying one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Which object (its generated name, if it had `generateName`).
    pub object_ref: ObjectRef,
    /// What the apply did.
    pub outcome: Outcome,
    /// Its resourceVersion afterwards.
    pub resource_version: Revision,
}

/// Which write a [`WriteCheck`] is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// An apply (creates or changes the object).
    Apply,
    /// A status update.
    Status,
}

/// Passes or refuses each object a write would store, knowing its stored
/// version: authorization and admission of the caller's writes.
pub trait WriteCheck: Send + Sync {
    /// `Ok` lets `object` (replacing `existing`, if any) be written.
    fn check<'a>(
        &'a self,
        write: WriteKind,
        object: &'a Object,
        existing: Option<&'a Object>,
    ) -> futures::future::BoxFuture<'a, ApiResult<()>>;
}

/// Lets everything through: the control plane's own writes.
#[derive(Debug, Clone, Copy)]
pub struct Unchecked;

impl WriteCheck for Unchecked {
    fn check<'a>(
        &'a self,
        _: WriteKind,
        _: &'a Object,
        _: Option<&'a Object>,
    ) -> futures::future::BoxFuture<'a, ApiResult<()>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The API server.
#[derive(Debug)]
pub struct ApiServer<S> {
    store: Arc<S>,
    shutdown: signal::Receiver<bool>,
    heartbeats: Heartbeats,
    ranges: Ranges,
    proxy: proxy::NodeProxy,
    watch_cache: Arc<watch_cache::WatchCache<S>>,
}

impl<S> Clone for ApiServer<S> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            shutdown: self.shutdown.clone(),
            heartbeats: self.heartbeats.clone(),
            ranges: self.ranges,
            proxy: self.proxy.clone(),
            watch_cache: Arc::clone(&self.watch_cache),
        }
    }
}

/// Decodes a stored object (as stored: without resourceVersion).
pub(crate) fn decode(kv: &KeyValue) -> ApiResult<Object> {
    serde_json::from_slice(&kv.value).map_err(|e| ApiServerError::Corrupt {
        key: String::from_utf8_lossy(&kv.key).into_owned(),
        reason: e.to_string(),
    })
}

fn encode(object: &Object) -> ApiResult<Vec<u8>> {
    serde_json::to_vec(object).map_err(|e| {
        ApiServerError::Invalid(format!("{}: cannot encode: {e}", object.object_ref()))
    })
}

/// Parses a resourceVersion as a store revision.
fn parse_resource_version(r: &ObjectRef, v: &str) -> ApiResult<Revision> {
    v.parse().map_err(|_| {
        ApiServerError::Invalid(format!(
            "{r}: metadata.resourceVersion: Invalid value: {v:?}: must be a resourceVersion the server returned"
        ))
    })
}

impl<S: Store> ApiServer<S> {
    /// A server over `store`; watches end when `shutdown` turns true.
    pub fn new(store: Arc<S>, shutdown: signal::Receiver<bool>) -> Self {
        let limits = watch_cache::Limits::default();
        let watch_cache =
            watch_cache::WatchCache::new(Arc::clone(&store), shutdown.clone(), limits);
        Self {
            store,
            shutdown,
            watch_cache: Arc::new(watch_cache),
            heartbeats: Heartbeats::default(),
            ranges: Ranges::default(),
            proxy: proxy::NodeProxy::default(),
        }
    }

    /// The same server counting a node silent for `grace` as not live (the
    /// node lifecycle controller's grace period): such a node does not hold
    /// up [`Self::wait_endpoints_programmed`].
    #[must_use]
    pub fn with_node_grace(mut self, grace: std::time::Duration) -> Self {
        self.heartbeats = self.heartbeats.with_live_within(grace);
        self
    }

    /// The ranges it allocates from.
    pub fn ranges(&self) -> Ranges {
        self.ranges
    }

    /// The store this server writes to.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The same server (heartbeats, ranges, node proxy) over another
    /// store: the leader's scheduler and controllers write through a
    /// fenced view of the shared one.
    pub fn with_store<T: Store>(&self, store: Arc<T>) -> ApiServer<T> {
        ApiServer {
            store: Arc::clone(&store),
            shutdown: self.shutdown.clone(),
            heartbeats: self.heartbeats.clone(),
            ranges: self.ranges,
            proxy: self.proxy.clone(),
            // Reads and watches pass through a fenced store unchanged; its
            // own cache serves the leader's informers.
            watch_cache: Arc::new(watch_cache::WatchCache::new(
                store,
                self.shutdown.clone(),
                self.watch_cache.limits(),
            )),
        }
    }

    /// The same server with a fresh watch cache bounded by `limits`
    /// (see [`watch_cache`]).
    #[must_use]
    pub fn with_watch_cache_limits(mut self, limits: watch_cache::Limits) -> Self {
        let cache =
            watch_cache::WatchCache::new(Arc::clone(&self.store), self.shutdown.clone(), limits);
        self.watch_cache = Arc::new(cache);
        self
    }

    /// The same server allocating from `ranges`.
    pub fn with_ranges(mut self, ranges: Ranges) -> Self {
        self.ranges = ranges;
        self
    }

    /// Reads one stored object with its mod revision (no resourceVersion stamped).
    async fn read(&self, r: &ObjectRef) -> ApiResult<Option<(Object, Revision)>> {
        let key = object_key(r);
        match self.store.get(&key).await? {
            None => Ok(None),
            Some(kv) => Ok(Some((decode(&kv)?, kv.mod_revision))),
        }
    }

    /// Server-side apply, all or nothing (see [`admit`] for the rules).
    pub async fn apply(&self, objects: &[String], dry_run: bool) -> ApiResult<Vec<Applied>> {
        self.apply_checked(objects, dry_run, &Unchecked).await
    }

    /// [`Self::apply`], each object passed by `check` (with its stored
    /// version) before anything is written: the caller's authorization and
    /// admission rules. Every caller's creations pass the namespace
    /// lifecycle and ServiceAccount admission ([`lifecycle`]). One refusal
    /// writes nothing.
    pub async fn apply_checked(
        &self,
        objects: &[String],
        dry_run: bool,
        check: &dyn WriteCheck,
    ) -> ApiResult<Vec<Applied>> {
        let admitted = admit(objects)?;
        let explicit = admitted.iter().any(|o| {
            o.metadata()
                .resource_version
                .as_deref()
                .is_some_and(|v| !v.is_empty())
        });
        let mut attempt = 0;
        let mut allocation_rounds = 0;
        loop {
            attempt += 1;
            let mut prepared = Vec::with_capacity(admitted.len());
            for admitted in &admitted {
                let (object, identity, existing) = self.identify(admitted).await?;
                let merged = merge(
                    object,
                    existing.as_ref().map(|(o, rev)| (o, *rev)),
                    &identity,
                )?;
                check
                    .check(
                        WriteKind::Apply,
                        &merged.object,
                        existing.as_ref().map(|(o, _)| o),
                    )
                    .await?;
                prepared.push(merged);
            }
            let requested = prepared.len();
            let mut read = self.admit_lifecycle(&mut prepared).await?;
            read.extend(self.admit_priority(&mut prepared).await?);
            read.extend(self.admit_limits(&mut prepared).await?);
            read.extend(self.admit_storage(&mut prepared).await?);
            let (quota_read, quota_guards) = self.admit_quota(&prepared).await?;
            read.extend(quota_read);
            let mut guards = self.allocate(&mut prepared).await?;
            guards.extend(quota_guards);
            match self.commit(&prepared, &guards, &read, dry_run).await {
                Ok(mut results) => {
                    // Written with them, not asked for: new namespaces' default accounts.
                    results.truncate(requested);
                    return Ok(results);
                }
                // Another apply allocated an address or took quota first:
                // every round one wins, so this ends; pick and count again.
                Err(ApiServerError::Store(StoreError::Conflict { key, .. }))
                    if guards.iter().any(|(g, _)| *g == key)
                        && allocation_rounds < ALLOCATION_ROUNDS =>
                {
                    allocation_rounds += 1;
                    attempt -= 1;
                    let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 4);
                    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
                }
                // A namespace or service account admission read changed
                // (a namespace now terminating): decide again.
                Err(ApiServerError::Store(StoreError::Conflict { key, .. }))
                    if read.iter().any(|(k, _)| *k == key) && attempt < WRITE_ATTEMPTS =>
                {
                    debug!(key = %String::from_utf8_lossy(&key), attempt, "admission read changed; retrying");
                }
                Err(ApiServerError::Store(StoreError::Conflict { key, .. }))
                    if !explicit && attempt < WRITE_ATTEMPTS =>
                {
                    debug!(key = %String::from_utf8_lossy(&key), attempt, "apply lost a race; retrying");
                }
                Err(ApiServerError::Store(StoreError::Conflict { key, .. })) => {
                    let r = prepared
                        .iter()
                        .map(|p| p.object.object_ref())
                        .find(|r| object_key(r) == key);
                    return Err(match r {
                        Some(r) => ApiServerError::Conflict(r),
                        None => ApiServerError::Store(StoreError::Internal(format!(
                            "too many concurrent writers on {}; retry",
                            String::from_utf8_lossy(&key)
                        ))),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The object with its name (a fresh one for `generateName`), its
    /// identity if created, and its stored version.
    async fn identify(
        &self,
        admitted: &Object,
    ) -> ApiResult<(Object, Identity, Option<(Object, Revision)>)> {
        for _ in 0..GENERATE_NAME_ATTEMPTS {
            let identity = Identity::fresh();
            let mut object = admitted.clone();
            let generated = assign_name(&mut object, &identity);
            let existing = self.read(&object.object_ref()).await?;
            if !(generated && existing.is_some()) {
                return Ok((object, identity, existing));
            }
        }
        Err(ApiServerError::Invalid(format!(
            "{}: metadata.generateName: no free name after {GENERATE_NAME_ATTEMPTS} tries",
            admitted.object_ref()
        )))
    }

    /// Gives Services and Nodes being written the address they ask for
    /// (a cluster IP, a pod CIDR) and checks the ones they bring; returns
    /// the range keys the commit must guard (see [`allocate`]).
    async fn allocate(&self, prepared: &mut [Prepared]) -> ApiResult<Vec<(Vec<u8>, Revision)>> {
        let mut guards = Vec::new();
        for kind in [Kind::Service, Kind::Node] {
            let writing = |p: &Prepared| p.object.kind() == kind && p.outcome != Outcome::Unchanged;
            if !prepared
                .iter()
                .any(|p| writing(p) || (p.object.kind() == kind && allocate::wants(&p.object)))
            {
                continue;
            }
            let guard = range_key(kind);
            let expected = self
                .store
                .get(&guard)
                .await?
                .map_or(0, |kv| kv.mod_revision);
            let range = self
                .store
                .range(&keys::kind_prefix(kind, None), None)
                .await?;
            let mut held: HashMap<Vec<u8>, String> = HashMap::new();
            let mut ports: HashMap<Vec<u8>, Vec<i32>> = HashMap::new();
            for kv in &range.kvs {
                let object = decode(kv)?;
                if let Some(address) = allocate::held(&object) {
                    held.insert(kv.key.clone(), address);
                }
                ports.insert(kv.key.clone(), allocate::node_ports(&object));
            }
            for p in prepared.iter_mut().filter(|p| p.object.kind() == kind) {
                let key = object_key(&p.object.object_ref());
                let others: HashSet<String> = held
                    .iter()
                    .filter(|(k, _)| **k != key)
                    .map(|(_, a)| a.clone())
                    .collect();
                let other_ports: HashSet<i32> = ports
                    .iter()
                    .filter(|(k, _)| **k != key)
                    .flat_map(|(_, p)| p.iter().copied())
                    .collect();
                if allocate::assign_node_ports(&mut p.object, &other_ports)?
                    && p.outcome == Outcome::Unchanged
                {
                    p.outcome = Outcome::Configured;
                }
                ports.insert(key.clone(), allocate::node_ports(&p.object));
                if allocate::wants(&p.object) {
                    allocate::assign(&mut p.object, &self.ranges, &others)?;
                    if p.outcome == Outcome::Unchanged {
                        p.outcome = Outcome::Configured;
                    }
                } else if p.outcome != Outcome::Unchanged {
                    allocate::check_given(&p.object, &self.ranges, &others)?;
                }
                if let Some(address) = allocate::held(&p.object) {
                    held.insert(key, address);
                }
            }
            guards.push((guard, expected));
        }
        Ok(guards)
    }

    /// Writes prepared objects in one transaction guarded by every expected
    /// mod revision (unchanged ones included, so the whole set is
    /// consistent), by the allocation ranges' `guards` (bumped) and by the
    /// keys admission `read` (unchanged: a namespace that turns terminating
    /// meanwhile fails the write, which is then decided again).
    async fn commit(
        &self,
        prepared: &[Prepared],
        guards: &[(Vec<u8>, Revision)],
        read: &[(Vec<u8>, Revision)],
        dry_run: bool,
    ) -> ApiResult<Vec<Applied>> {
        let mut txn = Txn::new();
        let mut writes = 0;
        for (key, expected) in read {
            txn = txn.when(Compare::mod_revision(key, *expected));
        }
        for (key, expected) in guards {
            txn = txn
                .when(Compare::mod_revision(key, *expected))
                .put(key, expected.to_string().as_bytes());
        }
        for p in prepared {
            let key = object_key(&p.object.object_ref());
            txn = txn.when(Compare::mod_revision(&key, p.expected));
            if p.outcome != Outcome::Unchanged {
                writes += 1;
                txn = txn.put(&key, &encode(&p.object)?);
            }
        }
        let revision = if writes == 0 || dry_run {
            None
        } else {
            self.store.txn(txn).await?
        };
        Ok(prepared
            .iter()
            .map(|p| Applied {
                object_ref: p.object.object_ref(),
                outcome: p.outcome,
                resource_version: match (p.outcome, revision) {
                    (Outcome::Unchanged, _) | (_, None) => p.expected,
                    (_, Some(rev)) => rev,
                },
            })
            .collect())
    }

    /// The store's current revision (the latest write's).
    pub async fn revision(&self) -> ApiResult<Revision> {
        Ok(self.store.current_revision().await?)
    }

    /// One object, as JSON with its resourceVersion.
    pub async fn get(&self, r: &ObjectRef) -> ApiResult<String> {
        let kv = self
            .store
            .get(&object_key(r))
            .await?
            .ok_or_else(|| ApiServerError::NotFound(r.clone()))?;
        raw::stamp(&kv.key, &kv.value, kv.mod_revision)
    }

    /// Objects of `kind` (in `namespace`, or all) matching `selector`, as
    /// JSON, sorted by namespace and name, with the revision they reflect.
    pub async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: &LabelSelector,
    ) -> ApiResult<(Vec<String>, Revision)> {
        self.list_where(kind, namespace, selector, |_| Ok(true))
            .await
    }

    /// [`Self::list`] of the objects `keep` accepts too.
    async fn list_where(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        selector: &LabelSelector,
        keep: impl Fn(&KeyValue) -> ApiResult<bool>,
    ) -> ApiResult<(Vec<String>, Revision)> {
        let range = self
            .store
            .range(&keys::kind_prefix(kind, namespace), None)
            .await?;
        let mut items = Vec::with_capacity(range.kvs.len());
        for kv in &range.kvs {
            if !raw::matches(selector, &kv.key, &kv.value)? || !keep(kv)? {
                continue;
            }
            let (_, ns, name) =
                keys::split_key(&kv.key).ok_or_else(|| ApiServerError::Corrupt {
                    key: String::from_utf8_lossy(&kv.key).into_owned(),
                    reason: "not an object key".into(),
                })?;
            items.push(((ns, name), raw::stamp(&kv.key, &kv.value, kv.mod_revision)?));
        }
        // Key order is close but not equal ("a-b/x" sorts before "a/y").
        items.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((
            items.into_iter().map(|(_, json)| json).collect(),
            range.revision,
        ))
    }

    /// Replaces the status of the object `object` names with its status.
    /// `metadata.resourceVersion` is required and must be current.
    pub async fn update_status(&self, json: &str) -> ApiResult<Object> {
        self.update_status_checked(json, &Unchecked).await
    }

    /// [`Self::update_status`], the change passed by `check` first.
    pub async fn update_status_checked(
        &self,
        json: &str,
        check: &dyn WriteCheck,
    ) -> ApiResult<Object> {
        let mut given: Object = serde_json::from_str(json)
            .map_err(|e| ApiServerError::Invalid(format!("status update: {e}")))?;
        given.apply_defaults();
        let r = given.object_ref();
        if !r.kind.has_status() {
            return Err(ApiServerError::Invalid(format!(
                "{} have no status",
                r.kind.resource_name()
            )));
        }
        let expected = match given.metadata().resource_version.as_deref() {
            Some(v) if !v.is_empty() => parse_resource_version(&r, v)?,
            _ => {
                return Err(ApiServerError::Invalid(format!(
                    "{r}: metadata.resourceVersion: Required value: a status update names the version it read"
                )));
            }
        };
        let (mut stored, rev) = self
            .read(&r)
            .await?
            .ok_or_else(|| ApiServerError::NotFound(r.clone()))?;
        if rev != expected {
            return Err(ApiServerError::Conflict(r));
        }
        let before = stored.clone();
        stored.set_status_from(&given);
        check
            .check(WriteKind::Status, &stored, Some(&before))
            .await?;
        if stored == before {
            stored.metadata_mut().resource_version = Some(rev.to_string());
            return Ok(stored);
        }
        let key = object_key(&r);
        let rev = match self.store.update_if(&key, &encode(&stored)?, rev).await {
            Err(StoreError::Conflict { .. }) => return Err(ApiServerError::Conflict(r)),
            other => other?,
        };
        stored.metadata_mut().resource_version = Some(rev.to_string());
        Ok(stored)
    }

    /// Sets `spec.replicas` (Deployments, ReplicaSets, StatefulSets).
    pub async fn scale(&self, r: &ObjectRef, replicas: i32) -> ApiResult<Object> {
        if !matches!(
            r.kind,
            Kind::Deployment | Kind::ReplicaSet | Kind::StatefulSet
        ) {
            return Err(ApiServerError::not_scalable(r.kind));
        }
        if replicas < 0 {
            return Err(ApiServerError::Invalid(format!(
                "{r}: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
            )));
        }
        let key = object_key(r);
        for _ in 0..WRITE_ATTEMPTS {
            let (mut object, rev) = self
                .read(r)
                .await?
                .ok_or_else(|| ApiServerError::NotFound(r.clone()))?;
            let Some(current) = object.replicas_mut() else {
                return Err(ApiServerError::not_scalable(r.kind));
            };
            if *current == Some(replicas) {
                object.metadata_mut().resource_version = Some(rev.to_string());
                return Ok(object);
            }
            *current = Some(replicas);
            let meta = object.metadata_mut();
            meta.generation = Some(meta.generation.unwrap_or(1) + 1);
            match self.store.update_if(&key, &encode(&object)?, rev).await {
                Ok(rev) => {
                    object.metadata_mut().resource_version = Some(rev.to_string());
                    return Ok(object);
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiServerError::Conflict(r.clone()))
    }
}
