//! `jotasu-dev` (run as `jotactl dev …`): named local multi-node clusters on
//! this machine, each in network namespaces of its own — up, down, list,
//! and stopping or starting one node or control-plane machine. See
//! `jotasu_dev::devcluster`.
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use jotasu_api::client::{Config, Context};
use jotasu_dev::devcluster::{self, DEFAULT_NAME, Phase, State, dir_of, validate_name};
use jotasu_dev::privilege;
use jotasu_dev::process::process_gone;

/// Local multi-node jotasu clusters: every part in network namespaces of
/// this machine (needs root).
#[derive(Parser)]
#[command(name = "jotactl dev", bin_name = "jotactl dev", version)]
struct Cli {
    /// The context file to write the cluster's context into (default
    /// $JOTASU_CONFIG, else ~/.jotasu/config).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a cluster: underlay bridge, control plane(s), N nodes with
    /// containerd and jotasu-agent, the demo image imported; waits until
    /// every node is Ready and makes the cluster the current context.
    Up {
        /// How many nodes (1 to 20), each a network namespace running
        /// jotasu-agent.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=20))]
        nodes: u8,
        /// How many control-plane machines (1 to 9), each a network
        /// namespace on the underlay. One runs on the embedded store; with
        /// more, each machine runs an etcd member (TLS with client
        /// certificates) and a control plane on the shared etcd cluster,
        /// and they elect a leader (3 is the usual HA setup: one machine
        /// may be lost).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=9))]
        control_planes: u8,
        /// The cluster's name (also its context's name).
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// Stop a cluster and remove everything it made.
    Down {
        /// The cluster's name.
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// List the clusters on this machine.
    List,
    /// Stop or start one node of a cluster.
    #[command(subcommand)]
    Node(NodeCmd),
    /// The supervisor that holds a cluster (started by `up`).
    #[command(hide = true)]
    Hold {
        #[arg(long)]
        name: String,
        #[arg(long)]
        nodes: usize,
        #[arg(long, default_value_t = 1)]
        control_planes: usize,
    },
}

#[derive(Subcommand)]
enum NodeCmd {
    /// Stop a node as a machine that dies would: its agent and its
    /// containers are killed and its network link goes down. A
    /// control-plane machine (`jotactl dev up` lists them) goes down the
    /// same way: its control plane and its etcd member are killed.
    Stop {
        /// The node's name (`jotactl get nodes`) or the control-plane
        /// machine's.
        node: String,
        /// The cluster's name.
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
    /// Start a stopped node again: link up, agent started. A control-plane
    /// machine: link up, its etcd member and its control plane started on
    /// their data.
    Start {
        /// The node's or the control-plane machine's name.
        node: String,
        /// The cluster's name.
        #[arg(long, default_value = DEFAULT_NAME)]
        name: String,
    },
}

fn config_path(cli: &Cli) -> PathBuf {
    cli.config.clone().unwrap_or_else(Config::default_path)
}

fn up(cli: &Cli, name: &str, nodes: u8, control_planes: u8) -> anyhow::Result<()> {
    validate_name(name)?;
    if let Some(s) = State::load(name)? {
        if s.supervisor_alive() {
            bail!("cluster {name} is already up (jotactl dev down --name {name} removes it)");
        }
        // A supervisor that died left this behind: remove it first.
        eprintln!("cluster {name}: removing what a supervisor that is gone left behind");
        devcluster::remove(&s);
    }
    let dir = dir_of(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log_path = dir.join("supervisor.log");
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["hold", "--name", name, "--nodes", &nodes.to_string()])
        .args(["--control-planes", &control_planes.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the supervisor leaves our session
    // so it outlives this command and its terminal.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().context("starting the cluster's supervisor")?;
    let pid = child.id();
    drop(child); // not waited for: it is a daemon now.

    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template(
        "{spinner} {elapsed:>3} {msg}",
    )?);
    bar.enable_steady_tick(Duration::from_millis(120));
    let started = Instant::now();
    let state = loop {
        let state = State::load(name)?;
        let phase = state.as_ref().map(|s| s.phase);
        match phase {
            Some(Phase::Ready) => break state.context("state vanished")?,
            Some(Phase::Failed) => {
                bar.finish_and_clear();
                let why = state.and_then(|s| s.error).unwrap_or_default();
                discard(name);
                bail!("cluster {name} failed to start: {why}");
            }
            Some(Phase::ImportingImage) => bar.set_message("importing the demo image onto the nodes"),
            _ if control_planes > 1 => bar.set_message(format!(
                "starting containerd, {control_planes} etcd members and control planes and {nodes} node(s); waiting until they are Ready"
            )),
            _ => bar.set_message(format!(
                "starting containerd, the control plane and {nodes} node(s); waiting until they are Ready"
            )),
        }
        if process_gone(pid) {
            bar.finish_and_clear();
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            discard(name);
            bail!("the cluster's supervisor exited:\n{tail}");
        }
        if started.elapsed() > Duration::from_secs(300) {
            bar.finish_and_clear();
            discard(name);
            bail!("cluster {name} was not ready within 300 s");
        }
        std::thread::sleep(Duration::from_millis(150));
    };
    bar.finish_and_clear();
    let server = state.server.clone().context("no server in the state")?;
    let path = config_path(cli);
    let mut config = Config::load(&path)?;
    config.upsert(Context {
        name: name.to_owned(),
        server: server.clone(),
        servers: Vec::new(),
        certificate_authority: None,
        client_certificate: None,
        client_key: None,
    });
    config.current_context = Some(name.to_owned());
    config.save(&path)?;
    println!(
        "cluster {name} is up in {:.1} s: {} node(s) Ready, the demo image imported",
        started.elapsed().as_secs_f64(),
        state.nodes.len()
    );
    print_control_planes(&state);
    for n in &state.nodes {
        println!("  node {}  {}", n.name, n.ip);
    }
    if let Some(join) = &state.join_command {
        println!("nodes joined over TLS with a bootstrap token, as a machine would:");
        println!("  {join}");
    }
    println!(
        "context \"{name}\" written to {} and made current",
        path.display()
    );
    println!("\nTry:");
    println!("  jotactl get nodes -o wide");
    println!("  jotactl apply -f app.yaml        # image: jotasu.local/busybox:latest");
    println!("  jotactl get pods -o wide");
    if let Some(n) = state.nodes.last() {
        println!("  jotactl dev node stop {} --name {name}", n.name);
    }
    if let [_, .., m] = state.control_planes.as_slice() {
        println!(
            "  jotactl dev node stop {} --name {name}   # a control-plane machine",
            m.name
        );
    }
    println!("  jotactl dev down --name {name}");
    Ok(())
}

/// The control-plane machines: one line each (with several, where each
/// serves and its etcd member), and what jotactl talks to.
fn print_control_planes(state: &State) {
    for m in &state.control_planes {
        match &m.etcd {
            Some(etcd) => println!(
                "  control plane {}  {}  {}  etcd {etcd}",
                m.name, m.ip, m.url
            ),
            None => println!("  control plane {}  {}  {}", m.name, m.ip, m.url),
        }
    }
    if state.control_planes.len() > 1 {
        println!(
            "  (they elect a leader: the Lease kube-system/jotasu-controlplane; jotactl uses the first's socket)"
        );
    }
}

/// Removes what a failed `up` built: the supervisor tears down what it
/// made as it exits; whatever is left is removed by the recorded names.
fn discard(name: &str) {
    if let Ok(Some(state)) = State::load(name) {
        state.supervisor.wait_gone(Duration::from_secs(30));
        devcluster::remove(&state);
    } else {
        let _ = std::fs::remove_dir_all(dir_of(name));
    }
}

fn down(cli: &Cli, name: &str) -> anyhow::Result<()> {
    validate_name(name)?;
    let state = State::load(name)?;
    match &state {
        Some(s) => devcluster::remove(s),
        None => {
            // A directory without a state file: nothing was started in it.
            let dir = dir_of(name);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
            }
        }
    }
    let path = config_path(cli);
    let mut config = Config::load(&path)?;
    if config.remove(name) {
        config.save(&path)?;
    }
    match state {
        Some(_) => println!("cluster {name} removed"),
        None => println!("cluster {name} is not up; nothing to remove"),
    }
    Ok(())
}

fn list() -> anyhow::Result<()> {
    let mut rows = Vec::new();
    if let Ok(dir) = std::fs::read_dir(devcluster::DEV_ROOT) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(s) = State::load(&name)? {
                let status = if s.supervisor_alive() {
                    format!("{:?}", s.phase).to_lowercase()
                } else {
                    "dead (jotactl dev down cleans up)".into()
                };
                rows.push(format!(
                    "{name}\t{}\t{status}\t{}",
                    s.nodes.len(),
                    s.server.unwrap_or_default()
                ));
            }
        }
    }
    println!("NAME\tNODES\tSTATUS\tSERVER");
    for r in rows {
        println!("{r}");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(
        privilege::require_root("jotactl dev"),
        "local clusters need root (network namespaces, cgroups, eBPF)"
    );
    match &cli.cmd {
        Cmd::Up {
            nodes,
            control_planes,
            name,
        } => up(&cli, name, *nodes, *control_planes),
        Cmd::Down { name } => down(&cli, name),
        Cmd::List => list(),
        Cmd::Node(NodeCmd::Stop { node, name }) => {
            devcluster::request(name, &format!("stop-node {node}"), Duration::from_secs(60))?;
            println!("{node} stopped");
            Ok(())
        }
        Cmd::Node(NodeCmd::Start { node, name }) => {
            devcluster::request(name, &format!("start-node {node}"), Duration::from_secs(60))?;
            println!("{node} started");
            Ok(())
        }
        Cmd::Hold {
            name,
            nodes,
            control_planes,
        } => {
            privilege::ensure_bpffs()?;
            Ok(devcluster::hold(name, *nodes, *control_planes)?)
        }
    }
}
