//! `jotasu-controlplane`: the API server over the embedded store (default)
//! or etcd. See docs/controlplane.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use ipnetwork::Ipv4Network;
use jotasu_controlplane::apiserver::allocate::{self, Ranges};
use jotasu_controlplane::apiserver::guard::{AuthorizationMode, Guard, GuardOptions};
use jotasu_controlplane::apiserver::proxy::AgentTls;
use jotasu_controlplane::apiserver::{ApiServer, node_lease};
use jotasu_controlplane::controllers::{hpa, nodes};
use jotasu_controlplane::leader;
use jotasu_controlplane::manager;
use jotasu_controlplane::pki::{self, PkiPaths};
use jotasu_controlplane::scheduler::{self, Scoring};
use jotasu_controlplane::serve::{Listeners, serve, write_admin_config};
use jotasu_controlplane::store::{
    AnyStore, EmbeddedOptions, EmbeddedStore, EtcdStore, EtcdTls, Store as _,
};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing::{info, warn};

/// jotasu's control plane: stores desired state and serves the API that
/// jotactl, controllers and agents use. With a subcommand, administers a
/// running one through its local socket.
#[derive(Debug, Parser)]
#[command(
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Args,
}

/// Administration of a running control plane.
#[derive(Debug, clap::Subcommand)]
enum Command {
    #[command(flatten)]
    Admin(jotasu_controlplane::admin::cli::Command),
}

#[derive(Debug, clap::Args)]
struct Args {
    /// State directory: the embedded store (store.redb), the PKI (pki/),
    /// the socket (api.sock), admin.conf (a jotactl context file) and
    /// tmp/ (image archives on their way to nodes).
    #[arg(long, value_name = "DIR", default_value = jotasu_controlplane::admin::cli::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Unix socket for local administration (default: DIR/api.sock).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Also serve on TCP with mutual TLS (client certificates signed by
    /// the cluster CA in DIR/pki), e.g. 127.0.0.1:6443.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<SocketAddr>,
    /// Extra names (DNS or IP) for the server certificate.
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    tls_san: Vec<String>,
    /// Use etcd at these client URLs instead of the embedded store.
    #[arg(long, value_name = "URL,...", value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Key prefix in etcd (several clusters may share one etcd).
    #[arg(long, default_value = "/jotasu", value_name = "PREFIX")]
    etcd_prefix: String,
    /// Revisions of history kept for watchers to resume from (the embedded
    /// store trims itself; on etcd the control plane compacts every
    /// --etcd-compaction-interval seconds, as kube-apiserver does).
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    history: u64,
    /// Seconds between etcd compactions (0: never; leave it to the operator).
    #[arg(long, default_value_t = 300, value_name = "SECONDS")]
    etcd_compaction_interval: u64,
    /// etcd client TLS: the CA bundle that signed etcd's certificates
    /// (with --etcd-certfile and --etcd-keyfile; endpoints are https://).
    #[arg(long, value_name = "FILE", requires_all = ["etcd_certfile", "etcd_keyfile"])]
    etcd_cafile: Option<PathBuf>,
    /// etcd client TLS: this control plane's client certificate (PEM).
    #[arg(long, value_name = "FILE", requires = "etcd_cafile")]
    etcd_certfile: Option<PathBuf>,
    /// etcd client TLS: the client certificate's key (PEM).
    #[arg(long, value_name = "FILE", requires = "etcd_cafile")]
    etcd_keyfile: Option<PathBuf>,
    /// Run only the API server: no scheduler, no controllers (another
    /// control plane sharing the etcd runs them).
    #[arg(long)]
    no_controllers: bool,
    /// Elect one leader among the control planes sharing the store (the
    /// Lease kube-system/jotasu-controlplane): only it runs the scheduler
    /// and the controllers. Turn off only for a single control plane that
    /// must not wait for an earlier holder's Lease to expire.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    leader_elect: bool,
    /// How long candidates wait after the leader's last renewal they saw.
    #[arg(long, default_value = "2s", value_name = "DURATION")]
    leader_elect_lease_duration: String,
    /// A leader that could not renew for this long steps down (shorter
    /// than the lease duration).
    #[arg(long, default_value = "1500ms", value_name = "DURATION")]
    leader_elect_renew_deadline: String,
    /// How often candidates look at the Lease and the leader renews it.
    #[arg(long, default_value = "250ms", value_name = "DURATION")]
    leader_elect_retry_period: String,
    /// How the scheduler scores nodes that fit: most-allocated packs pods
    /// onto the fullest nodes (bin-packing), least-allocated spreads them.
    #[arg(long, value_enum, default_value_t = ScoringArg::MostAllocated)]
    scheduler_scoring: ScoringArg,
    /// A node without a heartbeat for this long is NotReady and its pods
    /// leave every Endpoints.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    node_grace_period: u64,
    /// Pods of a node NotReady for this long are deleted (their
    /// controllers replace them elsewhere).
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pod_eviction_timeout: u64,
    /// Nodes per second whose pods may begin to be evicted (Kubernetes'
    /// default 0.1: one lost node every ten seconds; 0: never evict).
    #[arg(long, default_value_t = nodes::rate::DEFAULT_EVICTION_RATE, value_name = "NODES_PER_SECOND")]
    node_eviction_rate: f64,
    /// How often each HorizontalPodAutoscaler is evaluated.
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    hpa_sync_period: u64,
    /// Services' cluster IPs are allocated from this range (the first
    /// address and the tenth, for cluster DNS, only when asked for).
    #[arg(long, default_value_t = allocate::SERVICE_CIDR, value_name = "CIDR")]
    service_cidr: Ipv4Network,
    /// Pod addresses of the whole cluster; each Node registered without a
    /// podCIDR gets a subnet of it.
    #[arg(long, default_value_t = allocate::CLUSTER_CIDR, value_name = "CIDR")]
    cluster_cidr: Ipv4Network,
    /// How API calls are authorized: Node,RBAC (the node authorizer for
    /// agents, Kubernetes RBAC for everyone else; system:masters may do
    /// anything) or AlwaysAllow (any authenticated caller may do anything:
    /// only for measuring what authorization costs).
    #[arg(long, value_enum, default_value_t = AuthorizationModeArg::NodeRbac, value_name = "MODE")]
    authorization_mode: AuthorizationModeArg,
    /// How long the node certificates this control plane signs are valid
    /// (agents renew theirs when 70-90 % of it has passed).
    #[arg(long, default_value = "8760h", value_name = "DURATION")]
    cluster_signing_duration: String,
    /// Prefix length of each node's pod subnet.
    #[arg(long, default_value_t = 24, value_name = "BITS", value_parser = clap::value_parser!(u8).range(8..=30))]
    node_cidr_mask_size: u8,
}

/// `--authorization-mode`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum AuthorizationModeArg {
    /// The node authorizer, then RBAC.
    #[value(name = "Node,RBAC")]
    NodeRbac,
    /// Anything, for any authenticated caller.
    #[value(name = "AlwaysAllow")]
    AlwaysAllow,
}

/// `--scheduler-scoring`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ScoringArg {
    MostAllocated,
    LeastAllocated,
}

impl Args {
    /// The election's timing, checked; this control plane's identity is
    /// `<hostname>_<id>`, the id kept in DIR/identity so a restart takes
    /// its own Lease back at once.
    fn election(&self) -> anyhow::Result<leader::ElectionConfig> {
        let parse = |flag: &str, v: &str| {
            jotasu_controlplane::admin::duration::parse(v)
                .map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
        };
        let lease = parse(
            "leader-elect-lease-duration",
            &self.leader_elect_lease_duration,
        )?;
        let renew = parse(
            "leader-elect-renew-deadline",
            &self.leader_elect_renew_deadline,
        )?;
        let retry = parse("leader-elect-retry-period", &self.leader_elect_retry_period)?;
        anyhow::ensure!(
            !retry.is_zero() && retry < renew && renew < lease,
            "leader election needs 0 < --leader-elect-retry-period < --leader-elect-renew-deadline < --leader-elect-lease-duration (got {retry:?}, {renew:?}, {lease:?})"
        );
        let id_file = self.data_dir.join("identity");
        let id = match std::fs::read_to_string(&id_file) {
            Ok(id) if !id.trim().is_empty() => id.trim().to_owned(),
            _ => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                std::fs::write(&id_file, &id)
                    .with_context(|| format!("writing {}", id_file.display()))?;
                id
            }
        };
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "controlplane".into());
        Ok(leader::ElectionConfig {
            identity: format!("{host}_{id}"),
            lease_duration: lease,
            renew_deadline: renew,
            retry_period: retry,
        })
    }

    fn etcd_tls(&self) -> anyhow::Result<Option<EtcdTls>> {
        let (Some(ca), Some(cert), Some(key)) =
            (&self.etcd_cafile, &self.etcd_certfile, &self.etcd_keyfile)
        else {
            return Ok(None);
        };
        let read =
            |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        Ok(Some(EtcdTls {
            ca_pem: read(ca)?,
            cert_pem: read(cert)?,
            key_pem: read(key)?,
        }))
    }

    fn controllers(&self) -> manager::Config {
        manager::Config {
            scheduler: scheduler::Config {
                scoring: match self.scheduler_scoring {
                    ScoringArg::MostAllocated => Scoring::MostAllocated,
                    ScoringArg::LeastAllocated => Scoring::LeastAllocated,
                },
            },
            nodes: nodes::Config {
                grace: Duration::from_secs(self.node_grace_period),
                eviction_delay: Duration::from_secs(self.pod_eviction_timeout),
                eviction_rate: self.node_eviction_rate,
            },
            hpa: hpa::Config {
                sync_period: Duration::from_secs(self.hpa_sync_period.max(1)),
            },
        }
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Some(Command::Admin(command)) => {
            if let Err(e) = runtime.block_on(jotasu_controlplane::admin::cli::run(command)) {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
            Ok(())
        }
        None => runtime.block_on(run(cli.serve)),
    }
}

/// Compacts etcd's history to the last `history` revisions, every `every`.
async fn compact_periodically(store: EtcdStore, history: u64, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tick.tick().await;
        let revision = match store.current_revision().await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "etcd compaction: cannot read the revision");
                continue;
            }
        };
        if revision > history {
            match store.compact(revision - history).await {
                Ok(()) => info!(before = revision - history, "compacted etcd history"),
                Err(e) => warn!(error = %e, "etcd compaction failed; retrying next interval"),
            }
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&args.data_dir)
            .with_context(|| format!("creating the data dir {}", args.data_dir.display()))?;
    }
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| args.data_dir.join("api.sock"));
    let store: AnyStore = if args.etcd_endpoints.is_empty() {
        let path = args.data_dir.join("store.redb");
        let options = EmbeddedOptions {
            retention: args.history,
            ..EmbeddedOptions::default()
        };
        info!(path = %path.display(), "embedded store");
        EmbeddedStore::open(&path, options)
            .await
            .with_context(|| format!("opening the embedded store {}", path.display()))?
            .into()
    } else {
        info!(endpoints = ?args.etcd_endpoints, prefix = %args.etcd_prefix, "etcd store");
        let etcd = EtcdStore::connect_with(
            &args.etcd_endpoints,
            args.etcd_prefix.as_bytes(),
            args.etcd_tls()?.as_ref(),
        )
        .await
        .context("connecting to etcd")?;
        if args.etcd_compaction_interval > 0 {
            tokio::spawn(compact_periodically(
                etcd.clone(),
                args.history,
                Duration::from_secs(args.etcd_compaction_interval),
            ));
        }
        etcd.into()
    };
    // The PKI exists even without a TCP listener: the control plane's
    // client certificate is how agents know its calls are its own.
    let pki_paths = PkiPaths::new(&args.data_dir);
    let material = pki::ensure(&pki_paths, &args.tls_san)?;
    let signer = pki::Signer::load(&pki_paths).context("loading the cluster CA")?;
    let signing_duration =
        jotasu_controlplane::admin::duration::parse(&args.cluster_signing_duration)
            .map_err(|e| anyhow::anyhow!("--cluster-signing-duration: {e}"))?;
    anyhow::ensure!(
        !signing_duration.is_zero(),
        "--cluster-signing-duration must be longer than 0"
    );
    let tls = args.listen.map(|addr| (addr, material));
    let admin = write_admin_config(&args.data_dir, &socket, args.listen)?;
    info!(path = %admin.display(), "jotactl context written (JOTASU_CONFIG={})", admin.display());

    let (stop_tx, stop_rx) = watch::channel(false);
    anyhow::ensure!(
        args.node_cidr_mask_size >= args.cluster_cidr.prefix(),
        "--node-cidr-mask-size {} is wider than --cluster-cidr {}: give a longer prefix",
        args.node_cidr_mask_size,
        args.cluster_cidr
    );
    let ranges = Ranges {
        service_cidr: args.service_cidr,
        cluster_cidr: args.cluster_cidr,
        node_prefix: args.node_cidr_mask_size,
    };
    let server = ApiServer::new(Arc::new(store), stop_rx.clone())
        .with_ranges(ranges)
        .with_node_grace(Duration::from_secs(args.node_grace_period))
        .with_scratch_dir(args.data_dir.join("tmp"));
    // Agents are called over mutual TLS: their serving certificate must be
    // for the node's name, ours is the control plane's client identity.
    let server = server.with_agent_tls(AgentTls::load(&pki_paths)?);
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: draining"),
            _ = int.recv() => info!("SIGINT: draining"),
        }
        let _ = stop_tx.send(true);
    });
    // Every control plane follows the node Leases, so any of them judges
    // nodes and answers waits for programmed data planes alike.
    tokio::spawn(node_lease::follow(server.clone(), stop_rx.clone()));
    let election = args.election()?;
    // A control plane clients can reach over TCP says so, for
    // default/kubernetes (which the leader keeps).
    if let Some(addr) = args.listen.filter(|a| !a.ip().is_unspecified()) {
        tokio::spawn(leader::apiservers::advertise(
            Arc::clone(server.store()),
            election.identity.clone(),
            addr,
            stop_rx.clone(),
        ));
    }
    let controllers = if args.no_controllers {
        None
    } else if args.leader_elect {
        info!(identity = %election.identity, lease = ?election.lease_duration, "campaigning for the leadership (Lease kube-system/jotasu-controlplane)");
        let (standing, _) = watch::channel(leader::Leadership::Following);
        Some(tokio::spawn(leader::run(
            server.clone(),
            election,
            args.controllers(),
            standing,
            stop_rx.clone(),
        )))
    } else {
        Some(tokio::spawn(manager::run(
            server.clone(),
            args.controllers(),
            stop_rx.clone(),
        )))
    };
    let mode = match args.authorization_mode {
        AuthorizationModeArg::NodeRbac => AuthorizationMode::NodeRbac,
        AuthorizationModeArg::AlwaysAllow => {
            warn!("--authorization-mode AlwaysAllow: every authenticated caller may do anything");
            AuthorizationMode::AlwaysAllow
        }
    };
    match jotasu_controlplane::apiserver::bootstrap::ensure(&server).await {
        Ok(0) => {}
        Ok(n) => info!(
            changed = n,
            "initial namespaces, default RBAC roles and bindings, cluster DNS Service written"
        ),
        Err(e) => anyhow::bail!(
            "writing the initial namespaces, the default RBAC roles and bindings and the cluster DNS Service: {e}"
        ),
    }
    let guard = Guard::start(
        server.clone(),
        GuardOptions {
            mode,
            signer: Some((Arc::new(signer), signing_duration)),
        },
        stop_rx.clone(),
    )
    .await
    .context("starting the authorizer")?;
    serve(server, guard, Listeners { socket, tls }, stop_rx).await?;
    if let Some(controllers) = controllers {
        let _ = controllers.await;
    }
    info!("stopped");
    Ok(())
}
