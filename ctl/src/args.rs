//! Resource arguments as kubectl reads them: `KIND[,KIND…] [NAME…]` or
//! `KIND/NAME…`, kinds by any of their names (`deploy`, `deployments`,
//! `Deployment`, `deployments.apps`), and `all`.

use jotasu_api::{Kind, ObjectRef};

use crate::report::CtlError;

/// The kinds `all` stands for, in kubectl's order.
pub const ALL: &[Kind] = &[
    Kind::Pod,
    Kind::Service,
    Kind::DaemonSet,
    Kind::Deployment,
    Kind::ReplicaSet,
    Kind::HorizontalPodAutoscaler,
    Kind::Job,
    Kind::CronJob,
];

/// A resource argument that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// No kind of that name.
    #[error("the server doesn't have a resource type \"{0}\"")]
    UnknownKind(String),
    /// `KIND/NAME` mixed with a separate kind argument.
    #[error(
        "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'jotactl get resource/<resource_name>' instead of 'jotactl get resource resource/<resource_name>')"
    )]
    MixedForms,
    /// Nothing given.
    #[error(
        "you must specify the type of resource: pods, deployments, daemonsets, services, endpoints, configmaps, secrets, horizontalpodautoscalers (hpa), nodes, or all"
    )]
    NoKind,
    /// `KIND/` or `/NAME`.
    #[error("arguments in resource/name form must have a single resource and name: {0:?}")]
    BadSlash(String),
}

/// What the arguments name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// Kinds, and optionally names (each name looked up in each kind).
    Kinds {
        /// The kinds, in order, without repeats.
        kinds: Vec<Kind>,
        /// The names (empty: every object of the kinds).
        names: Vec<String>,
    },
    /// `KIND/NAME` pairs.
    Named(Vec<(Kind, String)>),
}

impl Targets {
    /// The (kind, name) pairs named, if any names were given.
    pub fn named(&self) -> Vec<(Kind, String)> {
        match self {
            Targets::Kinds { kinds, names } => kinds
                .iter()
                .flat_map(|k| names.iter().map(move |n| (*k, n.clone())))
                .collect(),
            Targets::Named(pairs) => pairs.clone(),
        }
    }

    /// Whether objects are named (rather than every object of kinds).
    pub fn has_names(&self) -> bool {
        match self {
            Targets::Kinds { names, .. } => !names.is_empty(),
            Targets::Named(_) => true,
        }
    }

    /// Every kind involved, in order, without repeats.
    pub fn kinds(&self) -> Vec<Kind> {
        match self {
            Targets::Kinds { kinds, .. } => kinds.clone(),
            Targets::Named(pairs) => {
                let mut kinds = Vec::new();
                for (k, _) in pairs {
                    if !kinds.contains(k) {
                        kinds.push(*k);
                    }
                }
                kinds
            }
        }
    }
}

/// Resolves a kind name: kind, plural or short name in any case, optionally
/// with its group (`deployments.apps`).
pub fn parse_kind(text: &str) -> Result<Kind, ArgError> {
    let unknown = || ArgError::UnknownKind(text.to_owned());
    if let Some(kind) = Kind::from_name(text) {
        return Ok(kind);
    }
    let (name, group) = text.split_once('.').ok_or_else(unknown)?;
    let kind = Kind::from_name(name).ok_or_else(unknown)?;
    if kind.group().eq_ignore_ascii_case(group) {
        Ok(kind)
    } else {
        Err(unknown())
    }
}

/// A comma-separated list of kinds, `all` expanded.
pub fn parse_kinds(text: &str) -> Result<Vec<Kind>, ArgError> {
    let mut kinds = Vec::new();
    for part in text.split(',') {
        let expanded = if part.eq_ignore_ascii_case("all") {
            ALL.to_vec()
        } else {
            vec![parse_kind(part)?]
        };
        for kind in expanded {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    Ok(kinds)
}

/// Reads the resource arguments of get, describe, delete and scale.
pub fn parse_targets(args: &[String]) -> Result<Targets, ArgError> {
    let Some(first) = args.first() else {
        return Err(ArgError::NoKind);
    };
    if args.iter().any(|a| a.contains('/')) {
        if !args.iter().all(|a| a.contains('/')) {
            return Err(ArgError::MixedForms);
        }
        let pairs = args
            .iter()
            .map(|a| match a.split_once('/') {
                Some((k, n)) if !k.is_empty() && !n.is_empty() && !n.contains('/') => {
                    Ok((parse_kind(k)?, n.to_owned()))
                }
                _ => Err(ArgError::BadSlash(a.clone())),
            })
            .collect::<Result<_, _>>()?;
        return Ok(Targets::Named(pairs));
    }
    Ok(Targets::Kinds {
        kinds: parse_kinds(first)?,
        names: args[1..].to_vec(),
    })
}

/// The reference of `name` of `kind` in `namespace` (dropped for
/// cluster-scoped kinds).
pub fn object_ref(kind: Kind, namespace: &str, name: &str) -> ObjectRef {
    ObjectRef {
        kind,
        namespace: kind.namespaced().then(|| namespace.to_owned()),
        name: name.to_owned(),
    }
}

/// The named objects of `resources` (`deployment/web`, `deploy web`).
pub fn named_refs(resources: &[String], namespace: &str) -> Result<Vec<ObjectRef>, CtlError> {
    if resources.is_empty() {
        return Err(CtlError::Usage(
            "You must provide one or more resources by argument or filename.".into(),
        ));
    }
    let targets = parse_targets(resources)?;
    if !targets.has_names() {
        return Err(CtlError::Usage(
            "resource(s) were provided, but no name was specified".into(),
        ));
    }
    Ok(targets
        .named()
        .iter()
        .map(|(k, n)| object_ref(*k, namespace, n))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn kinds_by_any_name() {
        assert_eq!(parse_kind("deploy"), Ok(Kind::Deployment));
        assert_eq!(parse_kind("Deployments"), Ok(Kind::Deployment));
        assert_eq!(parse_kind("deployments.apps"), Ok(Kind::Deployment));
        assert_eq!(parse_kind("deployment.apps"), Ok(Kind::Deployment));
        assert_eq!(parse_kind("hpa"), Ok(Kind::HorizontalPodAutoscaler));
        assert_eq!(
            parse_kind("horizontalpodautoscalers.autoscaling"),
            Ok(Kind::HorizontalPodAutoscaler)
        );
        assert_eq!(parse_kind("svc"), Ok(Kind::Service));
        assert_eq!(parse_kind("no"), Ok(Kind::Node));
        assert_eq!(
            parse_kind("deployments.batch"),
            Err(ArgError::UnknownKind("deployments.batch".into()))
        );
        assert_eq!(
            parse_kind("ingresses").unwrap_err().to_string(),
            "the server doesn't have a resource type \"ingresses\""
        );
        assert_eq!(
            parse_kinds("deploy,svc,deployments").unwrap(),
            [Kind::Deployment, Kind::Service]
        );
        assert_eq!(parse_kinds("all").unwrap(), ALL);
        assert_eq!(parse_kind("jobs.batch"), Ok(Kind::Job));
        assert_eq!(parse_kind("cj"), Ok(Kind::CronJob));
    }

    #[test]
    fn kind_and_names() {
        let t = parse_targets(&args(&["deploy,svc", "web", "db"])).unwrap();
        assert_eq!(
            t,
            Targets::Kinds {
                kinds: vec![Kind::Deployment, Kind::Service],
                names: args(&["web", "db"])
            }
        );
        assert!(t.has_names());
        assert_eq!(
            t.named(),
            [
                (Kind::Deployment, "web".to_owned()),
                (Kind::Deployment, "db".to_owned()),
                (Kind::Service, "web".to_owned()),
                (Kind::Service, "db".to_owned()),
            ]
        );
        let t = parse_targets(&args(&["pods"])).unwrap();
        assert!(!t.has_names());
        assert_eq!(t.kinds(), [Kind::Pod]);
    }

    #[test]
    fn slash_form() {
        let t = parse_targets(&args(&["deploy/web", "svc/web", "deployment/db"])).unwrap();
        assert_eq!(t.kinds(), [Kind::Deployment, Kind::Service]);
        assert_eq!(
            t.named(),
            [
                (Kind::Deployment, "web".to_owned()),
                (Kind::Service, "web".to_owned()),
                (Kind::Deployment, "db".to_owned()),
            ]
        );
        assert_eq!(
            parse_targets(&args(&["deploy", "svc/web"])),
            Err(ArgError::MixedForms)
        );
        for bad in ["deploy/", "/web", "deploy/a/b"] {
            assert_eq!(
                parse_targets(&args(&[bad])),
                Err(ArgError::BadSlash(bad.into()))
            );
        }
        assert_eq!(
            parse_targets(&args(&["nope/x"])),
            Err(ArgError::UnknownKind("nope".into()))
        );
        assert_eq!(parse_targets(&[]), Err(ArgError::NoKind));
    }

    #[test]
    fn refs_drop_namespace_of_cluster_kinds() {
        assert_eq!(object_ref(Kind::Node, "default", "n1").namespace, None);
        assert_eq!(
            object_ref(Kind::Pod, "ns", "p").namespace.as_deref(),
            Some("ns")
        );
    }
}
