//! Timed API calls of the control-plane benchmark ([`super::controlplane`],
//! [`super::authz`]): applies one per call, filling the store with Pods,
//! repeated Lists, their rows in the report, and the cases that failed.
//! A sample is a call as a client sees it (encoding, the connection, the
//! server, decoding the answer).
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use jotasu_api::{
    Kind, Object,
    client::{Client, Outcome},
};
use tokio::task::JoinSet;

use super::{Report, client::Histogram};
use crate::{controlplane::ControlPlane, objects::pod, signals};

/// Pods per Apply call while filling the store for a List case.
const POD_BATCH: usize = 100;
/// Concurrent Apply calls while filling the store.
const FILLERS: usize = 4;

/// `d` in whole nanoseconds.
pub fn ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Nanoseconds as milliseconds.
pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// The latencies of one apply case and the wall time it took.
#[derive(Debug)]
pub struct Applies {
    /// Each call's latency, ns.
    pub latency: Histogram,
    /// From the first call to the last answer.
    pub seconds: f64,
    /// Objects applied.
    pub objects: usize,
}

/// Applies `object`, alone, and checks that the server wrote it; returns
/// the revision it was written at.
pub async fn apply_one(client: &Client, object: &Object) -> anyhow::Result<i64> {
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
pub async fn apply_sequential(client: &Client, objects: &[Object]) -> anyhow::Result<Applies> {
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

/// Applies `objects` one per call from `clients` clients on `cp`'s socket,
/// each on its own connection, taking the next object as they become free.
pub async fn apply_concurrent(
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

/// Creates `pods` Pods in `namespace` through `cp`'s socket, [`POD_BATCH`]
/// per call.
pub async fn fill_pods(cp: &ControlPlane, namespace: &str, pods: usize) -> anyhow::Result<()> {
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
pub async fn lists(
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

/// p50, p99 and max of `h` (ns) as rows of `case`, in ms.
pub fn latency_rows(report: &mut Report, case: &str, h: &Histogram) {
    for (q, label) in [(0.5, "p50"), (0.99, "p99"), (1.0, "max")] {
        report.row(case, label, ms(h.quantile(q)), "ms");
    }
}

/// [`latency_rows`] and the rate of an apply case.
pub fn apply_rows(report: &mut Report, case: &str, a: &Applies) {
    latency_rows(report, case, &a.latency);
    report.row(case, "rate", a.objects as f64 / a.seconds, "objects/s");
}

/// Cases that failed; the others go on.
#[derive(Debug, Default)]
pub struct Failures(Vec<String>);

impl Failures {
    /// The case's result, or None after noting why it failed on `backend`.
    /// An interruption is not a failure: it stops the run.
    pub fn note<T>(
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

    /// Prints the failures, if any, after the run.
    pub fn print(&self) {
        if self.0.is_empty() {
            return;
        }
        eprintln!(
            "!!! {} case(s) failed; their rows are missing:",
            self.0.len()
        );
        for f in &self.0 {
            eprintln!("!!!   {f}");
        }
    }
}
