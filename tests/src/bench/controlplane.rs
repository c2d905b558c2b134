//! The control-plane benchmark: apply latency and throughput, List of many
//! Pods, and watch fan-out, for the embedded store and for etcd, in the same
//! run on the same machine.
//!
//! Two `jotasu-controlplane` processes run side by side, one on its embedded
//! store and one on a throwaway etcd; every case runs on one, then the other,
//! before the next case starts. The clients are this process, on the servers'
//! unix sockets; each sample is a call as a client sees it (encoding, the
//! socket, decoding the answer included).
//!
//! The watch case follows ConfigMaps in a namespace of its own, which no
//! controller writes: every event is one of the benchmark's writes, so each
//! watcher's revisions must equal the acknowledged ones exactly. The
//! objects come from [`crate::objects`].
use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use futures::StreamExt as _;
use jotasu_api::{
    Kind, Object,
    client::{Client, Outcome, WatchFilter},
};
use tokio::{sync::Barrier, task::JoinSet};

use super::{Report, client::Histogram};
use crate::{
    controlplane::{ControlPlane, Options},
    etcd::EtcdServer,
    objects::{SHARDS, config_map, deployment, pod},
    signals,
};

/// The benchmark's name (`target/bench/controlplane.json`).
pub const NAME: &str = "controlplane";
const EMBEDDED: &str = "embedded";
const ETCD: &str = "etcd";
/// Pods per Apply call while filling the store for the List case.
const POD_BATCH: usize = 100;
/// Concurrent Apply calls while filling the store.
const FILLERS: usize = 4;
/// A watcher that sees nothing for this long gives up.
const WATCH_IDLE: Duration = Duration::from_secs(30);
/// Distinct ConfigMaps each watch-case writer cycles through: its first
/// writes create them, later ones change them.
const NAMES_PER_WRITER: usize = 250;

/// How the benchmark runs.
#[derive(Clone, Debug, clap::Args)]
pub struct Config {
    /// Objects (Deployments) applied, one per call, in each apply case.
    #[arg(long, default_value_t = 1000)]
    pub objects: usize,
    /// Concurrent clients of the apply throughput case.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Pods in the store for the List cases.
    #[arg(long, default_value_t = 10000)]
    pub pods: usize,
    /// Measured Lists per List case.
    #[arg(long, default_value_t = 10)]
    pub repetitions: usize,
    /// Concurrent watchers, each on its own connection.
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// Changes the watchers must all see (each must see all of them).
    #[arg(long, default_value_t = 10000)]
    pub events: usize,
    /// Concurrent writers making those changes.
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
}

/// One line on how the run was made, printed above the table.
pub fn describe(cfg: &Config) -> String {
    let size = |o: anyhow::Result<Object>| {
        o.ok()
            .and_then(|o| serde_json::to_vec(&o).ok())
            .map_or(0, |v| v.len())
    };
    format!(
        "embedded store and etcd, side by side, one case on each before the next; clients on unix \
         sockets. apply: {} Deployments ({} B of JSON) one per call from 1 client, then {} more \
         from {} clients; list: {} Pods ({} B) in one namespace, {} Lists of all and of 1% \
         (label selector); watch: {} watchers, each on its own connection, while {} writers \
         make {} ConfigMap changes",
        cfg.objects,
        size(deployment("ns", "web-0000", 0)),
        cfg.objects,
        cfg.clients,
        cfg.pods,
        size(pod("ns", "pod-00000", 0)),
        cfg.repetitions,
        cfg.watchers,
        cfg.writers,
        cfg.events,
    )
}

/// One control plane under test.
struct Backend {
    name: &'static str,
    cp: ControlPlane,
    // Declared after `cp`: the control plane stops before its etcd.
    _etcd: Option<EtcdServer>,
}

/// The latencies of one apply case and the wall time it took.
struct Applies {
    latency: Histogram,
    seconds: f64,
    objects: usize,
}

/// What one watcher saw.
#[derive(Default)]
struct Seen {
    revisions: Vec<i64>,
    last_at: Option<Instant>,
    problem: Option<String>,
}

/// The watch case's figures on one backend.
struct Fanout {
    /// Watchers that saw every change, in order, with no gap or extra.
    complete: usize,
    /// max over complete watchers (their last event − the last ack), ms.
    lag_ms: f64,
    /// Events delivered to all watchers per second, from the first write
    /// to the last event received.
    rate: f64,
    /// Acknowledged writes per second, from the first write to the last ack.
    writes: f64,
    /// The first watcher that did not, and why.
    problem: Option<String>,
}

fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// Applies `object`, alone, and checks that the server wrote it.
async fn apply_one(client: &Client, object: &Object) -> anyhow::Result<i64> {
    let applied = client
        .apply(std::slice::from_ref(object), false)
        .await
        .with_context(|| format!("applying {}", object.object_ref()))?;
    let [a] = applied.as_slice() else {
        bail!("one object applied, {} results", applied.len());
    };
    ensure!(
        a.outcome != Outcome::Unchanged,
        "{}: unchanged, expected a write",
        a.object_ref
    );
    a.resource_version
        .parse()
        .with_context(|| format!("resourceVersion {:?}", a.resource_version))
}

/// Applies `objects` one per call from one client, in order.
async fn apply_sequential(client: &Client, objects: &[Object]) -> anyhow::Result<Applies> {
    let mut latency = Histogram::default();
    let start = Instant::now();
    for o in objects {
        signals::check()?;
        let t = Instant::now();
        apply_one(client, o).await?;
        latency.record(ns(t.elapsed()));
    }
    Ok(Applies {
        latency,
        seconds: start.elapsed().as_secs_f64(),
        objects: objects.len(),
    })
}

/// Applies `objects` one per call from `clients` clients, each on its own
/// connection, taking the next object as they become free.
async fn apply_concurrent(
    cp: &ControlPlane,
    objects: Vec<Object>,
    clients: usize,
) -> anyhow::Result<Applies> {
    let count = objects.len();
    let objects = Arc::new(objects);
    let next = Arc::new(AtomicUsize::new(0));
    let mut connected = Vec::with_capacity(clients);
    for _ in 0..clients {
        connected.push(cp.client().await?);
    }
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for client in connected {
        let (objects, next) = (Arc::clone(&objects), Arc::clone(&next));
        tasks.spawn(async move {
            let mut latency = Histogram::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(o) = objects.get(i) else {
                    return anyhow::Ok(latency);
                };
                signals::check()?;
                let t = Instant::now();
                apply_one(&client, o).await?;
                latency.record(ns(t.elapsed()));
            }
        });
    }
    let mut latency = Histogram::default();
    while let Some(h) = tasks.join_next().await {
        latency.merge(&h??);
    }
    Ok(Applies {
        latency,
        seconds: start.elapsed().as_secs_f64(),
        objects: count,
    })
}

/// Creates `pods` Pods in `namespace`, [`POD_BATCH`] per call.
async fn fill_pods(cp: &ControlPlane, namespace: &str, pods: usize) -> anyhow::Result<()> {
    let mut batches: Vec<Vec<Object>> = Vec::new();
    for start in (0..pods).step_by(POD_BATCH) {
        let batch = (start..pods.min(start + POD_BATCH))
            .map(|i| pod(namespace, &format!("pod-{i:05}"), i))
            .collect::<anyhow::Result<_>>()?;
        batches.push(batch);
    }
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..FILLERS {
        let client = cp.client().await?;
        let (batches, next) = (Arc::clone(&batches), Arc::clone(&next));
        tasks.spawn(async move {
            while let Some(batch) = batches.get(next.fetch_add(1, Ordering::Relaxed)) {
                signals::check()?;
                let applied = client.apply(batch, false).await.context("creating Pods")?;
                ensure!(applied.len() == batch.len(), "{} results", applied.len());
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// Lists Pods in `namespace` matching `selector`, `repetitions` times after
/// one unmeasured List; every List must return `expect` items.
async fn lists(
    client: &Client,
    namespace: &str,
    selector: &str,
    expect: usize,
    repetitions: usize,
) -> anyhow::Result<Histogram> {
    let mut latency = Histogram::default();
    for rep in 0..=repetitions {
        signals::check()?;
        let t = Instant::now();
        let list = client
            .list(Kind::Pod, Some(namespace), selector)
            .await
            .with_context(|| format!("listing Pods {selector:?}"))?;
        let took = t.elapsed();
        ensure!(
            list.items.len() == expect,
            "List of Pods {selector:?} returned {} items, expected {expect}",
            list.items.len()
        );
        if rep > 0 {
            latency.record(ns(took));
        }
    }
    Ok(latency)
}

/// Follows ConfigMaps in `namespace` from revision `from` until `events`
/// events arrived; `ready` is passed once the stream is open.
async fn watcher(
    client: Client,
    namespace: String,
    from: i64,
    events: usize,
    ready: Arc<Barrier>,
) -> Seen {
    let filter = WatchFilter {
        kinds: vec![Kind::ConfigMap],
        namespace: Some(namespace),
        from_revision: from,
        ..WatchFilter::default()
    };
    let stream = client.watch(&filter).await;
    ready.wait().await;
    let mut seen = Seen {
        revisions: Vec::with_capacity(events),
        ..Seen::default()
    };
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => {
            seen.problem = Some(format!("Watch failed: {e}"));
            return seen;
        }
    };
    while seen.revisions.len() < events {
        let event = match tokio::time::timeout(WATCH_IDLE, stream.next()).await {
            Err(_) => Err(format!("no event for {WATCH_IDLE:?}")),
            Ok(None) => Err("the stream ended".to_owned()),
            Ok(Some(Err(e))) => Err(format!("the stream failed: {e}")),
            Ok(Some(Ok(ev))) => Ok(ev),
        };
        match event {
            Ok(ev) => {
                seen.last_at = Some(Instant::now());
                let rv = ev.object.metadata().resource_version.as_deref();
                if rv != Some(ev.revision.to_string().as_str()) && seen.problem.is_none() {
                    seen.problem = Some(format!(
                        "event at revision {} carries resourceVersion {rv:?}",
                        ev.revision
                    ));
                }
                seen.revisions.push(ev.revision);
            }
            Err(e) => {
                seen.problem = Some(e);
                break;
            }
        }
    }
    seen
}

/// `watchers` watchers follow ConfigMaps in `namespace` while `writers`
/// writers make `events` changes there; checks that every watcher saw
/// exactly the acknowledged revisions, in order.
async fn fanout(
    cp: &ControlPlane,
    namespace: &str,
    watchers: usize,
    events: usize,
    writers: usize,
) -> anyhow::Result<Fanout> {
    let setup = cp.client().await?;
    let from = setup
        .list(Kind::ConfigMap, Some(namespace), "")
        .await?
        .revision
        + 1;
    let ready = Arc::new(Barrier::new(watchers + 1));
    let mut watching = JoinSet::new();
    for _ in 0..watchers {
        let client = cp.client().await?;
        watching.spawn(watcher(
            client,
            namespace.to_owned(),
            from,
            events,
            Arc::clone(&ready),
        ));
    }
    ready.wait().await;
    signals::check()?;

    let start = Instant::now();
    let mut writing = JoinSet::new();
    for w in 0..writers {
        let client = cp.client().await?;
        let mine = events / writers + usize::from(w < events % writers);
        let objects = (0..mine)
            .map(|k| {
                let name = format!("w{w}-{:03}", k % NAMES_PER_WRITER);
                config_map(namespace, &name, k)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        writing.spawn(async move {
            let mut acked = Vec::with_capacity(objects.len());
            let mut last = start;
            for o in &objects {
                signals::check()?;
                acked.push(apply_one(&client, o).await?);
                last = Instant::now();
            }
            anyhow::Ok((acked, last))
        });
    }
    let mut acked = Vec::with_capacity(events);
    let mut last_ack = start;
    while let Some(r) = writing.join_next().await {
        let (revisions, last) = r??;
        acked.extend(revisions);
        last_ack = last_ack.max(last);
    }
    acked.sort_unstable();

    let mut fanout = Fanout {
        complete: 0,
        lag_ms: f64::NAN,
        rate: 0.0,
        writes: events as f64 / last_ack.duration_since(start).as_secs_f64(),
        problem: None,
    };
    let mut delivered = 0;
    let mut last_event = start;
    let mut watcher_no = 0;
    while let Some(seen) = watching.join_next().await {
        let seen = seen?;
        watcher_no += 1;
        delivered += seen.revisions.len();
        let Some(at) = seen.last_at else {
            fanout.problem.get_or_insert_with(|| {
                format!(
                    "a watcher got no event: {}",
                    seen.problem.as_deref().unwrap_or("?")
                )
            });
            continue;
        };
        last_event = last_event.max(at);
        match gap(&seen, &acked) {
            None => {
                fanout.complete += 1;
                let lag = match at.checked_duration_since(last_ack) {
                    Some(d) => d.as_secs_f64() * 1e3,
                    None => -last_ack.duration_since(at).as_secs_f64() * 1e3,
                };
                fanout.lag_ms = if fanout.lag_ms.is_nan() {
                    lag
                } else {
                    fanout.lag_ms.max(lag)
                };
            }
            Some(why) => {
                fanout
                    .problem
                    .get_or_insert_with(|| format!("watcher {watcher_no}: {why}"));
            }
        }
    }
    let seconds = last_event.duration_since(start).as_secs_f64();
    if seconds > 0.0 {
        fanout.rate = delivered as f64 / seconds;
    }
    Ok(fanout)
}

/// How what a watcher saw differs from the acknowledged revisions, if it does.
fn gap(seen: &Seen, acked: &[i64]) -> Option<String> {
    let got = &seen.revisions;
    let first_difference = got.iter().zip(acked).position(|(g, a)| g != a);
    let why = match first_difference {
        Some(k) => format!(
            "event {k} has revision {}, expected {} (the {k}th acknowledged write)",
            got[k], acked[k]
        ),
        None if got.len() != acked.len() => format!(
            "{} events, {} writes were acknowledged",
            got.len(),
            acked.len()
        ),
        None => return seen.problem.clone(),
    };
    Some(match &seen.problem {
        Some(p) => format!("{why}; {p}"),
        None => why,
    })
}

async fn start_backends() -> anyhow::Result<Vec<Backend>> {
    eprintln!("starting the control planes");
    let mut backends = vec![Backend {
        name: EMBEDDED,
        cp: ControlPlane::start(Options::default()).await?,
        _etcd: None,
    }];
    match EtcdServer::start_or_skip()? {
        Some(etcd) => {
            let options = Options {
                etcd_endpoints: vec![etcd.client_url().to_owned()],
                ..Options::default()
            };
            backends.push(Backend {
                name: ETCD,
                cp: ControlPlane::start(options).await?,
                _etcd: Some(etcd),
            });
        }
        None => eprintln!("!!! no etcd: measuring the embedded store alone !!!"),
    }
    Ok(backends)
}

fn apply_rows(report: &mut Report, case: &str, a: &Applies) {
    for (q, label) in [(0.5, "p50"), (0.99, "p99"), (1.0, "max")] {
        report.row(case, label, ms(a.latency.quantile(q)), "ms");
    }
    report.row(case, "rate", a.objects as f64 / a.seconds, "objects/s");
}

fn list_rows(report: &mut Report, case: &str, h: &Histogram) {
    for (q, label) in [(0.5, "p50"), (0.99, "p99"), (1.0, "max")] {
        report.row(case, label, ms(h.quantile(q)), "ms");
    }
}

/// Cases that failed on one backend; the others go on.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    /// The case's result, or None after noting why it failed. An
    /// interruption is not a failure: it stops the run.
    fn note<T>(
        &mut self,
        backend: &str,
        case: &str,
        r: anyhow::Result<T>,
    ) -> anyhow::Result<Option<T>> {
        signals::check()?;
        match r {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                let why = format!("{backend}: {case}: {e:#}");
                eprintln!("!!! {why}");
                self.0.push(why);
                Ok(None)
            }
        }
    }
}

/// Every case, on each backend in turn; rows are written case by case so
/// that the backends sit next to each other in the table.
async fn measure(cfg: &Config) -> anyhow::Result<Report> {
    let backends = start_backends().await?;
    let mut failures = Failures::default();
    let deployments = |namespace: &str, prefix: &str| {
        (0..cfg.objects)
            .map(|i| deployment(namespace, &format!("{prefix}-{i:04}"), i))
            .collect::<anyhow::Result<Vec<_>>>()
    };

    let mut sequential = BTreeMap::new();
    for b in &backends {
        eprintln!("{}: apply, 1 client", b.name);
        let r = async {
            let client = b.cp.client().await?;
            // Unmeasured: the connection and the store warm up.
            let warm = deployments("bench-warmup", "warm")?;
            apply_sequential(&client, &warm[..cfg.objects.min(50)]).await?;
            apply_sequential(&client, &deployments("bench-apply", "web")?).await
        }
        .await;
        if let Some(a) = failures.note(b.name, "apply, 1 client", r)? {
            sequential.insert(b.name, a);
        }
    }
    let mut concurrent = BTreeMap::new();
    for b in &backends {
        eprintln!("{}: apply, {} clients", b.name, cfg.clients);
        let r = async {
            apply_concurrent(&b.cp, deployments("bench-apply", "api")?, cfg.clients).await
        }
        .await;
        if let Some(a) = failures.note(b.name, "apply, concurrent clients", r)? {
            concurrent.insert(b.name, a);
        }
    }
    let mut filled = Vec::new();
    for b in &backends {
        eprintln!("{}: creating {} Pods", b.name, cfg.pods);
        let r = fill_pods(&b.cp, "bench-list", cfg.pods).await;
        if failures.note(b.name, "creating Pods", r)?.is_some() {
            filled.push(b.name);
        }
    }
    let (mut all, mut some) = (BTreeMap::new(), BTreeMap::new());
    let selected = (0..cfg.pods).filter(|i| i % SHARDS == 7).count();
    for b in backends.iter().filter(|b| filled.contains(&b.name)) {
        eprintln!("{}: list", b.name);
        let client = b.cp.client().await?;
        let r = lists(&client, "bench-list", "", cfg.pods, cfg.repetitions).await;
        if let Some(h) = failures.note(b.name, "list all Pods", r)? {
            all.insert(b.name, h);
        }
        let r = lists(&client, "bench-list", "shard=7", selected, cfg.repetitions).await;
        if let Some(h) = failures.note(b.name, "list 1% of the Pods", r)? {
            some.insert(b.name, h);
        }
    }
    let mut fanouts = BTreeMap::new();
    for b in &backends {
        eprintln!(
            "{}: {} watchers, {} changes",
            b.name, cfg.watchers, cfg.events
        );
        let r = fanout(&b.cp, "bench-watch", cfg.watchers, cfg.events, cfg.writers).await;
        if let Some(f) = failures.note(b.name, "watch", r)? {
            if let Some(p) = &f.problem {
                eprintln!("!!! {}: watch: {p}", b.name);
            }
            fanouts.insert(b.name, f);
        }
    }

    let mut report = Report::new(NAME);
    let names: Vec<&str> = backends.iter().map(|b| b.name).collect();
    for &n in &names {
        if let Some(a) = sequential.get(n) {
            apply_rows(&mut report, &format!("apply, 1 client, {n}"), a);
        }
    }
    for &n in &names {
        if let Some(a) = concurrent.get(n) {
            apply_rows(
                &mut report,
                &format!("apply, {} clients, {n}", cfg.clients),
                a,
            );
        }
    }
    for &n in &names {
        if let Some(h) = all.get(n) {
            list_rows(&mut report, &format!("list {} Pods, {n}", cfg.pods), h);
        }
    }
    for &n in &names {
        if let Some(h) = some.get(n) {
            let case = format!("list {selected} of {} Pods (shard=7), {n}", cfg.pods);
            list_rows(&mut report, &case, h);
        }
    }
    for &n in &names {
        if let Some(f) = fanouts.get(n) {
            let case = format!(
                "watch, {} watchers × {} changes, {n}",
                cfg.watchers, cfg.events
            );
            report.row(&case, "rate", f.writes, "objects/s");
            report.row(&case, "complete watchers", f.complete as f64, "count");
            report.row(&case, "last event − last ack", f.lag_ms, "ms");
            report.row(&case, "delivered", f.rate, "events/s");
        }
    }

    let apply_p99 = sequential
        .get(EMBEDDED)
        .map_or(f64::NAN, |a| ms(a.latency.quantile(0.99)));
    report.goal_at_most("apply p99, 1 client, embedded", 20.0, apply_p99, " ms");
    for &n in &names {
        let complete = fanouts.get(n).map_or(0, |f| f.complete);
        report.goal_at_least(
            &format!("watchers with every change in order, {n}"),
            cfg.watchers as f64,
            complete as f64,
            "",
        );
    }
    // The lag only counts if every watcher had every event.
    let lag = match fanouts.get(EMBEDDED) {
        Some(f) if f.complete == cfg.watchers => f.lag_ms,
        _ => f64::INFINITY,
    };
    report.goal_at_most(
        "max over watchers (last event − last ack), embedded",
        2000.0,
        lag,
        " ms",
    );
    if !failures.0.is_empty() {
        eprintln!(
            "!!! {} case(s) failed; their rows are missing:",
            failures.0.len()
        );
        for f in &failures.0 {
            eprintln!("!!!   {f}");
        }
    }
    Ok(report)
}

/// Runs the benchmark. Everything it started is stopped when it returns.
pub fn run(cfg: &Config) -> anyhow::Result<Report> {
    ensure!(cfg.objects >= 1, "--objects must be at least 1");
    ensure!(
        cfg.clients >= 1 && cfg.writers >= 1,
        "--clients and --writers must be at least 1"
    );
    ensure!(cfg.pods >= 1, "--pods must be at least 1");
    ensure!(cfg.repetitions >= 1, "--repetitions must be at least 1");
    ensure!(
        cfg.watchers >= 1 && cfg.events >= 1,
        "--watchers and --events must be at least 1"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // The servers are spawned from this thread (they die with it).
    rt.block_on(measure(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(revisions: &[i64]) -> Seen {
        Seen {
            revisions: revisions.to_vec(),
            last_at: Some(Instant::now()),
            problem: None,
        }
    }

    #[test]
    fn a_watcher_must_see_exactly_the_acknowledged_revisions() {
        let acked = [3, 5, 6, 9];
        assert_eq!(gap(&seen(&[3, 5, 6, 9]), &acked), None);
        let missing = gap(&seen(&[3, 6, 9]), &acked).expect("a gap");
        assert!(
            missing.contains("event 1 has revision 6, expected 5"),
            "{missing}"
        );
        let swapped = gap(&seen(&[3, 6, 5, 9]), &acked).expect("out of order");
        assert!(swapped.contains("event 1"), "{swapped}");
        let short = gap(&seen(&[3, 5, 6]), &acked).expect("short");
        assert_eq!(short, "3 events, 4 writes were acknowledged");
        let extra = gap(&seen(&[3, 5, 6, 9, 10]), &acked).expect("extra");
        assert_eq!(extra, "5 events, 4 writes were acknowledged");
        let mut ended = seen(&[3, 5]);
        ended.problem = Some("the stream ended".into());
        let why = gap(&ended, &acked).expect("ended");
        assert_eq!(
            why,
            "2 events, 4 writes were acknowledged; the stream ended"
        );
        let mut odd = seen(&[3, 5, 6, 9]);
        odd.problem = Some("bad resourceVersion".into());
        assert_eq!(gap(&odd, &acked).as_deref(), Some("bad resourceVersion"));
    }
}
