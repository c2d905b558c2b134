//! [`RbacCache`] against the embedded store: grants count at once,
//! revocations once the watch delivers them, and the snapshot converges
//! after watches that lag.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt as _, stream};

use jotasu_api::kinds::rbac::RBAC_GROUP;
use jotasu_api::{
    ClusterRole, Kind, Object, ObjectMeta, PolicyRule, RoleBinding, RoleRef, Subject,
};
use tokio::sync::watch;

use super::RbacCache;
use crate::apiserver::keys::object_key;
use crate::auth::attributes::{Attributes, Decision, UserInfo, verbs};
use crate::store::{
    EmbeddedOptions, EmbeddedStore, KeyValue, Range, Revision, Store, StoreError, StoreResult, Txn,
    WatchOptions, WatchStream,
};

const WAIT: Duration = Duration::from_secs(20);

struct Fixture {
    store: Arc<EmbeddedStore>,
    cache: RbacCache<EmbeddedStore>,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

async fn fixture(options: EmbeddedOptions) -> anyhow::Result<Fixture> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(EmbeddedStore::open(dir.path().join("db"), options).await?);
    let (stop, shutdown) = watch::channel(false);
    let cache = RbacCache::start(Arc::clone(&store), shutdown).await?;
    Ok(Fixture {
        store,
        cache,
        stop,
        _dir: dir,
    })
}

fn key(object: &Object) -> Vec<u8> {
    object_key(&object.object_ref())
}

async fn put(store: &EmbeddedStore, object: &Object) -> anyhow::Result<()> {
    store
        .put(&key(object), &serde_json::to_vec(object)?)
        .await?;
    Ok(())
}

fn pod_reader() -> Object {
    Object::ClusterRole(ClusterRole {
        metadata: ObjectMeta::named("pod-reader"),
        rules: vec![PolicyRule {
            verbs: vec!["get".into(), "list".into()],
            api_groups: vec![String::new()],
            resources: vec!["pods".into()],
            ..PolicyRule::default()
        }],
        ..ClusterRole::default()
    })
}

fn binding(namespace: &str, name: &str, user: &str) -> Object {
    Object::RoleBinding(RoleBinding {
        metadata: ObjectMeta {
            namespace: Some(namespace.into()),
            ..ObjectMeta::named(name)
        },
        subjects: vec![Subject {
            kind: "User".into(),
            api_group: Some(RBAC_GROUP.into()),
            name: user.into(),
            namespace: None,
        }],
        role_ref: RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: "ClusterRole".into(),
            name: "pod-reader".into(),
        },
        ..RoleBinding::default()
    })
}

fn user(name: &str) -> UserInfo {
    UserInfo::new(name, Vec::<String>::new())
}

fn list_pods(namespace: &str) -> Attributes {
    Attributes::of_kind(verbs::LIST, Kind::Pod, Some(namespace), None)
}

/// Polls `check` until it holds or [`WAIT`] passes; returns whether it held.
async fn eventually(mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_counts_at_once_and_a_revocation_once_watched() -> anyhow::Result<()> {
    let f = fixture(EmbeddedOptions::default()).await?;
    put(&f.store, &pod_reader()).await?;
    let alice = UserInfo::new("alice", ["devs"]);
    assert!(
        !f.cache
            .authorize(&alice, &list_pods("dev"))
            .await?
            .allowed()
    );

    // Read-your-writes: no waiting for the watch.
    let grant = binding("dev", "alice-reads", "alice");
    put(&f.store, &grant).await?;
    let decision = f.cache.authorize(&alice, &list_pods("dev")).await?;
    assert_eq!(
        decision,
        Decision::Allow(
            r#"RBAC: allowed by RoleBinding "alice-reads/dev" of ClusterRole "pod-reader" to User "alice""#
                .into()
        )
    );
    assert!(
        !f.cache
            .authorize(&alice, &list_pods("prod"))
            .await?
            .allowed()
    );

    // The watch brings grants too, without a refresh.
    let bob = user("bob");
    put(&f.store, &binding("prod", "bob-reads", "bob")).await?;
    assert!(
        eventually(async || f
            .cache
            .snapshot()
            .authorize(&bob, &list_pods("prod"))
            .allowed())
        .await
    );

    // Revocation: denied within a bounded wait.
    f.store.delete(&key(&grant)).await?;
    assert!(
        eventually(async || {
            matches!(f.cache.authorize(&alice, &list_pods("dev")).await, Ok(d) if !d.allowed())
        })
        .await
    );
    assert!(
        f.cache
            .snapshot()
            .authorize(&bob, &list_pods("prod"))
            .allowed()
    );
    let _ = f.stop.send(true);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_writes_converges() -> anyhow::Result<()> {
    // One queued batch per watcher: a burst may drop the watches (lag), and
    // the cache lists again; either way it ends where the store is.
    let options = EmbeddedOptions {
        watch_buffer: 1,
        ..EmbeddedOptions::default()
    };
    let f = fixture(options).await?;
    put(&f.store, &pod_reader()).await?;
    let bindings: Vec<Object> = (0..60)
        .map(|i| binding(&format!("ns{}", i % 3), &format!("b{i}"), &format!("u{i}")))
        .collect();
    for b in &bindings {
        put(&f.store, b).await?;
    }
    for b in bindings.iter().step_by(2) {
        f.store.delete(&key(b)).await?;
    }
    assert!(eventually(async || f.cache.snapshot().binding_count() == 30).await);
    let snapshot = f.cache.snapshot();
    assert!(snapshot.authorize(&user("u1"), &list_pods("ns1")).allowed());
    assert!(!snapshot.authorize(&user("u2"), &list_pods("ns2")).allowed());
    let _ = f.stop.send(true);
    Ok(())
}

/// The embedded store, with watches the test can cut (as a lost etcd
/// connection ends them) and new watches it can refuse (as compaction does).
struct Flaky {
    inner: EmbeddedStore,
    cut: watch::Sender<u64>,
    refuse: AtomicUsize,
    watches: AtomicUsize,
}

impl Store for Flaky {
    async fn get(&self, key: &[u8]) -> StoreResult<Option<KeyValue>> {
        self.inner.get(key).await
    }
    async fn range(&self, prefix: &[u8], limit: Option<usize>) -> StoreResult<Range> {
        self.inner.range(prefix, limit).await
    }
    async fn txn(&self, txn: Txn) -> StoreResult<Option<Revision>> {
        self.inner.txn(txn).await
    }
    async fn watch(&self, prefix: &[u8], options: WatchOptions) -> StoreResult<WatchStream> {
        self.watches.fetch_add(1, Ordering::SeqCst);
        let refused = self
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if refused {
            return Err(StoreError::Compacted {
                requested: options.from_revision,
                compact_revision: options.from_revision + 1,
            });
        }
        let events = self.inner.watch(prefix, options).await?;
        let mut cut = self.cut.subscribe();
        let closed = stream::once(async { Err(StoreError::WatchClosed { resume_from: 0 }) });
        Ok(events
            .take_until(async move { drop(cut.changed().await) })
            .chain(closed)
            .boxed())
    }
    async fn compact(&self, revision: Revision) -> StoreResult<()> {
        self.inner.compact(revision).await
    }
    async fn current_revision(&self) -> StoreResult<Revision> {
        self.inner.current_revision().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_again_after_a_watch_ends_or_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let inner = EmbeddedStore::open(dir.path().join("db"), EmbeddedOptions::default()).await?;
    let store = Arc::new(Flaky {
        inner,
        cut: watch::channel(0).0,
        refuse: AtomicUsize::new(0),
        watches: AtomicUsize::new(0),
    });
    let (stop, shutdown) = watch::channel(false);
    let cache = RbacCache::start(Arc::clone(&store), shutdown).await?;
    put(&store.inner, &pod_reader()).await?;
    let first = binding("dev", "first", "u1");
    put(&store.inner, &first).await?;
    assert!(
        eventually(async || cache
            .snapshot()
            .authorize(&user("u1"), &list_pods("dev"))
            .allowed())
        .await
    );

    // Cut every watch, refuse the next three, and change things meanwhile.
    store.refuse.store(3, Ordering::SeqCst);
    store.cut.send_modify(|generation| *generation += 1);
    put(&store.inner, &binding("dev", "second", "u2")).await?;
    store.inner.delete(&key(&first)).await?;
    let converged = eventually(async || {
        let snapshot = cache.snapshot();
        snapshot.authorize(&user("u2"), &list_pods("dev")).allowed()
            && !snapshot.authorize(&user("u1"), &list_pods("dev")).allowed()
    })
    .await;
    assert!(converged);
    // Each refused watch costs a list and a longer pause; then it watches
    // again, and a later grant arrives without a refresh.
    assert!(eventually(async || store.refuse.load(Ordering::SeqCst) == 0).await);
    put(&store.inner, &binding("dev", "third", "u3")).await?;
    assert!(
        eventually(async || cache
            .snapshot()
            .authorize(&user("u3"), &list_pods("dev"))
            .allowed())
        .await
    );

    // After shutdown nothing watches any more.
    stop.send(true)?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let watches = store.watches.load(Ordering::SeqCst);
    store.cut.send_modify(|generation| *generation += 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.watches.load(Ordering::SeqCst), watches);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_from_what_is_stored() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store =
        Arc::new(EmbeddedStore::open(dir.path().join("db"), EmbeddedOptions::default()).await?);
    for object in super::bootstrap_policy() {
        put(&store, &object).await?;
    }
    let (_stop, shutdown) = watch::channel(false);
    let cache = RbacCache::start(Arc::clone(&store), shutdown).await?;
    let snapshot = cache.snapshot();
    assert_eq!(snapshot.revision(), store.current_revision().await?);
    let admin = UserInfo::local_admin();
    let delete_node = Attributes::of_kind(verbs::DELETE, Kind::Node, None, Some("n1"));
    assert!(snapshot.authorize(&admin, &delete_node).allowed());
    let nobody = user("nobody");
    assert!(
        !cache
            .authorize(&nobody, &list_pods("default"))
            .await?
            .allowed()
    );
    Ok(())
}
