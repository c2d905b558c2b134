//! `jotactl`: the command-line client of jotasu. Parses the command line,
//! runs one command, and turns its outcome into kubectl's exit codes: 0 on
//! success, 1 on any error (usage errors included), the command's own code
//! for `exec`. See docs/jotactl.md.

mod age;
mod apply;
mod args;
mod auth;
mod cli;
mod config;
mod connect;
mod create;
mod datapath;
mod delete;
mod describe;
mod dev;
mod drain;
mod exec;
mod flows;
mod get;
mod image;
mod kustomize;
mod logs;
mod manifests;
mod names;
mod output;
mod podref;
mod report;
mod rollout;
mod scale;
mod stream;
mod table;
mod tabwriter;

use std::process::ExitCode;

use clap::Parser as _;
use jotasu_api::client::ClientError;

use crate::cli::{Cli, Command};
use crate::report::CtlError;

async fn run(cli: Cli) -> Result<(), CtlError> {
    let global = &cli.global;
    match &cli.command {
        Command::Apply(a) => apply::run(global, a).await,
        Command::Kustomize(a) => apply::print_kustomization(a),
        Command::Create(c) => create::run(global, c).await,
        Command::Get(a) => get::run(global, a).await,
        Command::Describe(a) => describe::run(global, a).await,
        Command::Delete(a) => delete::run(global, a).await,
        Command::Scale(a) => scale::run(global, a).await,
        Command::Rollout(c) => rollout::run(global, c).await,
        Command::Cordon(a) => drain::cordon(global, a, true).await,
        Command::Uncordon(a) => drain::cordon(global, a, false).await,
        Command::Drain(a) => drain::drain(global, a).await,
        Command::Logs(a) => logs::run(global, a).await,
        Command::Exec(a) => exec::run(global, a).await,
        Command::Image(c) => image::run(global, c).await,
        Command::Datapath(c) => datapath::run(global, c).await,
        Command::Flows(a) => flows::run(global, a).await,
        Command::Auth(c) => auth::run(global, c).await,
        Command::Config(c) => config::run(global, c),
        Command::Dev(a) => dev::run(global, a),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            report::note(&format!("error: starting the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let global = cli.global.clone();
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`jotactl get pods | head`) is not worth a message.
        Err(CtlError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::FAILURE,
        Err(e) => {
            report::eprint(&e);
            if let CtlError::Client(ClientError::Transport(_) | ClientError::Connect { .. }) = &e
                && let Some(hint) = connect::transport_hint(&global)
            {
                report::note(&format!("hint: {hint}"));
            }
            ExitCode::from(e.exit_code())
        }
    }
}
