//! `jotactl delete`: by name (`KIND NAME…`, `KIND/NAME…`), by the objects
//! of manifests (`-f`), or every object of kinds (`-l SEL`, `--all`). The
//! server deletes what each object owns; only the objects the user named
//! are printed. A failure does not stop the others.

use std::collections::HashSet;

use jotasu_api::client::Client;
use jotasu_api::{Kind, LabelSelector, ObjectRef};

use crate::args::{Targets, object_ref, parse_targets};
use crate::cli::{DeleteArgs, GlobalArgs};
use crate::connect;
use crate::get::nothing_found;
use crate::manifests;
use crate::names::deleted;
use crate::report::{CtlError, Failures, note, out};

/// What to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// These objects.
    Named(Vec<ObjectRef>),
    /// Every object of these kinds matching the selector (`--all`: empty).
    Selected {
        /// The kinds.
        kinds: Vec<Kind>,
        /// kubectl's `-l` syntax.
        selector: String,
    },
}

/// Works out what the arguments ask to delete.
pub fn plan(
    args: &DeleteArgs,
    namespace: &str,
    explicit_ns: Option<&str>,
) -> Result<Plan, CtlError> {
    let selector = args.selector.clone().unwrap_or_default();
    let selecting = args.all || args.selector.is_some();
    if !args.files.files.is_empty() || args.kustomize.is_some() {
        if !args.resources.is_empty() || selecting {
            return Err(CtlError::Usage(
                "resources, -l and --all cannot be combined with -f or -k".into(),
            ));
        }
        let sources = match &args.kustomize {
            Some(dir) => vec![crate::kustomize::source(dir)?],
            None => manifests::read_sources(&args.files)?,
        };
        let refs = manifests::refs(&sources, explicit_ns)?;
        if refs.is_empty() {
            return Err(CtlError::Usage("no objects passed to delete".into()));
        }
        return Ok(Plan::Named(refs));
    }
    if args.resources.is_empty() {
        return Err(CtlError::Usage(
            "You must provide one or more resources by argument or filename.".into(),
        ));
    }
    let targets = parse_targets(&args.resources)?;
    match (&targets, selecting) {
        (t, true) if t.has_names() => Err(CtlError::Usage(
            "names cannot be given with --all or --selector".into(),
        )),
        (Targets::Kinds { kinds, .. }, true) => {
            if args.all && args.selector.is_some() {
                return Err(CtlError::Usage(
                    "--all and --selector cannot be combined".into(),
                ));
            }
            LabelSelector::parse(&selector).map_err(|e| CtlError::Usage(e.to_string()))?;
            Ok(Plan::Selected {
                kinds: kinds.clone(),
                selector,
            })
        }
        (t, false) if t.has_names() => Ok(Plan::Named(
            t.named()
                .iter()
                .map(|(k, n)| object_ref(*k, namespace, n))
                .collect(),
        )),
        _ => Err(CtlError::Usage(
            "resource(s) were provided, but no name was specified (give names, -l SELECTOR or --all)"
                .into(),
        )),
    }
}

/// Deletes objects one by one, remembering what the server's cascades took.
struct Deleter<'a> {
    client: &'a Client,
    ignore_not_found: bool,
    gone: HashSet<ObjectRef>,
    failures: Failures,
}

impl Deleter<'_> {
    /// Deletes `r`; `quiet_if_gone` skips an object that vanished meanwhile.
    async fn delete(&mut self, r: &ObjectRef, quiet_if_gone: bool) -> Result<(), CtlError> {
        if self.gone.contains(r) {
            // Already deleted by this command, as a dependent of an earlier one.
            return self.print(r);
        }
        match self.client.delete(r, None).await {
            Ok(refs) => {
                self.gone.extend(refs);
                self.print(r)
            }
            Err(e) if e.is_not_found() && (self.ignore_not_found || quiet_if_gone) => Ok(()),
            Err(e) => {
                self.failures.report(e);
                Ok(())
            }
        }
    }

    fn print(&self, r: &ObjectRef) -> Result<(), CtlError> {
        out(&format!("{}\n", deleted(r)))
    }
}

/// Runs `delete`.
pub async fn run(global: &GlobalArgs, args: &DeleteArgs) -> Result<(), CtlError> {
    let namespace = connect::namespace(global);
    let plan = plan(args, namespace, connect::explicit_namespace(global))?;
    let client = connect::connect(global).await?;
    let mut deleter = Deleter {
        client: &client,
        ignore_not_found: args.ignore_not_found,
        gone: HashSet::new(),
        failures: Failures::default(),
    };
    match plan {
        Plan::Named(refs) => {
            for r in &refs {
                deleter.delete(r, false).await?;
            }
        }
        Plan::Selected { kinds, selector } => {
            let mut any = false;
            for kind in &kinds {
                let ns = kind.namespaced().then_some(namespace);
                let list = client.list(*kind, ns, &selector).await?;
                for object in &list.items {
                    any = true;
                    deleter.delete(&object.object_ref(), true).await?;
                }
            }
            if !any {
                note(&nothing_found(&kinds, None));
            }
        }
    }
    deleter.failures.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::FileArgs;

    fn args(resources: &[&str]) -> DeleteArgs {
        DeleteArgs {
            resources: resources.iter().map(|s| (*s).to_owned()).collect(),
            files: FileArgs {
                files: Vec::new(),
                recursive: false,
            },
            kustomize: None,
            selector: None,
            all: false,
            ignore_not_found: false,
        }
    }

    #[test]
    fn plans() {
        let p = plan(&args(&["deploy", "a", "b"]), "ns", None).unwrap();
        assert_eq!(
            p,
            Plan::Named(vec![
                object_ref(Kind::Deployment, "ns", "a"),
                object_ref(Kind::Deployment, "ns", "b"),
            ])
        );
        let p = plan(&args(&["svc/web", "no/n1"]), "ns", None).unwrap();
        assert_eq!(
            p,
            Plan::Named(vec![
                object_ref(Kind::Service, "ns", "web"),
                object_ref(Kind::Node, "ns", "n1"),
            ])
        );
        let mut a = args(&["cm,secret"]);
        a.all = true;
        assert_eq!(
            plan(&a, "ns", None).unwrap(),
            Plan::Selected {
                kinds: vec![Kind::ConfigMap, Kind::Secret],
                selector: String::new()
            }
        );
        let mut a = args(&["cm"]);
        a.selector = Some("app=web".into());
        assert!(matches!(
            plan(&a, "ns", None).unwrap(),
            Plan::Selected { .. }
        ));
        assert!(plan(&args(&["cm"]), "ns", None).is_err());
        assert!(plan(&args(&[]), "ns", None).is_err());
        let mut a = args(&["cm", "x"]);
        a.all = true;
        assert!(plan(&a, "ns", None).is_err());
    }

    #[test]
    fn kustomization_names_what_it_renders() {
        let mut a = args(&[]);
        a.kustomize = Some(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kustomize/prod"),
        );
        let Plan::Named(refs) = plan(&a, "default", None).unwrap() else {
            panic!("names expected");
        };
        assert!(refs.contains(&object_ref(Kind::Deployment, "prod", "prod-web")));
        assert!(refs.contains(&object_ref(
            Kind::ConfigMap,
            "prod",
            "prod-app-config-b4tm6m8ktd"
        )));
        let mut both = args(&["cm"]);
        both.kustomize = a.kustomize.clone();
        assert!(plan(&both, "default", None).is_err());
    }
}
