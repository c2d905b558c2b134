//! The control-plane benchmark's authz cases: what authorization adds to
//! apply and to a List of many Pods, for a user over TLS.
//!
//! Two control planes on the embedded store serve TLS on 127.0.0.1, one
//! with `--authorization-mode Node,RBAC` ("on"), one with `AlwaysAllow`
//! ("off"). Each holds the same RBAC policy ([`policy::Layout`]: 1,000
//! RoleBindings) and the same Pods, written through its admin socket. The
//! user [`policy::USER`] (group [`policy::GROUP`], not `system:masters`,
//! which would skip authorization) makes every measured call with a client
//! certificate signed by that server's CA, so both servers authenticate
//! the same way and differ only in authorizing.
//!
//! The cases run in rounds; in each, apply then List run on both servers
//! call by call (on, off, off, on, …), after both servers' stores have gone
//! quiet (the controllers' follow-up writes are done), so both see the
//! same moments of a noisy machine. A figure of a server is the median over
//! rounds of that round's figure; a ratio is the median over rounds of
//! that round's on/off ratio.
pub mod policy;

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use jotasu_api::{
    Kind, Object,
    client::{Client, ServerUrl, TlsFiles},
};

use self::policy::{Layout, NAMESPACE};
use super::{
    Report,
    calls::{apply_one, apply_sequential, fill_pods, ms, ns},
    client::Histogram,
    median,
};
use crate::{
    controlplane::{ControlPlane, Options},
    objects::deployment,
    signals,
};

/// The goal on both ratios: authorization adds at most 5 %.
pub const GOAL_RATIO: f64 = 1.05;
/// RBAC objects per Apply call while writing the policy.
const POLICY_BATCH: usize = 100;
/// Deployments applied, unmeasured, before the first round.
const WARMUP: usize = 50;
/// A store whose revision stays the same this long is quiet.
const QUIET: Duration = Duration::from_millis(300);
/// Give up waiting for quiet after this long (and measure anyway).
const QUIET_LIMIT: Duration = Duration::from_secs(60);

/// How the authz cases run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Deployments applied, one per call, per server and round.
    pub objects: usize,
    /// Pods in each server's bench namespace.
    pub pods: usize,
    /// Measured Lists of all of them per server and round.
    pub repetitions: usize,
    /// Rounds.
    pub rounds: usize,
}

/// Authorization on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    On,
    Off,
}

impl Mode {
    fn flag(self) -> &'static str {
        match self {
            Mode::On => "Node,RBAC",
            Mode::Off => "AlwaysAllow",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Mode::On => "on",
            Mode::Off => "off",
        }
    }
}

/// The servers' order in call pair `i`: on first in even pairs, off first
/// in odd ones, so that a steady drift and whatever the first of a pair
/// pays fall on both alike.
fn order(i: usize) -> [Mode; 2] {
    if i.is_multiple_of(2) {
        [Mode::On, Mode::Off]
    } else {
        [Mode::Off, Mode::On]
    }
}

/// One line on how the cases run, printed above the table.
pub fn describe(cfg: &Config) -> String {
    let l = Layout::DEFAULT;
    format!(
        "authz: two control planes (embedded store) over TLS on 127.0.0.1, --authorization-mode \
         Node,RBAC (on) against AlwaysAllow (off), each with {} RoleBindings ({} naming the \
         caller or its group before the one that allows it, {} naming others in the same \
         namespace, {} in other namespaces); as user {} (group {}): {} Deployments one per \
         call, then {} Lists of {} Pods; {} rounds, the two servers taking turns call by call \
         (which goes first alternating); per server the median over rounds, the ratio the \
         median of the rounds' on/off",
        l.role_bindings(),
        l.decoys,
        l.strangers,
        l.teams,
        policy::USER,
        policy::GROUP,
        cfg.objects,
        cfg.repetitions,
        cfg.pods,
        cfg.rounds,
    )
}

/// One control plane of the pair, with its admin (socket) and user (TLS)
/// clients.
struct Server {
    mode: Mode,
    admin: Client,
    user: Client,
    // Declared last: the clients close before the server is killed.
    _cp: ControlPlane,
}

impl Server {
    /// Starts the server, writes the policy and the Pods through its
    /// socket, and connects as the bench user over TLS.
    async fn start(mode: Mode, pods: usize) -> anyhow::Result<Self> {
        let cp = ControlPlane::start(Options {
            tls: true,
            args: vec!["--authorization-mode".into(), mode.flag().into()],
            ..Options::default()
        })
        .await
        .with_context(|| format!("starting the control plane, authorization {}", mode.label()))?;
        let admin = cp.client().await?;
        let policy = Layout::DEFAULT.objects()?;
        for batch in policy.chunks(POLICY_BATCH) {
            signals::check()?;
            admin
                .apply(batch, false)
                .await
                .context("writing the RBAC policy")?;
        }
        fill_pods(&cp, NAMESPACE, pods).await?;
        let user = connect_user(&cp).await?;
        Ok(Self {
            mode,
            admin,
            user,
            _cp: cp,
        })
    }

    /// Checks that the server decides as its mode says: on, the bench user
    /// may not read kube-system's Secrets; off, it may.
    async fn check_mode(&self) -> anyhow::Result<()> {
        let r = self.user.list(Kind::Secret, Some("kube-system"), "").await;
        match (self.mode, r) {
            (Mode::On, Err(e)) if e.api().map(|a| a.reason()) == Some("Forbidden") => Ok(()),
            (Mode::Off, Ok(_)) => Ok(()),
            (mode, r) => anyhow::bail!(
                "authorization {}: listing kube-system's Secrets as {}: {:?}, expected {}",
                mode.label(),
                policy::USER,
                r.map(|l| l.items.len()),
                if mode == Mode::On {
                    "Forbidden"
                } else {
                    "allowed"
                },
            ),
        }
    }

    /// Waits until the store's revision has not moved for [`QUIET`].
    async fn settle(&self) -> anyhow::Result<()> {
        let start = Instant::now();
        let mut last = -1;
        loop {
            signals::check()?;
            let now = self
                .admin
                .list(Kind::ConfigMap, Some("bench-authz-quiet"), "")
                .await
                .context("reading the store's revision")?
                .revision;
            if now == last {
                return Ok(());
            }
            if start.elapsed() > QUIET_LIMIT {
                eprintln!(
                    "!!! authorization {}: the store still changes after {QUIET_LIMIT:?}; \
                     measuring anyway",
                    self.mode.label()
                );
                return Ok(());
            }
            last = now;
            tokio::time::sleep(QUIET).await;
        }
    }
}

/// Issues the bench user's certificate with `cp`'s CA and connects with it.
async fn connect_user(cp: &ControlPlane) -> anyhow::Result<Client> {
    let url = cp.tls_url().context("the control plane serves no TLS")?;
    let written = jotasu_controlplane::admin::user::add(
        cp.data_dir(),
        policy::USER,
        &[policy::GROUP.to_owned()],
        Duration::from_secs(24 * 3600),
        &url,
        &cp.data_dir()
            .join("users")
            .join(format!("{}.conf", policy::USER)),
    )
    .context("issuing the bench user's certificate")?;
    let tls = TlsFiles {
        certificate_authority: cp.admin_tls().certificate_authority,
        client_certificate: Some(written.certificate),
        client_key: Some(written.key),
    };
    Client::connect_to(&ServerUrl::parse(&url)?, &tls)
        .await
        .with_context(|| format!("connecting to {url} as {}", policy::USER))
}

/// One case's histograms, round by round, of each server.
#[derive(Debug, Default)]
struct Paired {
    on: Vec<Histogram>,
    off: Vec<Histogram>,
}

impl Paired {
    fn push(&mut self, mode: Mode, h: Histogram) {
        match mode {
            Mode::On => self.on.push(h),
            Mode::Off => self.off.push(h),
        }
    }

    fn rounds(&self, mode: Mode) -> &[Histogram] {
        match mode {
            Mode::On => &self.on,
            Mode::Off => &self.off,
        }
    }

    /// The `q`-quantile of each round on `mode`'s server, in ms.
    fn quantiles(&self, mode: Mode, q: f64) -> Vec<f64> {
        self.rounds(mode)
            .iter()
            .map(|h| ms(h.quantile(q)))
            .collect()
    }

    /// The median over rounds of the `q`-quantile, in ms.
    fn median(&self, mode: Mode, q: f64) -> f64 {
        median(self.quantiles(mode, q))
    }

    /// The largest sample of any round, in ms.
    fn max(&self, mode: Mode) -> f64 {
        self.quantiles(mode, 1.0).into_iter().fold(0.0, f64::max)
    }

    /// The median over rounds of (on's `q`-quantile / off's).
    fn ratio(&self, q: f64) -> f64 {
        median_ratio(&self.quantiles(Mode::On, q), &self.quantiles(Mode::Off, q))
    }
}

/// The median of `on[i] / off[i]` over the rounds both have (the upper one
/// of an even count); NaN when there is no round with a positive `off`.
fn median_ratio(on: &[f64], off: &[f64]) -> f64 {
    let ratios: Vec<f64> = on
        .iter()
        .zip(off)
        .filter(|(_, d)| **d > 0.0)
        .map(|(n, d)| n / d)
        .collect();
    if ratios.is_empty() {
        f64::NAN
    } else {
        median(ratios)
    }
}

/// What the authz cases measured.
#[derive(Debug)]
pub struct Measured {
    pods: usize,
    apply: Paired,
    list: Paired,
    /// One RBAC decision in this process on the same policy (µs): the
    /// apply's and the List's.
    decision_us: (f64, f64),
}

/// Decisions timed per case of [`decision_cost`].
const DECISIONS: u32 = 100_000;

/// What one authorization decision costs, in this process, on the same
/// policy as the servers' (the default roles and [`Layout::DEFAULT`]):
/// noise-free, where the servers' ratio is bounded by the machine's noise.
fn decision_cost() -> anyhow::Result<(f64, f64)> {
    use jotasu_controlplane::auth::attributes::verbs;
    use jotasu_controlplane::auth::{Attributes, RbacSnapshot, UserInfo, bootstrap_policy};
    let snapshot = RbacSnapshot::new(
        bootstrap_policy()
            .into_iter()
            .chain(Layout::DEFAULT.objects()?),
    );
    let user = UserInfo::new(policy::USER, [policy::GROUP]);
    let time = |attributes: Attributes| -> anyhow::Result<f64> {
        ensure!(
            snapshot.authorize(&user, &attributes).allowed(),
            "the bench user may {attributes:?}"
        );
        let t = Instant::now();
        for _ in 0..DECISIONS {
            std::hint::black_box(snapshot.authorize(std::hint::black_box(&user), &attributes));
        }
        Ok(t.elapsed().as_secs_f64() * 1e6 / f64::from(DECISIONS))
    };
    Ok((
        time(Attributes::of_kind(
            verbs::CREATE,
            Kind::Deployment,
            Some(NAMESPACE),
            Some("r0-web-0000"),
        ))?,
        time(Attributes::of_kind(
            verbs::LIST,
            Kind::Pod,
            Some(NAMESPACE),
            None,
        ))?,
    ))
}

/// Starts both servers and measures the cases, round by round.
pub async fn measure(cfg: &Config) -> anyhow::Result<Measured> {
    ensure!(cfg.rounds >= 1, "at least one round");
    eprintln!(
        "authz: starting two control planes over TLS, writing {} RoleBindings and {} Pods in each",
        Layout::DEFAULT.role_bindings(),
        cfg.pods
    );
    let mut servers = Vec::with_capacity(2);
    for mode in [Mode::On, Mode::Off] {
        let s = Server::start(mode, cfg.pods).await?;
        s.check_mode().await?;
        // Unmeasured: the connection and the store warm up.
        let warm = deployments("warm", cfg.objects.min(WARMUP))?;
        apply_sequential(&s.user, &warm)
            .await
            .with_context(|| format!("warming up, authorization {}", mode.label()))?;
        servers.push(s);
    }
    let server = |mode: Mode| servers.iter().find(|s| s.mode == mode);
    let decision_us = decision_cost()?;
    let mut measured = Measured {
        pods: cfg.pods,
        apply: Paired::default(),
        list: Paired::default(),
        decision_us,
    };
    for round in 0..cfg.rounds {
        let objects = deployments(&format!("r{round}-web"), cfg.objects)?;
        let (Some(on), Some(off)) = (server(Mode::On), server(Mode::Off)) else {
            bail!("both servers run");
        };
        // Call by call, the two servers take turns (which goes first
        // alternates too): both see the same moment of the machine, so
        // its drift cancels out of the ratio.
        settle_all(&servers).await?;
        eprintln!("authz round {round}: apply, on and off call by call");
        let mut apply = [Histogram::default(), Histogram::default()];
        for (i, o) in objects.iter().enumerate() {
            for mode in order(i) {
                let (k, s) = pick(mode, on, off);
                signals::check()?;
                let t = Instant::now();
                apply_one(&s.user, o)
                    .await
                    .with_context(|| format!("apply, authorization {}", s.mode.label()))?;
                apply[k].record(ns(t.elapsed()));
            }
        }
        settle_all(&servers).await?;
        eprintln!("authz round {round}: list, on and off call by call");
        let mut list = [Histogram::default(), Histogram::default()];
        for rep in 0..=cfg.repetitions {
            for mode in order(rep) {
                let (k, s) = pick(mode, on, off);
                signals::check()?;
                let t = Instant::now();
                let items = s
                    .user
                    .list(Kind::Pod, Some(NAMESPACE), "")
                    .await
                    .with_context(|| format!("list, authorization {}", s.mode.label()))?
                    .items
                    .len();
                ensure!(
                    items == cfg.pods,
                    "a List returned {items} Pods, expected {}",
                    cfg.pods
                );
                // The first pair warms both up.
                if rep > 0 {
                    list[k].record(ns(t.elapsed()));
                }
            }
        }
        let [apply_on, apply_off] = apply;
        let [list_on, list_off] = list;
        measured.apply.push(Mode::On, apply_on);
        measured.apply.push(Mode::Off, apply_off);
        measured.list.push(Mode::On, list_on);
        measured.list.push(Mode::Off, list_off);
        let last = |p: &Paired, mode| p.quantiles(mode, 0.99).last().copied().unwrap_or(0.0);
        eprintln!(
            "authz round {round}: p99 on/off: apply {:.3}, list {:.3}",
            last(&measured.apply, Mode::On) / last(&measured.apply, Mode::Off),
            last(&measured.list, Mode::On) / last(&measured.list, Mode::Off),
        );
    }
    Ok(measured)
}

/// `mode`'s server and its histogram index (0: on, 1: off).
fn pick<'a>(mode: Mode, on: &'a Server, off: &'a Server) -> (usize, &'a Server) {
    match mode {
        Mode::On => (0, on),
        Mode::Off => (1, off),
    }
}

async fn settle_all(servers: &[Server]) -> anyhow::Result<()> {
    for s in servers {
        s.settle().await?;
    }
    Ok(())
}

/// `count` Deployments in the bench namespace, named `<prefix>-NNNN`.
fn deployments(prefix: &str, count: usize) -> anyhow::Result<Vec<Object>> {
    (0..count)
        .map(|i| deployment(NAMESPACE, &format!("{prefix}-{i:04}"), i))
        .collect()
}

/// The cases' rows (when measured) and goals (always: unmet when not
/// measured).
pub fn report(report: &mut Report, measured: Option<&Measured>) {
    let (mut apply_p99, mut list_p99) = (f64::NAN, f64::NAN);
    if let Some(m) = measured {
        paired_rows(report, "authz apply, 1 client, TLS", &m.apply);
        paired_rows(report, &format!("authz list {} Pods, TLS", m.pods), &m.list);
        apply_p99 = m.apply.ratio(0.99);
        list_p99 = m.list.ratio(0.99);
        let (apply_us, list_us) = m.decision_us;
        for (case, us, p) in [
            ("authz decision in-process, apply", apply_us, &m.apply),
            ("authz decision in-process, list", list_us, &m.list),
        ] {
            report.row(case, "decision", us, "µs");
            report.row(
                case,
                "of p50 off",
                100.0 * us / 1e3 / p.median(Mode::Off, 0.5),
                "%",
            );
        }
    }
    report.goal_at_most("authz apply p99 on/off ratio", GOAL_RATIO, apply_p99, "");
    report.goal_at_most("authz list p99 on/off ratio", GOAL_RATIO, list_p99, "");
}

/// Rows `<case>, on`, `<case>, off` (p50, p99: medians over rounds; max)
/// and `<case>, on ÷ off` (p50 and p99 ratios).
fn paired_rows(report: &mut Report, case: &str, p: &Paired) {
    for mode in [Mode::On, Mode::Off] {
        let row = format!("{case}, {}", mode.label());
        report.row(&row, "p50", p.median(mode, 0.5), "ms");
        report.row(&row, "p99", p.median(mode, 0.99), "ms");
        report.row(&row, "max", p.max(mode), "ms");
    }
    let row = format!("{case}, on ÷ off");
    report.row(&row, "p50", p.ratio(0.5), "on/off");
    report.row(&row, "p99", p.ratio(0.99), "on/off");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(ms: &[u64]) -> Histogram {
        let mut h = Histogram::default();
        ms.iter().for_each(|v| h.record(v * 1_000_000));
        h
    }

    #[test]
    fn pairs_alternate_which_server_goes_first() {
        assert_eq!(order(0), [Mode::On, Mode::Off]);
        assert_eq!(order(1), [Mode::Off, Mode::On]);
        assert_eq!(order(2), order(0));
    }

    #[test]
    fn the_ratio_is_the_median_of_the_rounds_ratios() {
        // Round ratios 1.1, 0.9, 1.0 → 1.0 (the ratio of the medians would be 11/10).
        assert_eq!(median_ratio(&[11.0, 9.0, 10.0], &[10.0, 10.0, 10.0]), 1.0);
        // Rounds without an off figure do not count.
        assert_eq!(median_ratio(&[2.0, 3.0], &[0.0, 2.0]), 1.5);
        assert!(median_ratio(&[1.0], &[0.0]).is_nan());
        assert!(median_ratio(&[], &[]).is_nan());
    }

    #[test]
    fn rows_and_goals_follow_the_rounds() {
        let mut m = Measured {
            pods: 10,
            apply: Paired::default(),
            list: Paired::default(),
            decision_us: (2.0, 1.0),
        };
        for (on, off) in [
            (&[1, 2, 11][..], &[1, 2, 10][..]),
            (&[1, 2, 9], &[1, 2, 10]),
        ] {
            m.apply.push(Mode::On, hist(on));
            m.apply.push(Mode::Off, hist(off));
        }
        m.apply.push(Mode::On, hist(&[1, 2, 30]));
        m.apply.push(Mode::Off, hist(&[1, 2, 10]));
        for _ in 0..3 {
            m.list.push(Mode::On, hist(&[100, 102]));
            m.list.push(Mode::Off, hist(&[100, 100]));
        }
        let mut r = Report::new("t");
        report(&mut r, Some(&m));
        let apply = "authz apply, 1 client, TLS";
        assert_eq!(r.value(&format!("{apply}, on"), "p99"), Some(11.0));
        assert_eq!(r.value(&format!("{apply}, on"), "max"), Some(30.0));
        assert_eq!(r.value(&format!("{apply}, off"), "p50"), Some(2.0));
        assert_eq!(r.value(&format!("{apply}, on ÷ off"), "p99"), Some(1.1));
        let [apply_goal, list_goal] = &r.goals[..] else {
            panic!("{:?}", r.goals)
        };
        assert_eq!(apply_goal.metric, "authz apply p99 on/off ratio");
        assert_eq!(apply_goal.target, "<= 1.05");
        assert!(!apply_goal.met);
        assert!((list_goal.value - 1.02).abs() < 1e-9 && list_goal.met);

        let mut r = Report::new("t");
        report(&mut r, None);
        assert!(r.rows.is_empty());
        assert!(r.goals.iter().all(|g| g.value.is_nan() && !g.met));
    }
}
