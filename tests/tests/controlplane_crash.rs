//! The control plane on its embedded store keeps what it acknowledged:
//! killed with SIGKILL while concurrent applies are in flight, it comes back
//! on the same data dir with every acknowledged object intact, and nothing
//! half-written; stopped with SIGTERM it exits cleanly and serves the same
//! data after a restart.
//!
//! The kill point is random: set `JOTASU_CRASH_SEED` to replay a run (the
//! seed is printed).
use std::{
    collections::BTreeMap,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use futures::StreamExt as _;
use jotasu_api::{
    Kind, Object, ObjectRef,
    client::{Client, Outcome, WatchFilter},
};
use jotasu_tests::{
    controlplane::{ControlPlane, Options},
    objects::{config_map, deployment, namespace, service},
};
use tokio::{sync::Notify, task::JoinSet};

const OBJECTS: usize = 1000;
const WRITERS: usize = 8;
const NAMESPACE: &str = "crash";
const KINDS: [Kind; 3] = [Kind::ConfigMap, Kind::Deployment, Kind::Service];
/// How long the whole apply phase may take before the test gives up.
const PHASE: Duration = Duration::from_secs(120);

/// Object `i` of the test: mostly ConfigMaps, every tenth a Deployment and
/// every tenth a Service; all distinct.
fn object(i: usize) -> anyhow::Result<Object> {
    let name = format!("obj-{i:04}");
    match i % 10 {
        0 => deployment(NAMESPACE, &name, i),
        1 => service(NAMESPACE, &name, i),
        _ => config_map(NAMESPACE, &name, i),
    }
}

/// splitmix64: enough randomness for a kill point, and replayable.
fn splitmix(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn seed() -> anyhow::Result<u64> {
    match std::env::var("JOTASU_CRASH_SEED") {
        Ok(s) => s.parse().context("JOTASU_CRASH_SEED must be a number"),
        Err(_) => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64),
    }
}

/// What became of one Apply call.
#[derive(Debug)]
enum Attempt {
    /// The server answered: this outcome, at this resourceVersion.
    Acked(Outcome, u64),
    /// The call failed (the server died under it, or before it).
    Failed(String),
}

/// Counts acknowledgements and wakes the killer at the chosen one.
struct Acks {
    count: AtomicUsize,
    kill_at: usize,
    kill: Notify,
    in_flight: AtomicUsize,
}

/// Applies objects one per call, taking the next index as it becomes free,
/// until they run out or a call fails.
async fn writer(
    client: Client,
    objects: Arc<Vec<Object>>,
    next: Arc<AtomicUsize>,
    acks: Arc<Acks>,
) -> Vec<(usize, Attempt)> {
    let mut attempts = Vec::new();
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(o) = objects.get(i) else {
            return attempts;
        };
        acks.in_flight.fetch_add(1, Ordering::Relaxed);
        let result = client.apply(std::slice::from_ref(o), false).await;
        acks.in_flight.fetch_sub(1, Ordering::Relaxed);
        let attempt = match result {
            Err(e) => Attempt::Failed(e.to_string()),
            Ok(applied) => match applied.as_slice() {
                [a] if a.object_ref == o.object_ref() => match a.resource_version.parse() {
                    Ok(rv) => Attempt::Acked(a.outcome, rv),
                    Err(_) => Attempt::Failed(format!("resourceVersion {:?}", a.resource_version)),
                },
                other => Attempt::Failed(format!("unexpected apply result {other:?}")),
            },
        };
        let failed = matches!(attempt, Attempt::Failed(_));
        attempts.push((i, attempt));
        if failed {
            return attempts;
        }
        if acks.count.fetch_add(1, Ordering::AcqRel) + 1 == acks.kill_at {
            acks.kill.notify_one();
        }
    }
}

/// Checks that `stored` is `sent` as the server keeps it: defaults applied,
/// server-assigned fields filled in, and complete.
fn same_content(sent: &Object, stored: &Object) -> anyhow::Result<()> {
    let r = sent.object_ref();
    let meta = stored.metadata();
    ensure!(
        meta.uid.as_deref().is_some_and(|u| !u.is_empty())
            && meta.creation_timestamp.is_some()
            && meta.generation.is_some()
            && meta.resource_version.is_some(),
        "{r}: stored without its server-set metadata: {meta:?}"
    );
    let mut want = sent.clone();
    want.apply_defaults();
    want.keep_assigned_fields(stored);
    let mut got = stored.clone();
    got.clear_status();
    let m = got.metadata_mut();
    (
        m.uid,
        m.creation_timestamp,
        m.generation,
        m.resource_version,
    ) = (None, None, None, None);
    if got != want {
        bail!(
            "{r}: the stored object differs from the one applied\n stored: {}\n   sent: {}",
            serde_json::to_string(&got)?,
            serde_json::to_string(&want)?
        );
    }
    Ok(())
}

fn resource_version(o: &Object) -> anyhow::Result<u64> {
    let rv = o.metadata().resource_version.as_deref().unwrap_or_default();
    rv.parse()
        .with_context(|| format!("{}: resourceVersion {rv:?}", o.object_ref()))
}

/// Every object of the test's kinds in its namespace, by ref.
async fn list_all(client: &Client) -> anyhow::Result<BTreeMap<ObjectRef, Object>> {
    let mut all = BTreeMap::new();
    for kind in KINDS {
        let list = client.list(kind, Some(NAMESPACE), "").await?;
        for o in list.items {
            ensure!(
                all.insert(o.object_ref(), o.clone()).is_none(),
                "{} listed twice",
                o.object_ref()
            );
        }
    }
    Ok(all)
}

/// Whether a process with this PID still exists (a zombie counts).
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Drops the control plane and checks its data dir and every process it
/// ran as (`pids`) are gone.
fn left_nothing_behind(cp: ControlPlane, pids: &[u32]) -> anyhow::Result<()> {
    let dir = cp.data_dir().to_owned();
    drop(cp);
    ensure!(!dir.exists(), "{} is left behind", dir.display());
    ensure!(
        !pids.iter().any(|&p| alive(p)),
        "a control plane survived: {pids:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_applies_keeps_every_acknowledged_object() -> anyhow::Result<()> {
    let seed = seed()?;
    let mut rng = seed;
    let kill_at = 200 + (splitmix(&mut rng) % 601) as usize;
    eprintln!("seed {seed} (JOTASU_CRASH_SEED={seed} replays it): SIGKILL after {kill_at} acks");
    let objects = Arc::new(
        (0..OBJECTS)
            .map(object)
            .collect::<anyhow::Result<Vec<_>>>()?,
    );

    // Spawned from the test's own thread, which outlives the server. The
    // API alone: controllers would add revision annotations of their own.
    let mut cp = ControlPlane::start(Options {
        args: vec!["--no-controllers".into()],
        ..Options::default()
    })
    .await?;
    let mut pids = vec![cp.pid().context("running")?];
    cp.client()
        .await?
        .apply(&[namespace(NAMESPACE)?], false)
        .await
        .context("creating the test's namespace")?;
    let acks = Arc::new(Acks {
        count: AtomicUsize::new(0),
        kill_at,
        kill: Notify::new(),
        in_flight: AtomicUsize::new(0),
    });
    let next = Arc::new(AtomicUsize::new(0));
    let mut writers = JoinSet::new();
    for _ in 0..WRITERS {
        let client = cp.client().await?;
        writers.spawn(writer(
            client,
            Arc::clone(&objects),
            Arc::clone(&next),
            Arc::clone(&acks),
        ));
    }
    tokio::time::timeout(PHASE, acks.kill.notified())
        .await
        .with_context(|| format!("{kill_at} acks did not come within {PHASE:?}"))?;
    let in_flight = acks.in_flight.load(Ordering::Relaxed);
    cp.kill9()?;
    let killed_at = Instant::now();

    let mut fate: BTreeMap<usize, Attempt> = BTreeMap::new();
    while let Some(done) = tokio::time::timeout(PHASE, writers.join_next())
        .await
        .context("writers did not stop after the kill")?
    {
        fate.extend(done?);
    }
    ensure!(
        killed_at.elapsed() < Duration::from_secs(30),
        "writers took {:?} to notice the kill",
        killed_at.elapsed()
    );
    let acked: BTreeMap<usize, u64> = fate
        .iter()
        .filter_map(|(&i, a)| match a {
            Attempt::Acked(outcome, rv) => Some((i, *outcome, *rv)),
            Attempt::Failed(_) => None,
        })
        .map(|(i, outcome, rv)| {
            ensure!(
                outcome == Outcome::Created,
                "{}: first apply said {outcome:?}",
                objects[i].object_ref()
            );
            Ok((i, rv))
        })
        .collect::<anyhow::Result<_>>()?;
    let failed: Vec<usize> = fate
        .iter()
        .filter(|(_, a)| matches!(a, Attempt::Failed(_)))
        .map(|(&i, _)| i)
        .collect();
    let first_failure = fate.values().find_map(|a| match a {
        Attempt::Failed(e) => Some(e.as_str()),
        Attempt::Acked(..) => None,
    });
    eprintln!(
        "killed with {in_flight} applies in flight; {} acknowledged, {} failed (first: {}), {} never sent",
        acked.len(),
        failed.len(),
        first_failure.unwrap_or("none"),
        OBJECTS - fate.len()
    );
    ensure!(
        acked.len() >= kill_at,
        "{} acks, the kill came at {kill_at}",
        acked.len()
    );
    // Every writer was still applying when the server died, so each must
    // have seen its last call fail.
    ensure!(
        failed.len() == WRITERS,
        "{} writers saw a failure, expected {WRITERS}",
        failed.len()
    );

    cp.restart().await?;
    pids.push(cp.pid().context("running")?);
    let client = cp.client().await?;
    for (&i, &rv) in &acked {
        let sent = &objects[i];
        let stored = client
            .get(&sent.object_ref())
            .await
            .with_context(|| format!("{} was acknowledged at {rv}", sent.object_ref()))?;
        same_content(sent, &stored)?;
        let now = resource_version(&stored)?;
        ensure!(
            now >= rv,
            "{}: resourceVersion {now} after the restart, {rv} acknowledged",
            sent.object_ref()
        );
    }
    let mut landed = Vec::new();
    for &i in &failed {
        let sent = &objects[i];
        match client.get(&sent.object_ref()).await {
            Ok(stored) => {
                same_content(sent, &stored)?;
                landed.push(i);
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e).context(format!("getting {}", sent.object_ref())),
        }
    }
    eprintln!(
        "after the restart: all {} acknowledged objects intact; {} of {} unacknowledged ones landed",
        acked.len(),
        landed.len(),
        failed.len()
    );
    // Nothing else may be there: only acknowledged or in-flight objects.
    let before = list_all(&client).await?;
    ensure!(
        before.len() == acked.len() + landed.len(),
        "{} objects listed, {} acknowledged + {} landed",
        before.len(),
        acked.len(),
        landed.len()
    );

    // The rest, to reach all of them: what landed is unchanged now.
    for (i, sent) in objects.iter().enumerate() {
        if acked.contains_key(&i) {
            continue;
        }
        let applied = client
            .apply(std::slice::from_ref(sent), false)
            .await
            .with_context(|| format!("applying {} after the restart", sent.object_ref()))?;
        let expect = if landed.contains(&i) {
            Outcome::Unchanged
        } else {
            Outcome::Created
        };
        let outcome = applied.first().map(|a| a.outcome);
        ensure!(
            outcome == Some(expect),
            "{}: {outcome:?} after the restart, expected {expect:?}",
            sent.object_ref()
        );
    }
    let all = list_all(&client).await?;
    ensure!(all.len() == OBJECTS, "{} objects listed", all.len());
    for sent in objects.iter() {
        let stored = all
            .get(&sent.object_ref())
            .with_context(|| format!("{} is not listed", sent.object_ref()))?;
        same_content(sent, stored)?;
    }

    left_nothing_behind(cp, &pids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_cleanly_and_keeps_the_data() -> anyhow::Result<()> {
    let mut cp = ControlPlane::start(Options::default()).await?;
    let mut pids = vec![cp.pid().context("running")?];
    let client = cp.client().await?;
    client
        .apply(&[namespace(NAMESPACE)?], false)
        .await
        .context("creating the test's namespace")?;
    for i in 0..100 {
        let o = object(i)?;
        client
            .apply(std::slice::from_ref(&o), false)
            .await
            .with_context(|| format!("applying {}", o.object_ref()))?;
    }
    let before = list_all(&client).await?;
    ensure!(before.len() == 100, "{} objects listed", before.len());
    let newest = before
        .values()
        .map(resource_version)
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .max()
        .unwrap_or(0);
    // An open watch must not hold the shutdown up.
    let mut watch = client
        .watch(&WatchFilter {
            kinds: vec![Kind::ConfigMap],
            ..WatchFilter::default()
        })
        .await?;

    let status = cp.terminate()?;
    ensure!(
        status.success(),
        "SIGTERM: the control plane exited {status}"
    );
    ensure!(
        !cp.socket().exists(),
        "the socket {} outlived a graceful exit",
        cp.socket().display()
    );
    match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
        Err(_) => bail!("the watch stayed open after the server exited"),
        Ok(Some(Ok(e))) => bail!("an event after SIGTERM: {e:?}"),
        Ok(Some(Err(_)) | None) => {}
    }

    cp.restart().await?;
    pids.push(cp.pid().context("running")?);
    let client = cp.client().await?;
    let after = list_all(&client).await?;
    ensure!(
        after == before,
        "the objects changed across a graceful restart:\n before: {:?}\n after: {:?}",
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    // Revisions go on from where they were: resourceVersions never repeat.
    let o = object(100)?;
    let applied = client.apply(std::slice::from_ref(&o), false).await?;
    let rv: u64 = applied
        .first()
        .context("no apply result")?
        .resource_version
        .parse()?;
    ensure!(
        rv > newest,
        "the first write after the restart got revision {rv}, the last before it was {newest}"
    );

    let status = cp.terminate()?;
    ensure!(status.success(), "second SIGTERM: exited {status}");
    left_nothing_behind(cp, &pids)
}
