//! Binding Pods to Nodes: the scheduler's write, many at a time. Each
//! binding is checked on its own (gone, changed, already bound, being
//! deleted), and the accepted ones are written together, a transaction per
//! [`MAX_TXN_OPS`], each guarded by the pod's mod revision: a pod that
//! changed in between is read again, never overwritten.

use jotasu_api::kinds::pod_status::{PodPhase, PodStatus};
use jotasu_api::{Condition, ConditionStatus, Kind, Object, ObjectRef, Pod, Time};

use super::error::ApiResult;
use super::keys::object_key;
use super::{ApiServer, WRITE_ATTEMPTS, decode, encode};
use crate::store::{Compare, Revision, Store, StoreError, Txn};

/// Operations per store transaction (etcd's default `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

/// One pod to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The node it goes to.
    pub node: String,
    /// Bind only if the pod is still at this revision.
    pub resource_version: Option<Revision>,
}

/// Why a binding was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The pod does not exist.
    NotFound,
    /// The pod changed since the revision given.
    Conflict,
    /// The pod is bound to another node already.
    AlreadyBound,
    /// The pod is being deleted.
    Terminating,
}

/// What became of one binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindOutcome {
    /// Bound; the pod's new revision.
    Bound(Revision),
    /// Not bound.
    Refused(Refusal),
}

impl Binding {
    fn pod_ref(&self) -> ObjectRef {
        ObjectRef {
            kind: Kind::Pod,
            namespace: Some(self.namespace.clone()),
            name: self.name.clone(),
        }
    }
}

/// The pod as bound to `node`, or why it cannot be.
fn bound(mut pod: Pod, node: &str) -> Result<Pod, Refusal> {
    if pod.metadata.deletion_timestamp.is_some() {
        return Err(Refusal::Terminating);
    }
    match pod.spec.node_name.as_deref() {
        Some(n) if !n.is_empty() => return Err(Refusal::AlreadyBound),
        _ => {}
    }
    pod.spec.node_name = Some(node.to_owned());
    let status = pod.status.get_or_insert_with(PodStatus::default);
    status.phase.get_or_insert(PodPhase::Pending);
    status.reason = None;
    status.message = None;
    status.conditions.retain(|c| c.type_ != "PodScheduled");
    status.conditions.push(Condition {
        type_: "PodScheduled".into(),
        status: ConditionStatus::True,
        last_transition_time: Some(Time::now()),
        ..Condition::default()
    });
    Ok(pod)
}

impl<S: Store> ApiServer<S> {
    /// Binds each pod to its node; one outcome per binding, in order.
    pub async fn bind(&self, bindings: &[Binding]) -> ApiResult<Vec<BindOutcome>> {
        let mut outcomes = Vec::with_capacity(bindings.len());
        for chunk in bindings.chunks(MAX_TXN_OPS) {
            outcomes.extend(self.bind_chunk(chunk).await?);
        }
        Ok(outcomes)
    }

    async fn bind_chunk(&self, chunk: &[Binding]) -> ApiResult<Vec<BindOutcome>> {
        let mut outcomes: Vec<Option<BindOutcome>> = vec![None; chunk.len()];
        for _ in 0..WRITE_ATTEMPTS {
            let mut txn = Txn::new();
            let mut pending = Vec::new();
            for (i, b) in chunk.iter().enumerate() {
                if outcomes[i].is_some() {
                    continue;
                }
                let key = object_key(&b.pod_ref());
                let Some(kv) = self.store.get(&key).await? else {
                    outcomes[i] = Some(BindOutcome::Refused(Refusal::NotFound));
                    continue;
                };
                if b.resource_version.is_some_and(|v| v != kv.mod_revision) {
                    outcomes[i] = Some(BindOutcome::Refused(Refusal::Conflict));
                    continue;
                }
                let Object::Pod(pod) = decode(&kv)? else {
                    outcomes[i] = Some(BindOutcome::Refused(Refusal::NotFound));
                    continue;
                };
                if pod.spec.node_name.as_deref() == Some(b.node.as_str())
                    && pod.metadata.deletion_timestamp.is_none()
                {
                    outcomes[i] = Some(BindOutcome::Bound(kv.mod_revision));
                    continue;
                }
                match bound(pod, &b.node) {
                    Err(refusal) => outcomes[i] = Some(BindOutcome::Refused(refusal)),
                    Ok(pod) => {
                        txn = txn
                            .when(Compare::mod_revision(&key, kv.mod_revision))
                            .put(&key, &encode(&Object::Pod(pod))?);
                        pending.push((i, key));
                    }
                }
            }
            if pending.is_empty() {
                break;
            }
            match self.store.txn(txn).await {
                Ok(rev) => {
                    let rev = rev.unwrap_or_default();
                    for (i, _) in pending {
                        outcomes[i] = Some(BindOutcome::Bound(rev));
                    }
                    break;
                }
                // Someone changed one of them: read them all again.
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or(BindOutcome::Refused(Refusal::Conflict)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(node: Option<&str>) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("p".into());
        p.spec.node_name = node.map(str::to_owned);
        p
    }

    #[test]
    fn binding_rules() {
        let p = bound(pod(None), "n1").unwrap();
        assert_eq!(p.spec.node_name.as_deref(), Some("n1"));
        let status = p.status.unwrap();
        assert_eq!(status.phase, Some(PodPhase::Pending));
        assert_eq!(status.conditions[0].type_, "PodScheduled");
        assert_eq!(status.conditions[0].status, ConditionStatus::True);
        assert_eq!(
            bound(pod(Some("n2")), "n1").unwrap_err(),
            Refusal::AlreadyBound
        );
        let mut t = pod(None);
        t.metadata.deletion_timestamp = Some(Time::now());
        assert_eq!(bound(t, "n1").unwrap_err(), Refusal::Terminating);
    }
}
