//! The annotations that carry a Deployment's history on it and its
//! ReplicaSets: revision numbers (and the revisions a reused ReplicaSet had
//! before), the desired and maximum replicas a ReplicaSet was last sized
//! for (proportional scaling reads them), and the Deployment's own
//! annotations copied onto its newest ReplicaSet (`kubernetes.io/change-cause`).

use jotasu_api::{Deployment, ObjectMeta, ReplicaSet};

/// The revision of a ReplicaSet, and the Deployment's current one.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions of a ReplicaSet that was rolled back to.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last sized.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus maxSurge when the ReplicaSet was last sized.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Why the Deployment changed (set by users; `rollout history` shows it).
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";
/// kubectl's client-side apply record (never copied).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The old rollback request annotation (never copied).
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// The longest revision history kept, in characters.
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

/// Deployment annotations that are not copied onto ReplicaSets (and that
/// `rollout undo` keeps from the Deployment).
pub fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO
    )
}

/// The revision in `meta`: 0 when absent, `None` when not a number.
pub fn revision(meta: &ObjectMeta) -> Option<i64> {
    match meta.annotations.get(REVISION) {
        None => Some(0),
        Some(v) => v.parse().ok(),
    }
}

/// The highest revision among `sets` (0 if none has one).
pub fn max_revision<'a>(sets: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    sets.into_iter()
        .filter_map(|rs| revision(&rs.metadata))
        .max()
        .unwrap_or(0)
}

fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.metadata.annotations.get(key)?.parse().ok()
}

/// The desired-replicas annotation.
pub fn desired_replicas(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, DESIRED_REPLICAS)
}

/// The max-replicas annotation.
pub fn max_replicas(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, MAX_REPLICAS)
}

/// Whether the replicas annotations differ from `desired` and `max`.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    let a = &rs.metadata.annotations;
    a.get(DESIRED_REPLICAS) != Some(&desired.to_string())
        || a.get(MAX_REPLICAS) != Some(&max.to_string())
}

/// Sets the replicas annotations; returns whether they changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    if !replicas_annotations_need_update(rs, desired, max) {
        return false;
    }
    let a = &mut rs.metadata.annotations;
    a.insert(DESIRED_REPLICAS.into(), desired.to_string());
    a.insert(MAX_REPLICAS.into(), max.to_string());
    true
}

/// Copies the Deployment's annotations (but [`skip_copy`] ones) onto `rs`;
/// returns whether any changed.
pub fn copy_deployment_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let mut changed = false;
    for (k, v) in &d.metadata.annotations {
        if skip_copy(k) || rs.metadata.annotations.get(k) == Some(v) {
            continue;
        }
        rs.metadata.annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Annotates the Deployment's newest ReplicaSet: the Deployment's
/// annotations, `revision` if higher than its own (keeping the one it had
/// in its revision history: a rollback), and, for a ReplicaSet about to be
/// created, the replicas annotations. Returns whether anything changed.
pub fn set_new_replica_set_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    revision: i64,
    exists: bool,
    max_surge: i32,
) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let old = rs.metadata.annotations.get(REVISION).cloned();
    let old_revision = match old.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    if old_revision < revision {
        rs.metadata
            .annotations
            .insert(REVISION.into(), revision.to_string());
        changed = true;
        if let Some(old) = old.filter(|o| !o.is_empty()) {
            push_revision_history(rs, &old);
        }
    }
    let replicas = d.spec.replicas();
    if !exists && set_replicas_annotations(rs, replicas, replicas + max_surge) {
        changed = true;
    }
    changed
}

/// Appends `old` to the revision history, dropping the oldest entries to
/// stay within [`MAX_REVISION_HISTORY_CHARS`].
fn push_revision_history(rs: &mut ReplicaSet, old: &str) {
    let history = rs
        .metadata
        .annotations
        .get(REVISION_HISTORY)
        .cloned()
        .unwrap_or_default();
    let mut entries: Vec<&str> = history.split(',').filter(|e| !e.is_empty()).collect();
    entries.push(old);
    while entries.iter().map(|e| e.len() + 1).sum::<usize>() - 1 > MAX_REVISION_HISTORY_CHARS
        && entries.len() > 1
    {
        entries.remove(0);
    }
    let joined = entries.join(",");
    rs.metadata
        .annotations
        .insert(REVISION_HISTORY.into(), joined);
}

/// Sets the Deployment's revision annotation; returns whether it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    if d.metadata.annotations.get(REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    d.metadata
        .annotations
        .insert(REVISION.into(), revision.to_owned());
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_and_history() {
        let mut d = Deployment::default();
        d.spec.replicas = Some(4);
        d.metadata
            .annotations
            .insert(CHANGE_CAUSE.into(), "image v2".into());
        d.metadata.annotations.insert(REVISION.into(), "9".into());
        let mut rs = ReplicaSet::default();
        assert_eq!(revision(&rs.metadata), Some(0));
        assert!(set_new_replica_set_annotations(&d, &mut rs, 1, false, 1));
        let a = &rs.metadata.annotations;
        assert_eq!(a[REVISION], "1");
        assert_eq!(a[CHANGE_CAUSE], "image v2");
        assert_eq!(a[DESIRED_REPLICAS], "4");
        assert_eq!(a[MAX_REPLICAS], "5");
        assert!(!a.contains_key(REVISION_HISTORY));
        // Same revision again: nothing changes.
        assert!(!set_new_replica_set_annotations(&d, &mut rs, 1, true, 1));
        // Reused for revision 3 (a rollback): 1 goes to the history.
        assert!(set_new_replica_set_annotations(&d, &mut rs, 3, true, 1));
        assert!(set_new_replica_set_annotations(&d, &mut rs, 5, true, 1));
        assert_eq!(rs.metadata.annotations[REVISION], "5");
        assert_eq!(rs.metadata.annotations[REVISION_HISTORY], "1,3");
        assert_eq!(max_revision([&rs, &ReplicaSet::default()]), 5);
        rs.metadata.annotations.insert(REVISION.into(), "x".into());
        assert_eq!(revision(&rs.metadata), None);
        assert!(!set_new_replica_set_annotations(&d, &mut rs, 7, true, 1));
    }

    #[test]
    fn history_is_bounded() {
        let mut rs = ReplicaSet::default();
        for i in 0..1_000 {
            push_revision_history(&mut rs, &i.to_string());
        }
        let h = &rs.metadata.annotations[REVISION_HISTORY];
        assert!(h.len() <= MAX_REVISION_HISTORY_CHARS);
        assert!(h.ends_with(",999"));
    }

    #[test]
    fn deployment_revision_and_replicas() {
        let mut d = Deployment::default();
        assert!(set_deployment_revision(&mut d, "2"));
        assert!(!set_deployment_revision(&mut d, "2"));
        let mut rs = ReplicaSet::default();
        assert!(replicas_annotations_need_update(&rs, 3, 4));
        assert!(set_replicas_annotations(&mut rs, 3, 4));
        assert!(!set_replicas_annotations(&mut rs, 3, 4));
        assert_eq!(
            (desired_replicas(&rs), max_replicas(&rs)),
            (Some(3), Some(4))
        );
        assert!(skip_copy(REVISION) && !skip_copy(CHANGE_CAUSE));
    }
}
