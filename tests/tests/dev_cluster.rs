//! `jotactl dev`: named local clusters that outlive the command that made
//! them. Two clusters side by side, a node stopped and started, one removed
//! by its supervisor and one whose supervisor was killed outright — and
//! nothing of either left on the machine; a failed `up` leaves nothing.
use std::path::Path;
use std::time::Duration;

use jotasu_tests::devcluster::{State, dir_of};
use jotasu_tests::jotactl::Ctl;
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;

/// Runs `jotactl dev down` for each cluster when dropped (on failure too).
struct Down<'a> {
    ctl: &'a Ctl,
    names: Vec<String>,
}

impl Drop for Down<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.ctl.run(&["dev", "down", "--name", n]);
        }
    }
}

fn ok(ctl: &Ctl, args: &[&str]) -> String {
    let run = ctl.run(args);
    assert_eq!(
        run.code, 0,
        "jotactl {args:?}: {}{}",
        run.stdout, run.stderr
    );
    run.stdout
}

/// Asserts that nothing of cluster `s` is left: no process, namespace,
/// link, pin, cgroup, mount or directory.
fn nothing_left(s: &State) {
    let owned = |name: &str| jotasu_tests::plan::made_under(&s.prefix, name);
    assert!(!s.supervisor_alive(), "the supervisor of {} runs", s.name);
    for p in &s.processes {
        assert!(!p.process.alive(), "{} of {} runs", p.role, s.name);
    }
    for proc in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let cmdline = std::fs::read(proc.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !cmdline.contains(&s.prefix)
                && !cmdline.contains(&dir_of(&s.name).display().to_string()),
            "a process of {} is left: {cmdline}",
            s.name
        );
    }
    let listed = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .expect("ip");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let netns = listed(&["netns", "list"]);
    assert!(
        netns.split_whitespace().all(|n| !owned(n)),
        "netns left: {netns}"
    );
    let links = listed(&["-o", "link", "show"]);
    assert!(!links.contains(&s.prefix), "links left: {links}");
    for e in std::fs::read_dir(Path::new(jotasu_ebpf::DEFAULT_BPFFS).join("jotasu"))
        .into_iter()
        .flatten()
        .flatten()
    {
        assert!(!owned(&e.file_name().to_string_lossy()), "pins left: {e:?}");
    }
    for root in jotasu_tests::cgroup::hierarchy_roots() {
        for e in std::fs::read_dir(root.join("jotasu"))
            .into_iter()
            .flatten()
            .flatten()
        {
            assert!(
                !owned(&e.file_name().to_string_lossy()),
                "cgroup left: {e:?}"
            );
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    assert!(
        !mounts.contains(&s.prefix) && !mounts.contains(&dir_of(&s.name).display().to_string()),
        "mounts left: {mounts}"
    );
    for dir in [
        dir_of(&s.name),
        Path::new("/run/jotasu-test").join(&s.prefix),
        Path::new("/var/lib/jotasu-test").join(&s.prefix),
    ] {
        assert!(!dir.exists(), "{} left", dir.display());
    }
}

/// `jotactl get nodes` of context `name`: (node, status) rows.
fn nodes(ctl: &Ctl, name: &str) -> Vec<(String, String)> {
    ok(ctl, &["--context", name, "get", "nodes"])
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_owned(), w.next()?.to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_side_by_side_come_and_go() {
    if !require_root("two_clusters_side_by_side_come_and_go") {
        return;
    }
    let ctl = Ctl::new();
    let prefix = jotasu_tests::names::fresh_prefix();
    let (a, b, c) = (
        format!("{prefix}a"),
        format!("{prefix}b"),
        format!("{prefix}c"),
    );
    let _down = Down {
        ctl: &ctl,
        names: vec![a.clone(), b.clone(), c.clone()],
    };

    let up = ok(&ctl, &["dev", "up", "--nodes", "2", "--name", &a]);
    assert!(up.contains(&format!("cluster {a} is up")), "{up}");
    // dev up made the cluster the current context: no --server needed.
    let current = ok(&ctl, &["get", "nodes"]);
    assert_eq!(current.lines().count(), 3, "{current}");
    let again = ctl.run(&["dev", "up", "--name", &a]);
    assert_ne!(again.code, 0);
    assert!(again.stderr.contains("already up"), "{}", again.stderr);
    ok(&ctl, &["dev", "up", "--nodes", "1", "--name", &b]);
    let (na, nb) = (nodes(&ctl, &a), nodes(&ctl, &b));
    assert_eq!(na.len(), 2, "{na:?}");
    assert_eq!(nb.len(), 1, "{nb:?}");
    assert!(
        na.iter().chain(&nb).all(|(_, s)| s == "Ready"),
        "{na:?} {nb:?}"
    );
    assert!(nb.iter().all(|n| !na.contains(n)), "two separate clusters");
    let list = ok(&ctl, &["dev", "list"]);
    assert!(list.contains(&a) && list.contains(&b), "{list}");

    // A node stopped turns NotReady; started again, Ready.
    let victim = na[1].0.clone();
    ok(&ctl, &["dev", "node", "stop", &victim, "--name", &a]);
    eventually(
        "the stopped node is NotReady",
        Duration::from_secs(60),
        || async {
            nodes(&ctl, &a)
                .iter()
                .any(|(n, s)| *n == victim && s == "NotReady")
                .then_some(())
        },
    )
    .await;
    ok(&ctl, &["dev", "node", "start", &victim, "--name", &a]);
    eventually(
        "the restarted node is Ready",
        Duration::from_secs(60),
        || async {
            nodes(&ctl, &a)
                .iter()
                .all(|(_, s)| s == "Ready")
                .then_some(())
        },
    )
    .await;
    let bad = ctl.run(&["dev", "node", "stop", "no-such-node", "--name", &a]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("no node no-such-node"),
        "{}",
        bad.stderr
    );

    // Down removes each cluster and everything it made: a's supervisor
    // takes it down; b's supervisor is killed outright first (its agents,
    // control plane and containerd die with it, its shims and containers
    // do not), and down finds what it left by its prefix.
    let states: Vec<State> = [&a, &b]
        .iter()
        .map(|n| State::load(n).expect("state").expect("a state file"))
        .collect();
    assert!(states[1].processes.len() >= 3, "{:?}", states[1].processes);
    assert!(states[1].supervisor.signal(libc::SIGKILL));
    for n in [&a, &b] {
        let out = ok(&ctl, &["dev", "down", "--name", n]);
        assert!(out.contains("removed"), "{out}");
    }
    for s in &states {
        nothing_left(s);
    }
    let contexts = ok(&ctl, &["config", "get-contexts"]);
    assert!(
        !contexts.contains(&a) && !contexts.contains(&b),
        "{contexts}"
    );
    let gone = ok(&ctl, &["dev", "down", "--name", &a]);
    assert!(gone.contains("not up"), "down is idempotent: {gone}");
    // A failed up removes what it built.
    let failed = ctl.run_with(
        &[("JOTASU_AGENT", "/bin/false")],
        &["dev", "up", "--name", &c],
        None,
    );
    assert_ne!(failed.code, 0);
    assert!(
        failed.stderr.contains("failed to start"),
        "{}",
        failed.stderr
    );
    assert!(
        !dir_of(&c).exists(),
        "a failed up left {}",
        dir_of(&c).display()
    );
    let list = ok(&ctl, &["dev", "list"]);
    assert!(!list.contains(&c), "{list}");
    let bad = ctl.run(&["dev", "up", "--name", "Not_A_Name"]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("invalid cluster name"),
        "{}",
        bad.stderr
    );
}
