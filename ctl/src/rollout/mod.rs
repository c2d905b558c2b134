//! `jotactl rollout`: follow a Deployment's, DaemonSet's or StatefulSet's rollout until
//! it finishes (`status`), list its revisions (`history`), and roll back to
//! one (`undo`) — kubectl's messages, output and exit codes. Each
//! subcommand's logic is a pure function of the objects, tested without a
//! server; the `run` functions fetch, watch and write.

mod history;
mod statefulset;
mod status;
mod undo;

use std::time::Duration;

use clap::{ArgAction, Args, Subcommand};
use jotasu_api::{Kind, ObjectRef};

use crate::cli::GlobalArgs;
use crate::report::CtlError;

/// `jotactl rollout …`.
#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Watch a rollout until it finishes (exit 1 if it fails or times out).
    Status(StatusArgs),
    /// List a Deployment's revisions, or show one's pod template.
    History(HistoryArgs),
    /// Roll a Deployment back to its previous (or a given) revision.
    Undo(UndoArgs),
}

/// `jotactl rollout status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// KIND NAME or KIND/NAME (deployments, daemonsets).
    #[arg(value_name = "RESOURCE")]
    pub resources: Vec<String>,
    /// Keep watching until the rollout finishes (--watch=false: print the status once).
    #[arg(
        short = 'w',
        long,
        action = ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_value_t = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub watch: bool,
    /// How long to wait (e.g. 30s, 5m, 1h30m); 0 waits forever.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Fail unless the Deployment is at this revision (0: any).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub revision: i64,
}

/// `jotactl rollout history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// KIND NAME or KIND/NAME (deployments).
    #[arg(value_name = "RESOURCE")]
    pub resources: Vec<String>,
    /// Show the pod template of this revision.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub revision: i64,
}

/// `jotactl rollout undo`.
#[derive(Debug, Args)]
pub struct UndoArgs {
    /// KIND NAME or KIND/NAME (deployments).
    #[arg(value_name = "RESOURCE")]
    pub resources: Vec<String>,
    /// The revision to roll back to (0: the previous one).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub to_revision: i64,
}

/// Runs `rollout`.
pub async fn run(global: &GlobalArgs, command: &RolloutCommand) -> Result<(), CtlError> {
    match command {
        RolloutCommand::Status(a) => status::run(global, a).await,
        RolloutCommand::History(a) => history::run(global, a).await,
        RolloutCommand::Undo(a) => undo::run(global, a).await,
    }
}

/// The named objects of `resources` (`deployment/web`, `deploy web`).
pub fn targets(resources: &[String], namespace: &str) -> Result<Vec<ObjectRef>, CtlError> {
    crate::args::named_refs(resources, namespace)
}

/// kubectl's name for a kind in "not implemented" errors (`Service`, `Deployment.apps`).
pub fn group_kind(kind: Kind) -> String {
    match kind.group() {
        "" => kind.as_str().to_owned(),
        group => format!("{}.{group}", kind.as_str()),
    }
}

/// Parses a Go duration (`300ms`, `30s`, `5m`, `1h30m`, `1.5h`, `0`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0.0_f64;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        if digits == 0 {
            return Err(invalid());
        }
        let value: f64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += value * seconds;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::object_ref;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;

    fn parse(args: &[&str]) -> RolloutCommand {
        let cli =
            Cli::try_parse_from(std::iter::once("jotactl").chain(args.iter().copied())).unwrap();
        match cli.command {
            Command::Rollout(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "10", "s", "5x", "-1s", "1..5s"] {
            assert_eq!(
                parse_duration(bad),
                Err(format!("time: invalid duration {bad:?}")),
                "{bad}"
            );
        }
    }

    #[test]
    fn flags() {
        let RolloutCommand::Status(s) = parse(&["rollout", "status", "deploy/web"]) else {
            panic!()
        };
        assert!(s.watch);
        assert_eq!(s.timeout, Duration::ZERO);
        let RolloutCommand::Status(s) = parse(&[
            "rollout",
            "status",
            "deployment",
            "web",
            "--watch=false",
            "--timeout",
            "2m",
        ]) else {
            panic!()
        };
        assert!(!s.watch);
        assert_eq!(s.timeout, Duration::from_secs(120));
        assert_eq!(s.resources, ["deployment", "web"]);
        let RolloutCommand::Undo(u) = parse(&["rollout", "undo", "deploy/web", "--to-revision=3"])
        else {
            panic!()
        };
        assert_eq!(u.to_revision, 3);
        let RolloutCommand::History(h) = parse(&["-n", "x", "rollout", "history", "deploy/web"])
        else {
            panic!()
        };
        assert_eq!(h.revision, 0);
    }

    #[test]
    fn resource_forms() {
        let web = object_ref(Kind::Deployment, "ns", "web");
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            targets(&args(&["deployment/web"]), "ns").unwrap(),
            std::slice::from_ref(&web)
        );
        assert_eq!(
            targets(&args(&["deploy/web"]), "ns").unwrap(),
            std::slice::from_ref(&web)
        );
        assert_eq!(targets(&args(&["deployment", "web"]), "ns").unwrap(), [web]);
        assert!(targets(&args(&["deployment"]), "ns").is_err());
        assert!(targets(&[], "ns").is_err());
        assert_eq!(group_kind(Kind::Deployment), "Deployment.apps");
        assert_eq!(group_kind(Kind::Service), "Service");
    }
}
