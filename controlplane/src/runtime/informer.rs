//! An informer: one kind's objects kept in memory from a List and a Watch
//! through the API server, with every change broadcast to the controllers
//! that subscribe (client-go's shared informer, in-process). A watch that
//! ends (compaction, lag, error) is followed by a fresh List; subscribers
//! then get [`Change::Resynced`] and reconcile everything.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::Duration;

use jotasu_api::{Kind, LabelSelector, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};
use tracing::{debug, warn};

use crate::apiserver::{ApiServer, EventType, WatchSpec};
use crate::store::{Revision, Store};

/// An object's key in a cache: namespace (`""` for cluster-scoped kinds) and name.
pub type Key = (String, String);

/// The key of an object.
pub fn key_of<T: Resource>(object: &T) -> Key {
    let meta = object.metadata();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name().to_owned(),
    )
}

/// One change an informer saw.
#[derive(Debug)]
pub enum Change<T> {
    /// Created or updated: the object before (if known) and after.
    Applied {
        /// Before the change (None: created).
        old: Option<Arc<T>>,
        /// After the change.
        new: Arc<T>,
    },
    /// Deleted: the last state seen.
    Deleted(Arc<T>),
    /// The cache was rebuilt from a List (or the subscriber lagged):
    /// anything may have changed.
    Resynced,
}

impl<T> Clone for Change<T> {
    fn clone(&self) -> Self {
        match self {
            Change::Applied { old, new } => Change::Applied {
                old: old.clone(),
                new: Arc::clone(new),
            },
            Change::Deleted(o) => Change::Deleted(Arc::clone(o)),
            Change::Resynced => Change::Resynced,
        }
    }
}

/// The objects of one kind, by key, and the revision they reflect.
#[derive(Debug)]
pub struct Cache<T> {
    /// The objects.
    pub objects: BTreeMap<Key, Arc<T>>,
    /// The store revision the cache reflects.
    pub revision: Revision,
}

/// Changes buffered per subscriber before it counts as lagging.
const CHANGES: usize = 1 << 16;

/// One kind's cache and change feed. Cloning shares both.
#[derive(Debug)]
pub struct Informer<T> {
    cache: Arc<RwLock<Cache<T>>>,
    changes: broadcast::Sender<Change<T>>,
    revision: watch::Receiver<Revision>,
    listed: watch::Receiver<bool>,
    kind: PhantomData<T>,
}

impl<T> Clone for Informer<T> {
    fn clone(&self) -> Self {
        Self {
            cache: Arc::clone(&self.cache),
            changes: self.changes.clone(),
            revision: self.revision.clone(),
            listed: self.listed.clone(),
            kind: PhantomData,
        }
    }
}

/// The [`Kind`] of a resource type.
pub fn kind_of<T: Resource>() -> Kind {
    // Every Resource in jotasu-api is a supported Kind.
    Kind::lookup(T::API_VERSION, T::KIND).unwrap_or(Kind::Pod)
}

impl<T> Informer<T>
where
    T: Resource + DeserializeOwned + Send + Sync + 'static,
{
    /// Starts listing and watching `T` through `api`; runs until `shutdown`
    /// turns true. Call [`Informer::synced`] before trusting the cache.
    pub fn start<S: Store>(api: ApiServer<S>, mut shutdown: watch::Receiver<bool>) -> Self {
        let cache = Arc::new(RwLock::new(Cache {
            objects: BTreeMap::new(),
            revision: 0,
        }));
        let (changes, _) = broadcast::channel(CHANGES);
        let (revision_tx, revision) = watch::channel(0);
        let (listed_tx, listed) = watch::channel(false);
        let informer = Self {
            cache,
            changes,
            revision,
            listed,
            kind: PhantomData,
        };
        let feed = informer.clone();
        let kind = kind_of::<T>();
        tokio::spawn(async move {
            loop {
                let result = tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => return,
                    result = feed.list_and_watch(&api, &revision_tx, &listed_tx) => result,
                };
                if *shutdown.borrow() {
                    return;
                }
                if let Err(e) = result {
                    warn!(%kind, error = %e, "informer: watch ended; listing again");
                }
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => return,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        });
        informer
    }

    /// Lists into the cache, then applies watch events until the watch ends.
    async fn list_and_watch<S: Store>(
        &self,
        api: &ApiServer<S>,
        revision_tx: &watch::Sender<Revision>,
        listed_tx: &watch::Sender<bool>,
    ) -> Result<(), String> {
        let kind = kind_of::<T>();
        // From the watch cache (List with resourceVersion "0"): the watch
        // below starts at its revision + 1, which the cache replays.
        let (items, revision) = api
            .list_cached(kind, None, &LabelSelector::default())
            .await
            .map_err(|e| e.to_string())?;
        let mut objects = BTreeMap::new();
        for json in &items {
            match serde_json::from_str::<T>(json) {
                Ok(o) => {
                    objects.insert(key_of(&o), Arc::new(o));
                }
                Err(e) => {
                    warn!(%kind, error = %e, "informer: skipping an object that does not decode")
                }
            }
        }
        {
            let mut cache = self.write();
            cache.objects = objects;
            cache.revision = revision;
        }
        let _ = self.changes.send(Change::Resynced);
        revision_tx.send_replace(revision);
        listed_tx.send_replace(true);
        debug!(%kind, count = items.len(), revision, "informer: listed");
        let spec = WatchSpec {
            kinds: vec![kind],
            from_revision: revision + 1,
            ..WatchSpec::default()
        };
        let mut events = api.watch(spec).await.map_err(|e| e.to_string())?;
        while let Some(event) = events.recv().await {
            let event = event.map_err(|e| e.to_string())?;
            let object: T = match serde_json::from_str(&event.json) {
                Ok(o) => o,
                Err(e) => {
                    warn!(%kind, error = %e, "informer: skipping an event that does not decode");
                    continue;
                }
            };
            let key = key_of(&object);
            let object = Arc::new(object);
            let change = {
                let mut cache = self.write();
                cache.revision = event.revision;
                match event.kind {
                    EventType::Deleted => {
                        cache.objects.remove(&key);
                        Change::Deleted(object)
                    }
                    EventType::Added | EventType::Modified => {
                        let old = cache.objects.insert(key, Arc::clone(&object));
                        Change::Applied { old, new: object }
                    }
                }
            };
            let _ = self.changes.send(change);
            revision_tx.send_replace(event.revision);
        }
        Err("the watch stream ended".into())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Cache<T>> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cache, read-locked: keep the guard short (no `.await` while held).
    pub fn read(&self) -> RwLockReadGuard<'_, Cache<T>> {
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// One object.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<T>> {
        self.read()
            .objects
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Every object.
    pub fn list(&self) -> Vec<Arc<T>> {
        self.read().objects.values().cloned().collect()
    }

    /// Every object in `namespace`.
    pub fn list_in(&self, namespace: &str) -> Vec<Arc<T>> {
        let start = (namespace.to_owned(), String::new());
        self.read()
            .objects
            .range(start..)
            .take_while(|((ns, _), _)| ns == namespace)
            .map(|(_, o)| Arc::clone(o))
            .collect()
    }

    /// A feed of changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change<T>> {
        self.changes.subscribe()
    }

    /// Waits until the first List is in the cache.
    pub async fn synced(&self) {
        let mut rx = self.listed.clone();
        let _ = rx.wait_for(|listed| *listed).await;
    }

    /// Waits until the cache reflects `revision` (the revision of a write
    /// of one object: read-your-writes before the next reconcile), at most
    /// `limit`. Objects written together share a revision and arrive one
    /// event at a time: wait for those with [`Informer::shows`].
    pub async fn caught_up(&self, revision: Revision, limit: Duration) {
        let mut rx = self.revision.clone();
        let _ = tokio::time::timeout(limit, rx.wait_for(|r| *r >= revision)).await;
    }

    /// Waits until the cache holds every object of `applied` at (or past)
    /// the revision the apply gave it, at most `limit`. Exact where
    /// [`Informer::caught_up`] is not: objects written in one transaction
    /// share a revision and arrive one event at a time.
    pub async fn shows(&self, applied: &[crate::apiserver::Applied], limit: Duration) -> bool {
        self.wait_until(limit, |cache| {
            applied.iter().all(|a| {
                let key = (
                    a.object_ref.namespace.clone().unwrap_or_default(),
                    a.object_ref.name.clone(),
                );
                cache.objects.get(&key).is_some_and(|o| {
                    o.metadata()
                        .revision()
                        .is_some_and(|v| v >= a.resource_version)
                })
            })
        })
        .await
    }

    /// Waits until `done` holds for the cache (e.g. deleted pods have left
    /// it), at most `limit`; returns whether it holds.
    pub async fn wait_until(&self, limit: Duration, done: impl Fn(&Cache<T>) -> bool) -> bool {
        let mut rx = self.revision.clone();
        let wait = async {
            loop {
                if done(&self.read()) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(limit, wait).await;
        done(&self.read())
    }
}

/// Receives the next change, turning a lagged subscription into
/// [`Change::Resynced`]; `None` when the informer is gone.
pub async fn next_change<T>(rx: &mut broadcast::Receiver<Change<T>>) -> Option<Change<T>> {
    match rx.recv().await {
        Ok(c) => Some(c),
        Err(broadcast::error::RecvError::Lagged(_)) => Some(Change::Resynced),
        Err(broadcast::error::RecvError::Closed) => None,
    }
}
