//! [`Controller`]: one way to run a keyed controller, as kube-rs's
//! `Controller` does: the primary kind's changes queue its own keys
//! (`trigger_self`), other kinds' changes are mapped to primary keys
//! ([`Controller::owns`] for objects it controls, as `trigger_owners`;
//! [`Controller::watches`] for any mapping, as `trigger_with`), a resync
//! of any watched cache queues every primary object again, and one worker
//! reconciles a key at a time ([`work`]: back-off, requeue).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jotasu_api::Resource;
use tokio::task::JoinHandle;

use super::{Change, Context, Informer, Informers, Key, WorkQueue, key_of, next_change, work};
use crate::apiserver::ApiResult;
use crate::store::Store;

/// Spawns one trigger's feeding task.
type Trigger<S> = Box<dyn FnOnce(Context<S>, WorkQueue<Key>) -> JoinHandle<()> + Send>;

/// A keyed controller being assembled.
pub struct Controller<S, T> {
    ctx: Context<S>,
    name: &'static str,
    primary: fn(&Informers) -> &Informer<T>,
    triggers: Vec<Trigger<S>>,
}

impl<S, T> Controller<S, T>
where
    S: Store,
    T: Resource + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    /// A controller `name` of the objects in `primary`: each applied one is
    /// queued (a deleted one is not: its dependents go with it).
    pub fn new(
        ctx: Context<S>,
        name: &'static str,
        primary: fn(&Informers) -> &Informer<T>,
    ) -> Self {
        let mut c = Self {
            ctx,
            name,
            primary,
            triggers: Vec::new(),
        };
        c.trigger(
            primary,
            |_, o, deleted| {
                if deleted { Vec::new() } else { vec![key_of(o)] }
            },
        );
        c
    }

    /// Queues the controller (of the primary kind, by the owner reference)
    /// of every changed object in `informer`.
    #[must_use]
    pub fn owns<U>(mut self, informer: fn(&Informers) -> &Informer<U>) -> Self
    where
        U: Resource + serde::de::DeserializeOwned + Send + Sync + 'static,
    {
        self.trigger(informer, |_, o, _| {
            owner_key::<T, U>(o).into_iter().collect()
        });
        self
    }

    /// Queues the keys `map` gives for each changed object in `informer`
    /// (before and after an update, and as deleted).
    #[must_use]
    pub fn watches<U, M>(mut self, informer: fn(&Informers) -> &Informer<U>, map: M) -> Self
    where
        U: Resource + serde::de::DeserializeOwned + Send + Sync + 'static,
        M: Fn(&Informers, &U) -> Vec<Key> + Send + Sync + 'static,
    {
        self.trigger(informer, move |i, o, _| map(i, o));
        self
    }

    fn trigger<U, M>(&mut self, informer: fn(&Informers) -> &Informer<U>, map: M)
    where
        U: Resource + serde::de::DeserializeOwned + Send + Sync + 'static,
        M: Fn(&Informers, &U, bool) -> Vec<Key> + Send + Sync + 'static,
    {
        let primary = self.primary;
        let map = Arc::new(map);
        self.triggers
            .push(Box::new(move |ctx: Context<S>, queue: WorkQueue<Key>| {
                tokio::spawn(async move {
                    let mut changes = informer(&ctx.informers).subscribe();
                    let mut stop = ctx.shutdown.clone();
                    loop {
                        let change = tokio::select! {
                            _ = stop.wait_for(|s| *s) => return,
                            c = next_change(&mut changes) => c,
                        };
                        let i = &ctx.informers;
                        match change {
                            Some(Change::Applied { old, new }) => {
                                let keys = map(i, &new, false)
                                    .into_iter()
                                    .chain(old.iter().flat_map(|o| map(i, o, false)));
                                for k in keys {
                                    queue.add(k);
                                }
                            }
                            Some(Change::Deleted(o)) => {
                                for k in map(i, &o, true) {
                                    queue.add(k);
                                }
                            }
                            Some(Change::Resynced) => {
                                for o in primary(i).list() {
                                    queue.add(key_of(&*o));
                                }
                            }
                            None => return,
                        }
                    }
                })
            }));
    }

    /// Runs until shutdown: every primary object is queued first, then the
    /// triggers feed the queue and `sync` reconciles one key at a time.
    pub async fn run<F, Fut>(self, sync: F)
    where
        F: Fn(Context<S>, Key) -> Fut,
        Fut: Future<Output = ApiResult<Option<Duration>>>,
    {
        let queue = WorkQueue::new();
        let feeders: Vec<JoinHandle<()>> = self
            .triggers
            .into_iter()
            .map(|t| t(self.ctx.clone(), queue.clone()))
            .collect();
        for object in (self.primary)(&self.ctx.informers).list() {
            queue.add(key_of(&*object));
        }
        let ctx = self.ctx.clone();
        work(self.name, &queue, self.ctx.shutdown.clone(), |key| {
            sync(ctx.clone(), key)
        })
        .await;
        for f in feeders {
            f.abort();
        }
    }
}

impl<S, T> std::fmt::Debug for Controller<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("name", &self.name)
            .field("triggers", &self.triggers.len())
            .finish_non_exhaustive()
    }
}

/// The key of `object`'s controller if it is of kind `T`.
pub fn owner_key<T: Resource, U: Resource>(object: &U) -> Option<Key> {
    let meta = object.metadata();
    let owner = meta.controller_ref()?;
    (owner.kind == T::KIND).then(|| {
        (
            meta.namespace.clone().unwrap_or_default(),
            owner.name.clone(),
        )
    })
}
