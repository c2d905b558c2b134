//! The control-plane benchmark: apply latency and throughput, List of many
//! Pods, and watch fan-out, for the embedded store and for etcd, in the same
//! run on the same machine; and what authorization adds to apply and List
//! ([`super::authz`]).
//!
//! Two `jotasu-controlplane` processes run side by side, one on its embedded
//! store and one on a throwaway etcd; every case runs on one, then the other,
//! before the next case starts. The clients are this process, on the servers'
//! unix sockets; each sample is a call as a client sees it (encoding, the
//! socket, decoding the answer included; see [`super::calls`]).
//!
//! The watch case follows ConfigMaps in a namespace of its own, which no
//! controller writes: every event is one of the benchmark's writes, so each
//! watcher's revisions must equal the acknowledged ones exactly. The
//! objects come from [`crate::objects`].
use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use futures::StreamExt as _;
use jotasu_api::{
    Kind, Object,
    client::{Client, WatchFilter},
};
use tokio::{sync::Barrier, task::JoinSet};

use super::{
    Report, authz,
    calls::{
        Failures, apply_concurrent, apply_one, apply_rows, apply_sequential, fill_pods,
        latency_rows, lists, ms,
    },
};
use crate::{
    controlplane::{ControlPlane, Options},
    etcd::EtcdServer,
    objects::{SHARDS, config_map, deployment, namespace, pod},
    signals,
};

/// The benchmark's name (`target/bench/controlplane.json`).
pub const NAME: &str = "controlplane";
const EMBEDDED: &str = "embedded";
const ETCD: &str = "etcd";
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
    /// Cases to run.
    #[arg(long, value_enum, value_delimiter = ',',
          default_values_t = [Case::Apply, Case::List, Case::Watch, Case::Authz])]
    pub cases: Vec<Case>,
    /// Rounds of the authz cases: each round measures both servers, in
    /// alternating order.
    #[arg(long, default_value_t = 5)]
    pub authz_rounds: usize,
}

/// A case group of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Case {
    /// Apply from 1 client and from `--clients`, embedded and etcd.
    Apply,
    /// List all Pods and 1% of them, embedded and etcd.
    List,
    /// Watch fan-out, embedded and etcd.
    Watch,
    /// Apply and List as a user over TLS, authorization on against off.
    Authz,
}

/// One line on how the run was made, printed above the table.
pub fn describe(cfg: &Config) -> String {
    let size = |o: anyhow::Result<Object>| {
        o.ok()
            .and_then(|o| serde_json::to_vec(&o).ok())
            .map_or(0, |v| v.len())
    };
    let mut parts = Vec::new();
    if cfg.cases.contains(&Case::Apply) {
        parts.push(format!(
            "apply: {} Deployments ({} B of JSON) one per call from 1 client, then {} more \
             from {} clients",
            cfg.objects,
            size(deployment("ns", "web-0000", 0)),
            cfg.objects,
            cfg.clients,
        ));
    }
    if cfg.cases.contains(&Case::List) {
        parts.push(format!(
            "list: {} Pods ({} B) in one namespace, {} Lists of all and of 1% (label selector)",
            cfg.pods,
            size(pod("ns", "pod-00000", 0)),
            cfg.repetitions,
        ));
    }
    if cfg.cases.contains(&Case::Watch) {
        parts.push(format!(
            "watch: {} watchers, each on its own connection, while {} writers make {} \
             ConfigMap changes",
            cfg.watchers, cfg.writers, cfg.events,
        ));
    }
    let mut about = String::new();
    if !parts.is_empty() {
        about = format!(
            "embedded store and etcd, side by side, one case on each before the next; clients \
             on unix sockets. {}",
            parts.join("; ")
        );
    }
    if cfg.cases.contains(&Case::Authz) {
        if !about.is_empty() {
            about.push_str(".\n");
        }
        about.push_str(&authz::describe(&authz_config(cfg)));
    }
    about
}

/// One control plane under test.
struct Backend {
    name: &'static str,
    cp: ControlPlane,
    // Declared after `cp`: the control plane stops before its etcd.
    _etcd: Option<EtcdServer>,
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

/// The namespaces the store cases write in.
const NAMESPACES: &[&str] = &["bench-warmup", "bench-apply", "bench-list", "bench-watch"];

/// Starts a control plane and creates the cases' namespaces in it.
async fn start_with_namespaces(options: Options) -> anyhow::Result<ControlPlane> {
    let cp = ControlPlane::start(options).await?;
    let namespaces = NAMESPACES
        .iter()
        .map(|n| namespace(n))
        .collect::<anyhow::Result<Vec<_>>>()?;
    cp.client()
        .await?
        .apply(&namespaces, false)
        .await
        .context("creating the bench namespaces")?;
    Ok(cp)
}

async fn start_backends() -> anyhow::Result<Vec<Backend>> {
    eprintln!("starting the control planes");
    let mut backends = vec![Backend {
        name: EMBEDDED,
        cp: start_with_namespaces(Options::default()).await?,
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
                cp: start_with_namespaces(options).await?,
                _etcd: Some(etcd),
            });
        }
        None => eprintln!("!!! no etcd: measuring the embedded store alone !!!"),
    }
    Ok(backends)
}

/// The selected cases: the store cases on each backend in turn, then the
/// authorization cases on servers of their own.
async fn measure(cfg: &Config) -> anyhow::Result<Report> {
    let mut report = Report::new(NAME);
    let mut failures = Failures::default();
    if [Case::Apply, Case::List, Case::Watch]
        .iter()
        .any(|c| cfg.cases.contains(c))
    {
        let backends = start_backends().await?;
        if cfg.cases.contains(&Case::Apply) {
            apply_cases(cfg, &backends, &mut report, &mut failures).await?;
        }
        if cfg.cases.contains(&Case::List) {
            list_cases(cfg, &backends, &mut report, &mut failures).await?;
        }
        if cfg.cases.contains(&Case::Watch) {
            watch_case(cfg, &backends, &mut report, &mut failures).await?;
        }
    }
    if cfg.cases.contains(&Case::Authz) {
        let r = authz::measure(&authz_config(cfg)).await;
        let measured = failures.note("authz on/off", "authorization", r)?;
        authz::report(&mut report, measured.as_ref());
    }
    failures.print();
    Ok(report)
}

fn authz_config(cfg: &Config) -> authz::Config {
    authz::Config {
        objects: cfg.objects,
        pods: cfg.pods,
        repetitions: cfg.repetitions,
        rounds: cfg.authz_rounds,
    }
}

/// Apply from one client, then from many, on each backend in turn; rows are
/// written case by case so that the backends sit next to each other.
async fn apply_cases(
    cfg: &Config,
    backends: &[Backend],
    report: &mut Report,
    failures: &mut Failures,
) -> anyhow::Result<()> {
    let deployments = |namespace: &str, prefix: &str| {
        (0..cfg.objects)
            .map(|i| deployment(namespace, &format!("{prefix}-{i:04}"), i))
            .collect::<anyhow::Result<Vec<_>>>()
    };
    let mut sequential = BTreeMap::new();
    for b in backends {
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
    for b in backends {
        eprintln!("{}: apply, {} clients", b.name, cfg.clients);
        let r = async {
            apply_concurrent(&b.cp, deployments("bench-apply", "api")?, cfg.clients).await
        }
        .await;
        if let Some(a) = failures.note(b.name, "apply, concurrent clients", r)? {
            concurrent.insert(b.name, a);
        }
    }
    for b in backends {
        if let Some(a) = sequential.get(b.name) {
            apply_rows(report, &format!("apply, 1 client, {}", b.name), a);
        }
    }
    for b in backends {
        if let Some(a) = concurrent.get(b.name) {
            let case = format!("apply, {} clients, {}", cfg.clients, b.name);
            apply_rows(report, &case, a);
        }
    }
    let apply_p99 = sequential
        .get(EMBEDDED)
        .map_or(f64::NAN, |a| ms(a.latency.quantile(0.99)));
    report.goal_at_most("apply p99, 1 client, embedded", 20.0, apply_p99, " ms");
    Ok(())
}

/// Lists of all Pods and of 1% of them, on each backend in turn.
async fn list_cases(
    cfg: &Config,
    backends: &[Backend],
    report: &mut Report,
    failures: &mut Failures,
) -> anyhow::Result<()> {
    let mut filled = Vec::new();
    for b in backends {
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
    for b in backends {
        if let Some(h) = all.get(b.name) {
            latency_rows(report, &format!("list {} Pods, {}", cfg.pods, b.name), h);
        }
    }
    for b in backends {
        if let Some(h) = some.get(b.name) {
            let case = format!("list {selected} of {} Pods (shard=7), {}", cfg.pods, b.name);
            latency_rows(report, &case, h);
        }
    }
    Ok(())
}

/// Watch fan-out on each backend in turn.
async fn watch_case(
    cfg: &Config,
    backends: &[Backend],
    report: &mut Report,
    failures: &mut Failures,
) -> anyhow::Result<()> {
    let mut fanouts = BTreeMap::new();
    for b in backends {
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
    for b in backends {
        if let Some(f) = fanouts.get(b.name) {
            let case = format!(
                "watch, {} watchers × {} changes, {}",
                cfg.watchers, cfg.events, b.name
            );
            report.row(&case, "rate", f.writes, "objects/s");
            report.row(&case, "complete watchers", f.complete as f64, "count");
            report.row(&case, "last event − last ack", f.lag_ms, "ms");
            report.row(&case, "delivered", f.rate, "events/s");
        }
    }
    for b in backends {
        let complete = fanouts.get(b.name).map_or(0, |f| f.complete);
        report.goal_at_least(
            &format!("watchers with every change in order, {}", b.name),
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
    Ok(())
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
    ensure!(cfg.authz_rounds >= 1, "--authz-rounds must be at least 1");
    ensure!(!cfg.cases.is_empty(), "--cases names no case");
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
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        cfg: Config,
    }

    #[test]
    fn every_case_runs_unless_cases_are_named() {
        let all = Cli::parse_from(["bench"]).cfg;
        assert_eq!(
            all.cases,
            [Case::Apply, Case::List, Case::Watch, Case::Authz]
        );
        let some = Cli::parse_from(["bench", "--cases", "authz,list", "--authz-rounds", "3"]).cfg;
        assert_eq!(
            (some.cases, some.authz_rounds),
            (vec![Case::Authz, Case::List], 3)
        );
        assert!(
            describe(&Cli::parse_from(["bench", "--cases", "authz"]).cfg).starts_with("authz: ")
        );
    }

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
