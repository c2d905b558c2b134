//! [`RbacCache`]: an [`RbacSnapshot`] kept current from the store. A task
//! lists the four RBAC kinds, then follows their watches, publishing a new
//! snapshot after each batch of events; a watch that ends (compaction, lag,
//! a lost connection) is followed by a fresh list, with backoff.
//!
//! A grant is seen at once (read-your-writes): a request the current
//! snapshot does not allow, made after the store moved past the revision the
//! snapshot is known complete for, lists again and is decided on that. A
//! revocation takes effect as soon as the watch delivers it.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::stream::{self, BoxStream};
use futures::{FutureExt as _, StreamExt as _};
use jotasu_api::{Kind, Object};
use tokio::sync::watch;
use tracing::{Instrument as _, debug, info_span, warn};

use super::RbacSnapshot;
use crate::apiserver::keys::kind_prefix;
use crate::auth::attributes::{Attributes, Decision, UserInfo};
use crate::store::{EventKind, Revision, Store, StoreResult, WatchEvent, WatchOptions};

/// The kinds a snapshot is made of.
pub const KINDS: [Kind; 4] = [
    Kind::Role,
    Kind::ClusterRole,
    Kind::RoleBinding,
    Kind::ClusterRoleBinding,
];

/// The first pause before listing again after a watch ended.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest pause between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Events applied at most before a snapshot is published.
const MAX_BATCH: usize = 4096;

/// A snapshot of the store's RBAC objects, current within a watch's delay
/// for revocations and at once for grants. Clones share one snapshot and
/// one background task, which stops when the `shutdown` given to
/// [`RbacCache::start`] turns true.
pub struct RbacCache<S> {
    store: Arc<S>,
    shared: Arc<Shared>,
}

impl<S> Clone for RbacCache<S> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S> fmt::Debug for RbacCache<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snapshot = self.shared.get();
        f.debug_struct("RbacCache")
            .field("revision", &snapshot.revision())
            .field("bindings", &snapshot.binding_count())
            .finish_non_exhaustive()
    }
}

/// What the task and the callers share.
#[derive(Debug)]
struct Shared {
    current: Mutex<Current>,
    /// One synchronous refresh at a time; the others use its result.
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Current {
    snapshot: Arc<RbacSnapshot>,
    /// The newest revision whose changes any published snapshot held: a
    /// refresh listed before it may miss a revocation, and is not published.
    seen: Revision,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self) -> Arc<RbacSnapshot> {
        Arc::clone(&self.lock().snapshot)
    }

    /// Publishes what the watch task built (always the newest it knows).
    fn publish(&self, snapshot: RbacSnapshot, seen: Revision) {
        let mut current = self.lock();
        current.snapshot = Arc::new(snapshot);
        current.seen = current.seen.max(seen);
    }

    /// Publishes a refresh's snapshot unless a published one held a change
    /// newer than the refresh's oldest listing.
    fn offer(&self, snapshot: &Arc<RbacSnapshot>, listing: &Listing) {
        let mut current = self.lock();
        if listing.oldest() >= current.seen {
            current.snapshot = Arc::clone(snapshot);
            current.seen = listing.newest();
        }
    }
}

/// The RBAC objects by store key, and for each of [`KINDS`] the revision
/// its listing reflects.
#[derive(Debug, Default)]
struct Listing {
    objects: BTreeMap<Vec<u8>, Object>,
    revisions: [Revision; 4],
}

impl Listing {
    /// Lists the four kinds (each at the store's revision of its range).
    async fn read<S: Store>(store: &S) -> StoreResult<Self> {
        let mut listing = Listing::default();
        for (i, kind) in KINDS.iter().enumerate() {
            let range = store.range(&kind_prefix(*kind, None), None).await?;
            listing.revisions[i] = range.revision;
            for kv in range.kvs {
                if let Some(object) = decode(&kv.key, &kv.value) {
                    listing.objects.insert(kv.key, object);
                }
            }
        }
        debug!(
            objects = listing.objects.len(),
            revision = listing.newest(),
            "rbac: listed"
        );
        Ok(listing)
    }

    /// Every change up to this revision is in the listing.
    fn oldest(&self) -> Revision {
        self.revisions.iter().copied().min().unwrap_or(0)
    }

    /// No change after this revision is in the listing.
    fn newest(&self) -> Revision {
        self.revisions.iter().copied().max().unwrap_or(0)
    }

    fn snapshot(&self, revision: Revision) -> RbacSnapshot {
        RbacSnapshot::build(self.objects.values(), revision)
    }

    fn apply(&mut self, event: WatchEvent) {
        let key = event.kv.key;
        let object = match event.kind {
            EventKind::Put => decode(&key, &event.kv.value),
            EventKind::Delete => None,
        };
        match object {
            Some(object) => self.objects.insert(key, object),
            None => self.objects.remove(&key),
        };
    }
}

/// A stored RBAC object; `None` (logged) if it does not decode: it then
/// grants nothing.
fn decode(key: &[u8], value: &[u8]) -> Option<Object> {
    match serde_json::from_slice::<Object>(value) {
        Ok(object) if KINDS.contains(&object.kind()) => Some(object),
        Ok(object) => {
            warn!(key = %key.escape_ascii(), kind = %object.kind(), "rbac: ignoring an object of another kind");
            None
        }
        Err(error) => {
            warn!(key = %key.escape_ascii(), %error, "rbac: ignoring an object that does not decode");
            None
        }
    }
}

impl<S: Store> RbacCache<S> {
    /// Lists the RBAC objects in `store`, then keeps the snapshot current
    /// from a background task until `shutdown` turns true (or its sender
    /// is dropped).
    pub async fn start(store: Arc<S>, shutdown: watch::Receiver<bool>) -> StoreResult<Self> {
        let listing = Listing::read(&*store).await?;
        let shared = Arc::new(Shared {
            current: Mutex::new(Current {
                snapshot: Arc::new(listing.snapshot(listing.oldest())),
                seen: listing.newest(),
            }),
            refresh: tokio::sync::Mutex::new(()),
        });
        let task = run(Arc::clone(&store), Arc::clone(&shared), listing, shutdown);
        tokio::spawn(task.instrument(info_span!("rbac_cache")));
        Ok(Self { store, shared })
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<RbacSnapshot> {
        self.shared.get()
    }

    /// Decides `attributes` for `user` on the current snapshot; if it does
    /// not allow them and the store has moved past the snapshot's revision,
    /// on a fresh listing (so a grant just written counts).
    pub async fn authorize(
        &self,
        user: &UserInfo,
        attributes: &Attributes,
    ) -> StoreResult<Decision> {
        let snapshot = self.snapshot();
        let decision = snapshot.authorize(user, attributes);
        if decision.allowed() {
            return Ok(decision);
        }
        let now = self.store.current_revision().await?;
        if now <= snapshot.revision() {
            return Ok(decision);
        }
        Ok(self.refresh(now).await?.authorize(user, attributes))
    }

    /// A snapshot holding every RBAC change up to `revision`: the current
    /// one if it does, else one listed now (and published, unless the watch
    /// has already published newer changes).
    pub async fn refresh(&self, revision: Revision) -> StoreResult<Arc<RbacSnapshot>> {
        let _one_at_a_time = self.shared.refresh.lock().await;
        let current = self.snapshot();
        if current.revision() >= revision {
            return Ok(current);
        }
        let listing = Listing::read(&*self.store).await?;
        let snapshot = Arc::new(listing.snapshot(listing.oldest()));
        self.shared.offer(&snapshot, &listing);
        Ok(snapshot)
    }
}

/// What the background task does next.
enum Step {
    /// Follow the watches from this listing.
    Follow(Listing),
    /// List again.
    List,
}

/// The background task: follow, list again when a watch ends, back off
/// while the store fails, stop on shutdown.
async fn run<S: Store>(
    store: Arc<S>,
    shared: Arc<Shared>,
    listing: Listing,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut step = Step::Follow(listing);
    let mut backoff = FIRST_BACKOFF;
    loop {
        step = match step {
            Step::Follow(mut listing) => {
                let ended = tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => return,
                    ended = follow(&*store, &shared, &mut listing) => ended,
                };
                if ended.progressed {
                    backoff = FIRST_BACKOFF;
                }
                warn!(reason = %ended.reason, ?backoff, "rbac: watch ended; listing again");
                Step::List
            }
            Step::List => match Listing::read(&*store).await {
                Ok(listing) => {
                    shared.publish(listing.snapshot(listing.oldest()), listing.newest());
                    Step::Follow(listing)
                }
                Err(error) => {
                    warn!(%error, ?backoff, "rbac: listing failed; trying again");
                    Step::List
                }
            },
        };
        if matches!(step, Step::List) {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Why following stopped.
struct Ended {
    reason: String,
    /// Whether any event was applied first.
    progressed: bool,
}

/// One kind's watch events, tagged with the kind's index; `None` last when
/// the stream ends (so an ended watch is noticed, not dropped silently).
type Tagged = BoxStream<'static, (usize, Option<StoreResult<WatchEvent>>)>;

/// Applies the four kinds' watch events to `listing`, publishing a snapshot
/// after each batch, until a watch ends.
async fn follow<S: Store>(store: &S, shared: &Shared, listing: &mut Listing) -> Ended {
    let mut streams: Vec<Tagged> = Vec::with_capacity(KINDS.len());
    for (i, kind) in KINDS.iter().enumerate() {
        let options = WatchOptions::from_revision(listing.revisions[i] + 1);
        match store.watch(&kind_prefix(*kind, None), options).await {
            Ok(events) => streams.push(
                events
                    .map(move |item| (i, Some(item)))
                    .chain(stream::once(async move { (i, None) }))
                    .boxed(),
            ),
            Err(error) => {
                return Ended {
                    reason: error.to_string(),
                    progressed: false,
                };
            }
        }
    }
    let mut events = stream::select_all(streams);
    // Per kind, every event up to this revision is applied (the events of
    // one revision may arrive one by one, so the last one's is not yet).
    let mut complete = listing.revisions;
    let mut seen = listing.newest();
    let mut progressed = false;
    loop {
        let mut batch = match events.next().await {
            Some(item) => vec![item],
            None => Vec::new(),
        };
        while batch.len() < MAX_BATCH {
            match events.next().now_or_never() {
                Some(Some(item)) => batch.push(item),
                _ => break,
            }
        }
        let mut reason = batch.is_empty().then(|| "every watch ended".to_owned());
        let mut applied = 0usize;
        for (i, item) in batch {
            match item {
                Some(Ok(event)) => {
                    complete[i] = complete[i].max(event.revision.saturating_sub(1));
                    seen = seen.max(event.revision);
                    listing.apply(event);
                    applied += 1;
                }
                Some(Err(error)) => {
                    reason = Some(error.to_string());
                    break;
                }
                None => {
                    reason = Some(format!("the {} watch ended", KINDS[i]));
                    break;
                }
            }
        }
        if applied > 0 {
            let revision = complete.iter().copied().min().unwrap_or(0);
            shared.publish(listing.snapshot(revision), seen);
            debug!(applied, seen, "rbac: snapshot updated");
            progressed = true;
        }
        if let Some(reason) = reason {
            return Ended { reason, progressed };
        }
    }
}
