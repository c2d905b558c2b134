//! A StatefulSet's template revisions as ControllerRevisions, as
//! Kubernetes keeps them: the data is the patch that restores the
//! template, the name `<set>-<hash of the data>`, the number one more
//! than the highest; going back to an older template renumbers its
//! revision instead of making a copy; revisions no pod runs beyond
//! `revisionHistoryLimit` are deleted, oldest first.

use std::collections::BTreeSet;

use jotasu_api::{ControllerRevision, ObjectMeta, StatefulSet};
use serde_json::{Value, json};

use crate::controllers::deployment::hash::hash_bytes;
use crate::runtime::controller_reference;

/// The label naming the revision a pod runs (the revision's name).
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The label carrying a revision's hash.
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// The patch that restores `set`'s template.
pub fn revision_data(set: &StatefulSet) -> Value {
    let mut template = serde_json::to_value(&set.spec.template).unwrap_or(Value::Null);
    if let Value::Object(t) = &mut template {
        t.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// What the set's revisions need: the revision of its template (to
/// create, or to renumber), and the revision current pods run.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionPlan {
    /// The revision of the set's template, as it must be stored.
    pub update: ControllerRevision,
    /// Whether `update` must be written (new, or renumbered).
    pub write_update: bool,
    /// The revision the pods below the rollout run.
    pub current: ControllerRevision,
    /// Revisions to delete (history beyond the limit).
    pub delete: Vec<String>,
}

/// Plans the revisions of `set` over its existing `revisions`; pods run
/// the revisions named in `in_use`.
pub fn plan_revisions(
    set: &StatefulSet,
    revisions: &[&ControllerRevision],
    in_use: &BTreeSet<String>,
) -> RevisionPlan {
    let data = revision_data(set);
    let highest = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    let collisions = set
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .and_then(|c| u32::try_from(c).ok())
        .filter(|c| *c > 0);
    let (update, write_update) = match revisions.iter().find(|r| r.data == data) {
        // The latest already: nothing to write.
        Some(r) if r.revision == highest => ((*r).clone(), false),
        // An older template again (a rollback): renumber it.
        Some(r) => {
            let mut r = (*r).clone();
            r.revision = highest + 1;
            (r, true)
        }
        None => {
            let bytes = serde_json::to_vec(&data).unwrap_or_default();
            let hash = hash_bytes(&bytes, collisions);
            let mut labels = set.spec.template.metadata.labels.clone();
            labels.insert(HASH_LABEL.into(), hash.clone());
            let revision = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(format!("{}-{hash}", set.metadata.name())),
                    namespace: set.metadata.namespace.clone(),
                    labels,
                    annotations: set.metadata.annotations.clone(),
                    owner_references: vec![controller_reference(set)],
                    ..ObjectMeta::default()
                },
                data,
                revision: highest + 1,
                ..ControllerRevision::default()
            };
            (revision, true)
        }
    };
    let current_name = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.as_deref());
    let current = revisions
        .iter()
        .find(|r| Some(r.metadata.name()) == current_name)
        .map_or_else(|| update.clone(), |r| (*r).clone());
    let live = |r: &ControllerRevision| {
        let name = r.metadata.name();
        name == update.metadata.name() || name == current.metadata.name() || in_use.contains(name)
    };
    let mut history: Vec<&&ControllerRevision> = revisions.iter().filter(|r| !live(r)).collect();
    history.sort_by_key(|r| r.revision);
    let limit = usize::try_from(set.spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
    let excess = history.len().saturating_sub(limit);
    RevisionPlan {
        update,
        write_update,
        current,
        delete: history
            .iter()
            .take(excess)
            .map(|r| r.metadata.name().to_owned())
            .collect(),
    }
}
