//! The control plane's watch cache on both stores: an [`ApiServer`] in this
//! process over the embedded store and over a real etcd (`EtcdServer`, one
//! per test), its store wrapped in a [`Probe`] that counts store watches
//! and can cut them (a lost etcd connection) or hold new ones (to compact
//! meanwhile). One test drives List with `resourceVersion: "0"` through
//! the gRPC API of a control-plane process.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use jotasu_api::{Kind, LabelSelector};
use jotasu_controlplane::apiserver::watch_cache::Limits;
use jotasu_controlplane::apiserver::{ApiResult, ApiServer, ApiServerError, Event, WatchSpec};
use jotasu_controlplane::store::{
    EmbeddedOptions, EmbeddedStore, EtcdStore, Revision, Store, StoreError, Txn,
};
use jotasu_tests::etcd::EtcdServer;
use tokio::sync::{mpsc, watch};

#[path = "watch_cache/probe.rs"]
mod probe;
use probe::Probe;

const WAIT: Duration = Duration::from_secs(20);

/// An API server over a probed store, with its shutdown switch.
struct Fixture<S: Store> {
    probe: Arc<Probe<S>>,
    api: ApiServer<Probe<S>>,
    _stop: watch::Sender<bool>,
}

fn fixture<S: Store>(store: S, limits: Option<Limits>) -> Fixture<S> {
    let probe = Arc::new(Probe::new(store));
    let (stop, stopped) = watch::channel(false);
    let mut api = ApiServer::new(Arc::clone(&probe), stopped);
    if let Some(limits) = limits {
        api = api.with_watch_cache_limits(limits);
    }
    Fixture {
        probe,
        api,
        _stop: stop,
    }
}

fn cm_key(ns: &str, name: &str) -> String {
    format!("/registry/configmaps/{ns}/{name}")
}

fn cm_value(ns: &str, name: &str, data: usize) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}","namespace":"{ns}","labels":{{"n":"{}"}}}},"data":{{"k":"{data}"}}}}"#,
        data % 2
    )
}

/// Writes `count` ConfigMap changes in `ns`, `per_txn` keys per revision;
/// returns (revision, name) of each change in order.
async fn write<S: Store>(
    store: &S,
    ns: &str,
    count: usize,
    per_txn: usize,
) -> anyhow::Result<Vec<(Revision, String)>> {
    let mut out = Vec::new();
    let mut k = 0;
    while k < count {
        let mut txn = Txn::new();
        let mut names = Vec::new();
        for _ in 0..per_txn.min(count - k) {
            let name = format!("cm-{:02}", k % 50);
            if names.contains(&name) {
                break;
            }
            txn = txn.put(
                cm_key(ns, &name).as_bytes(),
                cm_value(ns, &name, k).as_bytes(),
            );
            names.push(name);
            k += 1;
        }
        let rev = store.txn(txn).await?.context("a write")?;
        out.extend(names.into_iter().map(|n| (rev, n)));
    }
    Ok(out)
}

fn spec(ns: Option<&str>, from: Revision) -> WatchSpec {
    WatchSpec {
        kinds: vec![Kind::ConfigMap],
        namespace: ns.map(str::to_owned),
        from_revision: from,
        ..WatchSpec::default()
    }
}

fn name_of(ev: &Event) -> String {
    let v: serde_json::Value = serde_json::from_str(&ev.json).unwrap_or_default();
    v["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The next `n` events as (revision, name); fails on an error or a pause.
async fn take(
    rx: &mut mpsc::Receiver<ApiResult<Event>>,
    n: usize,
) -> anyhow::Result<Vec<(Revision, String)>> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Err(_) => bail!("{} of {n} events, then nothing for {WAIT:?}", got.len()),
            Ok(None) => bail!("{} of {n} events, then the watch ended", got.len()),
            Ok(Some(Err(e))) => bail!("{} of {n} events, then {e}", got.len()),
            Ok(Some(Ok(ev))) => got.push((ev.revision, name_of(&ev))),
        }
    }
    Ok(got)
}

async fn quiet(rx: &mut mpsc::Receiver<ApiResult<Event>>) -> anyhow::Result<()> {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        bail!("unexpected watch item {item:?}");
    }
    Ok(())
}

/// A watch from a revision the ring holds replays exactly what followed.
async fn replays_from_the_ring<S: Store>(store: S) -> anyhow::Result<()> {
    let f = fixture(store, None);
    let (_, listed) = f
        .api
        .list_cached(Kind::ConfigMap, None, &LabelSelector::default())
        .await?;
    let written = write(&*f.probe, "a", 20, 3).await?;
    let from = written[7].0;
    let expected: Vec<_> = written
        .iter()
        .filter(|(r, _)| *r >= from)
        .cloned()
        .collect();
    let mut rx = f.api.watch(spec(None, from)).await?;
    ensure!(take(&mut rx, expected.len()).await? == expected);
    quiet(&mut rx).await?;
    // From the list's revision + 1: everything.
    let mut all = f.api.watch(spec(Some("a"), listed + 1)).await?;
    ensure!(take(&mut all, written.len()).await? == written);
    let stats = f.api.watch_cache_stats();
    ensure!(stats.served == 2 && stats.fallbacks == 0, "{stats:?}");
    ensure!(f.probe.all_watches() == 1, "{}", f.probe.all_watches());
    Ok(())
}

/// Many API watches of a kind share one store watch; each sees its part.
async fn one_store_watch_per_kind<S: Store>(store: S) -> anyhow::Result<()> {
    let f = fixture(store, None);
    let mut watches = Vec::new();
    for k in 0..60 {
        let ns = ["a", "b"][k % 2];
        let mut s = spec(Some(ns), 0);
        if k % 3 == 0 {
            s.selector = LabelSelector::parse("n=1")?;
        }
        watches.push((ns, k % 3 == 0, f.api.watch(s).await?));
    }
    let mut secrets = Vec::new();
    for _ in 0..10 {
        let s = WatchSpec {
            kinds: vec![Kind::Secret],
            ..WatchSpec::default()
        };
        secrets.push(f.api.watch(s).await?);
    }
    let a = write(&*f.probe, "a", 10, 1).await?;
    let b = write(&*f.probe, "b", 10, 1).await?;
    for (ns, selective, rx) in &mut watches {
        let mine = if *ns == "a" { &a } else { &b };
        // Each write creates an object; n=1 holds for odd ones only.
        let expected: Vec<_> = if *selective {
            mine.iter().skip(1).step_by(2).cloned().collect()
        } else {
            mine.clone()
        };
        ensure!(take(rx, expected.len()).await? == expected);
        quiet(rx).await?;
    }
    // One store watch per kind at a time, whatever the number of API
    // watches: every store watch the probe saw is one the cache opened (a
    // cut on a loaded machine makes it resume, which opens the next one).
    let cms = f
        .api
        .watch_cache_kind_stats(Kind::ConfigMap)
        .context("started")?;
    let secrets_stats = f
        .api
        .watch_cache_kind_stats(Kind::Secret)
        .context("started")?;
    ensure!(
        cms.store_watches == 1 && cms.watchers == 60 && cms.lists == 1,
        "{cms:?}"
    );
    let opened = |s: &jotasu_controlplane::apiserver::watch_cache::KindStats| {
        usize::try_from(s.store_watches_opened).unwrap_or(usize::MAX)
    };
    ensure!(
        f.probe.watches_of(Kind::ConfigMap) == opened(&cms),
        "{} store watches of ConfigMaps, the cache opened {cms:?}",
        f.probe.watches_of(Kind::ConfigMap)
    );
    ensure!(f.probe.watches_of(Kind::Secret) == opened(&secrets_stats));
    ensure!(f.probe.all_watches() == opened(&cms) + opened(&secrets_stats));
    if opened(&cms) > 1 {
        eprintln!(
            "!!! the ConfigMap store watch was resumed {} time(s)",
            opened(&cms) - 1
        );
    }
    Ok(())
}

/// A watcher that does not read is ended with the revision to resume from;
/// one that reads gets everything; the resumed watch completes the first.
async fn slow_watcher_is_ended<S: Store>(store: S) -> anyhow::Result<()> {
    let limits = Limits {
        events: 64,
        bytes: 1 << 20,
        queue: 16,
    };
    let f = fixture(store, Some(limits));
    let mut slow = f.api.watch(spec(None, 0)).await?;
    let fast = f.api.watch(spec(None, 0)).await?;
    let total = 1300;
    let reader = tokio::spawn(async move {
        let mut fast = fast;
        take(&mut fast, total).await
    });
    let written = write(&*f.probe, "a", total, 10).await?;
    ensure!(reader.await?? == written, "the fast watcher");
    let mut got = Vec::new();
    let resume_from = loop {
        match tokio::time::timeout(WAIT, slow.recv()).await? {
            Some(Ok(ev)) => got.push((ev.revision, name_of(&ev))),
            Some(Err(ApiServerError::Store(StoreError::Lagged { resume_from }))) => {
                break resume_from;
            }
            other => bail!("slow watcher: {other:?} after {} events", got.len()),
        }
    };
    ensure!(
        got.len() < total && got[..] == written[..got.len()],
        "{} events",
        got.len()
    );
    ensure!(f.api.watch_cache_stats().ended_slow == 1);
    // Older than the ring: a store watch of its own completes it.
    let rest: Vec<_> = written
        .iter()
        .filter(|(r, _)| *r >= resume_from)
        .cloned()
        .collect();
    let mut resumed = f.api.watch(spec(None, resume_from)).await?;
    ensure!(take(&mut resumed, rest.len()).await? == rest);
    ensure!(f.api.watch_cache_stats().fallbacks == 1);
    // Nothing between what it got and where it was told to resume.
    let mut seen: Vec<_> = got.into_iter().filter(|(r, _)| *r < resume_from).collect();
    seen.extend(rest);
    ensure!(
        seen == written,
        "a gap between the ended watch and its resume"
    );
    Ok(())
}

/// A store watch that loses its connection is resumed: no gap, no repeat.
async fn cut_store_watch_resumes<S: Store>(store: S) -> anyhow::Result<()> {
    let f = fixture(store, None);
    let mut rx = f.api.watch(spec(None, 0)).await?;
    let first = write(&*f.probe, "a", 10, 2).await?;
    ensure!(take(&mut rx, first.len()).await? == first);
    f.probe.cut();
    let second = write(&*f.probe, "a", 10, 2).await?;
    ensure!(take(&mut rx, second.len()).await? == second);
    quiet(&mut rx).await?;
    let cms = f
        .api
        .watch_cache_kind_stats(Kind::ConfigMap)
        .context("started")?;
    ensure!(
        cms.store_watches_opened == 2 && cms.lists == 1 && cms.store_watches == 1,
        "{cms:?}"
    );
    Ok(())
}

/// A store watch resumed after the compaction makes the cache list again;
/// its watchers get `resync`; new watches and cached Lists see the new state.
async fn compaction_relists<S: Store>(store: S) -> anyhow::Result<()> {
    let f = fixture(store, None);
    let mut rx = f.api.watch(spec(None, 0)).await?;
    let first = write(&*f.probe, "a", 4, 1).await?;
    ensure!(take(&mut rx, first.len()).await? == first);
    f.probe.hold(true);
    f.probe.cut();
    let second = write(&*f.probe, "a", 4, 1).await?;
    let now = f.probe.current_revision().await?;
    f.probe.compact(now).await?;
    f.probe.hold(false);
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, rx.recv()).await? {
            Some(Ok(ev)) => got.push((ev.revision, name_of(&ev))),
            Some(Err(e)) => {
                ensure!(tonic::Status::from(e).message().starts_with("resync"));
                break;
            }
            None => bail!("ended without an error"),
        }
    }
    ensure!(got.is_empty(), "events after the cut: {got:?}");
    let (items, revision) = f
        .api
        .list_cached(Kind::ConfigMap, Some("a"), &LabelSelector::default())
        .await?;
    ensure!(
        revision >= now && items.len() == 4,
        "{revision} {}",
        items.len()
    );
    let cms = f
        .api
        .watch_cache_kind_stats(Kind::ConfigMap)
        .context("started")?;
    ensure!(cms.lists == 2, "{cms:?}");
    let mut again = f.api.watch(spec(None, revision + 1)).await?;
    let third = write(&*f.probe, "a", 3, 1).await?;
    ensure!(take(&mut again, third.len()).await? == third);
    let _ = second;
    Ok(())
}

/// List from the cache equals List from the store, at the cache's revision.
async fn list_from_cache<S: Store>(store: S) -> anyhow::Result<()> {
    let f = fixture(store, None);
    write(&*f.probe, "a", 12, 4).await?;
    write(&*f.probe, "b", 5, 1).await?;
    let sel = LabelSelector::parse("n=1")?;
    for (ns, sel) in [
        (None, LabelSelector::default()),
        (Some("a"), sel.clone()),
        (Some("b"), sel),
    ] {
        let (stored, at) = f.api.list(Kind::ConfigMap, ns, &sel).await?;
        let (cached, cached_at) = f.api.list_cached(Kind::ConfigMap, ns, &sel).await?;
        ensure!(cached == stored && cached_at <= at, "{ns:?}");
    }
    ensure!(f.api.watch_cache_stats().lists_served == 3);
    // Every store watch so far is the cache's.
    ensure!(f.probe.all_watches() == 1);
    Ok(())
}

/// The next `n` events whole; fails on an error or a pause.
async fn take_events(
    rx: &mut mpsc::Receiver<ApiResult<Event>>,
    n: usize,
) -> anyhow::Result<Vec<Event>> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(Ok(ev))) => got.push(ev),
            other => bail!("{} of {n} events, then {other:?}", got.len()),
        }
    }
    Ok(got)
}

/// Watches served from the cache send exactly what a store watch of their
/// own sends (watches of two kinds are not cached): a selector's ADDED /
/// DELETED as objects start / stop matching, a node's Pods.
async fn same_as_a_store_watch<S: Store>(store: S) -> anyhow::Result<()> {
    let f = fixture(store, None);
    let n1 = LabelSelector::parse("n=1")?;
    let with = |kinds: &[Kind], selector: &LabelSelector, node: Option<&str>| WatchSpec {
        kinds: kinds.to_vec(),
        selector: selector.clone(),
        node: node.map(str::to_owned),
        ..WatchSpec::default()
    };
    let mut cms = f.api.watch(with(&[Kind::ConfigMap], &n1, None)).await?;
    let mut cms_own = f
        .api
        .watch(with(&[Kind::ConfigMap, Kind::Secret], &n1, None))
        .await?;
    let all = LabelSelector::default();
    let mut pods = f.api.watch(with(&[Kind::Pod], &all, Some("n1"))).await?;
    let mut pods_own = f
        .api
        .watch(with(&[Kind::Pod, Kind::Node], &all, Some("n1")))
        .await?;
    let stats = f.api.watch_cache_stats();
    ensure!(stats.served == 2 && stats.fallbacks == 0, "{stats:?}");
    let cm = cm_key("a", "x");
    for data in [0, 1, 3, 2] {
        f.probe
            .put(cm.as_bytes(), cm_value("a", "x", data).as_bytes())
            .await?;
    }
    f.probe.delete(cm.as_bytes()).await?;
    let pod = |name: &str, node: &str, image: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"a"}},"spec":{{"nodeName":"{node}","containers":[{{"name":"c","image":"{image}"}}]}}}}"#
        )
    };
    let (p1, p2) = ("/registry/pods/a/p1", "/registry/pods/a/p2");
    f.probe
        .put(p1.as_bytes(), pod("p1", "n1", "a").as_bytes())
        .await?;
    f.probe
        .put(p2.as_bytes(), pod("p2", "n2", "a").as_bytes())
        .await?;
    f.probe
        .put(p1.as_bytes(), pod("p1", "n1", "b").as_bytes())
        .await?;
    f.probe
        .put(p2.as_bytes(), pod("p2", "n1", "b").as_bytes())
        .await?;
    f.probe.delete(p1.as_bytes()).await?;
    use jotasu_controlplane::apiserver::EventType::{Added, Deleted, Modified};
    let cached = take_events(&mut cms, 3).await?;
    let kinds: Vec<_> = cached.iter().map(|e| e.kind).collect();
    ensure!(kinds == [Added, Modified, Deleted], "{kinds:?}");
    ensure!(take_events(&mut cms_own, 3).await? == cached);
    let cached = take_events(&mut pods, 4).await?;
    let kinds: Vec<_> = cached.iter().map(|e| e.kind).collect();
    ensure!(kinds == [Added, Modified, Added, Deleted], "{kinds:?}");
    ensure!(take_events(&mut pods_own, 4).await? == cached);
    for rx in [&mut cms, &mut cms_own, &mut pods, &mut pods_own] {
        quiet(rx).await?;
    }
    Ok(())
}

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() -> anyhow::Result<()> {
                    let dir = tempfile::Builder::new().prefix("jotasu-watchcache-").tempdir()?;
                    let s = super::EmbeddedStore::open(dir.path().join("store.redb"), super::EmbeddedOptions::default()).await?;
                    super::$name(s).await
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() -> anyhow::Result<()> {
                    let Some(server) = super::EtcdServer::start_or_skip()? else { return Ok(()) };
                    let s = super::EtcdStore::connect(&[server.client_url().to_string()], b"").await?;
                    super::$name(s).await
                }
            )*
        }
    };
}

both_stores!(
    replays_from_the_ring,
    one_store_watch_per_kind,
    slow_watcher_is_ended,
    cut_store_watch_resumes,
    compaction_relists,
    list_from_cache,
    same_as_a_store_watch,
);

/// A real etcd restart: the cache's store watch resumes once etcd is
/// back; its watcher gets every write, before and after, with no gap and
/// no resync.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn etcd_restart_resumes() -> anyhow::Result<()> {
    // Started (and restarted) on the test thread: it dies with it.
    let Some(mut server) = EtcdServer::start_or_skip()? else {
        return Ok(());
    };
    let store = EtcdStore::connect(&[server.client_url().to_string()], b"").await?;
    let f = fixture(store, None);
    let mut rx = f.api.watch(spec(None, 0)).await?;
    let first = write(&*f.probe, "a", 5, 1).await?;
    ensure!(take(&mut rx, first.len()).await? == first);
    server.restart()?;
    let mut second = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while second.len() < 5 {
        match write(&*f.probe, "a", 1, 1).await {
            Ok(w) => second.extend(w),
            Err(e) if tokio::time::Instant::now() < deadline => {
                eprintln!("etcd not back yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
    ensure!(take(&mut rx, second.len()).await? == second);
    quiet(&mut rx).await?;
    let cms = f
        .api
        .watch_cache_kind_stats(Kind::ConfigMap)
        .context("started")?;
    ensure!(cms.lists == 1 && cms.store_watches == 1, "{cms:?}");
    ensure!(cms.store_watches_opened >= 2, "{cms:?}");
    Ok(())
}

/// Through the gRPC API: `resourceVersion: "0"` lists from the cache, an
/// unset one from the store, a malformed one is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_list_resource_version() -> anyhow::Result<()> {
    use jotasu_api::grpc::v1;
    use jotasu_tests::controlplane::{ControlPlane, Options};
    let mut options = Options::default();
    options.args.push("--no-controllers".into());
    let cp = ControlPlane::start(options).await?;
    let client = cp.client().await?;
    let cm: jotasu_api::Object = serde_json::from_str(&cm_value("default", "one", 1))?;
    client.apply(&[cm], false).await?;
    let list = |rv: &str| v1::ListRequest {
        kind: "ConfigMap".into(),
        namespace: "default".into(),
        resource_version: rv.into(),
        ..v1::ListRequest::default()
    };
    let stored = client.raw().list(list("")).await?.into_inner();
    let cached = client.raw().list(list("0")).await?.into_inner();
    let newer = client
        .raw()
        .list(list(&stored.revision.to_string()))
        .await?
        .into_inner();
    ensure!(stored.items.len() == 1, "{stored:?}");
    ensure!(cached.items == stored.items && cached.revision <= stored.revision);
    ensure!(newer.items == stored.items);
    let e = client.raw().list(list("latest")).await.unwrap_err();
    ensure!(e.code() == tonic::Code::InvalidArgument, "{e:?}");
    Ok(())
}
