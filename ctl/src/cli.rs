//! The command line: global flags (how to reach the server, the namespace)
//! and one subcommand per verb, as kubectl spells them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// jotactl controls a jotasu cluster: apply manifests, inspect and delete
/// objects, scale workloads, read logs, run commands in pods, import
/// images. Flags and output follow kubectl.
#[derive(Debug, Parser)]
#[command(name = "jotactl", version, propagate_version = true)]
pub struct Cli {
    /// How to reach the server, and the namespace.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The server: unix:///path/to/api.sock or https://host:port; several
    /// control planes of one cluster as URL,URL,... (the first that answers
    /// is used, the next when it stops answering). Default: the current
    /// context of the context file.
    #[arg(
        long,
        global = true,
        env = "JOTASU_SERVER",
        value_name = "URL[,URL...]"
    )]
    pub server: Option<String>,
    /// A context of the context file other than the current one.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The context file (default ~/.jotasu/config).
    #[arg(long, global = true, env = "JOTASU_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// PEM file of the cluster CA (https servers).
    #[arg(long, global = true, value_name = "PATH")]
    pub certificate_authority: Option<PathBuf>,
    /// PEM file of the client certificate (https servers).
    #[arg(long, global = true, value_name = "PATH")]
    pub client_certificate: Option<PathBuf>,
    /// PEM file of the client key (https servers).
    #[arg(long, global = true, value_name = "PATH")]
    pub client_key: Option<PathBuf>,
    /// The namespace (default "default"). Objects are created only in a
    /// namespace that exists and is not terminating (jotactl get ns).
    #[arg(short = 'n', long, global = true, value_name = "NS")]
    pub namespace: Option<String>,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update objects from manifests (server-side, all or nothing).
    Apply(ApplyArgs),
    /// Print the objects a kustomization directory renders (as kubectl
    /// kustomize does), without a server.
    Kustomize(KustomizeArgs),
    /// Create an object from flags: create job NAME --from=cronjob/NAME.
    #[command(subcommand)]
    Create(crate::create::CreateCommand),
    /// Show objects as a table, YAML, JSON or names.
    Get(GetArgs),
    /// Show objects in detail.
    Describe(DescribeArgs),
    /// Delete objects (and, on the server, what they own).
    Delete(DeleteArgs),
    /// Set the replica count of Deployments, ReplicaSets and StatefulSets.
    Scale(ScaleArgs),
    /// Mark a node unschedulable: new pods are not placed on it.
    Cordon(crate::drain::CordonArgs),
    /// Mark a node schedulable again.
    Uncordon(crate::drain::CordonArgs),
    /// Cordon a node and evict its pods, respecting PodDisruptionBudgets.
    Drain(crate::drain::DrainArgs),
    /// Follow a rollout, list revisions, roll back.
    #[command(subcommand)]
    Rollout(crate::rollout::RolloutCommand),
    /// Print a container's output (proxied from its node's agent).
    Logs(LogsArgs),
    /// Run a command in a pod's container: jotactl exec POD -- CMD ARGS…
    Exec(ExecArgs),
    /// Put images onto nodes.
    #[command(subcommand)]
    Image(ImageCommand),
    /// A node's eBPF data plane, read from its maps: services (backends
    /// and their flow counters), conntrack, tunnels, drops.
    #[command(subcommand)]
    Datapath(crate::datapath::DatapathCommand),
    /// A node's flow events: new service flows and drops, recent ones and
    /// (-f) live, like hubble observe.
    Flows(crate::flows::FlowsArgs),
    /// Inspect authorization: auth can-i VERB RESOURCE, auth whoami.
    #[command(subcommand)]
    Auth(crate::auth::AuthCommand),
    /// Show or change the context file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Local multi-node clusters on this machine: dev up --nodes N [--name
    /// NAME], dev down, dev list, dev node stop|start NODE (`jotactl dev
    /// --help` for more; needs root).
    Dev(DevArgs),
}

/// `jotactl dev …`: everything after `dev` goes to `jotasu-dev`.
#[derive(Debug, Clone, Args)]
#[command(disable_help_flag = true)]
pub struct DevArgs {
    /// The dev command and its flags (up, down, list, node).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<String>,
}

/// Where manifests come from.
#[derive(Debug, Clone, Args)]
pub struct FileArgs {
    /// A manifest file, a directory of them (*.yaml, *.yml, *.json), or - for stdin.
    /// May be repeated.
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR|-")]
    pub files: Vec<PathBuf>,
    /// Also read the directories' subdirectories.
    #[arg(short = 'R', long)]
    pub recursive: bool,
}

/// `--dry-run` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DryRun {
    /// Write.
    None,
    /// Validate here and on the server; report outcomes as "(dry run)"
    /// (the server's dry run: nothing is written).
    Client,
    /// Validate here and on the server; report outcomes as "(server dry run)".
    Server,
}

/// `jotactl kustomize`.
#[derive(Debug, Args)]
pub struct KustomizeArgs {
    /// The directory holding kustomization.yaml (default: the current one).
    #[arg(value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
}

/// `jotactl apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The manifests.
    #[command(flatten)]
    pub files: FileArgs,
    /// A kustomization directory, rendered here (as kubectl apply -k does).
    #[arg(short = 'k', long = "kustomize", value_name = "DIR", conflicts_with_all = ["files", "recursive"])]
    pub kustomize: Option<PathBuf>,
    /// Validate and report what would happen without writing (bare --dry-run: client).
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "client",
        default_value = "none"
    )]
    pub dry_run: DryRun,
}

/// Output formats of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The table with more columns.
    Wide,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
    /// `kind.group/name` per object.
    Name,
}

/// `jotactl get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// KIND[,KIND…] [NAME…], or KIND/NAME…, kinds as kubectl names them
    /// (pods/po, deployments/deploy, services/svc, configmaps/cm,
    /// namespaces/ns, serviceaccounts/sa, nodes/no, …); `all` is pods,
    /// services, daemonsets, deployments and horizontalpodautoscalers.
    #[arg(required = true, value_name = "RESOURCE")]
    pub resources: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
    /// Only objects whose labels match (app=web,tier!=db,env in (a,b)).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Tables without their header line.
    #[arg(long)]
    pub no_headers: bool,
    /// A LABELS column in tables.
    #[arg(long)]
    pub show_labels: bool,
}

/// `jotactl describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// KIND [NAME…] or KIND/NAME…; a NAME that is not an object describes
    /// every object whose name starts with it.
    #[arg(required = true, value_name = "RESOURCE")]
    pub resources: Vec<String>,
    /// Only objects whose labels match (when no name is given).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Every namespace (when no name is given).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// `jotactl delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// KIND[,KIND…] NAME…, or KIND/NAME…. A deleted namespace shows
    /// Terminating until everything in it is gone; default, kube-system
    /// and kube-public may not be deleted.
    #[arg(value_name = "RESOURCE")]
    pub resources: Vec<String>,
    /// The objects named in these manifests.
    #[command(flatten)]
    pub files: FileArgs,
    /// The objects a kustomization directory renders.
    #[arg(short = 'k', long = "kustomize", value_name = "DIR", conflicts_with_all = ["files", "recursive"])]
    pub kustomize: Option<PathBuf>,
    /// Every object of the kinds whose labels match.
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
    /// Every object of the kinds in the namespace.
    #[arg(long)]
    pub all: bool,
    /// An object that does not exist is not an error.
    #[arg(long)]
    pub ignore_not_found: bool,
}

/// `jotactl scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// KIND NAME…, or KIND/NAME…
    #[arg(value_name = "RESOURCE")]
    pub resources: Vec<String>,
    /// The objects named in these manifests.
    #[command(flatten)]
    pub files: FileArgs,
    /// The new replica count.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(0..))]
    pub replicas: i32,
}

/// `jotactl logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The pod: NAME, pod/NAME, or deployment/NAME (also replicaset/,
    /// daemonset/): one pod of the workload, as kubectl picks it.
    #[arg(value_name = "POD")]
    pub pod: String,
    /// The container (kubectl's older positional form of -c).
    #[arg(value_name = "CONTAINER")]
    pub container_arg: Option<String>,
    /// The container (default: the pod's only one).
    #[arg(short = 'c', long, value_name = "CONTAINER")]
    pub container: Option<String>,
    /// Keep streaming new output until the container stops (or Ctrl-C).
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The output of the previous instance of a restarted container.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Only the last N lines (-1: all).
    #[arg(long, value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
}

/// `jotactl exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The pod: NAME, pod/NAME, or deployment/NAME (one of its pods).
    #[arg(value_name = "POD")]
    pub pod: String,
    /// The container (default: the pod's first).
    #[arg(short = 'c', long, value_name = "CONTAINER")]
    pub container: Option<String>,
    /// Pass jotactl's stdin to the command.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Accepted for kubectl's `-it`; jotasu's exec has no terminal mode
    /// (a note says so and the command runs without one).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `jotactl image …`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import an OCI image archive (a tar of an OCI image layout) onto
    /// nodes: every Ready node, or those named with --node.
    Import(ImportArgs),
}

/// `jotactl image import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The archive.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Import onto this node only (repeat, or separate with commas).
    #[arg(long = "node", value_name = "NODE", value_delimiter = ',')]
    pub nodes: Vec<String>,
}

/// `jotactl config …`: the context file.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the context file.
    View,
    /// List the contexts; `*` marks the current one.
    GetContexts,
    /// Print the current context's name.
    CurrentContext,
    /// Make a context the current one.
    UseContext {
        /// The context.
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("jotactl").chain(args.iter().copied()))
    }

    #[test]
    fn definition_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn dry_run_forms() {
        let mode = |args: &[&str]| match parse(args).unwrap().command {
            Command::Apply(a) => a.dry_run,
            other => panic!("{other:?}"),
        };
        assert_eq!(mode(&["apply", "-f", "x"]), DryRun::None);
        assert_eq!(mode(&["apply", "-f", "x", "--dry-run"]), DryRun::Client);
        assert_eq!(
            mode(&["apply", "--dry-run=server", "-f", "x"]),
            DryRun::Server
        );
        assert_eq!(
            mode(&["apply", "--dry-run=client", "-f", "x"]),
            DryRun::Client
        );
        assert!(parse(&["apply", "--dry-run=maybe", "-f", "x"]).is_err());
    }

    #[test]
    fn logs_exec_and_import() {
        let cli = parse(&["logs", "web", "-f", "--tail", "5", "-c", "app"]).unwrap();
        let Command::Logs(l) = cli.command else {
            panic!()
        };
        assert!(l.follow && !l.previous);
        assert_eq!((l.tail, l.container.as_deref()), (5, Some("app")));
        let Command::Logs(l) = parse(&["logs", "deploy/web", "app"]).unwrap().command else {
            panic!()
        };
        assert_eq!((l.tail, l.container_arg.as_deref()), (-1, Some("app")));
        let cli = parse(&["exec", "-it", "web", "--", "sh", "-c", "echo hi"]).unwrap();
        let Command::Exec(e) = cli.command else {
            panic!()
        };
        assert!(e.stdin && e.tty);
        assert_eq!(e.command, ["sh", "-c", "echo hi"]);
        assert!(parse(&["exec", "web"]).is_err(), "a command is required");
        assert!(
            parse(&["exec", "web", "ls"]).is_err(),
            "the command goes after --"
        );
        let cli = parse(&[
            "image", "import", "a.tar", "--node", "n1,n2", "--node", "n3",
        ])
        .unwrap();
        let Command::Image(ImageCommand::Import(i)) = cli.command else {
            panic!()
        };
        assert_eq!(i.nodes, ["n1", "n2", "n3"]);
    }

    #[test]
    fn globals_anywhere() {
        let cli = parse(&["get", "pods", "-n", "kube-system", "--server", "unix:///s"]).unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("kube-system"));
        assert_eq!(cli.global.server.as_deref(), Some("unix:///s"));
        let cli = parse(&["-n", "x", "scale", "deploy/web", "--replicas=3"]).unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("x"));
        assert!(parse(&["scale", "deploy/web", "--replicas=-1"]).is_err());
        assert!(parse(&["scale", "deploy/web"]).is_err());
    }
}
