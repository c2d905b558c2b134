//! `jotactl rollout undo`: puts a previous revision's pod template (from
//! its ReplicaSet, minus the `pod-template-hash` label) and annotations
//! back into the Deployment, applied with the Deployment's
//! resourceVersion as a precondition. The controller then finds the old
//! ReplicaSet by its template and makes it the newest revision.

use std::collections::BTreeMap;

use jotasu_api::{Deployment, Object, ReplicaSet};

use super::history::{fetch, revision};
use super::{UndoArgs, group_kind, targets};
use crate::cli::GlobalArgs;
use crate::connect;
use crate::names::ref_slash_name;
use crate::report::{CtlError, Failures, out};

/// The label the controller adds to a revision's template.
const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Annotations that belong to the Deployment, not to a revision.
const KEEP: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// What an undo does.
#[derive(Debug, Clone, PartialEq)]
pub enum Undo<T> {
    /// Apply this object.
    RollBack(Box<T>),
    /// The current template already is that revision's.
    Skip(i64),
}

/// kubectl's refusal of a revision that is not in the history.
pub fn not_found(revision: i64) -> String {
    format!("unable to find specified revision {revision} in history")
}

/// The ReplicaSet of `to_revision`, or (0) of the revision before the latest.
pub fn find_revision<'a>(
    d: &Deployment,
    sets: &'a [ReplicaSet],
    to_revision: i64,
) -> Result<(i64, &'a ReplicaSet), String> {
    if to_revision < 0 {
        return Err(not_found(to_revision));
    }
    let mut revisions: Vec<(i64, &ReplicaSet)> = sets
        .iter()
        .filter_map(|rs| Some((revision(rs)?, rs)))
        .collect();
    if to_revision > 0 {
        return revisions
            .into_iter()
            .find(|(r, _)| *r == to_revision)
            .ok_or_else(|| not_found(to_revision));
    }
    revisions.sort_by_key(|(r, _)| std::cmp::Reverse(*r));
    revisions.get(1).copied().ok_or_else(|| {
        format!(
            "no rollout history found for deployment {:?}",
            d.metadata.name()
        )
    })
}

fn without_hash(template: &jotasu_api::PodTemplateSpec) -> jotasu_api::PodTemplateSpec {
    let mut t = template.clone();
    t.metadata.labels.remove(POD_TEMPLATE_HASH);
    t
}

/// Decides the rollback of `d` to `to_revision` (0: the previous one).
pub fn rollback(
    d: &Deployment,
    sets: &[ReplicaSet],
    to_revision: i64,
) -> Result<Undo<Deployment>, String> {
    let (rev, rs) = find_revision(d, sets, to_revision)?;
    if d.spec.paused {
        return Err(
            "you cannot rollback a paused deployment; resume it first (spec.paused: false) and try again"
                .into(),
        );
    }
    let template = without_hash(&rs.spec.template);
    if template == without_hash(&d.spec.template) {
        return Ok(Undo::Skip(rev));
    }
    let mut annotations: BTreeMap<String, String> = d
        .metadata
        .annotations
        .iter()
        .filter(|(k, _)| KEEP.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in &rs.metadata.annotations {
        if !KEEP.contains(&k.as_str()) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    let mut updated = d.clone();
    updated.spec.template = template;
    updated.metadata.annotations = annotations;
    updated.status = None;
    Ok(Undo::RollBack(Box::new(updated)))
}

/// Runs `rollout undo`.
pub async fn run(global: &GlobalArgs, args: &UndoArgs) -> Result<(), CtlError> {
    let refs = targets(&args.resources, connect::namespace(global))?;
    let client = connect::connect(global).await?;
    let mut failures = Failures::default();
    for r in &refs {
        if r.kind == jotasu_api::Kind::StatefulSet {
            match super::statefulset::undo(&client, r, args.to_revision).await {
                Ok(line) => out(&line)?,
                Err(e) => failures.report(e),
            }
            continue;
        }
        if r.kind != jotasu_api::Kind::Deployment {
            failures.report(CtlError::Usage(format!(
                "no rollbacker has been implemented for {:?}",
                group_kind(r.kind)
            )));
            continue;
        }
        let (d, sets) = match fetch(&client, r).await {
            Ok(found) => found,
            Err(e) => {
                failures.report(e);
                continue;
            }
        };
        match rollback(&d, &sets, args.to_revision) {
            Ok(Undo::Skip(rev)) => out(&format!(
                "{} skipped rollback (current template already matches revision {rev})\n",
                ref_slash_name(r)
            ))?,
            Ok(Undo::RollBack(updated)) => {
                match client.apply(&[Object::Deployment(*updated)], false).await {
                    Ok(_) => out(&format!("{} rolled back\n", ref_slash_name(r)))?,
                    Err(e) => failures.report(e),
                }
            }
            Err(e) => failures.report(CtlError::Usage(e)),
        }
    }
    failures.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(name: &str, rev: &str, image: &str, annotations: serde_json::Value) -> ReplicaSet {
        let mut a = annotations;
        a["deployment.kubernetes.io/revision"] = json!(rev);
        a["deployment.kubernetes.io/desired-replicas"] = json!("3");
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "annotations": a},
            "spec": {"selector": {"matchLabels": {"app": "web", "pod-template-hash": name}},
                "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": name}},
                             "spec": {"containers": [{"name": "web", "image": image}]}}}
        }))
        .unwrap()
    }

    fn deployment(image: &str, paused: bool) -> Deployment {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "resourceVersion": "42",
                "annotations": {"deployment.kubernetes.io/revision": "3",
                                "kubernetes.io/change-cause": "v3", "team": "a"}},
            "spec": {"replicas": 3, "paused": paused,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "web", "image": image}]}}},
            "status": {"replicas": 3}
        }))
        .unwrap()
    }

    fn sets() -> Vec<ReplicaSet> {
        vec![
            rs("a", "1", "v1", json!({"kubernetes.io/change-cause": "v1"})),
            rs("c", "3", "v3", json!({})),
            rs("b", "2", "v2", json!({})),
        ]
    }

    #[test]
    fn previous_revision_by_default() {
        let d = deployment("v3", false);
        let Undo::RollBack(u) = rollback(&d, &sets(), 0).unwrap() else {
            panic!("expected a rollback")
        };
        assert_eq!(u.spec.template.spec.containers[0].image, "v2");
        assert!(
            !u.spec
                .template
                .metadata
                .labels
                .contains_key(POD_TEMPLATE_HASH)
        );
        assert_eq!(u.metadata.resource_version.as_deref(), Some("42"));
        assert!(u.status.is_none());
        // The Deployment's revision stays; its other annotations are the revision's.
        let a = &u.metadata.annotations;
        assert_eq!(a["deployment.kubernetes.io/revision"], "3");
        assert!(!a.contains_key("kubernetes.io/change-cause"));
        assert!(!a.contains_key("team"));
        assert!(!a.contains_key("deployment.kubernetes.io/desired-replicas"));
    }

    #[test]
    fn to_a_revision() {
        let d = deployment("v3", false);
        let Undo::RollBack(u) = rollback(&d, &sets(), 1).unwrap() else {
            panic!("expected a rollback")
        };
        assert_eq!(u.spec.template.spec.containers[0].image, "v1");
        assert_eq!(u.metadata.annotations["kubernetes.io/change-cause"], "v1");
        assert_eq!(
            rollback(&d, &sets(), 7),
            Err("unable to find specified revision 7 in history".into())
        );
        assert_eq!(
            rollback(&d, &sets(), -1),
            Err("unable to find specified revision -1 in history".into())
        );
        assert_eq!(rollback(&d, &sets(), 3), Ok(Undo::Skip(3)));
    }

    #[test]
    fn refusals() {
        let d = deployment("v1", false);
        assert_eq!(
            rollback(&d, &sets()[..1], 0),
            Err("no rollout history found for deployment \"web\"".into())
        );
        assert!(
            rollback(&deployment("v3", true), &sets(), 0)
                .unwrap_err()
                .starts_with("you cannot rollback a paused deployment")
        );
    }
}
