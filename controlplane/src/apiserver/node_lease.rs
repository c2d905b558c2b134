//! Node liveness in the store, as Kubernetes' `kube-node-lease`: a node's
//! heartbeat renews its Lease `kube-node-lease/<node>` (holder the node,
//! duration the grace period, owned by the Node so it goes with it), at
//! most every quarter of the grace period unless the revision its data
//! plane is programmed from changed (carried in the
//! [`PROGRAMMED_ANNOTATION`], so a stopping pod's wait is answered by any
//! control plane). Every control plane [`follow`]s those Leases into its
//! heartbeat registry: a node is judged the same whichever control plane
//! it talks to. Time is the follower's own clock (when it saw a renewal),
//! never the writer's `renewTime`, so skewed clocks cannot fail a node.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use jotasu_api::kinds::coordination::{Lease, MicroTime, NODE_LEASE_NAMESPACE};
use jotasu_api::{Kind, Object, OwnerReference};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::error::ApiResult;
use super::heartbeat::Heartbeats;
use super::keys::kind_prefix;
use super::{ApiServer, lease};
use crate::store::{EventKind, KeyValue, Store, StoreError, WatchOptions};

/// The annotation of a node Lease carrying the store revision the node's
/// data plane was last programmed from.
pub const PROGRAMMED_ANNOTATION: &str = "jotasu.io/programmed-revision";

/// How often a node's Lease is rewritten when nothing but time changed.
pub fn renew_every(grace: Duration) -> Duration {
    (grace / 4).clamp(Duration::from_millis(200), Duration::from_secs(10))
}

/// The Lease of `node` as a heartbeat leaves it: `old` renewed, or a new
/// one owned by the Node (`node_uid`).
pub fn renewed(
    old: Option<Lease>,
    node: &str,
    node_uid: Option<&str>,
    grace: Duration,
    programmed: Option<i64>,
) -> Lease {
    let mut l = old.unwrap_or_else(|| {
        let mut l = lease::fresh(NODE_LEASE_NAMESPACE, node, node, 1);
        if let Some(uid) = node_uid {
            l.metadata.owner_references.push(OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.into(),
                uid: uid.into(),
                controller: None,
                block_owner_deletion: None,
            });
        }
        l
    });
    l.spec.holder_identity = Some(node.to_owned());
    l.spec.lease_duration_seconds = Some(lease::seconds(grace));
    l.spec.renew_time = Some(MicroTime::now());
    if let Some(p) = programmed {
        l.metadata
            .annotations
            .insert(PROGRAMMED_ANNOTATION.into(), p.to_string());
    }
    l
}

impl<S: Store> ApiServer<S> {
    /// Renews `node`'s Lease if it is due ([`renew_every`]) or its
    /// programmed revision changed. `node_kv` is the stored Node.
    pub(super) async fn renew_node_lease(
        &self,
        node_kv: &KeyValue,
        node: &str,
        programmed: Option<i64>,
    ) -> ApiResult<()> {
        let grace = self.heartbeats.live_within();
        if !self
            .heartbeats
            .lease_due(node, programmed, renew_every(grace), Instant::now())
        {
            return Ok(());
        }
        let uid = match serde_json::from_slice::<Object>(&node_kv.value) {
            Ok(Object::Node(n)) => n.metadata.uid,
            _ => None,
        };
        let key = lease::key(NODE_LEASE_NAMESPACE, node);
        // Two control planes may renew at once (an agent failing over):
        // either write serves.
        for _ in 0..3 {
            let current = self.store.get(&key).await?;
            let l = renewed(
                current.as_ref().and_then(lease::decode),
                node,
                uid.as_deref(),
                grace,
                programmed,
            );
            let written = match &current {
                Some(kv) => {
                    self.store
                        .update_if(&key, &lease::encode(&l), kv.mod_revision)
                        .await
                }
                None => self.store.create(&key, &lease::encode(&l)).await,
            };
            match written {
                Ok(_) => {
                    self.heartbeats
                        .lease_written(node, programmed, Instant::now());
                    return Ok(());
                }
                Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// What the follower last saw of one node's Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    renew: Option<MicroTime>,
    programmed: Option<i64>,
}

fn seen(l: &Lease) -> Seen {
    Seen {
        renew: l.spec.renew_time.clone(),
        programmed: l
            .metadata
            .annotations
            .get(PROGRAMMED_ANNOTATION)
            .and_then(|v| v.parse().ok()),
    }
}

/// Applies one Lease as the follower sees it: a changed renewal is a
/// heartbeat now (except in the first listing: a restarted control plane
/// gives every node a fresh grace instead), a programmed revision is
/// recorded as given.
fn absorb(
    heartbeats: &Heartbeats,
    last: &mut HashMap<String, Seen>,
    l: &Lease,
    listing: bool,
    now: Instant,
) {
    let node = l.metadata.name().to_owned();
    let new = seen(l);
    let old = last.insert(node.clone(), new.clone());
    if let Some(p) = new.programmed
        && old.as_ref().is_none_or(|o| o.programmed != Some(p))
        && heartbeats.programmed(&node) != Some(p)
    {
        heartbeats.record_programmed(&node, p);
    }
    if !listing && old.is_none_or(|o| o.renew != new.renew) {
        heartbeats.touch(&node, now);
    }
}

/// Follows the node Leases into `api`'s heartbeat registry until `stop`
/// turns true; relists after any store error.
pub async fn follow<S: Store>(api: ApiServer<S>, mut stop: watch::Receiver<bool>) {
    let prefix = kind_prefix(Kind::Lease, Some(NODE_LEASE_NAMESPACE));
    let mut last: HashMap<String, Seen> = HashMap::new();
    let mut failing = false;
    loop {
        let round = async {
            let listed = api.store.range(&prefix, None).await?;
            for kv in &listed.kvs {
                if let Some(l) = lease::decode(kv) {
                    absorb(&api.heartbeats, &mut last, &l, true, Instant::now());
                }
            }
            let mut events = api
                .store
                .watch(&prefix, WatchOptions::from_revision(listed.revision + 1))
                .await?;
            while let Some(event) = events.next().await {
                let event = event?;
                match event.kind {
                    EventKind::Put => {
                        if let Some(l) = lease::decode(&event.kv) {
                            absorb(&api.heartbeats, &mut last, &l, false, Instant::now());
                        }
                    }
                    EventKind::Delete => {
                        let key = String::from_utf8_lossy(&event.kv.key).into_owned();
                        last.retain(|node, _| !key.ends_with(&format!("/{node}")));
                    }
                }
            }
            Ok::<(), StoreError>(())
        };
        tokio::select! {
            r = round => match r {
                Ok(()) => debug!("node Lease watch ended; following again"),
                Err(e) => {
                    if !failing {
                        warn!(error = %e, "following the node Leases failed; retrying every second");
                    }
                    failing = true;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = async { let _ = stop.wait_for(|s| *s).await; } => return,
        }
        failing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renewal_is_a_heartbeat_but_the_first_listing_is_not() {
        let h = Heartbeats::default();
        let mut last = HashMap::new();
        let grace = Duration::from_secs(10);
        let l = renewed(None, "n1", Some("uid-1"), grace, Some(7));
        assert_eq!(l.metadata.owner_references[0].uid, "uid-1");
        assert_eq!(l.spec.lease_duration_seconds, Some(10));
        absorb(&h, &mut last, &l, true, Instant::now());
        assert_eq!(h.last("n1"), None, "a listing gives a fresh grace");
        assert_eq!(h.programmed("n1"), Some(7));
        let t = Instant::now();
        absorb(&h, &mut last, &l, false, t);
        assert_eq!(
            h.last("n1"),
            None,
            "the same renewal seen again is no heartbeat"
        );
        let mut again = renewed(Some(l), "n1", None, grace, Some(9));
        again.spec.renew_time = Some(MicroTime::from_unix_micros(1));
        absorb(&h, &mut last, &again, false, t);
        assert_eq!(h.last("n1"), Some(t));
        assert_eq!(h.programmed("n1"), Some(9));
    }

    #[test]
    fn renewals_are_throttled_unless_the_programmed_revision_moves() {
        let h = Heartbeats::default();
        let every = renew_every(Duration::from_secs(10));
        assert_eq!(every, Duration::from_millis(2500));
        let t0 = Instant::now();
        assert!(h.lease_due("n1", None, every, t0));
        h.lease_written("n1", Some(3), t0);
        assert!(!h.lease_due("n1", Some(3), every, t0 + Duration::from_secs(1)));
        assert!(h.lease_due("n1", Some(4), every, t0 + Duration::from_secs(1)));
        assert!(h.lease_due("n1", Some(3), every, t0 + every));
    }
}
