//! Benchmarks (DESIGN.md §9): each prints a readable table and writes
//! `target/bench/<NAME>.json` as `{"benchmark", "rows": [{case, metric,
//! value, unit}], "goals": [{metric, target, value, met}]}`.
//!
//! [`datapath`] is the data-plane benchmark (`jotasu-bench datapath`),
//! [`cni`] the CNI plugin's (`jotasu-bench cni`), [`controlplane`] the
//! control plane's (`jotasu-bench controlplane`; its timed calls are in
//! [`calls`], its authorization cases in [`authz`]), [`scheduler`] the
//! scheduler's (`jotasu-bench scheduler`), [`pods`] pod start-up on a real
//! node (`jotasu-bench pods`), [`overlay`] pod-to-pod networking across
//! nodes against a flannel-style baseline ([`flannel`]; `jotasu-bench overlay`),
//! [`dns`] cluster DNS against unbound (`jotasu-bench dns`), [`workloads`]
//! a Job's completions and a StatefulSet's start-up (Parallel and
//! OrderedReady) against as many Deployment pods (`jotasu-bench workloads`),
//! [`traffic`] production traffic: node ports from outside against the pod's
//! address, a rolling update under load, `from_pod`'s cost per packet
//! (`jotasu-bench traffic`).
pub mod authz;
pub mod calls;
pub mod client;
pub mod cni;
pub mod controlplane;
pub mod datapath;
pub mod dns;
pub mod failover;
pub mod fanout;
pub mod flannel;
pub mod flowevents;
pub mod kube_proxy;
pub mod overlay;
pub mod pods;
pub mod scheduler;
pub mod slices;
pub mod traffic;
pub mod watchers;
pub mod workloads;
pub mod world;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

/// One measured figure.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// What was measured (e.g. `jotasu tc, N=10000`).
    pub case: String,
    /// Which figure (e.g. `new connections`).
    pub metric: String,
    /// The figure.
    pub value: f64,
    /// Its unit (e.g. `conn/s`, `µs`, `s`).
    pub unit: String,
}

/// One goal of the benchmark and whether this run met it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Goal {
    /// What is compared (a ratio or a figure, named with its cases).
    pub metric: String,
    /// The bound, with its direction (`>= 0.95`, `<= 0.5 s`).
    pub target: String,
    /// What this run measured.
    pub value: f64,
    /// Whether `value` is within `target`.
    pub met: bool,
}

/// A benchmark's results, in the §9 JSON shape.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The benchmark's name (also the JSON file's name).
    pub benchmark: String,
    /// The figures, in the order measured.
    pub rows: Vec<Row>,
    /// The goals.
    pub goals: Vec<Goal>,
}

impl Report {
    /// An empty report for benchmark `name`.
    pub fn new(name: &str) -> Self {
        Self {
            benchmark: name.to_owned(),
            ..Self::default()
        }
    }

    /// Records a figure.
    pub fn row(&mut self, case: &str, metric: &str, value: f64, unit: &str) {
        self.rows.push(Row {
            case: case.into(),
            metric: metric.into(),
            value,
            unit: unit.into(),
        });
    }

    /// The value of (`case`, `metric`), if recorded.
    pub fn value(&self, case: &str, metric: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.case == case && r.metric == metric)
            .map(|r| r.value)
    }

    /// Records a goal `value >= target`.
    pub fn goal_at_least(&mut self, metric: &str, target: f64, value: f64, unit: &str) {
        self.goals.push(Goal {
            metric: metric.into(),
            target: format!(">= {target}{unit}"),
            value,
            met: value >= target,
        });
    }

    /// Records a goal `value <= target`.
    pub fn goal_at_most(&mut self, metric: &str, target: f64, value: f64, unit: &str) {
        self.goals.push(Goal {
            metric: metric.into(),
            target: format!("<= {target}{unit}"),
            value,
            met: value <= target,
        });
    }

    /// The rows as a table: one line per case, one column per metric.
    pub fn table(&self) -> Table {
        let mut cases: Vec<&str> = Vec::new();
        let mut columns: Vec<(&str, &str)> = Vec::new();
        for r in &self.rows {
            if !cases.contains(&r.case.as_str()) {
                cases.push(&r.case);
            }
            if !columns.contains(&(r.metric.as_str(), r.unit.as_str())) {
                columns.push((&r.metric, &r.unit));
            }
        }
        let mut t = new_table();
        t.set_header(
            std::iter::once("case".to_owned())
                .chain(columns.iter().map(|(m, u)| format!("{m} ({u})"))),
        );
        for case in cases {
            let cells = columns.iter().map(|(m, u)| {
                let v = self
                    .rows
                    .iter()
                    .find(|r| r.case == case && r.metric == *m && r.unit == *u);
                Cell::new(v.map_or(String::new(), |r| fmt_value(r.value)))
                    .set_alignment(CellAlignment::Right)
            });
            t.add_row(std::iter::once(Cell::new(case)).chain(cells));
        }
        t
    }

    /// The goals as a table.
    pub fn goals_table(&self) -> Table {
        let mut t = new_table();
        t.set_header(["goal", "target", "measured", "met"]);
        for g in &self.goals {
            t.add_row([
                Cell::new(&g.metric),
                Cell::new(&g.target),
                Cell::new(fmt_value(g.value)).set_alignment(CellAlignment::Right),
                Cell::new(if g.met { "yes" } else { "NO" }),
            ]);
        }
        t
    }

    /// Writes `<target dir>/bench/<benchmark>.json`; returns its path.
    pub fn write_json(&self) -> anyhow::Result<PathBuf> {
        let dir = target_dir().join("bench");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{}.json", self.benchmark));
        std::fs::write(&path, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

fn new_table() -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t
}

/// The median of `v` (the upper one of an even count; 0 when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// A figure with about three significant digits (whole numbers from 100 up).
pub fn fmt_value(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 || a == 0.0 => format!("{v:.0}"),
        a if a >= 10.0 => format!("{v:.1}"),
        a if a >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.3}"),
    }
}

/// `$CARGO_TARGET_DIR`, else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || {
            let tests = Path::new(env!("CARGO_MANIFEST_DIR"));
            tests.parent().unwrap_or(tests).join("target")
        },
        PathBuf::from,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_design_shape() {
        let mut r = Report::new("demo");
        r.row("a", "rate", 1234.5, "conn/s");
        r.goal_at_least("a / b", 0.95, 0.97, "");
        r.goal_at_most("program", 0.5, 0.7, " s");
        let v = serde_json::to_value(&r).expect("serialises");
        assert_eq!(
            v,
            serde_json::json!({
                "benchmark": "demo",
                "rows": [{"case": "a", "metric": "rate", "value": 1234.5, "unit": "conn/s"}],
                "goals": [
                    {"metric": "a / b", "target": ">= 0.95", "value": 0.97, "met": true},
                    {"metric": "program", "target": "<= 0.5 s", "value": 0.7, "met": false},
                ],
            })
        );
    }

    #[test]
    fn table_pivots_cases_and_metrics() {
        let mut r = Report::new("demo");
        r.row("x", "rate", 10.0, "conn/s");
        r.row("x", "p50", 2.5, "µs");
        r.row("y", "time", 0.25, "s");
        let s = r.table().to_string();
        assert!(
            s.contains("rate (conn/s)") && s.contains("p50 (µs)") && s.contains("time (s)"),
            "{s}"
        );
        assert!(s.contains("0.250") && s.contains("2.50"), "{s}");
        assert_eq!(r.value("x", "p50"), Some(2.5));
        assert_eq!(r.value("y", "p50"), None);
    }

    #[test]
    fn values_keep_three_digits() {
        assert_eq!(fmt_value(24612.7), "24613");
        assert_eq!(fmt_value(42.26), "42.3");
        assert_eq!(fmt_value(1.234), "1.23");
        assert_eq!(fmt_value(0.1234), "0.123");
        assert_eq!(fmt_value(0.0), "0");
    }
}
