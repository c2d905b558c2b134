//! Named local clusters that outlive the command that made them (`jotactl
//! dev up`): a detached supervisor process holds a [`LocalCluster`] — the
//! same one the end-to-end tests build — until it is told to go, and
//! answers on a control socket. Its state lives under
//! `/run/jotasu/dev/<name>/`:
//!
//! - `state.json` ([`State`]): the name prefix, the supervisor's and the
//!   cluster's processes (PID and start time), the phase it is in, the
//!   server URL and containerd socket, the namespaces, the control-plane
//!   machines, the nodes;
//! - `control.sock`: one line per request (`stop-node NAME`, `start-node
//!   NAME` — a node or a control-plane machine — and `down`), one line back
//!   (`ok` or `error: …`);
//! - `supervisor.log`: what the supervisor and the control plane printed;
//! - `cluster/`: the agents' state dirs and logs (`<node>.log`), the control
//!   planes' data dirs (`controlplane/`, `controlplane-<i>/`) and, with
//!   several, their logs (`<machine>.log`), the etcd members' data and
//!   logs (`etcd/`), the demo image.
//!
//! Everything the cluster makes carries the per-run prefix recorded first
//! thing in `state.json`, so if the supervisor is killed outright, [`remove`]
//! finds what it left by name.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{DevError, Result};
use serde::{Deserialize, Serialize};

use crate::cluster::{ClusterOptions, LocalCluster};
use crate::plan::{Plan, made_under};
use crate::process::ProcessRecord;

/// Where every dev cluster keeps its state.
pub const DEV_ROOT: &str = "/run/jotasu/dev";

/// The default cluster name.
pub const DEFAULT_NAME: &str = "jotasu";

/// A cluster name: a DNS label of at most 20 characters.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 20
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        return Err(DevError::Invalid(format!(
            "invalid cluster name {name:?}: use 1-20 lowercase letters, digits and '-', starting and ending with a letter or digit"
        )));
    }
    Ok(())
}

/// The directory of cluster `name`.
pub fn dir_of(name: &str) -> PathBuf {
    Path::new(DEV_ROOT).join(name)
}

/// Where the supervisor stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Building namespaces, containerd, the control plane and the nodes.
    Starting,
    /// Importing the demo image onto the nodes.
    ImportingImage,
    /// Every node Ready, the image imported.
    Ready,
    /// The cluster could not be built; `error` says why.
    Failed,
}

/// One node of a dev cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    /// The node's name (also its network namespace).
    pub name: String,
    /// Its underlay address.
    pub ip: String,
    /// Its link to the underlay bridge (inside its namespace).
    pub uplink: String,
    /// Its agent's log.
    pub log: PathBuf,
}

/// One control-plane machine of a dev cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlPlaneState {
    /// The machine's name (also its network namespace).
    pub name: String,
    /// Its underlay address.
    pub ip: String,
    /// Where nodes reach its control plane (`https://<ip>:6443`).
    pub url: String,
    /// Its control plane's local socket (`unix:///…/api.sock`).
    pub socket: String,
    /// Its etcd member's client URL, on etcd.
    #[serde(default)]
    pub etcd: Option<String>,
}

/// A process of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessState {
    /// What it is: `containerd`, `controlplane`, `agent <node>`.
    pub role: String,
    /// Which process it is.
    #[serde(flatten)]
    pub process: ProcessRecord,
}

/// `state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The cluster's name.
    pub name: String,
    /// The prefix of every name the cluster makes.
    pub prefix: String,
    /// The supervisor.
    pub supervisor: ProcessRecord,
    /// Where it stands.
    pub phase: Phase,
    /// The server URL (once the control plane runs).
    pub server: Option<String>,
    /// The command the nodes joined with (once they run).
    #[serde(default)]
    pub join_command: Option<String>,
    /// The private containerd's socket (once it runs).
    pub containerd_socket: Option<PathBuf>,
    /// The underlay and control-plane network namespaces.
    pub netns: Vec<String>,
    /// The control-plane machines (once they run; empty in a state file
    /// written before there could be several).
    #[serde(default)]
    pub control_planes: Vec<ControlPlaneState>,
    /// The nodes (once they run).
    pub nodes: Vec<NodeState>,
    /// The processes the supervisor started (once they run).
    pub processes: Vec<ProcessState>,
    /// Why it failed.
    pub error: Option<String>,
}

impl State {
    /// Reads cluster `name`'s state, if it has any.
    pub fn load(name: &str) -> Result<Option<Self>> {
        let path = dir_of(name).join("state.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| DevError::StateFile { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DevError::io("reading", &path)(e)),
        }
    }

    /// Writes the state atomically (a reader never sees half a file).
    pub fn save(&self) -> Result<()> {
        let dir = dir_of(&self.name);
        let tmp = dir.join("state.json.tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| DevError::StateFile {
            path: tmp.clone(),
            source,
        })?;
        std::fs::write(&tmp, bytes).map_err(DevError::io("writing", &tmp))?;
        std::fs::rename(&tmp, dir.join("state.json")).map_err(DevError::io("renaming", &tmp))
    }

    /// Whether the supervisor still runs (the recorded process, not a
    /// recycled PID, and not a zombie).
    pub fn supervisor_alive(&self) -> bool {
        self.supervisor.alive()
    }

    /// Records what `cluster` runs now: server, containerd, nodes, processes.
    fn record(&mut self, cluster: &LocalCluster) {
        self.server = Some(cluster.server());
        self.join_command = cluster.join_command().map(str::to_owned);
        self.containerd_socket = Some(cluster.containerd().socket().to_owned());
        let etcd = cluster
            .etcd()
            .map(crate::etcd::EtcdCluster::client_urls)
            .unwrap_or_default();
        self.control_planes = cluster
            .control_planes()
            .iter()
            .enumerate()
            .map(|(i, m)| ControlPlaneState {
                name: m.name().to_owned(),
                ip: m.ip().to_string(),
                url: m.url(),
                socket: m.socket_url(),
                etcd: etcd.get(i).cloned(),
            })
            .collect();
        self.nodes = cluster
            .nodes()
            .iter()
            .map(|n| NodeState {
                name: n.name().to_owned(),
                ip: n.ip().to_string(),
                uplink: n.uplink().to_owned(),
                log: cluster.dir().join(format!("{}.log", n.name())),
            })
            .collect();
        self.processes = cluster
            .processes()
            .into_iter()
            .filter_map(|(role, pid)| {
                Some(ProcessState {
                    role,
                    process: ProcessRecord::of(pid)?,
                })
            })
            .collect();
    }
}

/// Removes cluster `state.name` whatever became of its supervisor: asks a
/// running supervisor to take the cluster down (and stops it if it does
/// not answer), kills the recorded processes that still run (only those:
/// PID and start time must match), removes everything named with the
/// cluster's prefix (containers and shims, pod namespaces, namespaces and
/// their links, pins, cgroups, containerd's directories), unmounts and
/// removes `/run/jotasu/dev/<name>`.
pub fn remove(state: &State) {
    // Only a Ready supervisor serves its control socket; one still
    // building (or failing) is stopped by signal.
    if state.supervisor_alive() && dir_of(&state.name).join("control.sock").exists() {
        match request(&state.name, "down", Duration::from_secs(120)) {
            Ok(_) => {
                state.supervisor.wait_gone(Duration::from_secs(30));
            }
            Err(e) => {
                eprintln!("warning: {e:#}; stopping the supervisor");
            }
        }
    }
    state.supervisor.stop(Duration::from_secs(10));
    for p in &state.processes {
        if p.process.signal(libc::SIGKILL) {
            p.process.wait_gone(Duration::from_secs(5));
        }
    }
    if !state.prefix.is_empty() {
        crate::names::remove_leftovers(&|name| made_under(&state.prefix, name));
    }
    let dir = dir_of(&state.name);
    crate::mounts::unmount_below(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends one request to cluster `name`'s supervisor; its answer.
pub fn request(name: &str, line: &str, timeout: Duration) -> Result<String> {
    let path = dir_of(name).join("control.sock");
    let mut answer = String::new();
    UnixStream::connect(&path)
        .and_then(|mut s| {
            s.set_read_timeout(Some(timeout))?;
            writeln!(s, "{line}")?;
            BufReader::new(s).read_line(&mut answer)
        })
        .map_err(DevError::io(
            "talking to the cluster's supervisor at",
            &path,
        ))?;
    let answer = answer.trim().to_owned();
    let supervisor = |message: &str| DevError::Supervisor {
        cluster: name.to_owned(),
        message: message.to_owned(),
    };
    match answer.strip_prefix("error: ") {
        Some(e) => Err(supervisor(e)),
        None if answer.is_empty() => Err(supervisor("its supervisor closed without an answer")),
        None => Ok(answer),
    }
}

/// The supervisor: builds the cluster (`nodes` nodes, `control_planes`
/// control-plane machines), records its state, then serves the control
/// socket until `down` (or SIGTERM/SIGINT), and removes it all.
pub fn hold(name: &str, nodes: usize, control_planes: usize) -> Result<()> {
    let dir = dir_of(name);
    let plan = Plan::new(&crate::names::fresh_prefix());
    let mut netns = vec![plan.underlay_netns()];
    for i in 0..control_planes.max(1) {
        netns.push(plan.control_plane(i)?.name);
    }
    let mut state = State {
        name: name.to_owned(),
        prefix: plan.prefix().to_owned(),
        supervisor: ProcessRecord::of(std::process::id())
            .ok_or_else(|| DevError::State("cannot read this process in /proc".into()))?,
        phase: Phase::Starting,
        server: None,
        join_command: None,
        containerd_socket: None,
        netns,
        control_planes: Vec::new(),
        nodes: Vec::new(),
        processes: Vec::new(),
        error: None,
    };
    // Saved before anything is made: a supervisor killed while building
    // leaves a prefix `remove` can find everything by.
    state.save()?;
    crate::signals::install();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(DevError::io("starting", "the async runtime"))?;
    let built = runtime.block_on(async {
        let options = ClusterOptions {
            quiet: true,
            prefix: Some(plan.prefix().to_owned()),
            dir: Some(dir.join("cluster")),
            control_planes,
            ..ClusterOptions::spreading(nodes)
        };
        LocalCluster::start(options).await
    });
    let mut cluster = match built {
        Ok(c) => c,
        Err(e) => {
            state.phase = Phase::Failed;
            state.error = Some(format!("{e:#}"));
            state.save()?;
            return Err(e);
        }
    };
    state.record(&cluster);
    state.phase = Phase::ImportingImage;
    state.save()?;
    if let Err(e) = cluster.import_demo_image() {
        state.phase = Phase::Failed;
        state.error = Some(format!("importing the demo image: {e:#}"));
        state.save()?;
        return Err(e);
    }
    let sock = dir.join("control.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(DevError::io("binding", &sock))?;
    state.phase = Phase::Ready;
    state.save()?;
    eprintln!("cluster {name} ready: {}", cluster.server());
    loop {
        if crate::signals::interrupted() {
            break;
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Err(e) => return Err(DevError::io("accepting on", &sock)(e)),
        };
        let mut line = String::new();
        if let Err(e) = stream
            .set_nonblocking(false)
            .and_then(|()| BufReader::new(&stream).read_line(&mut line))
        {
            eprintln!("reading a request on the control socket: {e}");
            continue;
        }
        let mut words = line.split_whitespace();
        let answer = match (words.next(), words.next()) {
            (Some("down"), None) => {
                drop(cluster);
                let _ = std::fs::remove_dir_all(&dir);
                let _ = writeln!(&stream, "ok");
                return Ok(());
            }
            (Some(verb @ ("stop-node" | "start-node")), Some(node)) => {
                let stop = verb == "stop-node";
                let i = cluster.nodes().iter().position(|n| n.name() == node);
                let m = cluster
                    .control_planes()
                    .iter()
                    .position(|m| m.name() == node);
                match (i, m) {
                    (Some(i), _) if stop => runtime.block_on(cluster.stop_node(i)),
                    (Some(i), _) => cluster.start_node(i),
                    (None, Some(m)) if stop => cluster.stop_control_plane_machine(m),
                    (None, Some(m)) => runtime.block_on(cluster.start_control_plane_machine(m)),
                    (None, None) => Err(DevError::Invalid(format!(
                        "no node {node} in cluster {name} (neither a node nor a control-plane machine)"
                    ))),
                }
            }
            _ => Err(DevError::Invalid(format!(
                "unknown request {:?}",
                line.trim()
            ))),
        };
        state.record(&cluster);
        state.save()?;
        let _ = match answer {
            Ok(()) => writeln!(&stream, "ok"),
            Err(e) => writeln!(&stream, "error: {e:#}"),
        };
    }
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_dns_labels() {
        for ok in ["jotasu", "a", "dev-2", "x1234567890123456789"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Dev",
            "a_b",
            "a.b",
            "x12345678901234567890",
            "../x",
        ] {
            let e = validate_name(bad).expect_err(bad).to_string();
            assert!(e.contains("invalid cluster name"), "{e}");
        }
    }

    #[test]
    fn state_round_trips_through_json() {
        let s = State {
            name: "dev".into(),
            prefix: "jt1x0".into(),
            supervisor: ProcessRecord {
                pid: 42,
                start_time: 4242,
            },
            phase: Phase::Ready,
            server: Some("unix:///run/jotasu/dev/dev/cluster/controlplane/api.sock".into()),
            join_command: Some("jotasu-agent --server https://192.168.77.1:6443 --token abcdef.0123456789abcdef --ca-cert-hash sha256:00 --node-name <NODE-NAME>".into()),
            containerd_socket: Some("/run/jotasu-test/jt1x0/containerd.sock".into()),
            netns: vec!["jt1x0u".into(), "jt1x0c0".into()],
            control_planes: vec![ControlPlaneState {
                name: "jt1x0c0".into(),
                ip: "192.168.77.1".into(),
                url: "https://192.168.77.1:6443".into(),
                socket: "unix:///run/jotasu/dev/dev/cluster/controlplane/api.sock".into(),
                etcd: None,
            }],
            nodes: vec![NodeState {
                name: "jt1x0n0".into(),
                ip: "192.168.77.10".into(),
                uplink: "jt1x0v0".into(),
                log: "/run/jotasu/dev/dev/cluster/jt1x0n0.log".into(),
            }],
            processes: vec![ProcessState {
                role: "agent jt1x0n0".into(),
                process: ProcessRecord {
                    pid: 43,
                    start_time: 4343,
                },
            }],
            error: None,
        };
        let json = serde_json::to_string(&s).expect("encodes");
        assert!(json.contains("\"phase\":\"ready\""), "{json}");
        assert!(
            json.contains("{\"role\":\"agent jt1x0n0\",\"pid\":43,\"start_time\":4343}"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<State>(&json).expect("decodes"), s);
        // A state file written before several control planes still reads.
        let mut old: serde_json::Value = serde_json::from_str(&json).expect("json");
        old.as_object_mut()
            .expect("an object")
            .remove("control_planes");
        let read: State = serde_json::from_value(old).expect("an older state decodes");
        assert!(read.control_planes.is_empty());
    }
}
