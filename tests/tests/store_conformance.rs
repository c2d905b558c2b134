//! One conformance suite for the control plane's store, run against the
//! embedded backend (a temp file) and a real etcd (`EtcdServer`, one per
//! test, since compaction is cluster-wide). Each test is generic over
//! [`Store`]; the macro at the bottom instantiates it per backend.
use std::{collections::HashSet, time::Duration};

use anyhow::{Context as _, bail, ensure};
use futures::StreamExt as _;
use jotasu_controlplane::store::{
    Compare, EmbeddedOptions, EmbeddedStore, EtcdStore, EventKind, Store, StoreError, Txn,
    WatchEvent, WatchOptions, WatchStream,
};
use jotasu_tests::etcd::EtcdServer;

const WAIT: Duration = Duration::from_secs(20);

async fn next_event(w: &mut WatchStream) -> anyhow::Result<WatchEvent> {
    match tokio::time::timeout(WAIT, w.next()).await {
        Err(_) => bail!("no watch event within {WAIT:?}"),
        Ok(None) => bail!("watch ended"),
        Ok(Some(r)) => Ok(r?),
    }
}

/// Nothing more arrives for a short while.
async fn assert_quiet(w: &mut WatchStream) -> anyhow::Result<()> {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), w.next()).await {
        bail!("unexpected watch item {item:?}");
    }
    Ok(())
}

async fn revisions_monotonic<S: Store>(s: &S) -> anyhow::Result<()> {
    let start = s.current_revision().await?;
    let r1 = s.put(b"/m/a", b"1").await?;
    let r2 = s.put(b"/m/b", b"1").await?;
    let r3 = s.put(b"/m/a", b"2").await?;
    ensure!(start < r1 && r1 < r2 && r2 < r3, "{start} {r1} {r2} {r3}");
    ensure!(s.current_revision().await? == r3);
    let a = s.get(b"/m/a").await?.context("/m/a")?;
    ensure!(a.key == b"/m/a" && a.value == b"2");
    ensure!(
        (a.create_revision, a.mod_revision, a.version) == (r1, r3, 2),
        "{a:?}"
    );
    ensure!(s.get(b"/m/nope").await?.is_none());
    Ok(())
}

async fn create_if_absent<S: Store>(s: &S) -> anyhow::Result<()> {
    let r1 = s.create(b"/c/x", b"v").await?;
    match s.create(b"/c/x", b"w").await {
        Err(StoreError::AlreadyExists { key, mod_revision }) => {
            ensure!(key == b"/c/x" && mod_revision == r1)
        }
        other => bail!("second create: {other:?}"),
    }
    ensure!(s.get(b"/c/x").await?.context("x")?.value == b"v");
    ensure!(
        s.current_revision().await? == r1,
        "a failed create must not write"
    );
    Ok(())
}

async fn compare_and_swap<S: Store>(s: &S) -> anyhow::Result<()> {
    let r1 = s.put(b"/cas/k", b"1").await?;
    let r2 = s.update_if(b"/cas/k", b"2", r1).await?;
    ensure!(r2 > r1);
    match s.update_if(b"/cas/k", b"3", r1).await {
        Err(StoreError::Conflict {
            key,
            expected,
            current,
        }) => ensure!(key == b"/cas/k" && expected == r1 && current == Some(r2)),
        other => bail!("stale CAS: {other:?}"),
    }
    match s.update_if(b"/cas/missing", b"3", r1).await {
        Err(StoreError::Conflict { current: None, .. }) => {}
        other => bail!("CAS on a missing key: {other:?}"),
    }
    let kv = s.get(b"/cas/k").await?.context("k")?;
    ensure!(kv.value == b"2" && kv.version == 2 && kv.mod_revision == r2);
    Ok(())
}

async fn delete_and_delete_if<S: Store>(s: &S) -> anyhow::Result<()> {
    let r1 = s.put(b"/d/k", b"1").await?;
    let rd = s
        .delete(b"/d/k")
        .await?
        .context("delete of an existing key")?;
    ensure!(rd > r1 && s.get(b"/d/k").await?.is_none());
    ensure!(
        s.delete(b"/d/k").await?.is_none(),
        "delete of an absent key"
    );
    ensure!(
        s.current_revision().await? == rd,
        "no revision for a no-op delete"
    );
    let r2 = s.create(b"/d/k", b"again").await?;
    let kv = s.get(b"/d/k").await?.context("k")?;
    ensure!(
        kv.create_revision == r2 && kv.version == 1,
        "recreated: {kv:?}"
    );
    match s.delete_if(b"/d/k", r1).await {
        Err(StoreError::Conflict { current, .. }) => ensure!(current == Some(r2)),
        other => bail!("stale delete_if: {other:?}"),
    }
    ensure!(s.delete_if(b"/d/k", r2).await? > r2);
    ensure!(s.get(b"/d/k").await?.is_none());
    Ok(())
}

async fn prefix_range<S: Store>(s: &S) -> anyhow::Result<()> {
    for k in ["/a/b/3", "/a/b/1", "/a/bc/x", "/a/a", "/a/b/2", "/a/b"] {
        s.put(k.as_bytes(), k.as_bytes()).await?;
    }
    let r = s.range(b"/a/b/", None).await?;
    let keys: Vec<_> = r.kvs.iter().map(|kv| kv.key.as_slice()).collect();
    ensure!(keys == [b"/a/b/1", b"/a/b/2", b"/a/b/3"], "{keys:?}");
    ensure!(!r.more && r.revision == s.current_revision().await?);
    let r = s.range(b"/a/b/", Some(2)).await?;
    ensure!(r.kvs.len() == 2 && r.more && r.kvs[1].key == b"/a/b/2");
    ensure!(s.range(b"/a/bc/", None).await?.kvs.len() == 1);
    ensure!(s.range(b"/a/", None).await?.kvs.len() == 6);
    ensure!(s.range(b"/zz/", None).await?.kvs.is_empty());
    Ok(())
}

async fn multi_op_txn<S: Store>(s: &S) -> anyhow::Result<()> {
    let r0 = s.put(b"/t/owner", b"o").await?;
    let rev = s
        .txn(
            Txn::new()
                .when(Compare::mod_revision(b"/t/owner", r0))
                .when(Compare::absent(b"/t/child"))
                .put(b"/t/child", b"c")
                .delete(b"/t/owner"),
        )
        .await?
        .context("txn changed something")?;
    ensure!(s.get(b"/t/child").await?.context("child")?.mod_revision == rev);
    ensure!(s.get(b"/t/owner").await?.is_none());
    let failed = s
        .txn(
            Txn::new()
                .when(Compare::absent(b"/t/child"))
                .put(b"/t/other", b"x"),
        )
        .await;
    ensure!(matches!(failed, Err(StoreError::Conflict { current: Some(r), .. }) if r == rev));
    ensure!(s.get(b"/t/other").await?.is_none() && s.current_revision().await? == rev);
    ensure!(matches!(
        s.txn(Txn::new().put(b"/t/k", b"1").put(b"/t/k", b"2"))
            .await,
        Err(StoreError::InvalidArgument(_))
    ));
    Ok(())
}

async fn watch_replays_then_live<S: Store>(s: &S) -> anyhow::Result<()> {
    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(s.put(format!("/w/k{i}").as_bytes(), b"v").await?);
        s.put(format!("/wx/k{i}").as_bytes(), b"sibling").await?;
    }
    let mut w = s
        .watch(b"/w/", WatchOptions::from_revision(revs[2]))
        .await?;
    for (i, rev) in revs.iter().enumerate().skip(2) {
        let e = next_event(&mut w).await?;
        ensure!(
            e.revision == *rev && e.kv.key == format!("/w/k{i}").as_bytes(),
            "{e:?}"
        );
        ensure!(e.kind == EventKind::Put && e.prev_kv.is_none());
    }
    assert_quiet(&mut w).await?;
    let r5 = s.put(b"/w/k5", b"v").await?;
    s.put(b"/wx/k5", b"sibling").await?;
    let r6 = s.put(b"/w/k6", b"v").await?;
    ensure!(next_event(&mut w).await?.revision == r5);
    ensure!(next_event(&mut w).await?.revision == r6);
    assert_quiet(&mut w).await?;
    // From "now": only what comes next.
    let mut now = s.watch(b"/w/", WatchOptions::default()).await?;
    let r7 = s.put(b"/w/k7", b"v").await?;
    ensure!(next_event(&mut now).await?.revision == r7);
    ensure!(next_event(&mut w).await?.revision == r7);
    Ok(())
}

async fn watch_prev_kv<S: Store>(s: &S) -> anyhow::Result<()> {
    let r1 = s.put(b"/p/k", b"v1").await?;
    let mut w = s
        .watch(b"/p/", WatchOptions::default().with_prev_kv())
        .await?;
    let r2 = s.put(b"/p/k", b"v2").await?;
    let r3 = s.delete(b"/p/k").await?.context("deleted")?;
    let put = next_event(&mut w).await?;
    ensure!(put.kind == EventKind::Put && put.revision == r2 && put.kv.value == b"v2");
    let prev = put.prev_kv.context("prev of put")?;
    ensure!(prev.value == b"v1" && prev.mod_revision == r1);
    let del = next_event(&mut w).await?;
    ensure!(del.kind == EventKind::Delete && del.revision == r3 && del.kv.mod_revision == r3);
    ensure!(del.kv.key == b"/p/k" && del.kv.value.is_empty());
    ensure!(del.prev_kv.context("prev of delete")?.value == b"v2");
    Ok(())
}

async fn watch_below_compaction_fails<S: Store>(s: &S) -> anyhow::Result<()> {
    let mut revs = Vec::new();
    for i in 0..5 {
        revs.push(s.put(format!("/wc/k{i}").as_bytes(), b"v").await?);
    }
    s.compact(revs[3]).await?;
    let err = match s.watch(b"/wc/", WatchOptions::from_revision(revs[1])).await {
        Err(e) => e,
        Ok(mut w) => match tokio::time::timeout(WAIT, w.next()).await? {
            Some(Err(e)) => e,
            other => bail!("watch below compaction yielded {other:?}"),
        },
    };
    match err {
        StoreError::Compacted {
            compact_revision, ..
        } => ensure!(
            compact_revision == revs[3],
            "{compact_revision} != {}",
            revs[3]
        ),
        e => bail!("expected Compacted, got {e}"),
    }
    // At the compaction point itself, history is still there.
    let mut w = s
        .watch(b"/wc/", WatchOptions::from_revision(revs[3]))
        .await?;
    ensure!(next_event(&mut w).await?.revision == revs[3]);
    ensure!(next_event(&mut w).await?.revision == revs[4]);
    Ok(())
}

async fn compaction<S: Store>(s: &S) -> anyhow::Result<()> {
    let r1 = s.put(b"/cp/a", b"1").await?;
    let r2 = s.put(b"/cp/a", b"2").await?;
    match s.compact(r2 + 1000).await {
        Err(StoreError::FutureRevision { requested, current }) => {
            ensure!(requested == r2 + 1000 && current >= r2)
        }
        other => bail!("compact to the future: {other:?}"),
    }
    s.compact(r2).await?;
    s.compact(r2).await?;
    s.compact(r1).await?;
    let kv = s.get(b"/cp/a").await?.context("a")?;
    ensure!(kv.value == b"2" && kv.create_revision == r1 && kv.version == 2);
    ensure!(s.range(b"/cp/", None).await?.kvs.len() == 1);
    ensure!(s.put(b"/cp/b", b"1").await? > r2);
    Ok(())
}

async fn concurrent_writers<S: Store + Clone>(s: &S) -> anyhow::Result<()> {
    const TASKS: usize = 8;
    const PUTS: usize = 100;
    let mut w = s.watch(b"/cc/", WatchOptions::default()).await?;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut revs = Vec::new();
            for i in 0..PUTS {
                revs.push(s.put(format!("/cc/{t}/{i}").as_bytes(), b"v").await?);
            }
            anyhow::Ok(revs)
        }));
    }
    let mut written = HashSet::new();
    for t in tasks {
        for r in t.await?? {
            ensure!(written.insert(r), "revision {r} given twice");
        }
    }
    ensure!(written.len() == TASKS * PUTS);
    let mut last = 0;
    let mut seen = HashSet::new();
    for _ in 0..TASKS * PUTS {
        let e = next_event(&mut w).await?;
        ensure!(
            e.revision > last,
            "out of order: {} after {last}",
            e.revision
        );
        last = e.revision;
        seen.insert(e.revision);
    }
    ensure!(
        seen == written,
        "the watcher saw other revisions than were written"
    );
    assert_quiet(&mut w).await?;
    Ok(())
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() -> anyhow::Result<()> {
                    let dir = tempfile::tempdir()?;
                    let s = EmbeddedStore::open(dir.path().join("store.redb"), EmbeddedOptions::default()).await?;
                    super::$name(&s).await
                }
            )*
        }
        mod etcd {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() -> anyhow::Result<()> {
                    // Started on the test thread: it dies with it.
                    let Some(server) = EtcdServer::start_or_skip()? else { return Ok(()) };
                    let s = EtcdStore::connect(&[server.client_url().to_string()], b"/jotasu-conformance").await?;
                    super::$name(&s).await
                }
            )*
        }
    };
}

conformance!(
    revisions_monotonic,
    create_if_absent,
    compare_and_swap,
    delete_and_delete_if,
    prefix_range,
    multi_op_txn,
    watch_replays_then_live,
    watch_prev_kv,
    watch_below_compaction_fails,
    compaction,
    concurrent_writers,
);
