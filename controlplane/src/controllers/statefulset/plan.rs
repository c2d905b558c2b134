//! What a StatefulSet's pods need, as Kubernetes' stateful set control
//! decides it: a pod per ordinal named `<set>-<ordinal>`, created in
//! ordinal order and each Running and Ready before the next
//! (`OrderedReady`) or all at once (`Parallel`); failed pods replaced;
//! pods past `replicas` deleted from the highest ordinal down; on a
//! template change (`RollingUpdate`) pods from the highest ordinal down
//! to the partition deleted to be recreated at the new revision, at most
//! `maxUnavailable` unavailable at a time; `OnDelete` replaces only what
//! the user deletes. Pure: the runner feeds it the caches.

use jotasu_api::kinds::pod_status::PodPhase;
use jotasu_api::kinds::statefulset::{StatefulSetStatus, StatefulSetUpdateStrategyType};
use jotasu_api::kinds::volumes::Volume;
use jotasu_api::{ObjectMeta, PersistentVolumeClaim, Pod, PodTemplateSpec, StatefulSet};

use super::revisions::REVISION_LABEL;
use crate::runtime::controller_reference;
use crate::runtime::status::{is_available, is_ready, is_terminating};

/// The label naming the pod (for a Service per pod).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label carrying the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The pod name of `ordinal`.
pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set.metadata.name())
}

/// The ordinal in a pod's name, if the pod is one of `set`'s.
pub fn ordinal_of(set: &StatefulSet, pod: &Pod) -> Option<i32> {
    let rest = pod
        .metadata
        .name()
        .strip_prefix(set.metadata.name())?
        .strip_prefix('-')?;
    // Canonical decimal only: `web-01` is not ordinal 1's pod.
    let n: i32 = rest.parse().ok()?;
    (n >= 0 && n.to_string() == rest).then_some(n)
}

/// The revision (name) a pod runs.
pub fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata.labels.get(REVISION_LABEL).map(String::as_str)
}

/// The two revisions a plan works between.
#[derive(Debug, Clone, Copy)]
pub struct Revisions<'a> {
    /// The revision pods below the rollout run, and its template.
    pub current: (&'a str, &'a PodTemplateSpec),
    /// The revision of the set's template.
    pub update: (&'a str, &'a PodTemplateSpec),
}

/// The decisions of one reconcile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Pods to create, in order.
    pub create: Vec<Pod>,
    /// Pods to delete, by name, in order.
    pub delete: Vec<String>,
    /// Status from what was seen.
    pub status: StatefulSetStatus,
}

/// The name of claim template `template`'s claim for `ordinal`.
pub fn claim_name(set: &StatefulSet, template: &str, ordinal: i32) -> String {
    format!("{template}-{}-{ordinal}", set.metadata.name())
}

/// The claims pod `ordinal` mounts, one per claim template: the
/// template's spec, its labels and the set's selector labels; owned by
/// the set when `whenDeleted: Delete` (they go with it), else by no one
/// (they outlive it).
pub fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<PersistentVolumeClaim> {
    let delete_with_set = set
        .spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .and_then(|p| p.when_deleted.as_deref())
        == Some("Delete");
    set.spec
        .volume_claim_templates
        .iter()
        .map(|t| {
            let mut labels = t.metadata.labels.clone();
            labels.extend(set.spec.selector.match_labels.clone());
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(set, t.metadata.name(), ordinal)),
                    namespace: set.metadata.namespace.clone(),
                    labels,
                    annotations: t.metadata.annotations.clone(),
                    owner_references: if delete_with_set {
                        vec![controller_reference(set)]
                    } else {
                        Vec::new()
                    },
                    ..ObjectMeta::default()
                },
                spec: t.spec.clone(),
                ..PersistentVolumeClaim::default()
            }
        })
        .collect()
}

/// Whether claims of pods removed by a scale-down are deleted with them.
pub fn delete_claims_on_scale_down(set: &StatefulSet) -> bool {
    set.spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .and_then(|p| p.when_scaled.as_deref())
        == Some("Delete")
}

/// Pod `ordinal` at the revision `(name, template)`: labelled with its
/// revision, name and index; hostname its name and subdomain the set's
/// Service, so `<pod>.<service>` resolves to it; its claims mounted as
/// the template's volumes of their names; controlled by the set.
pub fn pod_for(set: &StatefulSet, ordinal: i32, revision: (&str, &PodTemplateSpec)) -> Pod {
    let (revision_name, template) = revision;
    let name = pod_name(set, ordinal);
    let mut labels = template.metadata.labels.clone();
    labels.insert(REVISION_LABEL.into(), revision_name.to_owned());
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    let mut spec = template.spec.clone();
    spec.hostname = Some(name.clone());
    spec.subdomain = set.spec.service_name.clone().filter(|s| !s.is_empty());
    for t in &set.spec.volume_claim_templates {
        let name = t.metadata.name();
        spec.volumes.retain(|v| v.name != name);
        spec.volumes
            .push(Volume::claim(name, &claim_name(set, name, ordinal)));
    }
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.metadata.namespace.clone(),
            labels,
            annotations: template.metadata.annotations.clone(),
            owner_references: vec![controller_reference(set)],
            ..ObjectMeta::default()
        },
        spec,
        ..Pod::default()
    }
}

fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase),
        Some(PodPhase::Succeeded | PodPhase::Failed)
    )
}

fn running_and_ready(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase) == Some(PodPhase::Running) && is_ready(pod)
}

/// Running, Ready for minReadySeconds and not being deleted.
fn healthy(pod: &Pod, min_ready: i32, now: i64) -> bool {
    running_and_ready(pod) && !is_terminating(pod) && is_available(pod, min_ready, now)
}

/// `maxUnavailable` as a pod count of `replicas` (percent rounds down, at
/// least 1).
fn max_unavailable(set: &StatefulSet, replicas: i32) -> i32 {
    let v = set
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.as_ref());
    v.and_then(|v| v.scaled_value(replicas, false))
        .unwrap_or(1)
        .max(1)
}

/// Plans `set` over its pods (those it controls) at `now`.
pub fn plan(set: &StatefulSet, pods: &[&Pod], revisions: Revisions<'_>, now: i64) -> Plan {
    let replicas = set.spec.replicas().max(0);
    let start = set.spec.start();
    let ordered = set.spec.ordered();
    let min_ready = set.spec.min_ready_seconds.unwrap_or(0);
    let len = usize::try_from(replicas).unwrap_or(0);
    let mut slots: Vec<Option<&Pod>> = vec![None; len];
    let mut condemned: Vec<(i32, &Pod)> = Vec::new();
    for p in pods {
        let Some(ord) = ordinal_of(set, p) else {
            continue;
        };
        match usize::try_from(ord - start).ok().filter(|i| *i < len) {
            Some(i) => slots[i] = Some(p),
            None => condemned.push((ord, p)),
        }
    }
    condemned.sort_by_key(|(ord, _)| std::cmp::Reverse(*ord));

    let mut plan = Plan {
        status: status(set, pods, revisions, min_ready, now),
        ..Plan::default()
    };
    let current_replicas = plan.status.current_replicas;
    let rolling = set.spec.update_type() == StatefulSetUpdateStrategyType::RollingUpdate;
    let partition_given = set
        .spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .is_some_and(|p| p > 0);
    let partition = set.spec.partition();
    // The revision a new pod at index `i` gets: below the partition (or,
    // in a rolling update without one, below the current pods' count —
    // the rollout reaches them later) the current one.
    let revision_for = |i: i32| {
        if (rolling && !partition_given && i < current_replicas)
            || (partition_given && i < partition)
        {
            revisions.current
        } else {
            revisions.update
        }
    };

    // Create missing pods, replace finished ones; in order, waiting for
    // each to be Running and Ready when ordered.
    for (i, slot) in slots.iter().enumerate() {
        let index = i32::try_from(i).unwrap_or(i32::MAX);
        match slot {
            None => {
                plan.create
                    .push(pod_for(set, start + index, revision_for(index)));
                if ordered {
                    return plan;
                }
            }
            Some(p) if finished(p) && !is_terminating(p) => {
                plan.delete.push(p.metadata.name().to_owned());
                if ordered {
                    return plan;
                }
            }
            Some(p) if ordered && !healthy(p, min_ready, now) => return plan,
            Some(_) => {}
        }
    }

    // Scale down: the highest ordinal first; ordered, one at a time.
    for (_, p) in &condemned {
        if is_terminating(p) {
            if ordered {
                return plan;
            }
            continue;
        }
        plan.delete.push(p.metadata.name().to_owned());
        if ordered {
            return plan;
        }
    }
    if !plan.create.is_empty() || !plan.delete.is_empty() {
        return plan;
    }

    // Roll the template out from the highest ordinal to the partition.
    if !rolling {
        return plan;
    }
    let budget = max_unavailable(set, replicas);
    let mut unavailable = i32::try_from(
        slots
            .iter()
            .flatten()
            .filter(|p| !healthy(p, min_ready, now))
            .count(),
    )
    .unwrap_or(i32::MAX);
    let (update_name, _) = revisions.update;
    for (i, slot) in slots.iter().enumerate().rev() {
        let index = i32::try_from(i).unwrap_or(i32::MAX);
        if index < partition || unavailable >= budget {
            break;
        }
        let Some(p) = slot else { continue };
        if revision_of(p) != Some(update_name) && !is_terminating(p) {
            plan.delete.push(p.metadata.name().to_owned());
            if healthy(p, min_ready, now) {
                unavailable += 1;
            }
        }
    }
    plan
}

/// The status of `set` from its pods.
fn status(
    set: &StatefulSet,
    pods: &[&Pod],
    revisions: Revisions<'_>,
    min_ready: i32,
    now: i64,
) -> StatefulSetStatus {
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(
            pods.iter()
                .filter(|p| ordinal_of(set, p).is_some() && f(p))
                .count(),
        )
        .unwrap_or(i32::MAX)
    };
    let (current, _) = revisions.current;
    let (update, _) = revisions.update;
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        replicas: count(&|_| true),
        ready_replicas: count(&|p| is_ready(p)),
        available_replicas: count(&|p| is_available(p, min_ready, now)),
        current_replicas: count(&|p| revision_of(p) == Some(current)),
        updated_replicas: count(&|p| revision_of(p) == Some(update)),
        current_revision: Some(current.to_owned()),
        update_revision: Some(update.to_owned()),
        collision_count: Some(
            set.status
                .as_ref()
                .and_then(|s| s.collision_count)
                .unwrap_or(0),
        ),
        conditions: set
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default(),
    };
    // The rollout is complete: the update revision becomes current.
    let replicas = set.spec.replicas();
    if set.spec.update_type() == StatefulSetUpdateStrategyType::RollingUpdate
        && status.updated_replicas == replicas
        && status.ready_replicas == replicas
        && status.replicas == replicas
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
    status
}
