//! `jotactl auth can-i VERB RESOURCE [NAME]` and `jotactl auth whoami`,
//! as kubectl's: `yes` or `no` (exit 0 or 1), and the caller's user name
//! and groups.

use clap::{Args, Subcommand};
use jotasu_api::grpc::v1::ResourceAttributes;

use crate::args::parse_kind;
use crate::cli::GlobalArgs;
use crate::connect;
use crate::report::{CtlError, out};

/// `jotactl auth …`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Whether an action is allowed: jotactl auth can-i VERB TYPE[/NAME] [NAME].
    CanI(CanIArgs),
    /// Who the server takes you for.
    Whoami,
}

/// `jotactl auth can-i`.
#[derive(Debug, Args)]
pub struct CanIArgs {
    /// get, list, watch, create, update, patch, delete, or *.
    pub verb: String,
    /// The resource (pods, deployments.apps, secrets, …), optionally TYPE/NAME.
    pub resource: String,
    /// One object's name.
    pub name: Option<String>,
    /// A subresource (log, exec, status, scale).
    #[arg(long)]
    pub subresource: Option<String>,
    /// In every namespace (and cluster-scoped).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Ask for this user instead of yourself (needs the right to review others' access).
    #[arg(long = "as", value_name = "USER")]
    pub as_user: Option<String>,
    /// With --as: a group of that user; repeatable.
    #[arg(long = "as-group", value_name = "GROUP")]
    pub as_groups: Vec<String>,
    /// Print nothing; only the exit code answers.
    #[arg(short, long)]
    pub quiet: bool,
}

/// The attributes `args` ask about (`namespace`: the command's).
pub fn attributes(args: &CanIArgs, namespace: &str) -> Result<ResourceAttributes, CtlError> {
    let (resource, name) = match args.resource.split_once('/') {
        Some((r, n)) if args.name.is_none() && !n.is_empty() => (r, Some(n.to_owned())),
        Some(_) => {
            return Err(CtlError::Usage(format!(
                "{:?}: give a name either as TYPE/NAME or as a separate argument",
                args.resource
            )));
        }
        None => (args.resource.as_str(), args.name.clone()),
    };
    let (group, plural, namespaced) = if resource == "*" {
        ("*".to_owned(), "*".to_owned(), true)
    } else if let Ok(kind) = parse_kind(resource) {
        (
            kind.group().to_owned(),
            kind.plural().to_owned(),
            kind.namespaced(),
        )
    } else {
        // A resource jotasu does not serve (RBAC still answers for it).
        match resource.split_once('.') {
            Some((plural, group)) => (group.to_owned(), plural.to_owned(), true),
            None => (String::new(), resource.to_owned(), true),
        }
    };
    Ok(ResourceAttributes {
        verb: args.verb.clone(),
        group,
        resource: plural,
        subresource: args.subresource.clone().unwrap_or_default(),
        namespace: if args.all_namespaces || !namespaced {
            String::new()
        } else {
            namespace.to_owned()
        },
        name: name.unwrap_or_default(),
    })
}

/// Runs `auth …`.
pub async fn run(global: &GlobalArgs, command: &AuthCommand) -> Result<(), CtlError> {
    let client = connect::connect(global).await?;
    match command {
        AuthCommand::Whoami => {
            let (user, groups) = client.who_am_i().await?;
            out(&format!(
                "ATTRIBUTE   VALUE\nUsername    {user}\nGroups      [{}]\n",
                groups.join(" ")
            ))
        }
        AuthCommand::CanI(args) => {
            if args.as_user.is_none() && !args.as_groups.is_empty() {
                return Err(CtlError::Usage("--as-group needs --as".into()));
            }
            let attributes = attributes(args, connect::namespace(global))?;
            let user = args
                .as_user
                .as_deref()
                .map(|u| (u, args.as_groups.as_slice()));
            let review = client.access_review(attributes, user).await?;
            if !args.quiet {
                out(if review.allowed { "yes\n" } else { "no\n" })?;
            }
            if review.allowed {
                Ok(())
            } else {
                Err(CtlError::Reported)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(verb: &str, resource: &str, name: Option<&str>) -> CanIArgs {
        CanIArgs {
            verb: verb.into(),
            resource: resource.into(),
            name: name.map(str::to_owned),
            subresource: None,
            all_namespaces: false,
            as_user: None,
            as_groups: Vec::new(),
            quiet: false,
        }
    }

    #[test]
    fn resources_as_kubectl_names_them() {
        let a = attributes(&args("list", "deploy", None), "dev").unwrap();
        assert_eq!(
            (a.group.as_str(), a.resource.as_str(), a.namespace.as_str()),
            ("apps", "deployments", "dev")
        );
        let a = attributes(&args("get", "pods/web", None), "dev").unwrap();
        assert_eq!((a.resource.as_str(), a.name.as_str()), ("pods", "web"));
        let a = attributes(&args("get", "nodes", Some("n1")), "dev").unwrap();
        assert_eq!(a.namespace, "", "nodes are cluster-scoped");
        let a = attributes(
            &args(
                "create",
                "certificatesigningrequests.certificates.k8s.io",
                None,
            ),
            "dev",
        )
        .unwrap();
        assert_eq!(
            (a.group.as_str(), a.resource.as_str()),
            ("certificates.k8s.io", "certificatesigningrequests")
        );
        assert!(attributes(&args("get", "pods/web", Some("x")), "dev").is_err());
    }
}
