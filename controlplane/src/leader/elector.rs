//! The campaign: read the election Lease every retry period, take it when
//! [`decide`](super::decide) says so, renew it while leading, step down
//! when renewals fail for the renew deadline or another took it, release
//! it on shutdown. Taking the Lease rewrites the fence
//! ([`super::fence::FENCE_KEY`]) in the same transaction.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jotasu_api::kinds::coordination::{Lease, MicroTime};
use tokio::sync::watch;
use tracing::{info, warn};

use super::decide::{Decision, Observation, Record, decide, must_step_down};
use super::fence::FENCE_KEY;
use crate::apiserver::lease;
use crate::store::{Compare, Revision, Store, StoreError, StoreResult, Txn};

/// The election Lease's namespace.
pub const NAMESPACE: &str = "kube-system";
/// The election Lease's name: one leader runs the scheduler and the
/// controllers together.
pub const NAME: &str = "jotasu-controlplane";

/// The election's timing and who this candidate is.
#[derive(Debug, Clone)]
pub struct ElectionConfig {
    /// This control plane's identity (the Lease's holder while it leads).
    pub identity: String,
    /// How long others wait after the last renewal they saw.
    pub lease_duration: Duration,
    /// A leader that could not renew for this long steps down.
    pub renew_deadline: Duration,
    /// How often candidates look and the leader renews.
    pub retry_period: Duration,
}

impl ElectionConfig {
    /// Kubernetes' defaults are 15 s / 10 s / 2 s; jotasu's are shorter
    /// so a lost leader is replaced within about two seconds.
    pub fn with_identity(identity: impl Into<String>) -> Self {
        Self {
            identity: identity.into(),
            lease_duration: Duration::from_secs(2),
            renew_deadline: Duration::from_millis(1500),
            retry_period: Duration::from_millis(250),
        }
    }
}

/// Where this control plane stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// Another leads (or nobody yet).
    Following,
    /// This one leads; its writes are guarded by the fence at `fence`.
    Leading {
        /// The fence key's mod revision this control plane wrote.
        fence: Revision,
    },
}

/// What the campaign keeps between rounds.
struct Campaign<S> {
    store: Arc<S>,
    config: ElectionConfig,
    key: Vec<u8>,
    observed: Option<Observation>,
    /// While leading: the Lease's mod revision, the fence and the last renewal.
    held: Option<Held>,
}

#[derive(Debug, Clone)]
struct Held {
    lease: Lease,
    mod_revision: Revision,
    fence: Revision,
    renewed: Instant,
}

/// Campaigns until `stop` turns true, publishing every change of standing
/// on `tx`; on stop a leader releases the Lease so another takes over at
/// once.
pub async fn campaign<S: Store>(
    store: Arc<S>,
    config: ElectionConfig,
    tx: watch::Sender<Leadership>,
    mut stop: watch::Receiver<bool>,
) {
    let mut c = Campaign {
        store,
        key: lease::key(NAMESPACE, NAME),
        config,
        observed: None,
        held: None,
    };
    let mut tick = tokio::time::interval(c.config.retry_period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let standing = c.round().await;
        tx.send_if_modified(|s| {
            let changed = *s != standing;
            *s = standing;
            changed
        });
    }
    if c.held.is_some() {
        c.release().await;
        tx.send_replace(Leadership::Following);
    }
}

impl<S: Store> Campaign<S> {
    async fn round(&mut self) -> Leadership {
        match self.held.clone() {
            Some(held) => self.renew(held).await,
            None => self.try_acquire().await,
        }
    }

    async fn renew(&mut self, held: Held) -> Leadership {
        let mut lease = held.lease.clone();
        lease.spec.renew_time = Some(MicroTime::now());
        let txn = Txn::new()
            .when(Compare::mod_revision(&self.key, held.mod_revision))
            .when(Compare::mod_revision(FENCE_KEY, held.fence))
            .put(&self.key, &lease::encode(&lease));
        match self.store.txn(txn).await {
            Ok(Some(rev)) => {
                self.held = Some(Held {
                    lease,
                    mod_revision: rev,
                    fence: held.fence,
                    renewed: Instant::now(),
                });
                Leadership::Leading { fence: held.fence }
            }
            Ok(None) | Err(StoreError::Conflict { .. }) => {
                warn!(identity = %self.config.identity, "lost the leadership: another control plane took the Lease; stopping the controllers");
                self.held = None;
                self.observed = None;
                Leadership::Following
            }
            Err(e) => {
                if must_step_down(held.renewed, Instant::now(), self.config.renew_deadline) {
                    warn!(identity = %self.config.identity, error = %e, deadline = ?self.config.renew_deadline, "could not renew the leader Lease within the renew deadline; stepping down");
                    self.held = None;
                    self.observed = None;
                    Leadership::Following
                } else {
                    warn!(error = %e, "renewing the leader Lease failed; retrying");
                    self.held = Some(held.clone());
                    Leadership::Leading { fence: held.fence }
                }
            }
        }
    }

    async fn try_acquire(&mut self) -> Leadership {
        match self.acquire().await {
            Ok(Some(held)) => {
                info!(identity = %self.config.identity, fence = held.fence, "became the leader: starting the scheduler and the controllers");
                let fence = held.fence;
                self.held = Some(held);
                Leadership::Leading { fence }
            }
            Ok(None) => Leadership::Following,
            Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => {
                // Another candidate was faster; look again next round.
                Leadership::Following
            }
            Err(e) => {
                warn!(error = %e, "reading the leader Lease failed; retrying");
                Leadership::Following
            }
        }
    }

    /// One look at the Lease; takes it if it may.
    async fn acquire(&mut self) -> StoreResult<Option<Held>> {
        let now = Instant::now();
        let current = self.store.get(&self.key).await?;
        let existing = current.as_ref().map(|kv| (kv, lease::decode(kv)));
        self.observed = existing.as_ref().map(|(kv, l)| {
            let record = Record {
                holder: l
                    .as_ref()
                    .and_then(|l| l.spec.holder_identity.clone())
                    .unwrap_or_default(),
                duration: l
                    .as_ref()
                    .and_then(|l| l.spec.lease_duration_seconds)
                    .map_or(self.config.lease_duration, |s| {
                        Duration::from_secs(u64::try_from(s).unwrap_or(1))
                    }),
                mod_revision: kv.mod_revision,
            };
            Observation::next(self.observed.as_ref(), record, now)
        });
        let decision = decide(&self.config.identity, self.observed.as_ref(), now);
        let mut new = lease::fresh(
            NAMESPACE,
            NAME,
            &self.config.identity,
            lease::seconds(self.config.lease_duration),
        );
        let guard = match (decision, existing) {
            (Decision::Wait, _) => return Ok(None),
            (Decision::Create, _) | (Decision::Take, None) => Compare::absent(&self.key),
            (Decision::Take, Some((kv, old))) => {
                if let Some(old) = old {
                    let same = old.spec.holder_identity.as_deref() == Some(&self.config.identity);
                    new.metadata = old.metadata.clone();
                    new.spec.lease_transitions =
                        Some(old.spec.lease_transitions.unwrap_or(0) + i32::from(!same));
                }
                Compare::mod_revision(&self.key, kv.mod_revision)
            }
        };
        let txn = Txn::new()
            .when(guard)
            .put(&self.key, &lease::encode(&new))
            .put(FENCE_KEY, self.config.identity.as_bytes());
        let Some(rev) = self.store.txn(txn).await? else {
            return Ok(None);
        };
        Ok(Some(Held {
            lease: new,
            mod_revision: rev,
            fence: rev,
            renewed: Instant::now(),
        }))
    }

    /// Gives the Lease up (holder cleared, as client-go's ReleaseOnCancel),
    /// guarded so a Lease already taken by another is left alone.
    async fn release(&mut self) {
        let Some(held) = self.held.take() else { return };
        let mut lease = held.lease;
        lease.spec.holder_identity = None;
        lease.spec.lease_duration_seconds = Some(1);
        lease.spec.renew_time = Some(MicroTime::now());
        let txn = Txn::new()
            .when(Compare::mod_revision(&self.key, held.mod_revision))
            .put(&self.key, &lease::encode(&lease));
        match self.store.txn(txn).await {
            Ok(_) => info!(identity = %self.config.identity, "released the leader Lease"),
            Err(e) => {
                warn!(error = %e, "could not release the leader Lease; others take it once it expires")
            }
        }
    }
}
