//! `jotactl get`: objects by name or by kind (optionally `-l`, `-A`), shown
//! as kubectl tables, YAML, JSON or names.

use jotasu_api::{Kind, LabelSelector, Object};

use crate::args::{Targets, object_ref, parse_targets};
use crate::cli::{GetArgs, GlobalArgs, OutputFormat};
use crate::connect;
use crate::output;
use crate::report::{CtlError, Failures, note, out};
use crate::table::{self, TableOptions};

/// Objects found, grouped by kind in the order asked for.
#[derive(Debug, Default)]
pub struct Found {
    groups: Vec<(Kind, Vec<Object>)>,
}

impl Found {
    fn push(&mut self, object: Object) {
        let kind = object.kind();
        match self.groups.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, objects)) => objects.push(object),
            None => self.groups.push((kind, vec![object])),
        }
    }

    fn is_empty(&self) -> bool {
        self.groups.iter().all(|(_, o)| o.is_empty())
    }

    fn all(&self) -> Vec<Object> {
        self.groups
            .iter()
            .flat_map(|(_, o)| o.iter().cloned())
            .collect()
    }
}

/// Checks flag combinations kubectl refuses.
pub fn check(targets: &Targets, selector: &str, all_namespaces: bool) -> Result<(), CtlError> {
    if targets.has_names() && !selector.is_empty() {
        return Err(CtlError::Usage(
            "name cannot be provided when a selector is specified".into(),
        ));
    }
    if targets.has_names() && all_namespaces {
        return Err(CtlError::Usage(
            "a resource cannot be retrieved by name across all namespaces".into(),
        ));
    }
    LabelSelector::parse(selector).map_err(|e| CtlError::Usage(e.to_string()))?;
    Ok(())
}

/// `No resources found in default namespace.`, or `No resources found`
/// across namespaces or for cluster-scoped kinds.
pub fn nothing_found(kinds: &[Kind], namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if kinds.iter().any(|k| k.namespaced()) => {
            format!("No resources found in {ns} namespace.")
        }
        _ => "No resources found".to_owned(),
    }
}

/// The tables of every kind found, separated by blank lines.
pub fn tables(found: &Found, options: TableOptions) -> String {
    let shown: Vec<&(Kind, Vec<Object>)> =
        found.groups.iter().filter(|(_, o)| !o.is_empty()).collect();
    let options = TableOptions {
        kind_prefix: shown.len() > 1,
        ..options
    };
    shown
        .iter()
        .map(|(kind, objects)| table::render(*kind, objects, &options))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `get`.
pub async fn run(global: &GlobalArgs, args: &GetArgs) -> Result<(), CtlError> {
    let targets = parse_targets(&args.resources)?;
    let selector = args.selector.as_deref().unwrap_or_default();
    check(&targets, selector, args.all_namespaces)?;
    let namespace = connect::namespace(global);
    let client = connect::connect(global).await?;
    let mut failures = Failures::default();
    let mut found = Found::default();
    if targets.has_names() {
        for (kind, name) in targets.named() {
            match client.get(&object_ref(kind, namespace, &name)).await {
                Ok(object) => found.push(object),
                Err(e) => failures.report(e),
            }
        }
    } else {
        for kind in targets.kinds() {
            let ns = (!args.all_namespaces && kind.namespaced()).then_some(namespace);
            let list = client.list(kind, ns, selector).await?;
            found.groups.push((kind, list.items));
        }
    }
    let single = targets.named().len() == 1;
    match args.output {
        Some(OutputFormat::Yaml) => out(&output::yaml(&found.all(), single)?)?,
        Some(OutputFormat::Json) => out(&output::json(&found.all(), single)?)?,
        Some(OutputFormat::Name) => out(&output::names(&found.all()))?,
        None | Some(OutputFormat::Wide) => {
            if found.is_empty() {
                if !targets.has_names() {
                    let ns = (!args.all_namespaces).then_some(namespace);
                    note(&nothing_found(&targets.kinds(), ns));
                }
            } else {
                out(&tables(
                    &found,
                    TableOptions {
                        wide: args.output == Some(OutputFormat::Wide),
                        namespace_column: args.all_namespaces,
                        kind_prefix: false,
                        show_labels: args.show_labels,
                        no_headers: args.no_headers,
                        now: jotasu_api::meta::unix_now(),
                    },
                ))?;
            }
        }
    }
    failures.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::parse_targets;
    use serde_json::json;

    fn obj(v: serde_json::Value) -> Object {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn refused_combinations() {
        let named = parse_targets(&["deploy".into(), "web".into()]).unwrap();
        let kinds = parse_targets(&["deploy".into()]).unwrap();
        assert!(check(&named, "app=web", false).is_err());
        assert!(check(&named, "", true).is_err());
        assert!(check(&kinds, "app=web", true).is_ok());
        let e = check(&kinds, "app in (", false).unwrap_err();
        assert!(e.to_string().contains("invalid label selector"), "{e}");
    }

    #[test]
    fn empty_messages() {
        assert_eq!(
            nothing_found(&[Kind::Pod], Some("default")),
            "No resources found in default namespace."
        );
        assert_eq!(nothing_found(&[Kind::Pod], None), "No resources found");
        assert_eq!(
            nothing_found(&[Kind::Node], Some("default")),
            "No resources found"
        );
    }

    #[test]
    fn several_kinds_are_prefixed_and_separated() {
        let mut found = Found::default();
        found.push(obj(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "creationTimestamp": "2024-05-01T12:00:00Z"}})));
        found.push(obj(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "creationTimestamp": "2024-05-01T12:00:00Z"}})));
        found.groups.push((Kind::Pod, Vec::new()));
        let text = tables(
            &found,
            TableOptions {
                now: 1_714_564_805,
                ..TableOptions::default()
            },
        );
        assert_eq!(
            text,
            "NAME          DATA   AGE\nconfigmap/c   0      5s\n\n\
             NAME       TYPE     DATA   AGE\nsecret/s   Opaque   0      5s\n"
        );
    }
}
