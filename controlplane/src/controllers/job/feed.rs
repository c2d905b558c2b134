//! The feed both batch controllers run on: keys of the owners (Jobs,
//! CronJobs) to reconcile, from their own changes and from changes of
//! what they control (pods, Jobs), by the controller reference.

use jotasu_api::Resource;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::runtime::{Change, Informer, Key, WorkQueue, key_of, next_change};

/// The owner of kind `O` controlling `child`, if any.
pub fn owner_key<O: Resource, C: Resource>(child: &C) -> Option<Key> {
    let meta = child.metadata();
    let owner = meta.controller_ref()?;
    (owner.kind == O::KIND).then(|| {
        (
            meta.namespace.clone().unwrap_or_default(),
            owner.name.clone(),
        )
    })
}

/// Queues owners on their changes and their children's, until `stop`
/// turns true or an informer goes; everything again after a resync.
pub async fn feed<O, C>(
    owners: Informer<O>,
    children: Informer<C>,
    queue: WorkQueue<Key>,
    mut stop: watch::Receiver<bool>,
) where
    O: Resource + DeserializeOwned + Send + Sync + 'static,
    C: Resource + DeserializeOwned + Send + Sync + 'static,
{
    let mut own = owners.subscribe();
    let mut kids = children.subscribe();
    let all = |queue: &WorkQueue<Key>| {
        for o in owners.list() {
            queue.add(key_of(&*o));
        }
    };
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            change = next_change(&mut own) => match change {
                Some(Change::Applied { new, .. }) => queue.add(key_of(&*new)),
                Some(Change::Deleted(_)) => {}
                Some(Change::Resynced) => all(&queue),
                None => return,
            },
            change = next_change(&mut kids) => match change {
                Some(Change::Applied { new: child, .. } | Change::Deleted(child)) => {
                    if let Some(key) = owner_key::<O, C>(&*child) {
                        queue.add(key);
                    }
                }
                Some(Change::Resynced) => all(&queue),
                None => return,
            },
        }
    }
}
