//! What the namespace controller decides for a terminating namespace, from
//! what is left in it: which objects to delete, whether it is empty (then
//! its `kubernetes` finalizer goes), and the conditions Kubernetes reports
//! meanwhile (`NamespaceContentRemaining`, `NamespaceDeletionContentFailure`, …).

use std::collections::BTreeMap;

use jotasu_api::kinds::namespace::NamespaceStatus;
use jotasu_api::{Condition, ConditionStatus, Kind, Namespace, NamespacePhase, ObjectRef, Time};

use crate::runtime::status::set_condition;

/// One object found in a terminating namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// Whether its deletion is under way (a pod its node is stopping).
    pub terminating: bool,
}

/// The decisions of one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NsPlan {
    /// Objects to delete (those not already being deleted).
    pub delete: Vec<ObjectRef>,
    /// How many objects of each kind are left.
    pub remaining: BTreeMap<Kind, usize>,
    /// Nothing is left: remove the finalizer.
    pub finalize: bool,
}

/// Plans one round for `namespace` holding `contents`.
pub fn plan(namespace: &str, contents: &[Content]) -> NsPlan {
    let mut remaining = BTreeMap::new();
    let mut delete = Vec::new();
    for c in contents {
        *remaining.entry(c.kind).or_insert(0) += 1;
        if !c.terminating {
            delete.push(ObjectRef {
                kind: c.kind,
                namespace: Some(namespace.to_owned()),
                name: c.name.clone(),
            });
        }
    }
    // Owners first: a Deployment's delete takes its ReplicaSets and pods along.
    delete.sort_by_key(|r| (r.kind == Kind::Pod, r.kind, r.name.clone()));
    NsPlan {
        finalize: contents.is_empty(),
        delete,
        remaining,
    }
}

/// `pods. has 2 resource instances, deployments.apps has 1 resource instances`,
/// as Kubernetes' namespace controller words it.
pub fn remaining_message(remaining: &BTreeMap<Kind, usize>) -> String {
    let parts: Vec<String> = remaining
        .iter()
        .map(|(k, n)| format!("{}.{} has {n} resource instances", k.plural(), k.group()))
        .collect();
    format!("Some resources are remaining: {}", parts.join(", "))
}

fn condition(type_: &str, status: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: ConditionStatus::from(status),
        reason: Some(reason.to_owned()),
        message: Some(message),
        ..Condition::default()
    }
}

/// The namespace's status after a round that found `remaining` and failed
/// to delete with `failure` (if it did); `None` if it is unchanged.
pub fn status(
    ns: &Namespace,
    remaining: &BTreeMap<Kind, usize>,
    failure: Option<&str>,
    now: &Time,
) -> Option<NamespaceStatus> {
    let old = ns.status.clone().unwrap_or_default();
    let mut new = old.clone();
    new.phase = Some(NamespacePhase::Terminating);
    let conditions = [
        condition(
            "NamespaceDeletionDiscoveryFailure",
            false,
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        ),
        condition(
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
        ),
        match failure {
            Some(e) => condition(
                "NamespaceDeletionContentFailure",
                true,
                "ContentDeletionFailed",
                format!("Failed to delete all resource types, 1 remaining: {e}"),
            ),
            None => condition(
                "NamespaceDeletionContentFailure",
                false,
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".into(),
            ),
        },
        if remaining.is_empty() {
            condition(
                "NamespaceContentRemaining",
                false,
                "ContentRemoved",
                "All content successfully removed".into(),
            )
        } else {
            condition(
                "NamespaceContentRemaining",
                true,
                "SomeResourcesRemain",
                remaining_message(remaining),
            )
        },
        condition(
            "NamespaceFinalizersRemaining",
            false,
            "ContentHasNoFinalizers",
            "All content-preserving finalizers finished".into(),
        ),
    ];
    for c in conditions {
        set_condition(&mut new.conditions, c, now);
    }
    (new != old).then_some(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(kind: Kind, name: &str, terminating: bool) -> Content {
        Content {
            kind,
            name: name.into(),
            terminating,
        }
    }

    #[test]
    fn deletes_what_is_not_being_deleted_owners_first() {
        let p = plan(
            "a",
            &[
                content(Kind::Pod, "web-1", true),
                content(Kind::Pod, "lone", false),
                content(Kind::ConfigMap, "cfg", false),
                content(Kind::Deployment, "web", false),
            ],
        );
        let names: Vec<(Kind, &str)> = p.delete.iter().map(|r| (r.kind, r.name.as_str())).collect();
        assert_eq!(
            names,
            [
                (Kind::Deployment, "web"),
                (Kind::ConfigMap, "cfg"),
                (Kind::Pod, "lone")
            ]
        );
        assert!(p.delete.iter().all(|r| r.namespace.as_deref() == Some("a")));
        assert_eq!(p.remaining[&Kind::Pod], 2);
        assert!(!p.finalize);
        assert_eq!(
            remaining_message(&p.remaining),
            "Some resources are remaining: pods. has 2 resource instances, deployments.apps has 1 resource instances, configmaps. has 1 resource instances"
        );
    }

    #[test]
    fn terminating_pods_are_waited_for_then_the_namespace_is_finalized() {
        let waiting = plan("a", &[content(Kind::Pod, "web-1", true)]);
        assert!(waiting.delete.is_empty());
        assert!(!waiting.finalize, "a pod its node is stopping still counts");
        assert!(plan("a", &[]).finalize);
    }

    #[test]
    fn conditions_say_what_remains_and_change_only_when_it_does() {
        let mut ns = Namespace::default();
        let now = Time::from_unix_seconds(100);
        let remaining = BTreeMap::from([(Kind::Pod, 1)]);
        let s = status(&ns, &remaining, None, &now).expect("a change");
        assert_eq!(s.phase, Some(NamespacePhase::Terminating));
        let c =
            crate::runtime::status::condition(&s.conditions, "NamespaceContentRemaining").unwrap();
        assert_eq!(c.status, ConditionStatus::True);
        assert_eq!(
            c.message.as_deref(),
            Some("Some resources are remaining: pods. has 1 resource instances")
        );
        ns.status = Some(s);
        assert_eq!(
            status(&ns, &remaining, None, &Time::from_unix_seconds(200)),
            None
        );
        let failed = status(&ns, &remaining, Some("boom"), &now).unwrap();
        let c = crate::runtime::status::condition(
            &failed.conditions,
            "NamespaceDeletionContentFailure",
        )
        .unwrap();
        assert_eq!(c.status, ConditionStatus::True);
        assert!(c.message.as_deref().unwrap().ends_with("boom"));
    }
}
