//! The benchmark's load client: threads that each loop connect → one request
//! → read the reply → close, for a fixed time, recording how long every
//! `connect` took. Runs inside a client pod (`jotasu-bench client`), one
//! long-lived process per case that measures a turn per line on stdin
//! ([`serve_turns`]) and answers each with one [`LoadResult`] as JSON.
use std::{
    collections::BTreeMap,
    io::{BufRead as _, Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

/// What one client run does.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Addresses to connect to; consecutive connections of a thread rotate over them.
    pub targets: Vec<SocketAddr>,
    /// Connections before this time are not counted (caches, conntrack, pages).
    pub warmup: Duration,
    /// The measured time after the warm-up.
    pub duration: Duration,
    /// Concurrent connection loops.
    pub threads: usize,
}

/// What the client prints once it is ready for turns.
pub const READY: &str = "ready";

/// The line that asks a [`serve_turns`] client for one turn.
pub fn turn_request(warmup: Duration, duration: Duration) -> String {
    format!("{} {}\n", warmup.as_secs_f64(), duration.as_secs_f64())
}

/// Prints [`READY`], then for every line `<warmup s> <measured s>` on stdin
/// runs that turn against `targets` with `threads` loops and prints its
/// [`LoadResult`] as one JSON line. Returns at end of input.
pub fn serve_turns(targets: Vec<SocketAddr>, threads: usize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{READY}")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let secs: Vec<f64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        let [warmup, duration] = secs[..] else {
            anyhow::bail!("expected \"<warmup s> <measured s>\", got {line:?}");
        };
        let spec = LoadSpec {
            targets: targets.clone(),
            warmup: Duration::from_secs_f64(warmup),
            duration: Duration::from_secs_f64(duration),
            threads,
        };
        writeln!(out, "{}", serde_json::to_string(&run(&spec)?)?)?;
        out.flush()?;
    }
    Ok(())
}

/// What one or more client runs measured.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadResult {
    /// `connect` times of the connections completed (connect, request,
    /// reply, close) in the measured time.
    pub connect_ns: Histogram,
    /// Connections that failed in the measured time.
    pub failures: u64,
    /// The first failure, for the operator.
    pub first_failure: Option<String>,
    /// The measured time, in seconds.
    pub seconds: f64,
}

impl LoadResult {
    /// Connections completed.
    pub fn connections(&self) -> u64 {
        self.connect_ns.count()
    }

    /// Completed connections per second.
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.connections() as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The `p`-quantile of `connect` time, in µs.
    pub fn connect_us(&self, p: f64) -> f64 {
        self.connect_ns.quantile(p) as f64 / 1000.0
    }

    /// Adds another run of the same case.
    pub fn merge(&mut self, other: &Self) {
        self.connect_ns.merge(&other.connect_ns);
        self.failures += other.failures;
        if self.first_failure.is_none() {
            self.first_failure.clone_from(&other.first_failure);
        }
        self.seconds += other.seconds;
    }
}

/// The turns of one case, added up, with the spread of their rates.
#[derive(Clone, Debug, Default)]
pub struct Turns {
    /// All turns merged.
    pub total: LoadResult,
    /// Each turn's rate, conn/s.
    pub rates: Vec<f64>,
}

impl Turns {
    /// Adds one turn.
    pub fn add(&mut self, turn: &LoadResult) {
        self.total.merge(turn);
        self.rates.push(turn.rate());
    }

    /// Half-width of the ≈95 % confidence interval of the mean turn rate
    /// (1.96 standard errors); 0 with fewer than two turns.
    pub fn rate_ci95(&self) -> f64 {
        let n = self.rates.len() as f64;
        if n < 2.0 {
            return 0.0;
        }
        let mean = self.rates.iter().sum::<f64>() / n;
        let var = self.rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0);
        1.96 * (var / n).sqrt()
    }
}

/// Durations in ns, kept to three significant digits (so within 1 %), as
/// counts per value: small to ship as JSON and mergeable across runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram(BTreeMap<u64, u64>);

impl Histogram {
    /// Records one duration.
    pub fn record(&mut self, ns: u64) {
        let mut scale = 1;
        while ns / scale >= 1000 {
            scale *= 10;
        }
        *self.0.entry(ns / scale * scale).or_default() += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Self) {
        for (&v, &c) in &other.0 {
            *self.0.entry(v).or_default() += c;
        }
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.0.values().sum()
    }

    /// The `p`-quantile (0..=1, nearest rank); 0 when empty.
    pub fn quantile(&self, p: f64) -> u64 {
        let rank = ((p * self.count() as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (&v, &c) in &self.0 {
            seen += c;
            if seen >= rank {
                return v;
            }
        }
        0
    }
}

/// What one thread saw in the measured time.
#[derive(Default)]
struct ThreadTally {
    connect_ns: Histogram,
    failures: u64,
    first_failure: Option<String>,
}

/// Runs the load described by `spec` and summarises it.
pub fn run(spec: &LoadSpec) -> anyhow::Result<LoadResult> {
    anyhow::ensure!(!spec.targets.is_empty(), "no target to connect to");
    anyhow::ensure!(spec.threads > 0, "at least one thread is needed");
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let stop_at = measure_from + spec.duration;
    let tallies: Vec<ThreadTally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..spec.threads)
            .map(|t| s.spawn(move || connection_loop(&spec.targets, t, measure_from, stop_at)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let seconds = Instant::now()
        .saturating_duration_since(measure_from)
        .as_secs_f64();
    let mut result = LoadResult {
        seconds,
        ..LoadResult::default()
    };
    for t in tallies {
        result.connect_ns.merge(&t.connect_ns);
        result.failures += t.failures;
        if result.first_failure.is_none() {
            result.first_failure = t.first_failure;
        }
    }
    Ok(result)
}

/// One thread's loop: thread `t` starts at target `t` and rotates.
fn connection_loop(
    targets: &[SocketAddr],
    t: usize,
    measure_from: Instant,
    stop_at: Instant,
) -> ThreadTally {
    let mut tally = ThreadTally::default();
    let mut next = t;
    loop {
        let begin = Instant::now();
        if begin >= stop_at {
            return tally;
        }
        let to = targets[next % targets.len()];
        next += 1;
        let outcome = one_connection(to);
        if begin < measure_from {
            continue;
        }
        match outcome {
            Ok(connect) => tally.connect_ns.record(connect.as_nanos() as u64),
            Err(e) => {
                tally.failures += 1;
                tally
                    .first_failure
                    .get_or_insert_with(|| format!("{to}: {e}"));
            }
        }
    }
}

/// Connect, send one request, read the one-line reply, close. Returns the
/// time `connect` took.
fn one_connection(to: SocketAddr) -> std::io::Result<Duration> {
    let begin = Instant::now();
    let mut conn = TcpStream::connect(to)?;
    let connect = begin.elapsed();
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.write_all(b"who\n")?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while !buf[..got].contains(&b'\n') {
        match conn.read(&mut buf[got..])? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
        if got == buf.len() {
            break;
        }
    }
    Ok(connect)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: impl IntoIterator<Item = u64>) -> Histogram {
        let mut h = Histogram::default();
        values.into_iter().for_each(|v| h.record(v));
        h
    }

    #[test]
    fn quantiles_are_nearest_rank_within_one_percent() {
        let h = hist((1..=100).map(|v| v * 1000));
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.50), 50_000);
        assert_eq!(h.quantile(0.99), 99_000);
        assert_eq!(h.quantile(0.0), 1000);
        assert_eq!(hist([123_456_789]).quantile(0.99), 123_000_000);
        assert_eq!(hist([7]).quantile(0.5), 7);
        assert_eq!(Histogram::default().quantile(0.5), 0);
    }

    #[test]
    fn runs_merge_into_one_result() {
        let mut a = LoadResult {
            connect_ns: hist([10_000; 300]),
            seconds: 1.0,
            ..Default::default()
        };
        let b = LoadResult {
            connect_ns: hist([30_000; 100]),
            seconds: 1.0,
            failures: 2,
            first_failure: Some("reset".into()),
        };
        a.merge(&b);
        assert_eq!((a.connections(), a.failures, a.rate()), (400, 2, 200.0));
        assert_eq!((a.connect_us(0.5), a.connect_us(0.99)), (10.0, 30.0));
        assert_eq!(a.first_failure.as_deref(), Some("reset"));
        assert_eq!(LoadResult::default().rate(), 0.0);
    }

    #[test]
    fn turns_report_their_spread() {
        let mut t = Turns::default();
        for conns in [90, 110, 100, 100] {
            t.add(&LoadResult {
                connect_ns: hist(vec![1000; conns]),
                seconds: 1.0,
                ..Default::default()
            });
        }
        assert_eq!(t.total.rate(), 100.0);
        let sd = (200.0f64 / 3.0).sqrt();
        assert!(
            (t.rate_ci95() - 1.96 * sd / 2.0).abs() < 1e-9,
            "{}",
            t.rate_ci95()
        );
        assert_eq!(Turns::default().rate_ci95(), 0.0);
    }

    #[test]
    fn result_survives_json() {
        let r = LoadResult {
            connect_ns: hist([1, 2_500, 2_500]),
            seconds: 0.5,
            ..Default::default()
        };
        let back: LoadResult =
            serde_json::from_str(&serde_json::to_string(&r).expect("ser")).expect("de");
        assert_eq!(back, r);
    }
}
