//! The data plane outlives its agent, under load: 50 long-lived TCP
//! streams through a Service's cluster IP, with backends on both nodes of
//! a 2-node cluster, and new connections opened back to back, all from a
//! client pod on node 0. Node 0's agent is killed with SIGKILL, the load
//! runs on with no agent, the agent starts again; then it is stopped and
//! started from another executable (an upgrade), which loads every program
//! anew and swaps what is attached. No stream breaks and no new connection
//! fails, counted exactly.
//!
//! The load runs in this test process inside the client pod's network
//! namespace: outside the node's cgroup, so its flows take the tc path
//! (DNAT and conntrack at `from_pod`, reverse NAT at `from_pod` for the
//! local backends and `from_overlay` for node 1's): exactly the state that
//! must survive the agent.
use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use jotasu_api::Pod;
use jotasu_ebpf::DEFAULT_BPFFS;
use jotasu_tests::cluster::ClusterOptions;
use jotasu_tests::e2e::{Harness, SETTLE, agent_metrics, netns_of, sample};
use jotasu_tests::netns::{enter, run_in};
use jotasu_tests::privilege::require_root;
use jotasu_tests::wait::eventually;

/// Long-lived connections.
const STREAMS: usize = 50;
/// The echo port of the backends.
const PORT: u16 = 7000;
/// A round trip slower than this counts as a broken stream (a liveness
/// bound, not a measurement: a healthy one takes milliseconds).
const STALL: Duration = Duration::from_secs(20);

/// A pod pinned to `node` (`app: <app>`) running `command`.
fn pod(name: &str, node: &str, app: &str, command: &str, probe: bool) -> String {
    let probe = if probe {
        format!("\n    readinessProbe:\n      tcpSocket: {{port: {PORT}}}\n      periodSeconds: 1")
    } else {
        String::new()
    };
    jotasu_tests::e2e::pinned_pod(name, node, &format!("app: {app}"), command, &probe)
}

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  selector: {app: echo}
  ports:
  - {name: echo, port: 7000, targetPort: 7000}
---
"#;

/// busybox nc as a persistent echo server: per connection, a shell that
/// greets with the pod's name, then `cat`.
const ECHO: &str = "exec nc -ll -p 7000 -e /bin/sh -c 'hostname; exec cat'";

/// What the load saw, counted exactly.
#[derive(Debug, Default)]
struct Counts {
    /// Round trips completed on the long-lived streams.
    stream_round_trips: AtomicU64,
    /// New connections that connected, echoed and closed.
    new_ok: AtomicU64,
    /// Streams broken, and new connections failed, so far.
    failed: AtomicU64,
}

/// Why each broken stream broke, and why each failed new connection failed.
#[derive(Debug, Default)]
struct Failures {
    streams: BTreeMap<usize, String>,
    new: Vec<String>,
}

fn round_trip(c: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    c.write_all(msg)?;
    let mut back = vec![0u8; msg.len()];
    c.read_exact(&mut back)?;
    if back != msg {
        return Err(std::io::Error::other(format!(
            "echo mismatch: sent {:?}, got {:?}",
            String::from_utf8_lossy(msg),
            String::from_utf8_lossy(&back)
        )));
    }
    Ok(())
}

/// A connection to `to` and the name of the backend pod that greeted it.
fn connect(to: SocketAddr) -> std::io::Result<(TcpStream, String)> {
    let mut c = TcpStream::connect_timeout(&to, STALL)?;
    c.set_read_timeout(Some(STALL))?;
    c.set_write_timeout(Some(STALL))?;
    c.set_nodelay(true)?;
    let mut greeting = Vec::new();
    let mut byte = [0u8; 1];
    while byte[0] != b'\n' {
        c.read_exact(&mut byte)?;
        greeting.push(byte[0]);
    }
    Ok((c, String::from_utf8_lossy(&greeting).trim().to_owned()))
}

/// Keeps stream `i` busy (round trip after round trip) until `stop`, on
/// a thread of its own, so one stalled stream holds up no other. Its
/// first failure breaks it: why, if it broke.
fn stream_load(i: usize, mut c: TcpStream, counts: &Counts, stop: &AtomicBool) -> Option<String> {
    let mut round = 0u64;
    while !stop.load(Ordering::Acquire) {
        let msg = format!("stream {i:02} round {round:08} {:0>40}\n", round * 7);
        if let Err(e) = round_trip(&mut c, msg.as_bytes()) {
            counts.failed.fetch_add(1, Ordering::Relaxed);
            return Some(format!("round {round}: {e}"));
        }
        counts.stream_round_trips.fetch_add(1, Ordering::Relaxed);
        round += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Opens new connections back to back (each: connect, one echo, close)
/// until `stop`, from the calling thread's network namespace.
fn new_connections(to: SocketAddr, counts: &Counts, stop: &AtomicBool) -> Vec<String> {
    let mut failures = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Acquire) {
        let result = connect(to).and_then(|(mut c, _)| {
            round_trip(&mut c, format!("new {n:08}\n").as_bytes())?;
            c.shutdown(std::net::Shutdown::Both)
        });
        match result {
            Ok(()) => {
                counts.new_ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                counts.failed.fetch_add(1, Ordering::Relaxed);
                failures.push(format!("new connection {n}: {e}"));
            }
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    failures
}

/// Waits until the load made `rounds` more round trips per stream (on
/// average) and `new` more new connections than it had when called — or
/// anything failed: the test then goes on to report every failure.
async fn progress(counts: &Counts, what: &str, rounds: u64, new: u64) {
    let r0 = counts.stream_round_trips.load(Ordering::Acquire);
    let n0 = counts.new_ok.load(Ordering::Acquire);
    eventually(what, SETTLE, || async {
        (counts.failed.load(Ordering::Acquire) > 0
            || (counts.stream_round_trips.load(Ordering::Acquire) >= r0 + rounds * STREAMS as u64
                && counts.new_ok.load(Ordering::Acquire) >= n0 + new))
            .then_some(())
    })
    .await;
}

/// Waits until node 0's (new) agent has made a pass over the data plane
/// from its first list of the cluster: it is fully up.
async fn agent_programmed(h: &Harness, what: &str) {
    eventually(what, SETTLE, || async {
        let page = agent_metrics(&h.cluster.nodes()[0]).ok()?;
        let passes = sample(
            &page,
            "jotasu_agent_reconcile_duration_seconds_count{loop=\"datapath\"}",
        )?;
        (passes >= 1.0).then_some(())
    })
    .await;
}

fn json(cmd: &mut Command) -> serde_json::Value {
    let out = cmd.output().expect("running bpftool");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("bpftool -j prints JSON")
}

/// Every program node `node` has attached, by where: each pinned link
/// (socket programs on the node cgroup, `from_overlay`, `from_underlay`)
/// and each tc filter or TCX program in the node's namespace (`from_pod`,
/// `to_pod` on pod veths) → program id; plus the verified `progs/` pins
/// new pods get.
fn attached_programs(node: &str, netns: &str) -> BTreeMap<String, u64> {
    let dir = Path::new(DEFAULT_BPFFS).join("jotasu").join(node);
    let mut out = BTreeMap::new();
    for sub in ["links", "progs"] {
        for e in std::fs::read_dir(dir.join(sub)).expect("the node's pins") {
            let path = e.expect("a pin").path();
            let kind = if sub == "links" { "link" } else { "prog" };
            let v = json(
                Command::new("bpftool")
                    .args([kind, "show", "pinned"])
                    .arg(&path)
                    .arg("-j"),
            );
            let id = if kind == "link" {
                &v["prog_id"]
            } else {
                &v["id"]
            };
            out.insert(
                format!(
                    "{sub}/{}",
                    path.file_name().unwrap_or_default().to_string_lossy()
                ),
                id.as_u64().expect("an id"),
            );
        }
    }
    let net = json(enter(netns, "bpftool").args(["net", "show", "-j"]));
    for a in net[0]["tc"].as_array().into_iter().flatten() {
        // A cls_bpf filter's program is "id", a TCX program's "prog_id".
        let id = a["prog_id"].as_u64().or_else(|| a["id"].as_u64());
        let (Some(dev), Some(kind), Some(id)) = (a["devname"].as_str(), a["kind"].as_str(), id)
        else {
            continue;
        };
        out.insert(format!("tc {dev} {kind}"), id);
    }
    out
}

fn pod_ip(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("a running pod has an IP")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_and_new_connections_survive_a_killed_and_an_upgraded_agent() {
    if !require_root("streams_and_new_connections_survive_a_killed_and_an_upgraded_agent") {
        return;
    }
    let mut options = ClusterOptions::spreading(2);
    // Node 0 must stay Ready while its agent is down: its pods stay
    // endpoints and are not evicted (that is the graceful path's business).
    options.controlplane_args = vec![
        "--node-grace-period".into(),
        "120".into(),
        "--pod-eviction-timeout".into(),
        "600".into(),
    ];
    options.quiet = true;
    let mut h = Harness::start(options).await;
    let nodes = h.node_names();
    let mut yaml = String::from(SERVICE);
    for i in 0..4 {
        yaml.push_str(&pod(
            &format!("echo-{i}"),
            &nodes[i % 2],
            "echo",
            ECHO,
            true,
        ));
    }
    yaml.push_str(&pod("client", &nodes[0], "client", "sleep 3600", false));
    h.apply(&yaml);
    let backends = h.ready_pods("app=echo", 4).await;
    let client = h.ready_pods("app=client", 1).await.remove(0);
    let want: std::collections::BTreeSet<String> = backends.iter().map(pod_ip).collect();
    eventually("the endpoints list all four backends", SETTLE, || async {
        (h.endpoint_ips("echo").await == want).then_some(())
    })
    .await;
    let vip: SocketAddr = format!("{}:{PORT}", h.vip("echo").await)
        .parse()
        .expect("a VIP");
    let client_ns = netns_of(&client).expect("the client's namespace");
    // The VIP answers from the client pod before the load starts (node 0
    // has programmed the service).
    eventually("the VIP echoes from the client pod", SETTLE, || async {
        run_in(&client_ns, || {
            connect(vip).and_then(|(mut c, _)| round_trip(&mut c, b"hello\n"))
        })
        .ok()?
        .ok()
    })
    .await;

    let (streams, held_by): (Vec<TcpStream>, Vec<String>) = run_in(&client_ns, || {
        (0..STREAMS)
            .map(|_| connect(vip))
            .collect::<std::io::Result<Vec<_>>>()
    })
    .expect("entering the client's namespace")
    .expect("50 streams connect")
    .into_iter()
    .unzip();
    // Round-robin spreads them over all four backends: both nodes', so the
    // streams cross the overlay as well as stay on node 0.
    let spread: std::collections::BTreeSet<&String> = held_by.iter().collect();
    assert_eq!(spread.len(), 4, "streams by backend: {held_by:?}");
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let stream_threads: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (counts, stop) = (Arc::clone(&counts), Arc::clone(&stop));
            std::thread::spawn(move || stream_load(i, c, &counts, &stop))
        })
        .collect();
    let new_thread = {
        let (counts, stop, ns) = (Arc::clone(&counts), Arc::clone(&stop), client_ns.clone());
        std::thread::spawn(move || {
            run_in(&ns, || new_connections(vip, &counts, &stop))
                .expect("entering the client's namespace")
        })
    };
    progress(&counts, "the load runs", 5, 20).await;

    // 1. SIGKILL: no shutdown path runs at all.
    let node0 = nodes[0].clone();
    let pid = h.cluster.nodes()[0]
        .agent_pid()
        .expect("node 0's agent runs");
    eprintln!("killing node 0's agent (pid {pid}) with SIGKILL");
    h.cluster
        .node_mut(0)
        .kill_agent()
        .expect("killing the agent");
    progress(&counts, "the load runs with node 0's agent dead", 50, 200).await;
    let before_restart = attached_programs(&node0, h.cluster.nodes()[0].netns().name());
    h.cluster
        .node_mut(0)
        .start_agent()
        .expect("the agent starts again");
    agent_programmed(&h, "node 0's agent programs its data plane again").await;
    progress(&counts, "the load runs after the restart", 50, 200).await;

    // 2. An upgrade: the agent stopped, then started from another executable.
    let current =
        jotasu_dev::bins::workspace_bin("jotasu-agent", "JOTASU_AGENT").expect("the agent binary");
    let next = h.cluster.dir().join("jotasu-agent-next");
    std::fs::copy(&current, &next).expect("copying the agent binary");
    let before_upgrade = attached_programs(&node0, h.cluster.nodes()[0].netns().name());
    h.cluster.node_mut(0).stop_agent();
    progress(
        &counts,
        "the load runs with node 0's agent stopped",
        50,
        200,
    )
    .await;
    h.cluster
        .node_mut(0)
        .start_agent_from(&next)
        .expect("the new agent starts");
    agent_programmed(&h, "the new agent programs its data plane").await;
    progress(&counts, "the load runs after the upgrade", 50, 200).await;
    let after_upgrade = attached_programs(&node0, h.cluster.nodes()[0].netns().name());

    stop.store(true, Ordering::Release);
    let broken: BTreeMap<usize, String> = stream_threads
        .into_iter()
        .enumerate()
        .filter_map(|(i, t)| Some((i, t.join().expect("a stream's load")?)))
        .collect();
    let new_failures = new_thread.join().expect("the new-connection load");
    let failures = Failures {
        streams: broken,
        new: new_failures,
    };
    let round_trips = counts.stream_round_trips.load(Ordering::Acquire);
    let new_ok = counts.new_ok.load(Ordering::Acquire);
    eprintln!(
        "streams kept: {}/{STREAMS} ({round_trips} round trips); new connections: {new_ok} made, {} failed",
        STREAMS - failures.streams.len(),
        failures.new.len()
    );
    eprintln!("programs attached before the restart: {before_restart:?}");
    eprintln!("before the upgrade: {before_upgrade:?}");
    eprintln!("after the upgrade: {after_upgrade:?}");
    assert!(
        failures.streams.is_empty(),
        "broken streams: {:?}",
        failures.streams
    );
    assert!(
        failures.new.is_empty(),
        "failed new connections: {:?}",
        failures.new
    );

    // The upgrade replaced every attached program (same attachments, new ids).
    assert_eq!(
        before_upgrade.keys().collect::<Vec<_>>(),
        after_upgrade.keys().collect::<Vec<_>>(),
        "the upgrade changed where programs are attached"
    );
    let kept: Vec<&String> = before_upgrade
        .iter()
        .filter(|(k, id)| after_upgrade.get(*k) == Some(*id))
        .map(|(k, _)| k)
        .collect();
    assert!(
        kept.is_empty(),
        "still running the old program after the upgrade: {kept:?}"
    );
    for needed in ["progs/from_pod", "progs/to_pod"] {
        assert!(after_upgrade.contains_key(needed), "{after_upgrade:?}");
    }
    assert!(
        after_upgrade
            .keys()
            .any(|k| k.starts_with("tc ") && k.contains("ingress")),
        "no from_pod seen on a pod veth: {after_upgrade:?}"
    );
}
