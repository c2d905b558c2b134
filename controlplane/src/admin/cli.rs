//! The administration subcommands' arguments and their runs:
//! `jotasu-controlplane token create|list|delete`, `user add`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use jotasu_api::client::{Client, Config, ServerUrl, TlsFiles};

use super::token::{self, JoinTarget, TokenCommandError};

/// The control plane's state directory when none is given.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/jotasu/controlplane";

/// An administration command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bootstrap tokens: how new nodes authenticate when they join.
    #[command(subcommand)]
    Token(TokenCommand),
    /// User credentials: a client certificate and a context file for jotactl.
    #[command(subcommand)]
    User(UserCommand),
}

/// `user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Issues NAME a client certificate (CN=NAME, O=each --group) and writes
    /// a context file for it; what NAME may do is up to RBAC bindings.
    Add {
        /// The user's name.
        name: String,
        /// A group the user is in; repeatable (system:masters may do anything).
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// How long the certificate is valid.
        #[arg(long, default_value = "8760h", value_name = "DURATION")]
        ttl: String,
        /// The context file to write (default ./NAME.conf); the certificate,
        /// key (0600) and CA are written beside it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The server URL the context names (default: the TCP listener
        /// written in DIR/admin.conf).
        #[arg(long, value_name = "https://HOST:PORT")]
        server: Option<String>,
        /// The control plane's --data-dir (its PKI).
        #[arg(long, default_value = DEFAULT_DATA_DIR, value_name = "DIR")]
        data_dir: PathBuf,
    },
}

/// `token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Creates a token and prints it with the command that joins a node.
    Create {
        /// How long the token may be used (e.g. 24h, 1h30m; 0: until deleted).
        #[arg(long, default_value = "24h", value_name = "DURATION")]
        ttl: String,
        /// What the token is for (shown by `token list`).
        #[arg(long, default_value = "")]
        description: String,
        /// The URL joining nodes reach the control plane at (default: the
        /// TCP listener written in DIR/admin.conf).
        #[arg(long, value_name = "https://HOST:PORT")]
        join_server: Option<String>,
        #[command(flatten)]
        local: Local,
    },
    /// Lists tokens: id, time left, expiry, description (never secrets).
    List {
        #[command(flatten)]
        local: Local,
    },
    /// Deletes tokens, by id or whole token: nodes can no longer join with them.
    Delete {
        /// Token ids (abcdef) or tokens (abcdef.0123456789abcdef).
        #[arg(required = true, value_name = "TOKEN")]
        tokens: Vec<String>,
        #[command(flatten)]
        local: Local,
    },
}

/// Where the local control plane keeps its state.
#[derive(Debug, Clone, Args)]
pub struct Local {
    /// The control plane's --data-dir (its socket, PKI and admin.conf).
    #[arg(long, default_value = DEFAULT_DATA_DIR, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// The control plane's socket (default: DIR/api.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

impl Local {
    async fn client(&self) -> Result<Client, AdminError> {
        let socket = self
            .socket
            .clone()
            .unwrap_or_else(|| self.data_dir.join("api.sock"));
        Ok(Client::connect_to(&ServerUrl::Unix(socket), &TlsFiles::default()).await?)
    }
}

/// An administration command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The control plane refused or could not be reached.
    #[error("{0}")]
    Client(#[from] jotasu_api::client::ClientError),
    /// A token command failed.
    #[error("{0}")]
    Token(#[from] TokenCommandError),
    /// An argument is wrong.
    #[error("{0}")]
    Usage(String),
    /// A user's credentials could not be made.
    #[error("{0}")]
    User(#[from] super::user::UserError),
    /// The PKI could not be read.
    #[error("{0}")]
    Pki(#[from] crate::pki::PkiError),
}

/// The https URL in DIR/admin.conf, if the control plane listens on TCP.
fn https_server(data_dir: &Path) -> Result<Option<String>, AdminError> {
    let config = Config::load(&data_dir.join("admin.conf"))?;
    Ok(config
        .contexts
        .iter()
        .find(|c| c.server.starts_with("https://"))
        .map(|c| c.server.clone()))
}

/// Where nodes join: `join_server`, else the `tls` context of
/// DIR/admin.conf; the CA hash from DIR/pki/ca.crt.
fn join_target(
    data_dir: &Path,
    join_server: Option<&str>,
) -> Result<Option<JoinTarget>, AdminError> {
    let server = match join_server {
        Some(s) => {
            ServerUrl::parse(s).map_err(|e| AdminError::Usage(format!("--join-server: {e}")))?;
            s.to_owned()
        }
        None => match https_server(data_dir)? {
            Some(s) => s,
            None => return Ok(None),
        },
    };
    let paths = crate::pki::PkiPaths::new(data_dir);
    let ca =
        std::fs::read_to_string(paths.ca_cert()).map_err(|source| crate::pki::PkiError::Io {
            path: paths.ca_cert(),
            source,
        })?;
    Ok(Some(JoinTarget {
        server,
        ca_cert_hash: crate::pki::ca_cert_hash(&ca)?,
    }))
}

/// Runs `command`, printing its results.
pub async fn run(command: Command) -> Result<(), AdminError> {
    match command {
        Command::Token(TokenCommand::Create {
            ttl,
            description,
            join_server,
            local,
        }) => {
            let ttl = super::duration::parse(&ttl)
                .map_err(|e| AdminError::Usage(format!("--ttl: {e}")))?;
            let target = join_target(&local.data_dir, join_server.as_deref())?;
            let client = local.client().await?;
            let token = token::create(&client, ttl, &description).await?;
            println!("{token}");
            match target {
                Some(target) => println!("{}", token::join_command(&target, &token)),
                None => eprintln!(
                    "this control plane has no TCP listener for nodes to join through: \
                     start it with --listen HOST:PORT (or give --join-server)"
                ),
            }
        }
        Command::User(UserCommand::Add {
            name,
            groups,
            ttl,
            out,
            server,
            data_dir,
        }) => {
            let lifetime = super::duration::parse(&ttl)
                .map_err(|e| AdminError::Usage(format!("--ttl: {e}")))?;
            if lifetime.is_zero() {
                return Err(AdminError::Usage("--ttl must be longer than 0".into()));
            }
            let server = match server {
                Some(s) => s,
                None => https_server(&data_dir)?.ok_or_else(|| {
                    AdminError::Usage(
                        "this control plane has no TCP listener in DIR/admin.conf: give --server https://HOST:PORT".into(),
                    )
                })?,
            };
            ServerUrl::parse(&server).map_err(|e| AdminError::Usage(format!("--server: {e}")))?;
            let out = out.unwrap_or_else(|| PathBuf::from(format!("{name}.conf")));
            let written = super::user::add(&data_dir, &name, &groups, lifetime, &server, &out)?;
            println!(
                "user {name:?} written to {} (certificate {}, key {}); use it with JOTASU_CONFIG={} jotactl …",
                written.config.display(),
                written.certificate.display(),
                written.key.display(),
                written.config.display()
            );
        }
        Command::Token(TokenCommand::List { local }) => {
            let client = local.client().await?;
            let tokens = token::list(&client).await?;
            print!(
                "{}",
                align(&token::table(&tokens, jotasu_api::meta::unix_now()))
            );
        }
        Command::Token(TokenCommand::Delete { tokens, local }) => {
            let client = local.client().await?;
            for t in tokens {
                let id = token::delete(&client, &t).await?;
                println!("bootstrap token {id:?} deleted");
            }
        }
    }
    Ok(())
}

/// Tab-separated rows as aligned columns, kubectl-style (no borders).
fn align(text: &str) -> String {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    for row in text.lines() {
        table.add_row(row.split('\t'));
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
    }
    let mut out: String = table
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    if out.is_empty() {
        out.push('\n');
    }
    out
}
