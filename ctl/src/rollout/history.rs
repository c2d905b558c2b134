//! `jotactl rollout history`: a Deployment's revisions (one per
//! ReplicaSet it controls, from their `deployment.kubernetes.io/revision`
//! annotations) with their change causes, or one revision's pod template.

use std::collections::BTreeMap;

use jotasu_api::client::Client;
use jotasu_api::{Deployment, Kind, Object, PodTemplateSpec, ReplicaSet};

use super::{HistoryArgs, group_kind, targets};
use crate::cli::GlobalArgs;
use crate::connect;
use crate::describe;
use crate::names::ref_slash_name;
use crate::report::{CtlError, Failures, out};
use crate::tabwriter::{DESCRIBE, align};

/// The revision annotation.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The change-cause annotation.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// The revision of a ReplicaSet (0 without one; `None` if not a number).
pub fn revision(rs: &ReplicaSet) -> Option<i64> {
    match rs.metadata.annotations.get(REVISION) {
        None => Some(0),
        Some(v) => v.parse().ok(),
    }
}

/// The ReplicaSets `d` controls, among `items`.
pub fn owned_sets(d: &Deployment, items: Vec<Object>) -> Vec<ReplicaSet> {
    let uid = d.metadata.uid.as_deref();
    items
        .into_iter()
        .filter_map(|o| ReplicaSet::try_from(o).ok())
        .filter(|rs| {
            rs.metadata
                .controller_ref()
                .is_some_and(|r| r.kind == "Deployment" && Some(r.uid.as_str()) == uid)
        })
        .collect()
}

/// Revision → ReplicaSet (the last one listed wins a tie, as in kubectl).
fn by_revision(sets: &[ReplicaSet]) -> BTreeMap<i64, &ReplicaSet> {
    sets.iter()
        .filter_map(|rs| Some((revision(rs)?, rs)))
        .collect()
}

/// kubectl's history: `REVISION  CHANGE-CAUSE` rows, or `No rollout history found.`
pub fn history_table(sets: &[ReplicaSet]) -> String {
    history_rows(
        by_revision(sets)
            .into_iter()
            .map(|(rev, rs)| (rev, &rs.metadata.annotations)),
    )
}

/// The history table of revisions, each with the annotations that hold
/// its change cause.
pub fn history_rows<'a>(
    revisions: impl Iterator<Item = (i64, &'a BTreeMap<String, String>)>,
) -> String {
    let mut text = String::from("REVISION\tCHANGE-CAUSE\n");
    let mut any = false;
    for (rev, annotations) in revisions {
        any = true;
        let cause = annotations
            .get(CHANGE_CAUSE)
            .filter(|c| !c.is_empty())
            .map_or("<none>", String::as_str);
        text.push_str(&format!("{rev}\t{cause}\n"));
    }
    if !any {
        return "No rollout history found.".into();
    }
    align(&text, DESCRIBE)
}

/// kubectl's `Pod Template:` section of a describe page.
pub fn template_text(template: &PodTemplateSpec) -> String {
    let mut rs = ReplicaSet::default();
    rs.spec.template = template.clone();
    let page = describe::page(&Object::ReplicaSet(rs), None, &[], 0);
    let start = page.find("Pod Template:").unwrap_or(0);
    let mut text = page[start..].to_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// The pod template of `revision`, with its change cause as an annotation.
pub fn revision_template(sets: &[ReplicaSet], revision: i64) -> Result<String, String> {
    let revisions = by_revision(sets);
    let rs = revisions
        .get(&revision)
        .ok_or_else(|| "unable to find the specified revision".to_owned())?;
    let mut template = rs.spec.template.clone();
    if let Some(cause) = rs
        .metadata
        .annotations
        .get(CHANGE_CAUSE)
        .filter(|c| !c.is_empty())
    {
        template
            .metadata
            .annotations
            .insert(CHANGE_CAUSE.into(), cause.clone());
    }
    Ok(template_text(&template))
}

/// The Deployment `r` names and the ReplicaSets it controls.
pub async fn fetch(
    client: &Client,
    r: &jotasu_api::ObjectRef,
) -> Result<(Deployment, Vec<ReplicaSet>), CtlError> {
    let object = client.get(r).await?;
    let Object::Deployment(d) = object else {
        return Err(CtlError::Usage(format!(
            "no history viewer has been implemented for {:?}",
            group_kind(r.kind)
        )));
    };
    let items = client
        .list(Kind::ReplicaSet, r.namespace.as_deref(), "")
        .await?
        .items;
    let sets = owned_sets(&d, items);
    Ok((d, sets))
}

/// Runs `rollout history`.
pub async fn run(global: &GlobalArgs, args: &HistoryArgs) -> Result<(), CtlError> {
    let refs = targets(&args.resources, connect::namespace(global))?;
    let client = connect::connect(global).await?;
    let mut failures = Failures::default();
    for r in &refs {
        if r.kind == Kind::StatefulSet {
            match super::statefulset::history(&client, r, args.revision).await {
                Ok(text) => out(&format!("{} {text}\n", ref_slash_name(r)))?,
                Err(e) => failures.report(e),
            }
            continue;
        }
        if r.kind != Kind::Deployment {
            failures.report(CtlError::Usage(format!(
                "no history viewer has been implemented for {:?}",
                group_kind(r.kind)
            )));
            continue;
        }
        let (_, sets) = match fetch(&client, r).await {
            Ok(found) => found,
            Err(e) => {
                failures.report(e);
                continue;
            }
        };
        let text = if args.revision > 0 {
            match revision_template(&sets, args.revision) {
                Ok(t) => format!("with revision #{}\n{t}", args.revision),
                Err(e) => {
                    failures.report(CtlError::Usage(e));
                    continue;
                }
            }
        } else {
            format!("\n{}", history_table(&sets))
        };
        out(&format!("{} {text}\n", ref_slash_name(r)))?;
    }
    failures.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub fn rs(name: &str, rev: &str, image: &str, cause: Option<&str>) -> ReplicaSet {
        let mut annotations = serde_json::Map::new();
        annotations.insert(REVISION.into(), json!(rev));
        if let Some(c) = cause {
            annotations.insert(CHANGE_CAUSE.into(), json!(c));
        }
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "annotations": annotations,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "web", "uid": "d1", "controller": true}]},
            "spec": {"selector": {"matchLabels": {"app": "web", "pod-template-hash": name}},
                "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": name}},
                             "spec": {"containers": [{"name": "web", "image": image}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn table_sorted_with_causes() {
        let sets = [
            rs("b", "2", "v2", Some("kubectl set image v2")),
            rs("a", "1", "v1", None),
            rs("c", "10", "v3", Some("")),
        ];
        assert_eq!(
            history_table(&sets),
            "REVISION  CHANGE-CAUSE\n1         <none>\n2         kubectl set image v2\n10        <none>\n"
        );
        assert_eq!(history_table(&[]), "No rollout history found.");
    }

    #[test]
    fn one_revision() {
        let sets = [rs("a", "1", "v1", Some("first")), rs("b", "2", "v2", None)];
        let t = revision_template(&sets, 1).unwrap();
        assert!(t.starts_with("Pod Template:\n"), "{t}");
        assert!(t.contains("v1"), "{t}");
        assert!(t.contains("kubernetes.io/change-cause: first"), "{t}");
        assert!(t.contains("pod-template-hash=a"), "{t}");
        assert_eq!(
            revision_template(&sets, 7),
            Err("unable to find the specified revision".into())
        );
    }

    #[test]
    fn only_owned_sets() {
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "uid": "d1"}
        }))
        .unwrap();
        let mut foreign = rs("x", "1", "v1", None);
        foreign.metadata.owner_references[0].uid = "other".into();
        let sets = owned_sets(&d, vec![rs("a", "1", "v1", None).into(), foreign.into()]);
        assert_eq!(sets.len(), 1);
        assert_eq!(sets[0].metadata.name(), "a");
    }
}
