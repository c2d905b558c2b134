//! `rollout history` and `rollout undo` of a StatefulSet, from the
//! ControllerRevisions it owns (kubectl's `StatefulSetHistoryViewer` and
//! `StatefulSetRollbacker`): the history lists their numbers and change
//! causes; an undo puts a revision's template back into the set, applied
//! with the set's resourceVersion as a precondition, and the controller
//! renumbers that revision as the newest.

use jotasu_api::client::Client;
use jotasu_api::{ControllerRevision, Kind, Object, ObjectRef, StatefulSet};

use super::history::{history_rows, template_text};
use super::undo::{Undo, not_found};
use crate::names::ref_slash_name;
use crate::report::CtlError;

/// The revisions `set` controls among `items`, by number.
pub fn owned_revisions(set: &StatefulSet, items: Vec<Object>) -> Vec<ControllerRevision> {
    let uid = set.metadata.uid.as_deref();
    let mut revisions: Vec<ControllerRevision> = items
        .into_iter()
        .filter_map(|o| match o {
            Object::ControllerRevision(r) => Some(r),
            _ => None,
        })
        .filter(|r| {
            r.metadata
                .controller_ref()
                .is_some_and(|o| o.kind == "StatefulSet" && Some(o.uid.as_str()) == uid)
        })
        .collect();
    revisions.sort_by_key(|r| r.revision);
    revisions
}

/// The history table, or revision `revision`'s pod template.
pub fn history_text(revisions: &[ControllerRevision], revision: i64) -> Result<String, String> {
    if revision > 0 {
        let r = revisions
            .iter()
            .find(|r| r.revision == revision)
            .ok_or_else(|| format!("unable to find the specified revision {revision}"))?;
        let template = r
            .template()
            .ok_or_else(|| format!("revision {revision} holds no pod template"))?;
        return Ok(format!(
            "with revision #{revision}\n{}",
            template_text(&template)
        ));
    }
    Ok(format!(
        "\n{}",
        history_rows(
            revisions
                .iter()
                .map(|r| (r.revision, &r.metadata.annotations))
        )
    ))
}

/// Decides the rollback of `set` to `to_revision` (0: the one before the newest).
pub fn rollback(
    set: &StatefulSet,
    revisions: &[ControllerRevision],
    to_revision: i64,
) -> Result<Undo<StatefulSet>, String> {
    if to_revision < 0 {
        return Err(not_found(to_revision));
    }
    let target = if to_revision > 0 {
        revisions
            .iter()
            .find(|r| r.revision == to_revision)
            .ok_or_else(|| not_found(to_revision))?
    } else {
        let mut sorted: Vec<&ControllerRevision> = revisions.iter().collect();
        sorted.sort_by_key(|r| std::cmp::Reverse(r.revision));
        *sorted
            .get(1)
            .ok_or_else(|| "no last revision to roll back to".to_owned())?
    };
    let template = target
        .template()
        .ok_or_else(|| format!("revision {} holds no pod template", target.revision))?;
    if template == set.spec.template {
        return Ok(Undo::Skip(target.revision));
    }
    let mut updated = set.clone();
    updated.spec.template = template;
    updated.status = None;
    Ok(Undo::RollBack(Box::new(updated)))
}

async fn fetch(
    client: &Client,
    r: &ObjectRef,
) -> Result<(StatefulSet, Vec<ControllerRevision>), CtlError> {
    let Object::StatefulSet(set) = client.get(r).await? else {
        return Err(CtlError::Usage(format!(
            "{} is not a StatefulSet",
            ref_slash_name(r)
        )));
    };
    let items = client
        .list(Kind::ControllerRevision, r.namespace.as_deref(), "")
        .await?
        .items;
    let revisions = owned_revisions(&set, items);
    Ok((set, revisions))
}

/// `rollout history statefulset/NAME [--revision N]`: the text after the name.
pub async fn history(client: &Client, r: &ObjectRef, revision: i64) -> Result<String, CtlError> {
    let (_, revisions) = fetch(client, r).await?;
    history_text(&revisions, revision).map_err(CtlError::Usage)
}

/// `rollout undo statefulset/NAME [--to-revision N]`: the line to print.
pub async fn undo(client: &Client, r: &ObjectRef, to_revision: i64) -> Result<String, CtlError> {
    let (set, revisions) = fetch(client, r).await?;
    match rollback(&set, &revisions, to_revision).map_err(CtlError::Usage)? {
        Undo::Skip(rev) => Ok(format!(
            "{} skipped rollback (current template already matches revision {rev})\n",
            ref_slash_name(r)
        )),
        Undo::RollBack(updated) => {
            client
                .apply(&[Object::StatefulSet(*updated)], false)
                .await?;
            Ok(format!("{} rolled back\n", ref_slash_name(r)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(image: &str) -> StatefulSet {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "uid": "u1", "resourceVersion": "7"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": image}]}}}
        }))
        .unwrap()
    }

    fn revision(n: i64, image: &str, owner: &str) -> Object {
        Object::ControllerRevision(
            serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": {"name": format!("web-{n}"),
                    "annotations": {"kubernetes.io/change-cause": format!("image {image}")},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet",
                        "name": "web", "uid": owner, "controller": true}]},
                "data": {"spec": {"template": {"$patch": "replace",
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": image}]}}}},
                "revision": n
            }))
            .unwrap(),
        )
    }

    fn revisions() -> Vec<ControllerRevision> {
        owned_revisions(
            &set("v2"),
            vec![
                revision(2, "v2", "u1"),
                revision(1, "v1", "u1"),
                revision(1, "x", "other"),
            ],
        )
    }

    #[test]
    fn history_lists_the_sets_own_revisions() {
        let text = history_text(&revisions(), 0).unwrap();
        assert!(text.contains("REVISION  CHANGE-CAUSE"), "{text}");
        assert!(text.contains("1         image v1"), "{text}");
        assert!(text.contains("2         image v2"), "{text}");
        assert!(!text.contains("image x"));
        let one = history_text(&revisions(), 1).unwrap();
        assert!(one.starts_with("with revision #1\nPod Template:"), "{one}");
        assert!(one.contains("v1"), "{one}");
        assert_eq!(
            history_text(&revisions(), 9),
            Err("unable to find the specified revision 9".into())
        );
    }

    #[test]
    fn undo_puts_the_previous_template_back() {
        let Undo::RollBack(u) = rollback(&set("v2"), &revisions(), 0).unwrap() else {
            panic!("expected a rollback")
        };
        assert_eq!(u.spec.template.spec.containers[0].image, "v1");
        assert_eq!(u.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(rollback(&set("v2"), &revisions(), 2), Ok(Undo::Skip(2)));
        assert_eq!(
            rollback(&set("v2"), &revisions(), 5),
            Err("unable to find specified revision 5 in history".into())
        );
        assert_eq!(
            rollback(&set("v2"), &revisions()[..1], 0),
            Err("no last revision to roll back to".into())
        );
    }
}
